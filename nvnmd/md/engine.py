"""The MD loop: structure + backend + integrator -> trajectory, thermo log, checkpoints.

`run_md(atoms, backend, MDConfig, outdir)` owns the loop; the backend is anything with the
nvnmd.backend interface. Outputs in `outdir`:
  traj.extxyz     unwrapped positions (and forces) at full float64 precision, read by ASE/dpdata
  thermo.csv      step, time, T, E_pot, E_kin, E_tot, conserved, pressure
  checkpoint.npz  plain arrays (never pickled), written atomically; `resume=True` truncates the
                  trajectory and log to the checkpoint and continues bit-identically.
A run's identity is its settings (`MDConfig` less length and output cadence of checkpoints)
and what it runs (atom count and formula, backend, image / model SHA-256, guard); the
checkpoint stores both, and a resume whose settings differ is refused in one line naming the
setting and both values (`resume_mismatch`). A step whose atoms move more than
`BLOWUP_DISPLACEMENT` Å, whose energy is not finite, or whose force evaluation fails is
reported with its step number and the quantity out of range.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import units

from nvnmd.errors import NvnmdError, StructureError
from nvnmd.md.integrators import MDState, make_integrator, maxwell_boltzmann
from nvnmd.md.verlet import VerletList
from nvnmd.neighbors import check_cell

CHECKPOINT_VERSION = 1
BLOWUP_DISPLACEMENT = 1.0  # Å per step: no stable integration moves an atom this far in one step
IMAGE_BACKENDS = ("sim", "tf64", "board")  # the same integer datapath: bit-identical on one image


@dataclass
class MDConfig:
    # The defaults of every MD command (md, conductivity, demo): CSVR barely perturbs the
    # dynamics, so diffusion is that of the model, and 2 fs is stable for LGPS (200 ps at
    # 1000 K in benchmarks/lgps_arrhenius); Langevin, NVE, Nosé–Hoover and 1 fs are options.
    ensemble: str = "csvr"  # nve | langevin | csvr | nose-hoover
    temperature: float = 900.0  # K (initial velocities and thermostat)
    dt_fs: float = 2.0
    steps: int = 1000
    seed: int = 2026
    friction_per_fs: float = 0.01
    tau_fs: float = 100.0
    skin: float = 1.0
    traj_every: int = 10
    thermo_every: int = 10
    checkpoint_every: int = 1000
    min_distance: float = 0.8


def check_structure(atoms) -> None:
    """Finite coordinates and cell, before anything is computed from them."""
    pos = np.asarray(atoms.positions, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if len(bad):
        raise StructureError(f"atom {int(bad[0])} has a non-finite coordinate {pos[bad[0]].tolist()} "
                             f"({len(bad)} atom(s) with NaN or inf coordinates)")
    if not np.isfinite(np.asarray(atoms.cell.array, dtype=np.float64)).all():
        raise StructureError("the cell has NaN or inf entries")


# Peak memory per atom of a run, measured (max RSS of `nvnmd md`, 1600 -> 12800 LGPS atoms):
# sim 7.8 KB; deepmd-kit on the CPU 115 KB (TensorFlow's per-pair tensors); tf64 is taken as deepmd.
MEMORY_PER_ATOM = {"sim": 8e3, "board": 8e3, "deepmd": 120e3, "tf64": 120e3}
MEMORY_BASE = 1.0e9  # interpreter, TensorFlow, the image


def available_memory() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(natoms: int, backend: str = "auto", what: str = "the structure") -> None:
    """Refuse a system whose run would need more memory than this machine has free, with the
    estimate, instead of letting the OS kill the run."""
    per_atom = MEMORY_PER_ATOM.get(backend, max(MEMORY_PER_ATOM.values()))
    need, have = MEMORY_BASE + natoms * per_atom, available_memory()
    if have is not None and need > have:
        raise StructureError(f"{what} gives {natoms} atoms; an MD run of that size with the {backend} backend needs "
                             f"about {need / 2**30:.1f} GiB ({per_atom / 1e3:.0f} KB per atom), this machine has "
                             f"{have / 2**30:.1f} GiB available")


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


def save_checkpoint(path: Path, sys: MDState, integ, offsets: dict, config: MDConfig, run: dict | None = None) -> None:
    arrays = {
        "version": np.array(CHECKPOINT_VERSION),
        "positions": sys.positions, "velocities": sys.velocities, "forces": sys.forces,
        "cell": sys.cell, "energy": np.array(sys.energy), "virial": sys.virial, "step": np.array(sys.step),
        "offsets": np.array(json.dumps(offsets)), "config": np.array(json.dumps(asdict(config))),
    }
    if run is not None:
        arrays["run"] = np.array(json.dumps(run, sort_keys=True))
    for k, v in integ.state().items():
        arrays[f"integ_{k}"] = np.asarray(v)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    from nvnmd.image import write_atomic

    write_atomic(path, buf.getvalue())


CHECKPOINT_KEYS = ("version", "positions", "velocities", "forces", "cell", "energy", "virial", "step", "offsets", "config")


def load_checkpoint(path: Path) -> dict:
    """The arrays of a checkpoint; a truncated, foreign or damaged file is a CorruptFileError
    naming the file and what is wrong (checked as a zip archive first: numpy would otherwise
    try to read a foreign file as a pickle, and refuse it with advice about allow_pickle)."""
    from nvnmd.errors import CorruptFileError

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head != b"PK\x03\x04":
            raise CorruptFileError(f"{path}: not an nvnmd checkpoint (not a .npz archive)")
        with zipfile.ZipFile(path) as zf:
            damaged = zf.testzip()
        if damaged:
            raise CorruptFileError(f"{path}: damaged checkpoint (bad checksum in {damaged})")
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except zipfile.BadZipFile:
        raise CorruptFileError(f"{path}: truncated or damaged checkpoint (incomplete .npz archive)") from None
    except (OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(f"{path}: unreadable checkpoint ({exc})") from None
    if int(data.get("version", -1)) != CHECKPOINT_VERSION:
        raise CorruptFileError(f"{path}: unknown checkpoint version (this nvnmd writes {CHECKPOINT_VERSION})")
    missing = [k for k in CHECKPOINT_KEYS if k not in data]
    if missing:
        raise CorruptFileError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return data


def run_identity(atoms, backend) -> dict:
    """What a run runs, stored in its checkpoint: atoms, backend, image / model, guard."""
    image = getattr(backend, "image", None)
    model = image.meta.get("model_sha256") if image is not None else getattr(backend, "model_sha256", None)
    return {"natoms": len(atoms), "formula": atoms.get_chemical_formula(), "backend": getattr(backend, "name", "?"),
            "image_sha256": image.digest() if image is not None else None, "model_sha256": model,
            "guard": getattr(backend, "guard", None) is not None}


# (MDConfig field, option, unit, ensembles it matters for: None = all)
_SETTINGS = (("temperature", "-T", " K", None), ("ensemble", "--ensemble", "", None), ("dt_fs", "--dt", " fs", None),
             ("seed", "--seed", "", None), ("friction_per_fs", "--friction", " /fs", ("langevin",)),
             ("tau_fs", "--tau", " fs", ("csvr", "nose-hoover")), ("traj_every", "--traj-every", "", None),
             ("thermo_every", "thermo interval", "", None))


def resume_mismatch(checkpoint: dict, config: MDConfig, run: dict) -> str | None:
    """The first setting in which a run asked for differs from the checkpoint's, as
    "SETTING is A here but B in the checkpoint", or None. Keys either side lacks (checkpoints
    of older versions, a caller that does not know the image yet) are not compared."""
    stored = json.loads(str(checkpoint["config"]))
    for key, opt, unit, ensembles in _SETTINGS:
        if key not in stored or (ensembles and config.ensemble not in ensembles):
            continue
        here, there = getattr(config, key), type(getattr(config, key))(stored[key])
        if here != there:
            return f"{opt} is {here:g}{unit} here but {there:g}{unit} in the checkpoint" if isinstance(here, float) \
                else f"{opt} is {here}{unit} here but {there}{unit} in the checkpoint"
    old = json.loads(str(checkpoint["run"])) if "run" in checkpoint else {}
    if "natoms" not in old:
        old["natoms"] = int(np.asarray(checkpoint["positions"]).shape[0])

    def differs(key):
        return run.get(key) is not None and old.get(key) is not None and run[key] != old[key]

    if differs("natoms"):
        return f"the structure has {run['natoms']} atoms here but {old['natoms']} in the checkpoint"
    if differs("formula"):
        return f"the structure is {run['formula']} here but {old['formula']} in the checkpoint"
    if differs("backend") and not (run["backend"] in IMAGE_BACKENDS and old["backend"] in IMAGE_BACKENDS):
        return f"--backend is {run['backend']} here but {old['backend']} in the checkpoint"
    if differs("model_sha256"):
        return (f"the model (sha256 {run['model_sha256'][:12]}) is not the checkpoint's "
                f"(sha256 {old['model_sha256'][:12]})")
    if differs("image_sha256"):
        return f"--image (sha256 {run['image_sha256'][:12]}) is not the checkpoint's (sha256 {old['image_sha256'][:12]})"
    if differs("guard"):
        return (f"the short-range guard is {'on' if run['guard'] else 'off (--no-guard)'} here but "
                f"{'on' if old['guard'] else 'off (--no-guard)'} in the checkpoint")
    return None


def _step_error(step: int, dt_fs: float, before: np.ndarray, sys: MDState, exc: NvnmdError | None = None,
                cause: str | None = None) -> NvnmdError:
    """The error for a step that went wrong, with its number; for a run that blew up (an atom
    moved more than BLOWUP_DISPLACEMENT in the step, or coordinates went non-finite) also which
    atom moved how far and how fast. Keeps the class of the backend's error."""
    cls = type(exc) if exc is not None else NvnmdError
    cause = cause or (str(exc) if exc is not None else "")
    with np.errstate(invalid="ignore", over="ignore"):
        moved = np.linalg.norm(np.asarray(sys.positions) - before, axis=1)
        speed = np.linalg.norm(np.asarray(sys.velocities), axis=1) * units.fs  # Å/fs
    if np.isfinite(moved).all() and (not len(moved) or moved.max() <= BLOWUP_DISPLACEMENT):
        return cls(f"step {step}: {cause}")
    if not np.isfinite(moved).all():
        what = f"atom {int(np.flatnonzero(~np.isfinite(moved))[0])} has non-finite coordinates"
    else:
        k = int(np.argmax(moved))
        what = f"atom {k} moved {moved[k]:.3g} Å in one step (max |v| {np.nanmax(speed):.3g} Å/fs)"
    tail = f" ({cause})" if cause else ""
    return cls(f"step {step}: the run blew up: {what}{tail}; --dt {dt_fs:g} fs is too large for this "
               f"structure, or the structure is unphysical")


