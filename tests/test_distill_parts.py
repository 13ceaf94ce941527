"""Pieces of nvnmd distill that need no teacher: perturbation, sel, the manifest's resume rules."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from nvnmd.errors import NvnmdError

DATA = Path(__file__).resolve().parents[1] / "nvnmd" / "data"


@pytest.fixture(scope="module")
def lgps():
    from ase.io import read

    return read(DATA / "lgps_relaxed.extxyz")


def test_perturb_is_seeded_and_keeps_atom_order(lgps):
    from nvnmd.distill.data import perturb

    sym = lgps.get_chemical_symbols()
    a = perturb(lgps.positions[None], lgps.cell.array[None], sym, 3, 0.03, 0.1, seed=5)
    b = perturb(lgps.positions[None], lgps.cell.array[None], sym, 3, 0.03, 0.1, seed=5)
    c = perturb(lgps.positions[None], lgps.cell.array[None], sym, 3, 0.03, 0.1, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], c[0])
    deform = np.linalg.solve(lgps.cell.array, a[1][0])  # new cell = cell @ deform
    assert 0 < np.abs(deform - np.eye(3)).max() <= 2 * 0.03  # a few % strain, as asked
    shift = np.linalg.norm(a[0][0] - lgps.positions @ deform, axis=1)
    assert 0.02 < shift.mean() < 0.3  # about 0.1 Å per atom, nobody swapped


def test_sel_from_data_and_the_board_limit(lgps):
    from nvnmd.distill.data import choose_sel, neighbour_counts

    sym = lgps.get_chemical_symbols()
    most = neighbour_counts(lgps.positions[None], lgps.cell.array[None], sym, 6.0)
    sel = choose_sel(lgps.positions[None], lgps.cell.array[None], sym, 6.0, 1.15)
    assert all(s % 4 == 0 and s >= 1.15 * m for s, m in zip(sel, most)) and sum(sel) <= 128
    with pytest.raises(NvnmdError, match="exceeds the board"):
        choose_sel(lgps.positions[None], lgps.cell.array[None], sym, 7.9, 1.15)


def test_manifest_refuses_other_parameters_and_counts_killed_attempts(tmp_path):
    from nvnmd.distill.manifest import Manifest

    man = Manifest(tmp_path)
    man.bind({"md_steps": 2000}, {"teacher": {"sha256": "a" * 64}})
    man.start("teacher_md")
    st = man.stage("teacher_md")
    st["attempt_start"], st["last_progress"] = time.time() - 100, time.time() - 40  # killed 40 s ago after 60 s
    man.save()
    again = Manifest(tmp_path)  # the rerun after kill -9
    with pytest.raises(NvnmdError, match="md_steps"):
        again.bind({"md_steps": 3000}, {"teacher": {"sha256": "a" * 64}})
    with pytest.raises(NvnmdError, match="another teacher"):
        again.bind({"md_steps": 2000}, {"teacher": {"sha256": "b" * 64}})
    again.bind({"md_steps": 2000}, {"teacher": {"sha256": "a" * 64}})
    assert not again.done("teacher_md")
    again.start("teacher_md")
    out = tmp_path / "x.txt"
    out.write_text("x")
    wall = again.finish("teacher_md", [out])
    assert 60 <= wall < 65 and again.done("teacher_md")
    assert json.loads((tmp_path / "manifest.json").read_text())["stages"]["teacher_md"]["attempts"] == 2
    out.unlink()
    assert not Manifest(tmp_path).done("teacher_md")  # an output gone: the stage is redone


def test_manifest_accepts_a_changed_parameter_only_before_its_stage_starts(tmp_path):
    from nvnmd.distill.config import FIRST_STAGE
    from nvnmd.distill.manifest import Manifest
    from nvnmd.distill.pipeline import STAGES

    teacher = {"teacher": {"sha256": "a" * 64}}
    man = Manifest(tmp_path)
    man.bind({"md_steps": 2000, "train_steps": 200000}, teacher, FIRST_STAGE, STAGES)
    man.start("perturb")
    man.start("teacher_md")
    again = Manifest(tmp_path)
    again.bind({"md_steps": 2000, "train_steps": 100000}, teacher, FIRST_STAGE, STAGES)  # training not started
    assert json.loads((tmp_path / "manifest.json").read_text())["parameters"]["train_steps"] == 100000
    with pytest.raises(NvnmdError, match=r"md_steps \(used by teacher_md\)"):
        again.bind({"md_steps": 3000, "train_steps": 100000}, teacher, FIRST_STAGE, STAGES)
    again.start("train")
    with pytest.raises(NvnmdError, match=r"train_steps \(used by train\)"):
        Manifest(tmp_path).bind({"md_steps": 2000, "train_steps": 50000}, teacher, FIRST_STAGE, STAGES)
    with pytest.raises(NvnmdError, match=r"unknown_knob \(used by perturb\)"):
        Manifest(tmp_path).bind({"md_steps": 2000, "train_steps": 100000, "unknown_knob": 1}, teacher, FIRST_STAGE, STAGES)


def test_several_compositions_one_type_map_and_one_sel(lgps):
    """The union of species in periodic order whatever the order given; sel covers every
    composition; a single-structure run records exactly the parameters it did before."""
    from nvnmd.distill.config import DistillConfig
    from nvnmd.distill.data import choose_sel, choose_sel_systems, neighbour_counts, union_type_map
    from nvnmd.structures import build

    arg = build("argyrodite", halide="Cl", seed=1)
    sym_l, sym_a = lgps.get_chemical_symbols(), arg.get_chemical_symbols()
    assert union_type_map([sym_a, sym_l]) == union_type_map([sym_l, sym_a]) == ["Li", "P", "S", "Cl", "Ge"]
    tmap = union_type_map([sym_l, sym_a])
    systems = [(lgps.positions[None], lgps.cell.array[None], sym_l), (arg.positions[None], arg.cell.array[None], sym_a)]
    sel = choose_sel_systems(systems, tmap, 6.0, 1.15)
    most = np.max([neighbour_counts(c, b, s, 6.0, tmap) for c, b, s in systems], axis=0)
    assert most[tmap.index("Cl")] > 0 and most[tmap.index("Ge")] > 0  # each type seen in its own cell
    assert all(s % 4 == 0 and s >= 1.15 * m for s, m in zip(sel, most))
    own = [choose_sel_systems([sy], tmap, 6.0, 1.15) for sy in systems]
    assert sel == np.maximum(*own).tolist() and own[0] != own[1]  # each type's most crowded composition
    single = choose_sel(*systems[0], 6.0, 1.15)  # one composition: its own order, the same numbers
    assert single == [own[0][tmap.index(t)] for t in ["Li", "Ge", "P", "S"]]
    assert "structures" not in DistillConfig(structure="a.extxyz").semantic()
    multi = DistillConfig(structures=("a=a.extxyz", "b=b.extxyz"))
    assert multi.semantic()["structures"] == ["a=a.extxyz", "b=b.extxyz"]
    assert multi.compositions() == [("a", "a.extxyz"), ("b", "b.extxyz")]
    assert DistillConfig(structure="a.extxyz").compositions() == [("", "a.extxyz")]


def test_structure_options_and_their_one_line_errors(tmp_path):
    import argparse

    from nvnmd.distill.cli import config_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())

    def cfg(*argv):
        return config_from_args(parser.parse_args(["distill", *argv, "-o", str(tmp_path / "o")]))

    assert cfg("--structure", "x/a.extxyz").structure == "x/a.extxyz"  # one: the single-structure run
    assert cfg("--structure", "a.extxyz", "--structure", "n=x/Li10Si0.5Ge0.5P2S12.extxyz").structures == (
        "a=a.extxyz", "n=x/Li10Si0.5Ge0.5P2S12.extxyz")
    lst = tmp_path / "sub" / "list.txt"
    lst.parent.mkdir()
    lst.write_text("# two compositions\nlgps=lgps.extxyz\n\n/abs/Li6PS5Cl.extxyz  # ordered\n")
    assert cfg("--structure-list", str(lst)).structures == (f"lgps={lst.parent}/lgps.extxyz", "Li6PS5Cl=/abs/Li6PS5Cl.extxyz")
    with pytest.raises(NvnmdError, match="two structures are named a"):
        cfg("--structure", "a.extxyz", "--structure", "y/a.extxyz")
    with pytest.raises(NvnmdError, match="give a starting structure"):
        cfg()
    with pytest.raises(NvnmdError, match="--structure-list"):
        cfg("--structure-list", str(tmp_path / "missing.txt"))
    unstrained = cfg("--structure", "a.extxyz", "--cell-pert", "0", "--frame-cell-pert", "0", "--frame-atom-pert", "0")
    assert (unstrained.cell_pert_fraction, unstrained.frame_cell_pert_fraction,
            unstrained.frame_atom_pert_distance, unstrained.atom_pert_distance) == (0.0, 0.0, 0.0, 0.1)
    for opt in ("--cell-pert", "--atom-pert", "--frame-cell-pert", "--frame-atom-pert"):
        with pytest.raises(NvnmdError, match=f"{opt} must be >= 0"):
            cfg("--structure", "a.extxyz", opt, "-0.01")
    with pytest.raises(NvnmdError, match="--md-steps must be > 0"):
        cfg("--structure", "a.extxyz", "--md-steps", "0")
    with pytest.raises(NvnmdError, match="--dt must be > 0"):
        cfg("--structure", "a.extxyz", "--dt", "-1")
    assert cfg("--structure", "a.extxyz", "--seed", "-7").seed == -7


def test_manifest_refuses_a_changed_composition(tmp_path):
    from nvnmd.distill.manifest import Manifest

    def extra(sha_b):
        return {"structures": [{"name": "a", "sha256": "1" * 64}, {"name": "b", "sha256": sha_b}]}

    Manifest(tmp_path).bind({"md_steps": 20}, extra("2" * 64))
    Manifest(tmp_path).bind({"md_steps": 20}, extra("2" * 64))
    with pytest.raises(NvnmdError, match="another structure b"):
        Manifest(tmp_path).bind({"md_steps": 20}, extra("3" * 64))


def test_force_deviation_is_dpgens_and_deepmd_kits():
    """Per atom sqrt(mean_m |F_m - <F>|^2), the frame's max / min / mean over atoms: the same
    numbers as deepmd-kit's own calc_model_devi_f (what `dp model-devi` and DP-GEN use)."""
    from deepmd.infer.model_devi import calc_model_devi_f

    from nvnmd.distill.explore import force_deviation

    rng = np.random.default_rng(3)
    fs = rng.normal(size=(3, 5, 7, 3))  # models, frames, atoms, xyz
    got = force_deviation(fs)
    for a, b in zip(got, calc_model_devi_f(fs)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    f = fs[:, 2, 4]  # one atom of one frame, by hand
    mean = f.mean(axis=0)
    by_hand = np.sqrt(np.mean([np.sum((fm - mean) ** 2) for fm in f]))
    assert got[2][2] * 7 == pytest.approx(sum(np.sqrt(np.mean(np.sum((fs[:, 2, i] - fs[:, 2, i].mean(0)) ** 2, -1)))
                                              for i in range(7)))
    assert by_hand <= got[0][2] and by_hand >= got[1][2]
    two = np.stack([fs[0], fs[0] + [0.2, 0.0, 0.0]])  # two models 0.2 eV/Å apart in x: sigma 0.1 on every atom
    assert np.allclose(force_deviation(two), 0.1)


def test_ensemble_options_and_their_one_line_errors(tmp_path):
    import argparse

    from nvnmd.distill.cli import config_from_args, register
    from nvnmd.distill.config import DistillConfig

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())

    def cfg(*argv):
        return config_from_args(parser.parse_args(["distill", "--structure", "a.extxyz", *argv, "-o", str(tmp_path)]))

    c = cfg("--ensemble-size", "3", "--trust-lo", "0.05", "--trust-hi", "0.15", "--explore-temperatures", "900,1300")
    assert (c.ensemble_size, c.trust_lo, c.trust_hi, c.explore_temperatures) == (3, 0.05, 0.15, (900.0, 1300.0))
    assert c.ensemble == "csvr"  # --ensemble stays the thermostat
    assert DistillConfig(temperatures=(700.0, 900.0)).exploration_temperatures == (700.0, 900.0, 1000.0)
    for argv, what in [(("--ensemble-size", "1"), "2 to 4 students, got 1"), (("--ensemble-size", "5"), "got 5"),
                       (("--ensemble-size", "2", "--trust-lo", "0.3", "--trust-hi", "0.3"), "--trust-lo must be below"),
                       (("--ensemble-size", "2", "--trust-lo", "0.5"), "0.5 >= 0.45"),
                       (("--ensemble-size", "2", "--accurate-fraction", "1.5"), "at most 1"),
                       (("--ensemble-size", "2", "--explore-temperatures", "900,x"), "comma-separated numbers"),
                       (("--ensemble-size", "2", "--max-candidates", "0"), "> 0"),
                       (("--trust-lo", "0.05"), "give --ensemble-size 2 to 4 with it"),
                       (("--ensemble", "2"), "give --ensemble-size 2")]:
        with pytest.raises(NvnmdError, match=what) as exc:
            cfg(*argv)
        assert "\n" not in str(exc.value)
    # off, the exploration's parameters are not recorded: older manifests resume as they were
    assert not {"trust_lo", "explore_rounds"} & set(DistillConfig().semantic())
    assert {"trust_lo", "explore_rounds"} <= set(DistillConfig(ensemble_size=2).semantic())


