"""Backends and the ASE calculator: deepmd fallback, auto selection, calculator consistency."""

import numpy as np
import pytest

from nvnmd.backends import make_backend
from nvnmd.calculator import NvnmdCalculator
from nvnmd.errors import NvnmdError
from nvnmd.md.workflow import lgps_supercell


@pytest.fixture(scope="module")
def deepmd(student_path):
    return make_backend("deepmd", model=str(student_path))[0]


def test_deepmd_backend_matches_deeppot(deepmd, student_path):
    from deepmd.infer import DeepPot

    atoms = lgps_supercell((1, 1, 1))
    types = np.array([deepmd.type_map.index(s) for s in atoms.get_chemical_symbols()])
    res = deepmd.compute(atoms.positions, types, atoms.cell.array)
    e, f, v = DeepPot(str(student_path)).eval(atoms.positions.reshape(1, -1), atoms.cell.array.reshape(1, 9), types)[:3]
    assert res.energy == float(e.ravel()[0])
    np.testing.assert_array_equal(res.forces, f.reshape(-1, 3))
    assert deepmd.device == "CPU"


def test_calculator_forces_and_stress_are_derivatives(deepmd):
    atoms = lgps_supercell((1, 1, 1))
    atoms.rattle(0.05, seed=3)
    atoms.calc = NvnmdCalculator(deepmd)
    f = atoms.get_forces()
    h = 1e-4
    for i, d in [(0, 0), (21, 1), (30, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, d] += h
        minus.positions[i, d] -= h
        plus.calc = minus.calc = NvnmdCalculator(deepmd)
        numeric = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert numeric == pytest.approx(f[i, d], abs=2e-4)
    # stress: dE/dstrain / V for a small uniform strain along x
    s = atoms.get_stress(voigt=True)
    eps = 1e-5
    e_pm = []
    for sign in (1, -1):
        a = atoms.copy()
        a.set_cell(atoms.cell.array @ np.diag([1 + sign * eps, 1, 1]), scale_atoms=True)
        a.calc = NvnmdCalculator(deepmd)
        e_pm.append(a.get_potential_energy())
    assert (e_pm[0] - e_pm[1]) / (2 * eps) / atoms.get_volume() == pytest.approx(s[0], rel=1e-3, abs=1e-5)


def test_auto_selection_and_errors(tmp_path, student_path):
    from nvnmd.md.cli import ensure_image

    image = ensure_image(None, None, tmp_path, log=lambda *a: None)
    backend, why = make_backend("auto", image=image, model=str(student_path))
    assert backend.name == "sim" and "no GPU" in why
    backend, why = make_backend("auto", model=str(student_path))
    assert backend.name == "deepmd" and "CPU" in why
    with pytest.raises(NvnmdError, match="needs a quantized image"):
        make_backend("sim")
    with pytest.raises(NvnmdError, match="unknown backend"):
        make_backend("gpu")


def test_quantized_result_decoding_and_overflow():
    # the tail SimBackend and BoardBackend share: codes -> eV, and overflow is an error
    from nvnmd.backends.decode import to_result
    from nvnmd.compute import ComputeResult
    from nvnmd.errors import NeighborOverflowError
    from nvnmd.formats import ENERGY, FORCE

    n = 3
    forces = np.arange(9, dtype=np.int64).reshape(n, 3) * 1000
    raw = ComputeResult(energy=np.int64(-123456789), atom_energy=np.full(n, -41152263, dtype=np.int64),
                        forces=forces, virial=np.zeros((3, 3), dtype=np.int64), saturations=2)
    res = to_result(raw, 6.0, [32, 8, 8, 40], link={"requests": 1})
    assert res.energy == float(ENERGY.decode(np.int64(-123456789)))
    np.testing.assert_array_equal(res.forces, FORCE.decode(forces))
    assert res.info["saturations"] == 2 and res.info["raw"] is raw and res.info["link"] == {"requests": 1}
    raw.overflow_atoms = 5
    with pytest.raises(NeighborOverflowError, match=r"^5 atoms have more neighbours .* sel \[32, 8, 8, 40\]"):
        to_result(raw, 6.0, [32, 8, 8, 40])