def run_md(atoms, backend, config: MDConfig, outdir, resume: bool = False, progress: bool = True, log=print,
           on_step=None) -> dict:
    """Run (or with `resume`, continue) MD in `outdir`; `on_step(step, total)` if given is
    called once at the start and after every step (a sweep's task reports progress with it)."""
    outdir = Path(outdir)
    check_structure(atoms)
    if min(config.traj_every, config.thermo_every, config.checkpoint_every) < 1:
        raise NvnmdError("the trajectory, thermo and checkpoint intervals must be ≥ 1 step")
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
    run = run_identity(atoms, backend)
    if resume:
        if not ckpt_path.exists():
            raise NvnmdError(f"cannot resume: no checkpoint at {ckpt_path}")
        ck = load_checkpoint(ckpt_path)
        why = resume_mismatch(ck, config, run)
        if why:
            raise NvnmdError(f"cannot resume {ckpt_path}: {why} (continue with the checkpoint's settings, "
                             f"or start again with --overwrite or another -o)")
        old = json.loads(str(ck["run"])) if "run" in ck else {}
        if old.get("backend") not in (None, run["backend"]):
            log(f"resuming a {old['backend']} run on {run['backend']}: same image, same integer datapath")
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
        save_checkpoint(ckpt_path, sys, integ, reporter.offsets(), config, run)

    volume = abs(float(np.linalg.det(cell)))
    start_step, t0, cpu0 = sys.step, time.perf_counter(), time.process_time()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=start_step, unit="step", dynamic_ncols=True, mininterval=1.0)
    if on_step is not None:
        on_step(sys.step, config.steps)
    try:
        while sys.step < config.steps:
            before = sys.positions
            try:
                integ.step(sys, compute)
            except NvnmdError as exc:  # the backend refused the new positions or its result
                raise _step_error(sys.step + 1, config.dt_fs, before, sys, exc) from None
            if not math.isfinite(sys.energy) or not np.isfinite(sys.positions).all():
                raise _step_error(sys.step, config.dt_fs, before, sys, cause=f"energy {sys.energy}")
            if np.max(np.abs(sys.positions - before), initial=0.0) > BLOWUP_DISPLACEMENT:
                raise _step_error(sys.step, config.dt_fs, before, sys)
            if sys.step % config.traj_every == 0 or sys.step % config.thermo_every == 0:
                _report(reporter, sys, integ, config)
            if sys.step % config.checkpoint_every == 0 or sys.step == config.steps:
                save_checkpoint(ckpt_path, sys, integ, reporter.offsets(), config, run)
            if on_step is not None:
                on_step(sys.step, config.steps)
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