def test_the_ensemble_may_be_added_before_train_starts(tmp_path):
    """Turning the ensemble on is accepted while neither explore nor any later stage has started;
    once train has, it is refused even though explore (skipped) never ran."""
    from nvnmd.distill.config import FIRST_STAGE, DistillConfig
    from nvnmd.distill.manifest import Manifest
    from nvnmd.distill.pipeline import STAGES

    teacher = {"teacher": {"sha256": "a" * 64}}
    off, on = DistillConfig().semantic(), DistillConfig(ensemble_size=2).semantic()
    man = Manifest(tmp_path)
    man.bind(off, teacher, FIRST_STAGE, STAGES)
    for s in ("perturb", "teacher_md", "sample", "label"):
        man.start(s)
    Manifest(tmp_path).bind(on, teacher, FIRST_STAGE, STAGES)
    man = Manifest(tmp_path)
    man.bind(off, teacher, FIRST_STAGE, STAGES)
    man.start("train")
    with pytest.raises(NvnmdError, match=r"ensemble_size \(used by train\)"):
        Manifest(tmp_path).bind(on, teacher, FIRST_STAGE, STAGES)


def test_the_committed_lgps_run_resumes_as_finished(tmp_path, monkeypatch):
    """student/distill/lgps, made before the explore stage existed, rerun with lgps.sh's arguments
    (no ensemble): every stage kept, nothing redone, the same parameters and stages recorded."""
    import argparse
    import shutil

    from nvnmd.distill.cli import config_from_args, register
    from nvnmd.distill.pipeline import distill

    root = DATA.parents[1]
    run = tmp_path / "lgps"
    shutil.copytree(root / "student" / "distill" / "lgps", run)
    before = json.loads((run / "manifest.json").read_text())
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["distill", "--structure", "nvnmd/data/lgps_relaxed.extxyz", "--reference-data",
                              before["parameters"]["reference_data"], "--reference-every", "10", "--baseline",
                              "nvnmd/data/lgps_student.pb", "--train-steps", "100000", "--quiet", "-o", str(run)])
    monkeypatch.chdir(root)  # lgps.sh runs from the repository root: the recorded paths are relative to it
    lines = []
    t0 = time.time()
    report = distill(config_from_args(args), run, log_fn=lines.append)
    assert report["status"] == "accepted" and time.time() - t0 < 60
    assert sum("done before" in line for line in lines) == 7 and not any("explore" in line for line in lines)
    after = json.loads((run / "manifest.json").read_text())
    assert after["parameters"] == before["parameters"] and after["stages"] == before["stages"]


