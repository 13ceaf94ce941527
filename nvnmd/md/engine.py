"""The MD loop: structure + backend + integrator -> trajectory, thermo log, checkpoints.

`run_md(atoms, backend, MDConfig, outdir)` owns the loop; the backend is anything with the
nvnmd.backend interface. Outputs in `outdir`:
  traj.extxyz     unwrapped positions (and forces) at full float64 precision, read by ASE/dpdata
  thermo.csv      step, time, T, E_pot, E_kin, E_tot, conserved, pressure
  checkpoint.npz  plain arrays (never pickled), written atomically; `resume=True` truncates the
                  trajectory and log to the checkpoint and continues bit-identically.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import units

from nvnmd.errors import NvnmdError, StructureError
from nvnmd.md.integrators import MDState, make_integrator, maxwell_boltzmann
from nvnmd.md.verlet import VerletList
from nvnmd.neighbors import check_cell

CHECKPOINT_VERSION = 1


@dataclass
class MDConfig:
    ensemble: str = "langevin"  # nve | langevin | csvr | nose-hoover
    temperature: float = 900.0  # K (initial velocities and thermostat)
    dt_fs: float = 1.0
    steps: int = 1000
    seed: int = 2026
    friction_per_fs: float = 0.01
    tau_fs: float = 100.0
    skin: float = 1.0
    traj_every: int = 10
    thermo_every: int = 10
    checkpoint_every: int = 1000
    min_distance: float = 0.8


def atom_types(atoms, type_map: list[str]) -> np.ndarray:
    symbols = atoms.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(type_map))
    if unknown:
        raise StructureError(f"element(s) {', '.join(unknown)} not in the model's type map {' '.join(type_map)}")
    index = {s: i for i, s in enumerate(type_map)}
    return np.array([index[s] for s in symbols], dtype=np.int64)


def check_box(cell: np.ndarray, rcut: float) -> None:
    """The cell must be non-degenerate and (for the minimum-image-free lists we build) sane."""
    vol = check_cell(cell)
    heights = vol / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    if np.min(heights) < 0.5 * rcut:
        raise StructureError(
            f"box too small for the cutoff: smallest cell height {np.min(heights):.2f} Å < rcut/2 = {0.5 * rcut:.2f} Å")


class Reporter:
    """Trajectory + thermo writers that can truncate back to a checkpoint on resume."""

    def __init__(self, outdir: Path, symbols: list[str], resume_offsets: dict | None):
        self.outdir = outdir
        self.symbols = symbols
        outdir.mkdir(parents=True, exist_ok=True)
        self.traj_path, self.thermo_path = outdir / "traj.extxyz", outdir / "thermo.csv"
        if resume_offsets is None:
            self.traj = open(self.traj_path, "w")
            self.thermo = open(self.thermo_path, "w")
            self.thermo.write("step,time_ps,T_K,Epot_eV,Ekin_eV,Etot_eV,conserved_eV,pressure_GPa\n")
        else:
            for path, key in ((self.traj_path, "traj"), (self.thermo_path, "thermo")):
                if not path.exists() or path.stat().st_size < resume_offsets[key]:
                    raise NvnmdError(f"cannot resume: {path} is missing or shorter than at the checkpoint")
                with open(path, "r+") as fh:
                    fh.truncate(resume_offsets[key])
            self.traj = open(self.traj_path, "a")
            self.thermo = open(self.thermo_path, "a")

    def offsets(self) -> dict:
        self.traj.flush()
        self.thermo.flush()
        return {"traj": self.traj.tell(), "thermo": self.thermo.tell()}

    def write_frame(self, sys: MDState, time_ps: float) -> None:
        c = sys.cell
        lattice = " ".join(repr(float(x)) for x in c.ravel())
        buf = io.StringIO()
        buf.write(f"{len(self.symbols)}\n")
        buf.write(f'Lattice="{lattice}" Properties=species:S:1:pos:R:3:forces:R:3 energy={float(sys.energy)!r} '
                  f'step={sys.step} time_ps={float(time_ps)!r} pbc="T T T"\n')
        for s, p, f in zip(self.symbols, sys.positions.tolist(), np.asarray(sys.forces).tolist()):
            buf.write(f"{s} {p[0]!r} {p[1]!r} {p[2]!r} {f[0]!r} {f[1]!r} {f[2]!r}\n")
        self.traj.write(buf.getvalue())

    def write_thermo(self, row: list) -> None:
        self.thermo.write(",".join(repr(float(x)) if isinstance(x, (float, np.floating)) else str(x) for x in row) + "\n")

    def close(self) -> None:
        self.traj.close()
        self.thermo.close()


def save_checkpoint(path: Path, sys: MDState, integ, offsets: dict, config: MDConfig) -> None:
    arrays = {
        "version": np.array(CHECKPOINT_VERSION),
        "positions": sys.positions, "velocities": sys.velocities, "forces": sys.forces,
        "cell": sys.cell, "energy": np.array(sys.energy), "virial": sys.virial, "step": np.array(sys.step),
        "offsets": np.array(json.dumps(offsets)), "config": np.array(json.dumps(asdict(config))),
    }
    for k, v in integ.state().items():
        arrays[f"integ_{k}"] = np.asarray(v)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    from nvnmd.image import write_atomic

    write_atomic(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise NvnmdError(f"cannot resume: {path} is not a readable checkpoint ({exc})") from None
    if int(data.get("version", -1)) != CHECKPOINT_VERSION:
        raise NvnmdError(f"cannot resume: {path} has an unknown checkpoint version")
    return data


def run_md(atoms, backend, config: MDConfig, outdir, resume: bool = False, progress: bool = True) -> dict:
    outdir = Path(outdir)
    types = atom_types(atoms, backend.type_map)
    cell = np.array(atoms.cell.array, dtype=np.float64)
    check_box(cell, backend.rcut)
    masses = np.array(atoms.get_masses(), dtype=np.float64)
    nlist = VerletList(backend.rcut, config.skin, max_neighbors=getattr(backend, "max_neighbors", None),
                       sel=getattr(backend, "sel", None), min_distance=config.min_distance)

    guarded = {"evaluations": 0, "pairs": 0}  # force evaluations in which the short-range guard acted

    def compute(positions):
        neighbors, _ = nlist.update(positions, types, cell)
        res = backend.compute(positions, types, cell, pbc=True, neighbors=neighbors)
        if res.info.get("guard_pairs"):
            guarded["evaluations"] += 1
            guarded["pairs"] = max(guarded["pairs"], res.info["guard_pairs"])
        return res.energy, res.forces, res.virial

    integ = make_integrator(config.ensemble, config.dt_fs, config.temperature, len(atoms), seed=config.seed,
                            friction_per_fs=config.friction_per_fs, tau_fs=config.tau_fs)
    ckpt_path = outdir / "checkpoint.npz"
    if resume:
        if not ckpt_path.exists():
            raise NvnmdError(f"cannot resume: no checkpoint at {ckpt_path}")
        ck = load_checkpoint(ckpt_path)
        sys = MDState(positions=ck["positions"], velocities=ck["velocities"], masses=masses, cell=ck["cell"],
                      forces=ck["forces"], energy=float(ck["energy"]), virial=ck["virial"], step=int(ck["step"]))
        integ.load_state({k[6:]: ck[k] for k in ck if k.startswith("integ_")})
        reporter = Reporter(outdir, atoms.get_chemical_symbols(), json.loads(str(ck["offsets"])))
    else:
        velocities = (np.array(atoms.get_velocities(), dtype=np.float64) if atoms.get_velocities() is not None
                      and np.any(atoms.get_velocities()) else maxwell_boltzmann(masses, config.temperature, config.seed))
        sys = MDState(positions=np.array(atoms.positions, dtype=np.float64), velocities=velocities, masses=masses, cell=cell)
        sys.energy, sys.forces, sys.virial = compute(sys.positions)
        reporter = Reporter(outdir, atoms.get_chemical_symbols(), None)
        _report(reporter, sys, integ, config)
        save_checkpoint(ckpt_path, sys, integ, reporter.offsets(), config)

    volume = abs(float(np.linalg.det(cell)))
    start_step, t0, cpu0 = sys.step, time.perf_counter(), time.process_time()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=start_step, unit="step", dynamic_ncols=True, mininterval=1.0)
    try:
        while sys.step < config.steps:
            integ.step(sys, compute)
            if sys.step % config.traj_every == 0 or sys.step % config.thermo_every == 0:
                _report(reporter, sys, integ, config)
            if sys.step % config.checkpoint_every == 0 or sys.step == config.steps:
                save_checkpoint(ckpt_path, sys, integ, reporter.offsets(), config)
            if bar is not None:
                bar.update(1)
                if sys.step % 50 == 0:
                    elapsed = time.perf_counter() - t0
                    ns_day = (sys.step - start_step) * config.dt_fs * 1e-6 / max(elapsed, 1e-9) * 86400
                    bar.set_postfix_str(f"{ns_day:.3f} ns/day, T={_temperature(sys):.0f} K")
    finally:
        if bar is not None:
            bar.close()
        reporter.close()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    done = sys.step - start_step
    return {
        "steps": sys.step, "natoms": len(atoms), "volume_A3": volume, "neighbor_builds": nlist.builds,
        "seconds": elapsed, "us_per_atom_step": 1e6 * elapsed / max(done * len(atoms), 1),
        # CPU time of this process (all its threads): on a shared machine, the cost of the work itself
        "cpu_seconds": cpu, "cpu_us_per_atom_step": 1e6 * cpu / max(done * len(atoms), 1),
        "ns_per_day": done * config.dt_fs * 1e-6 / max(elapsed, 1e-9) * 86400,
        "guard_evaluations": guarded["evaluations"], "guard_max_pairs": guarded["pairs"],
    }


def _temperature(sys: MDState) -> float:
    return 2.0 * sys.kinetic_energy() / ((3 * len(sys.masses) - 3) * units.kB)


def _report(reporter: Reporter, sys: MDState, integ, config: MDConfig) -> None:
    time_ps = sys.step * config.dt_fs * 1e-3
    if sys.step % config.thermo_every == 0:
        ke = sys.kinetic_energy()
        volume = abs(float(np.linalg.det(sys.cell)))
        pressure = (2.0 * ke + float(np.trace(sys.virial))) / (3.0 * volume) / units.GPa
        etot = sys.energy + ke
        reporter.write_thermo([sys.step, time_ps, _temperature(sys), sys.energy, ke, etot,
                               etot + integ.thermostat_energy, pressure])
    if sys.step % config.traj_every == 0:
        reporter.write_frame(sys, time_ps)


def read_trajectory(path) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(times_ps [F], positions [F, N, 3] unwrapped, symbols, cell) from our extxyz."""
    from ase.io import read

    frames = read(os.fspath(path), index=":", format="extxyz")
    if not frames:
        raise NvnmdError(f"{path}: no frames")
    pos = np.array([f.positions for f in frames])
    times = np.array([float(f.info["time_ps"]) for f in frames])
    return times, pos, frames[0].get_chemical_symbols(), np.array(frames[0].cell.array)
