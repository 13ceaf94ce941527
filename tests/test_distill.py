"""`nvnmd distill` end to end on a tiny setting with the REAL embedded teacher (DPA4-Neo-OMat24):
the shipped 50-atom LGPS cell, 2 perturbed structures x 10 MD steps at 2 volumes, 5 frames each, then one
round of the explore stage (2 students of 100 steps, 40 MD steps at 900 and 1000 K from each
structure, at most 4 candidates labelled), 200 training steps and two refinement phases of 50
(--refine restart:50,finetune:50), a 0.2 ps robustness run. The run
is killed (kill -9) mid-round, once the round has picked its candidates, and resumed. Then: the
deviations are deepmd-kit's numbers for those models, the added frames carry the teacher's
labels and are there once, a rerun redoes nothing, changed parameters are refused in one line.
(A run without the ensemble, end to end: tests/test_distill_species.py.) Needs the distill
extra; a few minutes on 2 cores."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "nvnmd" / "data"
TRUST = (0.05, 2.0)  # eV/Å: wide, for students of 100 steps (the defaults suit trained ones)
ENSEMBLE = ["--ensemble-size", "2", "--explore-rounds", "1", "--explore-train-steps", "100", "--explore-steps", "40",
            "--explore-every", "4", "--trust-lo", str(TRUST[0]), "--trust-hi", str(TRUST[1]), "--max-candidates", "4"]
TINY = ["--structure", str(DATA / "lgps_relaxed.extxyz"), "--md-structures", "2", "--md-steps", "10", "--frames", "5",
        "--volume-scales", "1,1.2",
        "--holdout-steps", "10", "--holdout-frames", "5", "--train-steps", "200", "--refine", "restart:50,finetune:50", "--robust-ps", "0.2",
        "--calib-frames", "10", "--reference-data", str(DATA / "frames" / "lgps50"), "--quiet", *ENSEMBLE]


def _command(args, out):
    return [sys.executable, "-m", "nvnmd.cli", "distill", *args, "-o", str(out)]


def _distill(args, out):
    return subprocess.run(_command(args, out), capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "tiny"
    picked = out / "explore" / "iter.000" / "candidates.npz"
    with open(out.parent / "killed.log", "w") as log:  # the first attempt: kill -9 once candidates are picked
        proc = subprocess.Popen(_command(TINY, out), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        while proc.poll() is None and not picked.exists():
            time.sleep(0.2)
        killed = proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)  # its teacher workers too
        proc.wait()
    assert killed, (out.parent / "killed.log").read_text()[-2000:]
    assert not (out / "explore" / "iter.000" / "round.json").exists()
    return out, _distill(TINY, out)


def test_pipeline_runs_every_stage(run):
    out, p = run
    assert p.returncode in (0, 1), p.stderr[-2000:]  # 1: the student was rejected, with reasons
    man = json.loads((out / "manifest.json").read_text())
    from nvnmd.distill.pipeline import STAGES

    assert [s for s in STAGES if man["stages"][s]["status"] == "done"] == list(STAGES)
    assert man["teacher"]["sha256"].startswith("0777cc770def")
    assert man["structure"]["natoms"] == 50 and "NVT" in man["scheme"]["md_ensemble"]
    for rel, digest in man["stages"]["train"]["outputs"].items():
        assert len(digest) == 64 and (out / rel).exists()
    # the refinement phases: each starts from the previous phase's frozen model, the last one is the student
    phases = [out / "train", out / "train" / "refine1_restart", out / "train" / "refine2_finetune"]
    curves = [np.loadtxt(ph / "lcurve.out", ndmin=2)[:, 5] for ph in phases]  # rmse_f_val
    for prev, ph, before, now in zip(phases, phases[1:], curves, curves[1:]):
        log = (ph / "train.log").read_text()
        assert f"--init-frz-model {os.path.relpath(prev / 'model.pb', ph)}" in log
        assert "initialize training from the frozen model" in log
        # from scratch (same seed) it would start at phase 1's first value; it starts where `prev` ended
        assert now[0] != curves[0][0] and now[0] == pytest.approx(before[-1], rel=0.05), (before, now)
        assert json.loads((ph / "input.json").read_text())["training"]["numb_steps"] == 50
    assert (out / "student.pb").read_bytes() == (phases[-1] / "model.pb").read_bytes()
    label = man["stages"]["label"]["info"]
    assert label["frames"]["frames"] == 2 * 2 * 5 and label["holdout"]["kept"] == 5  # structures x volumes x frames
    assert label["frames"]["kept"] + label["frames"]["dropped_max_force"] == 2 * 2 * 5
    # the trained student: the board's shape, its sidecar, a quantized image that agrees with it
    from nvnmd.quantize.build import check_limits
    from nvnmd.student import load_student

    student = load_student(out / "student.pb")
    check_limits(student)
    assert student.type_map == ["Li", "Ge", "P", "S"] and student.closest_pairs["S-S"] > 1.5
    report = json.loads((out / "validate" / "report.json").read_text())
    fl, q = report["holdout"]["float"], report["holdout"]["quantized"]
    assert 0 < fl["force"]["rmse"] < 5.0
    assert q["force"]["rmse"] == pytest.approx(fl["force"]["rmse"], rel=0.05)
    assert report["reference"]["teacher"]["force"]["rmse"] < 0.060  # DPA4 vs DFT labels
    assert report["robustness"]["simulated_ps"] == pytest.approx(0.2)
    assert np.isfinite(report["robustness"]["conserved_drift_eV_atom_ps"])
    if report["status"] == "rejected":
        assert report["reasons"] and p.returncode == 1
        assert "REJECTED" in (out / "validate" / "report.txt").read_text()
    assert (out / "validate" / "parity_holdout.png").stat().st_size > 10_000


def test_rerun_redoes_nothing_and_refuses_other_parameters(run):
    out, _ = run
    before = (out / "student.pb").read_bytes()
    p = _distill(TINY, out)
    assert p.stdout.count("done before") == 8, p.stdout
    assert (out / "student.pb").read_bytes() == before
    p = _distill([*TINY, "--md-steps", "30"], out)
    assert p.returncode == 2 and "md_steps" in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr


def test_explore_round_counts_and_candidates(run):
    out, p = run
    assert p.returncode in (0, 1), p.stderr[-2000:]
    man = json.loads((out / "manifest.json").read_text())
    ex = man["stages"]["explore"]
    assert ex["attempts"] == 2 and ex["info"]["stopped"] in ("rounds exhausted", "converged", "no candidates")
    (rec,) = ex["info"]["rounds"]
    assert rec == json.loads((out / "explore" / "iter.000" / "round.json").read_text())
    # 2 structures x (-T and the robustness T) x the 2 volumes of teacher_md
    assert rec["trajectories"] == 2 * 2 * 2 and rec["temperatures_K"] == [900.0, 1000.0]
    if rec["blown_up"]:  # a 100-step student may blow up: its frames up to there are judged
        assert 0 < rec["explored"] < 8 * 40 // 4
    else:
        assert rec["explored"] == 8 * 40 // 4  # a frame every 4 steps, the start not counted
    from ase.io import read
    start = read(out / "perturb" / "s1.extxyz")
    for name, scale in (("s1_T1000K", 1.0), ("s1_T1000K_V1.200", 1.2)):  # each starts at its volume
        first = read(out / "explore" / "iter.000" / "md" / name / "traj.extxyz", index=0)
        assert first.get_volume() == pytest.approx(scale * start.get_volume(), rel=1e-9)
    assert rec["accurate"] + rec["candidates"] + rec["failed"] == rec["explored"]
    assert rec["accurate_fraction"] == pytest.approx(rec["accurate"] / rec["explored"])
    assert rec["selected"] == min(4, rec["candidates"]) > 0, rec
    assert rec["labelled"] + rec["dropped_max_force"] == rec["selected"] and rec["data"] == "data/iter.000"
    assert len(set(rec["frames_sha256"])) == rec["selected"] and set(rec["wall_s"]) == {"train", "md", "deviation", "label"}
    assert len(set(rec["seeds"])) == 2 and man["seeds"]["explore_train"]
    with np.load(out / "explore" / "iter.000" / "candidates.npz") as z:
        sigma = z["sigma"]
    assert np.all((TRUST[0] <= sigma) & (sigma < TRUST[1]))
    # the final student trained on the round's frames too, and the report shows the round
    doc = json.loads((out / "train" / "input.json").read_text())
    assert doc["model"]["descriptor"]["sel"] == man["stages"]["train"]["info"]["sel"]
    assert doc["training"]["training_data"]["systems"] == ["../data/train", "../data/iter.000"]
    report = json.loads((out / "validate" / "report.json").read_text())
    assert report["exploration"]["rounds"][0]["labelled"] == rec["labelled"]
    text = (out / "validate" / "report.txt").read_text()
    assert "exploration: 1 round(s)" in text and "stage wall times (s): perturb" in text and " explore " in text


def test_explore_deviation_is_deepmd_kits_on_those_models(run):
    """The stored deviation of a frame == the students' forces from DeepPot, by hand, and ==
    deepmd-kit's calc_model_devi_f; model_devi.out has it in DP-GEN's columns."""
    from deepmd.infer import DeepPot
    from deepmd.infer.model_devi import calc_model_devi_f

    out, _ = run
    rdir = out / "explore" / "iter.000"
    run_dir = rdir / "md" / "s1_T1000K"
    with np.load(run_dir / "devi.npz") as z:
        devi = {k: z[k] for k in z.files}
    assert len(devi["steps"]) and devi["steps"][0] == 4
    models = [DeepPot(str(rdir / f"train.{m}" / "model.pb")) for m in range(2)]
    types = np.loadtxt(out / "data" / "train" / "type.raw", dtype=int)
    i = len(devi["steps"]) // 2
    fs = np.array([dp.eval(devi["coords"][i].reshape(1, -1), devi["cells"][i].reshape(1, 9), types)[1][0]
                   for dp in models])
    mean = fs.mean(axis=0)
    by_hand = max(np.sqrt(np.mean([np.sum((f[a] - mean[a]) ** 2) for f in fs])) for a in range(len(types)))
    assert devi["max_devi_f"][i] == pytest.approx(by_hand, rel=1e-9)
    assert devi["max_devi_f"][i] == pytest.approx(calc_model_devi_f(fs[:, None])[0][0], rel=1e-9)
    table = np.loadtxt(run_dir / "model_devi.out")
    assert open(run_dir / "model_devi.out").readline().split()[1:6] == ["step", "max_devi_v", "min_devi_v",
                                                                         "avg_devi_v", "max_devi_f"]
    np.testing.assert_allclose(table[:, 4], devi["max_devi_f"], rtol=1e-5)
    np.testing.assert_array_equal(table[:, 0], devi["steps"])


def test_explore_frames_carry_the_teachers_labels_once(run):
    """data/iter.000 holds the picked frames (their sha256 as the manifest records them), each once
    though the round was killed and resumed, with the teacher's own energies and forces."""
    import dpdata

    from nvnmd.backends import make_backend
    from nvnmd.distill.data import frame_sha256

    out, _ = run
    rec = json.loads((out / "explore" / "iter.000" / "round.json").read_text())
    s = dpdata.LabeledSystem(str(out / "data" / "iter.000"), fmt="deepmd/npy")
    assert len(s) == rec["labelled"]
    hashes = [frame_sha256(s["coords"][k], s["cells"][k])[:16] for k in range(len(s))]
    assert len(set(hashes)) == len(s) and set(hashes) <= set(rec["frames_sha256"])
    with np.load(out / "explore" / "iter.000" / "candidates.npz") as z:
        assert [frame_sha256(c, b)[:16] for c, b in zip(z["coords"], z["cells"])] == rec["frames_sha256"]
    teacher = make_backend("teacher", teacher=None)[0]
    index = {t: k for k, t in enumerate(teacher.type_map)}
    types = np.array([index[s["atom_names"][t]] for t in s["atom_types"]])
    res = teacher.compute(s["coords"][0], types, s["cells"][0])  # float64, summed in another order than a worker's
    assert s["energies"][0] == pytest.approx(res.energy, abs=1e-5)
    np.testing.assert_allclose(s["forces"][0], res.forces, atol=1e-5)
    np.testing.assert_allclose(s["virials"][0].reshape(3, 3), res.virial, atol=1e-4)


