"""MD engine: resume bit-identity, determinism, NVE conservation, refusals of bad structures."""

import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms

from nvnmd.errors import NeighborOverflowError, StructureError
from nvnmd.md.engine import MDConfig, read_trajectory, run_md
from nvnmd.md.verlet import VerletList
from nvnmd.md.workflow import lgps_supercell


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    from nvnmd.md.cli import ensure_image

    return ensure_image(None, None, tmp_path_factory.mktemp("img"), log=lambda *a: None)


@pytest.fixture(scope="module")
def sim(image_path):
    from nvnmd.backends.sim import SimBackend

    return SimBackend(image_path)


@pytest.fixture(scope="module")
def cell50():
    return lgps_supercell((1, 1, 1))


@pytest.mark.parametrize("ensemble", ["langevin", "csvr"])
def test_resume_is_bit_identical(sim, cell50, tmp_path, ensemble):
    cfg = MDConfig(ensemble=ensemble, temperature=900.0, dt_fs=2.0, steps=60, traj_every=5, thermo_every=5,
                   checkpoint_every=20, seed=7)
    run_md(cell50, sim, cfg, tmp_path / "full", progress=False)
    # interrupted run: stop at 40 steps (last checkpoint at 40), then resume to 60
    run_md(cell50, sim, MDConfig(**{**cfg.__dict__, "steps": 40}), tmp_path / "part", progress=False)
    # leave a torn tail that resume must discard
    with open(tmp_path / "part" / "traj.extxyz", "a") as fh:
        fh.write("50\ngarbage line from a crash\n")
    run_md(cell50, sim, cfg, tmp_path / "part", resume=True, progress=False)
    assert (tmp_path / "full" / "traj.extxyz").read_bytes() == (tmp_path / "part" / "traj.extxyz").read_bytes()
    assert (tmp_path / "full" / "thermo.csv").read_bytes() == (tmp_path / "part" / "thermo.csv").read_bytes()
    times, pos, symbols, _ = read_trajectory(tmp_path / "full" / "traj.extxyz")
    assert len(times) == 13 and pos.shape == (13, 50, 3) and symbols.count("Li") == 20


def test_nose_hoover_runs_are_reproducible_and_nve_conserves(sim, cell50, tmp_path):
    nh = MDConfig(ensemble="nose-hoover", temperature=600.0, dt_fs=1.0, steps=30, traj_every=10, thermo_every=10)
    run_md(cell50, sim, nh, tmp_path / "a", progress=False)
    run_md(cell50, sim, nh, tmp_path / "b", progress=False)
    assert (tmp_path / "a" / "traj.extxyz").read_bytes() == (tmp_path / "b" / "traj.extxyz").read_bytes()
    nve = MDConfig(ensemble="nve", temperature=600.0, dt_fs=1.0, steps=200, traj_every=10, thermo_every=10)
    run_md(cell50, sim, nve, tmp_path / "nve", progress=False)
    thermo = np.genfromtxt(tmp_path / "nve" / "thermo.csv", delimiter=",", names=True)
    etot = thermo["Etot_eV"]
    ekin_scale = np.ptp(thermo["Ekin_eV"])
    assert np.ptp(etot) < 0.02 * ekin_scale + 1e-3, (np.ptp(etot), ekin_scale)


def test_csvr_samples_the_canonical_kinetic_energy_and_conserves_its_bookkeeping():
    from ase import units

    from nvnmd.md.integrators import MDState, make_integrator, maxwell_boltzmann

    # free particles: the thermostat alone must produce the canonical (Gamma) distribution of
    # the kinetic energy, mean ndof kT/2 and variance ndof (kT)^2/2, whatever the start
    n, T = 50, 900.0
    masses = np.full(n, 6.94)
    integ = make_integrator("csvr", dt_fs=2.0, temperature=T, natoms=n, seed=3, tau_fs=4.0)
    sys_ = MDState(positions=np.zeros((n, 3)), velocities=0.3 * maxwell_boltzmann(masses, T, seed=1),
                   masses=masses, cell=np.eye(3) * 10.0, forces=np.zeros((n, 3)))
    free = lambda pos: (0.0, np.zeros((n, 3)), np.zeros((3, 3)))  # noqa: E731
    ke0 = sys_.kinetic_energy()
    samples = []
    for k in range(6000):
        integ.step(sys_, free)
        if k >= 200:
            samples.append(sys_.kinetic_energy())
    ke = np.array(samples)
    ndof, kT = 3 * n - 3, units.kB * T
    assert ke.mean() == pytest.approx(0.5 * ndof * kT, rel=0.02)
    assert ke.var() == pytest.approx(0.5 * ndof * kT**2, rel=0.12)
    # the conserved quantity: kinetic energy plus what the thermostat took out stays put
    assert sys_.kinetic_energy() + integ.thermostat_energy == pytest.approx(ke0, rel=1e-9)