def test_volume_scales_add_runs_and_keep_the_old_ones(tmp_path, lgps):
    """--volume-scales: every (structure, temperature) also at the scaled volumes, with their own
    names and seeds; at the default the runs, seeds and recorded parameters are the ones made
    before scales existed (the committed LGPS run still resumes as finished)."""
    import argparse

    from ase.io import read, write

    from nvnmd.backends import make_backend
    from nvnmd.distill import workers
    from nvnmd.distill.cli import config_from_args, register
    from nvnmd.distill.config import DistillConfig
    from nvnmd.distill.pipeline import Composition, _trajectories

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())

    def cfg(*argv):
        return config_from_args(parser.parse_args(["distill", "--structure", str(DATA / "lgps_relaxed.extxyz"),
                                                   *argv, "-o", str(tmp_path / "o")]))

    plain = cfg("--md-structures", "2", "-T", "900,1200")
    assert "volume_scales" not in plain.semantic()
    committed = json.loads((DATA.parents[1] / "student/distill/lgps/manifest.json").read_text())["parameters"]
    assert DistillConfig.from_dict(committed).semantic() == committed
    scaled = cfg("--md-structures", "2", "-T", "900,1200", "--volume-scales", "1,1.3")
    assert scaled.semantic()["volume_scales"] == [1.0, 1.3]
    old = _trajectories(plain, tmp_path, Composition(plain, 0, "", plain.structure))
    new = _trajectories(scaled, tmp_path, Composition(scaled, 0, "", scaled.structure))
    assert [r[0] for r in new] == ["s0_T900K", "s0_T900K_V1.300", "s0_T1200K", "s0_T1200K_V1.300",
                                   "s1_T900K", "s1_T900K_V1.300", "s1_T1200K", "s1_T1200K_V1.300", "holdout"]
    by_name = {r[0]: r for r in new}
    for r in old:  # unscaled runs: same directory, seed and settings as before
        assert by_name[r[0]][1:4] == r[1:4] and by_name[r[0]][4] == 1.0
    seeds = [r[2]["seed"] for r in new]
    assert len(set(seeds)) == len(seeds)
    for bad in ("0.5", "1,1", "1,x", "3"):
        with pytest.raises(NvnmdError, match="--volume-scales"):
            cfg("--volume-scales", bad)

    # the worker scales the start isotropically (a real backend: the committed distilled student, quantized)
    start = tmp_path / "start.extxyz"
    write(str(start), lgps)
    workers._TEACHER = make_backend("sim", image=str(DATA.parents[1] / "student/distill/lgps/student.nvq"))[0]
    try:
        md = dict(new[1][2], steps=2, traj_every=1, thermo_every=1, checkpoint_every=2)
        workers.teacher_md(str(start), str(tmp_path / "md"), md, volume_scale=1.3)
    finally:
        workers._TEACHER = None
    first = read(str(tmp_path / "md" / "traj.extxyz"), index=0)
    assert first.get_volume() == pytest.approx(1.3 * lgps.get_volume(), rel=1e-9)
    np.testing.assert_allclose(first.get_scaled_positions(wrap=False), lgps.get_scaled_positions(wrap=False), atol=1e-9)


