"""Short-range guard: below the closest pair of two elements in the training data a cubic wall
takes over (below the board's table floor r_lo the clamped model stops repelling at all);
within the data the guard changes nothing, bit for bit."""

from contextlib import contextmanager

import numpy as np
import pytest
from ase.geometry import get_distances

from nvnmd.backend import Result
from nvnmd.backends.guard import ShortRangeGuard, table_floor
from nvnmd.errors import StructureError
from nvnmd.md.engine import MDConfig, read_trajectory, run_md
from nvnmd.md.workflow import lgps_supercell


@pytest.fixture(scope="module")
def sim(quantized):
    from nvnmd.backends.sim import SimBackend

    return SimBackend(quantized[0].to_image())


@pytest.fixture(scope="module")
def cell50():
    return lgps_supercell((1, 1, 1))


@contextmanager
def unguarded(backend):
    """The backend's bare model for the duration (its guard restored afterwards)."""
    guard, backend.guard = backend.guard, None
    try:
        yield backend
    finally:
        backend.guard = guard


def clear_pair(atoms, symbol="S"):
    """(a, b, unit vector a->b): the pair of `symbol` atoms whose approach line keeps b at least
    2 Å from every other atom while b moves to 0.8–2.6 Å from a."""
    x, cell = atoms.positions, atoms.cell.array
    idx = [k for k, s in enumerate(atoms.get_chemical_symbols()) if s == symbol]
    best = None
    for a in idx:
        for b in idx:
            if a == b:
                continue
            d = get_distances(x[a], x[b], cell=cell, pbc=True)[0][0, 0]
            u = d / np.linalg.norm(d)
            others = [k for k in range(len(x)) if k not in (a, b)]
            path = x[a] + np.linspace(0.8, 2.6, 10)[:, None] * u
            room = get_distances(path, x[others], cell=cell, pbc=True)[1].min()
            if best is None or room > best[0]:
                best = (room, a, b, u)
    assert best[0] > 2.0
    return best[1:]


def test_radii_come_from_the_training_data_and_no_close_pair_means_bit_identical_results(sim, quantized, student,
                                                                                          student_path):
    from nvnmd.backends.deepmd import DeepmdBackend

    guard, s = sim.guard, sim.type_map.index("S")
    assert student.closest_pairs and guard.r_out[s, s] == student.closest_pairs["S-S"] > 2.0
    assert guard.r_out.min() >= table_floor(sim.image) > 1.2
    assert np.array_equal(DeepmdBackend(student_path).guard.r_out, guard.r_out)  # the same wall on the float model
    for frame in quantized[1]:
        guarded = sim.compute(frame.coord, frame.types, frame.cell)
        with unguarded(sim):
            raw = sim.compute(frame.coord, frame.types, frame.cell)
        assert guarded.info["guard_pairs"] == 0
        assert guarded.energy == raw.energy
        assert np.array_equal(guarded.forces, raw.forces) and np.array_equal(guarded.virial, raw.virial)


def test_wall_takes_over_below_the_data_and_the_table_floor(sim, cell50):
    a, b, u = clear_pair(cell50)
    x, types, cell = cell50.positions, np.array([sim.type_map.index(s) for s in cell50.get_chemical_symbols()]), cell50.cell.array
    guard, s = sim.guard, sim.type_map.index("S")
    r_data, r_lo = guard.r_out[s, s], table_floor(sim.image)
    guarded, clamped = [], []
    radii = np.array([r_data + 0.05, r_data - 0.1, 1.8, 1.6, r_lo - 0.05, r_lo - 0.15, 1.1, 1.0, 0.9, 0.8])
    for r in radii:
        y = x.copy()
        y[b] = x[a] + r * u
        g = sim.compute(y, types, cell)
        with unguarded(sim):
            c = sim.compute(y, types, cell)
        guarded.append((g.energy, float(g.forces[b] @ u)))
        clamped.append(c.energy)
        assert g.info["guard_pairs"] == int(r < r_data)
        assert (c.info["counters"].get("close_contact", 0) > 0) == (r < r_lo)
    e_g, f_g = np.array(guarded).T
    # the clamped tables give the pair no push back: below r_lo the energy does not rise
    assert np.all(np.diff(clamped[4:]) < 0.05)
    # the wall rises steeply from 1.8 Å in and pushes b away from a
    assert np.all(np.diff(e_g[2:]) > 0) and e_g[-1] - e_g[0] > 20.0
    assert np.all(f_g[2:] > 1.0)


