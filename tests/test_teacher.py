"""The teacher backend with the real embedded DPA4-Neo-OMat24 (needs the distill extra):
accuracy on shipped DFT frames, the ASE-calculator form, and the one-line errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nvnmd.errors import CorruptFileError, NvnmdError, StructureError

DATA = Path(__file__).resolve().parents[1] / "nvnmd" / "data"


@pytest.fixture(scope="module")
def teacher():
    from nvnmd.backends import make_backend

    return make_backend("teacher", teacher=None)[0]


def test_embedded_teacher_matches_dft_labels(teacher):
    """Measured 31.6 meV/Å force RMSE on 60 validation frames (../shared/notes/teachers.md);
    absolute energies within ~1 meV/atom of the PBE labels."""
    from nvnmd.quantize.data import load_frames

    frames = load_frames(DATA / "frames" / "lgps50", teacher.type_map)[:2]
    df, de = [], []
    for fr in frames:
        res = teacher.compute(fr.coord, fr.types, fr.cell)
        df.append((res.forces - fr.forces).ravel())
        de.append((res.energy - fr.energy) / fr.natoms)
    assert np.sqrt(np.mean(np.concatenate(df) ** 2)) < 0.060
    assert np.max(np.abs(de)) < 0.005
    assert teacher.spec.sha256.startswith("0777cc770def")


def test_teacher_virial_is_deepmd_convention(teacher):
    """Virial = -dE/dstrain: check one component against a finite difference of the energy."""
    from ase.io import read

    atoms = read(DATA / "lgps_relaxed.extxyz")
    types = np.array([teacher.type_map.index(s) for s in atoms.get_chemical_symbols()])
    res = teacher.compute(atoms.positions, types, atoms.cell.array)
    # the model computes in float32: its energy of ~-216 eV is resolved to ~1e-5 eV, so the step
    # must be large enough that this noise stays ~1 % of the difference (h = 1e-4 gave ~25 %)
    h = 2e-3
    e = []
    for s in (h, -h):
        strain = np.eye(3)
        strain[2, 2] += s
        e.append(teacher.compute(atoms.positions @ strain, types, atoms.cell.array @ strain).energy)
    assert res.virial[2, 2] == pytest.approx(-(e[0] - e[1]) / (2 * h), rel=0.03)  # the model is float32 inside


def test_ase_calculator_teacher_matches_the_calculator():
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from nvnmd.backends.teacher import load_teacher

    t = load_teacher("ase.calculators.emt:EMT")
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    types = np.array([t.type_map.index(s) for s in atoms.get_chemical_symbols()])
    res = t.compute(atoms.positions, types, atoms.cell.array)
    atoms.calc = EMT()
    assert res.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(res.forces, atoms.get_forces(), atol=1e-10)
    assert np.trace(res.virial) == pytest.approx(-np.sum(atoms.get_stress()[:3]) * atoms.get_volume(), abs=1e-8)


def test_corrupt_model_and_bad_specs(tmp_path):
    from nvnmd.backends.teacher import load_teacher, resolve_teacher

    bad = tmp_path / "teacher.pth"
    bad.write_bytes(b"not a model" * 100)
    with pytest.raises(CorruptFileError, match="cannot load this model"):
        load_teacher(str(bad))
    with pytest.raises(NvnmdError, match="give dpa4-neo-omat24"):
        resolve_teacher("no-such-teacher")
    with pytest.raises(FileNotFoundError):
        resolve_teacher(str(tmp_path / "missing.pb"))


def test_embedded_checksum_is_checked(monkeypatch):
    import nvnmd.backends.teacher as t

    pkg, res, _, req = t.EMBEDDED_TEACHERS[t.DEFAULT_TEACHER]
    monkeypatch.setitem(t.EMBEDDED_TEACHERS, t.DEFAULT_TEACHER, (pkg, res, "0" * 64, req))
    with pytest.raises(CorruptFileError, match="sha256"):
        t.resolve_teacher(None)


def test_unknown_element_is_one_line(tmp_path):
    """A teacher that does not know an element of the structure (the LGPS student as teacher, a
    structure with Cl): one line, exit 2, for `nvnmd md --backend teacher` and `nvnmd distill`."""
    from ase.io import read, write

    atoms = read(DATA / "lgps_relaxed.extxyz")
    atoms[0].symbol = "Cl"
    write(tmp_path / "cl.extxyz", atoms)
    for cmd in (["md", "--backend", "teacher", "--supercell", "1,1,1", "--steps", "1", "-o", str(tmp_path / "md")],
                ["distill", "-o", str(tmp_path / "d")]):
        p = subprocess.run([sys.executable, "-m", "nvnmd.cli", *cmd, "--teacher", str(DATA / "lgps_student.pb"),
                            "--structure", str(tmp_path / "cl.extxyz")], capture_output=True, text=True, timeout=300)
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip().count("\n") == 0 and "Cl" in p.stderr, p.stderr
    from nvnmd.backends.teacher import check_elements, load_teacher

    with pytest.raises(StructureError, match="does not know element"):
        check_elements(load_teacher(str(DATA / "lgps_student.pb")), ["Li", "Cl"])


def test_missing_extra_is_one_line():
    """Without torch (hidden from the import system) the teacher says which extra to install."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from nvnmd.backends.teacher import load_teacher, MissingExtraError\n"
            "try:\n    load_teacher(None)\nexcept MissingExtraError as e:\n    print('MISSING', e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "MISSING" in p.stdout and "distill" in p.stdout, p.stdout + p.stderr