def test_a_checkpoint_index_without_its_files_trains_from_scratch(tmp_path):
    """A checkout carries train/checkpoint and lcurve.out but not the (ignored) model.ckpt files:
    `--restart` would fail, so the stale index goes and training starts over."""
    from nvnmd.distill.train import _checkpoint_files_exist

    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-1000"\n'
                                         'all_model_checkpoint_paths: "model.ckpt-1000"\n')
    assert not _checkpoint_files_exist(tmp_path)
    (tmp_path / "model.ckpt-1000.index").write_bytes(b"")
    assert _checkpoint_files_exist(tmp_path)


def test_pair_embedding_reaches_the_training_input_and_old_runs_still_resume(tmp_path):
    """--pair-embedding: deepmd's type_one_side false in the student's input (one embedding net per type
    pair); at the default the recorded parameters are the ones made before the option existed."""
    import argparse

    from nvnmd.distill.cli import config_from_args, register
    from nvnmd.distill.config import DistillConfig
    from nvnmd.distill.train import training_input

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())

    def cfg(*argv):
        return config_from_args(parser.parse_args(["distill", "--structure", str(DATA / "lgps_relaxed.extxyz"),
                                                   *argv, "-o", str(tmp_path / "o")]))

    plain, pair = cfg(), cfg("--pair-embedding")
    assert "type_one_side" not in plain.semantic() and pair.semantic()["type_one_side"] is False
    committed = json.loads((DATA.parents[1] / "student/distill/lgps_gen/manifest.json").read_text())["parameters"]
    assert DistillConfig.from_dict(committed).semantic() == committed
    assert DistillConfig.from_dict(pair.semantic()).type_one_side is False  # a resume reads it back
    tmap, sel = ["Li", "Ge", "P", "S"], [32, 8, 12, 36]
    for c, one_side in ((plain, True), (pair, False)):
        doc = training_input(c, tmap, sel, "data/train", "data/holdout", seed=1)
        assert doc["model"]["descriptor"]["type_one_side"] is one_side