def test_wall_forces_and_virial_are_derivatives_of_its_energy():
    rng = np.random.default_rng(3)
    cell = np.diag([9.0, 9.5, 10.0])
    pos = np.array([[1.0, 1.0, 1.0], [2.1, 1.3, 0.9], [8.8, 1.2, 1.1], [4.0, 5.0, 5.0], [4.6, 5.7, 4.4]])
    pos += rng.normal(0, 0.02, pos.shape)
    types = np.array([3, 3, 0, 2, 1])
    guard = ShortRangeGuard(1.4, ["Li", "Ge", "P", "S"])

    def wall(p, c=cell):
        zero = Result(energy=0.0, forces=np.zeros_like(p), virial=np.zeros((3, 3)), atom_energy=np.zeros(len(p)))
        return guard.apply(zero, p, types, c)

    res = wall(pos)
    assert res.info["guard_pairs"] == 3  # 0-1, 0-2 across the boundary, 3-4
    assert res.atom_energy.sum() == pytest.approx(res.energy, abs=1e-6)
    h = 1e-4  # energies are on the 2^-24 eV grid: smaller steps resolve the rounding, not the slope
    for k in range(len(pos)):
        for d in range(3):
            plus, minus = pos.copy(), pos.copy()
            plus[k, d] += h
            minus[k, d] -= h
            assert -(wall(plus).energy - wall(minus).energy) / (2 * h) == pytest.approx(res.forces[k, d], rel=1e-4, abs=2e-3)
    for d1 in range(3):
        for d2 in range(3):
            strain = np.eye(3)
            strain[d1, d2] += h
            e_plus = wall(pos @ strain, cell @ strain).energy
            strain[d1, d2] -= 2 * h
            e_minus = wall(pos @ strain, cell @ strain).energy
            assert -(e_plus - e_minus) / (2 * h) == pytest.approx(res.virial[d1, d2], rel=1e-4, abs=2e-3)


def test_head_on_collision_bounces_off_the_wall_and_is_reproducible(sim, cell50, tmp_path):
    a, b, u = clear_pair(cell50)
    atoms = cell50.copy()
    atoms.positions[b] = atoms.positions[a] + 2.6 * u
    v = np.zeros((len(atoms), 3))
    v[b] = -u * np.sqrt(2 * 8.0 / atoms.get_masses()[b])  # 8 eV straight at a: well over the model's rise to r_lo
    atoms.set_velocities(v)
    cfg = MDConfig(ensemble="nve", dt_fs=0.5, steps=160, traj_every=2, thermo_every=2, checkpoint_every=80)
    summary = run_md(atoms, sim, cfg, tmp_path / "a", progress=False)
    assert summary["guard_evaluations"] > 0 and summary["guard_max_pairs"] == 1
    run_md(atoms, sim, cfg, tmp_path / "b", progress=False)
    assert (tmp_path / "a" / "traj.extxyz").read_bytes() == (tmp_path / "b" / "traj.extxyz").read_bytes()
    _, pos, _, cell = read_trajectory(tmp_path / "a" / "traj.extxyz")
    r = np.array([get_distances(p[a], p[b], cell=cell, pbc=True)[1][0, 0] for p in pos])
    s = sim.type_map.index("S")
    assert r.min() < sim.guard.r_out[s, s] - 0.3  # it did run into the wall ...
    assert r.min() > 1.2 and r[-1] > r.min() + 0.3  # ... and came back
    thermo = np.genfromtxt(tmp_path / "a" / "thermo.csv", delimiter=",", names=True)
    assert np.ptp(thermo["Etot_eV"]) < 0.1  # NVE through the bounce: the wall's forces are its gradient
    with unguarded(sim), pytest.raises(StructureError, match="closer than the minimum"):
        run_md(atoms, sim, cfg, tmp_path / "clamped", progress=False)  # the clamped tables alone let b run into a