def test_robustness_run_of_a_replaced_image_starts_over(run, tmp_path):
    """The quantize stage redone (a new image): the validate stage's robustness checkpoint is of the
    old image, so the run starts over on the new one instead of refusing to resume or, finished,
    being reported as the new image's."""
    import shutil

    from ase.io import read

    from nvnmd.distill.config import DistillConfig
    from nvnmd.distill.validate import robustness
    from nvnmd.image import Image

    out, _ = run
    cfg = DistillConfig.from_dict(json.loads((out / "manifest.json").read_text())["parameters"])
    work = tmp_path / "robustness"
    shutil.copytree(out / "validate" / "robustness", work)
    with np.load(work / "checkpoint.npz", allow_pickle=False) as z:
        saved = {k: z[k] for k in z.files}
    ran = json.loads(str(saved["run"]))
    assert ran["image_sha256"] == Image.read(out / "student.nvq").digest()
    saved["run"] = np.array(json.dumps({**ran, "image_sha256": "0" * 64}))
    np.savez(work / "checkpoint.npz", **saved)
    (work / "thermo.csv").write_text("stale\n")
    res = robustness(out / "student.nvq", read(out / "perturb" / "s0.extxyz"), cfg, work, progress=False)
    assert res["simulated_ps"] == pytest.approx(0.2) and "stale" not in (work / "thermo.csv").read_text()
    with np.load(work / "checkpoint.npz", allow_pickle=False) as z:
        assert json.loads(str(z["run"]))["image_sha256"] == ran["image_sha256"]