def test_refine_phases_are_the_shipped_students_later_stages_and_bad_ones_are_refused(tmp_path):
    """--refine restart:N,finetune:N: each phase's loss and learning rate are student/input_restart.json's
    and student/input_finetune.json's (the recipe of the shipped student), its steps the given ones; the
    data and model of the first phase; malformed phases refused in one line; not recorded at the default."""
    import argparse

    from nvnmd.distill.cli import config_from_args, register
    from nvnmd.distill.train import parse_refine, refine_input, training_input
    from nvnmd.errors import NvnmdError

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())

    def cfg(*argv):
        return config_from_args(parser.parse_args(["distill", "--structure", str(DATA / "lgps_relaxed.extxyz"),
                                                   *argv, "-o", str(tmp_path / "o")]))

    assert "refine" not in cfg().semantic()
    c = cfg("--refine", "restart:100000,finetune:20000")
    assert c.refine == ("restart:100000", "finetune:20000") and c.semantic()["refine"] == list(c.refine)
    base = training_input(c, ["Li", "Ge", "P", "S"], [32, 8, 12, 36], "../data/train", "../data/holdout", seed=1)
    shipped = DATA.parents[1] / "student"
    for phase, recipe in zip(c.refine, ("input_restart.json", "input_finetune.json")):
        want = json.loads((shipped / recipe).read_text())
        doc = refine_input(base, phase, c)
        assert doc["loss"] == want["loss"]
        assert doc["learning_rate"] == want["learning_rate"]  # same steps as the recipe: same decay too
        assert doc["training"]["numb_steps"] == want["training"]["numb_steps"]
        assert doc["model"] == base["model"] and doc["training"]["training_data"] == base["training"]["training_data"]
    assert base["loss"]["start_pref_f"] == 1000  # the first phase is untouched
    for bad in ("restart", "restart:0", "anneal:100", "finetune:1e4"):
        with pytest.raises(NvnmdError, match="--refine takes PHASE:STEPS"):
            parse_refine(bad)