def test_sidecar_is_optional_and_a_damaged_one_is_refused(tmp_path, student_path, sim):
    import shutil

    from nvnmd.errors import CorruptFileError
    from nvnmd.image import Image
    from nvnmd.student import load_student

    bare = tmp_path / "bare.pb"
    shutil.copy(student_path, bare)
    assert load_student(bare).closest_pairs is None
    meta = {k: v for k, v in sim.image.meta.items() if k != "closest_pairs"}
    floor_only = ShortRangeGuard.for_image(Image(profile="nvq1", meta=meta, sections={}), sim.type_map)
    assert np.all(floor_only.r_out == table_floor(sim.image))  # no data radii: the wall still covers the clamp
    (tmp_path / "bare.pairs.json").write_text('{"pairs": {"Li-Li": 1.8}}')
    with pytest.raises(CorruptFileError, match="missing Li-Ge"):
        load_student(bare)
    (tmp_path / "bare.pairs.json").write_text('{"pairs": [1, 2')
    with pytest.raises(CorruptFileError, match="not a closest-pairs file"):
        load_student(bare)


def test_cli_no_guard_runs_the_bare_model(sim, cell50, tmp_path):
    import subprocess
    import sys

    from ase.io import write

    a, b, u = clear_pair(cell50)
    atoms = cell50.copy()
    s = sim.type_map.index("S")
    depth = 0.3
    atoms.positions[b] = atoms.positions[a] + (sim.guard.r_out[s, s] - depth) * u
    write(tmp_path / "close.extxyz", atoms)
    sim.image.write(tmp_path / "model.nvq")
    epot = {}
    for flags in ([], ["--no-guard"]):
        out = tmp_path / ("bare" if flags else "guarded")
        run = subprocess.run([sys.executable, "-m", "nvnmd.cli", "md", "--backend", "sim", "--image", str(tmp_path / "model.nvq"),
                              "--structure", str(tmp_path / "close.extxyz"), "--supercell", "1,1,1", "--steps", "1",
                              "--quiet", "-o", str(out), *flags], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert ("short-range guard off" in run.stdout) == bool(flags)
        epot[bool(flags)] = np.genfromtxt(out / "thermo.csv", delimiter=",", names=True)["Epot_eV"].ravel()[0]
    assert epot[False] - epot[True] == pytest.approx((depth / 0.25) ** 3, abs=1e-5)


def test_screened_slots_follow_the_atoms_while_a_verlet_list_is_reused():
    """The guard screens a reused list's slots once per 0.5 Å of motion; a pair that walks into
    the wall between screenings must still be caught, exactly as a fresh guard sees it."""
    from nvnmd.neighbors import build_neighbor_list

    cell = np.diag([12.0, 12.0, 12.0])
    pos = np.array([[1.0, 1.0, 1.0], [4.2, 1.0, 1.0], [11.5, 6.0, 6.0], [6.0, 6.0, 6.0]])
    types = np.array([3, 3, 0, 2])
    tm = ["Li", "Ge", "P", "S"]
    reused = ShortRangeGuard(1.6, tm)
    neighbors = build_neighbor_list(pos, cell, 5.0)  # a list with a 5 Å reach, kept for every step
    for step in range(40):  # atoms 0 and 1 close in 0.06 Å per step, atom 2 drifts across the boundary
        p = pos.copy()
        p[1, 0] -= 0.06 * step
        p[2, 0] += 0.03 * step
        zero = lambda: Result(energy=0.0, forces=np.zeros_like(p), virial=np.zeros((3, 3)))  # noqa: E731
        got = reused.apply(zero(), p, types, cell, neighbors=neighbors)
        want = ShortRangeGuard(1.6, tm).apply(zero(), p, types, cell, neighbors=neighbors)
        assert got.energy == want.energy and np.array_equal(got.forces, want.forces)
        assert got.info["guard_pairs"] == int(3.2 - 0.06 * step < 1.6)