def test_bad_structures_are_refused(sim, cell50, tmp_path):
    bad = cell50.copy()
    bad[0].symbol = "Cl"
    with pytest.raises(StructureError, match="Cl"):
        run_md(bad, sim, MDConfig(steps=1), tmp_path / "x", progress=False)
    close = cell50.copy()
    close.positions[1] = close.positions[0] + [0.3, 0, 0]
    with pytest.raises(StructureError, match="apart"):
        run_md(close, sim, MDConfig(steps=1), tmp_path / "y", progress=False)
    tiny = Atoms("Li2S", positions=[[0, 0, 0], [1.5, 0, 0], [0, 1.5, 0]], cell=[2.5, 2.5, 2.5], pbc=True)
    with pytest.raises(StructureError, match="box too small"):
        run_md(tiny, sim, MDConfig(steps=1), tmp_path / "z", progress=False)
    no_cell = Atoms("Li2S", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])  # what a plain .xyz gives
    with pytest.raises(StructureError, match="no periodic cell"):
        run_md(no_cell, sim, MDConfig(steps=1), tmp_path / "w", progress=False)


def test_neighbor_overflow_is_an_error(cell50):
    squeezed = cell50.copy()
    squeezed.set_cell(cell50.cell.array * 0.7, scale_atoms=True)
    types = np.array([["Li", "Ge", "P", "S"].index(s) for s in squeezed.get_chemical_symbols()])
    vl = VerletList(6.0, 1.0, sel=[32, 8, 8, 40])
    with pytest.raises(NeighborOverflowError, match="more than the model's sel"):
        vl.update(squeezed.positions, types, squeezed.cell.array)
    with pytest.raises(NeighborOverflowError, match="reduce --skin"):
        VerletList(6.0, 1.0, max_neighbors=40).update(cell50.positions, types, cell50.cell.array)


def test_cli_md_errors_are_one_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "nvnmd.cli", "md", "--backend", "sim", "--image", str(tmp_path / "none.nvq"),
                          "--steps", "2", "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    res = subprocess.run([sys.executable, "-m", "nvnmd.cli", "md", "--resume", "--backend", "deepmd", "--steps", "2",
                          "-o", str(tmp_path / "fresh"), "--quiet"], capture_output=True, text=True)
    assert res.returncode == 2 and "no checkpoint" in res.stderr


def test_conductivity_workflow_writes_consistent_results_and_reanalyses(sim, cell50, tmp_path):
    import json

    from nvnmd.analysis.conductivity import nernst_einstein
    from nvnmd.md.workflow import conductivity_workflow

    cfg = MDConfig(ensemble="langevin", dt_fs=2.0, steps=1500, traj_every=5, thermo_every=50,
                   checkpoint_every=500, seed=11)
    out = tmp_path / "sigma"
    logged = []
    first = conductivity_workflow(cell50, sim, [900.0, 1200.0], cfg, out, progress=False, log=logged.append)
    summary = json.loads((out / "conductivity.json").read_text())
    assert [r["T_K"] for r in summary["runs"]] == [900.0, 1200.0]
    assert summary["md"]["friction_per_fs"] == cfg.friction_per_fs and summary["md"]["steps"] == 1500
    for r in summary["runs"]:
        assert r["n_ions"] == 20  # 20 Li in the 50-atom Li10GeP2S12 cell
        # 3 ps is too short for the sign of D to be certain (two 1.5 ps blocks, fitted over a few
        # lags near 1.5 ps where Li still rattles in its cage): the result says so, and the
        # benchmarks measure D itself
        assert np.isfinite(r["D_cm2_s"]) and r["D_err_cm2_s"] > 0
        assert "run too short" in r["warning"] and "need ≥ 10 ps" in r["warning"]
        assert r["sigma_mS_cm"] == pytest.approx(nernst_einstein(r["D_cm2_s"], 20, r["volume_A3"], r["T_K"]), rel=1e-12)
    positive = all(r["sigma_mS_cm"] > 0 for r in summary["runs"])
    assert np.isfinite(summary["arrhenius"]["Ea_eV"]) == positive  # no Arrhenius fit through a σ ≤ 0
    if not positive:
        assert "positive" in summary["arrhenius"]["note"]
    for name in ("conductivity.csv", "msd.png", "arrhenius.png"):
        assert (out / name).stat().st_size > 0
    # finished runs are not redone, and re-analysis of the same trajectories gives the same numbers
    written = (out / "conductivity.json").read_text()
    again = conductivity_workflow(cell50, sim, [900.0, 1200.0], cfg, out, progress=False, log=logged.append)
    assert sum("already complete" in line for line in logged) == 2
    assert sum("warning: run too short" in line for line in logged) == 4  # each T, each analysis
    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)  # NaN-safe comparison
    assert (out / "conductivity.json").read_text() == written
