"""The conductivity workflow: NVT runs per structure and temperature -> D(Li) -> σ -> Arrhenius.

* `Composition` (a labelled structure and its temperatures) and `plan_runs` -> the `Run`s of a
  sweep, one per (structure, temperature), each in its own directory: `outdir/T{T}K/` when
  the sweep has one structure (the layout of every earlier release), `outdir/{label}/T{T}K/`
  when it has several.
* `check_runs`: refuse, before any work, a run directory whose checkpoint holds other settings
  (dt, ensemble, thermostat, seed, atoms, image/model), unless `overwrite`.
* `advance_run`: one run brought to its end: skipped when finished, continued from its
  checkpoint when there is one, else started. The sweep's dask task and the serial path call it.
* `analyse_run`: a finished run -> D(Li) ± err, σ ± err, its MSD curve and its potential energy
  per atom against time.
* `conductivity_workflow`: one structure, serially in this process (the demo, whose board is
  served by this process, and library callers); `nvnmd conductivity` runs its sweep on dask
  (nvnmd.md.sweep). Both write their table and plots with nvnmd.md.results.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from nvnmd.analysis.conductivity import diffusion, nernst_einstein
from nvnmd.errors import NvnmdError
from nvnmd.md.engine import MDConfig, load_checkpoint, read_trajectory, resume_mismatch, run_identity, run_md
from nvnmd.resources import shipped

RUN_FILES = ("checkpoint.npz", "traj.extxyz", "thermo.csv")
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def default_structure_path() -> Path:
    """The shipped relaxed 50-atom LGPS cell."""
    return shipped("lgps_relaxed.extxyz")


def lgps_supercell(reps=(2, 2, 1), path=None):
    """The shipped relaxed 50-atom LGPS cell repeated `reps` times."""
    from ase.io import read

    atoms = read(str(path or default_structure_path()), format="extxyz")
    return atoms.repeat(tuple(int(r) for r in reps))


@dataclass
class Composition:
    """One structure of a sweep: its label (a directory name), atoms and temperatures."""
    label: str
    atoms: object
    temperatures: list[float]
    source: str = ""

    @property
    def formula(self) -> str:
        return self.atoms.get_chemical_formula()


@dataclass
class Run:
    """One (structure, temperature) of a sweep; `config` is this run's (its T and seed)."""
    label: str
    T: float
    run_dir: Path
    rel: str  # run_dir relative to the sweep's directory: what the table records
    config: MDConfig
    atoms: object = field(repr=False, default=None)

    @property
    def where(self) -> str:
        """How messages name the run: by T alone when the sweep has one structure."""
        return f"T = {self.T:g} K" if "/" not in self.rel else f"{self.label} T = {self.T:g} K"


def check_label(label: str) -> str:
    if not LABEL.fullmatch(label) or re.fullmatch(r"T\d+K", label):
        raise NvnmdError(f"structure label '{label}' must be a directory name of letters, digits and ._+- "
                         f"(at most 64, not of the form T900K)")
    return label


def run_config(config: MDConfig, T: float) -> MDConfig:
    """The settings of the run at T: the sweep's, at T, seeded by T (as every release did)."""
    return replace(config, temperature=float(T), seed=config.seed + int(round(T)))


def plan_runs(compositions: list[Composition], config: MDConfig, outdir) -> list[Run]:
    outdir = Path(outdir)
    labels = [c.label for c in compositions]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise NvnmdError(f"structure label {dup[0]} is given twice; label them apart with LABEL=FILE")
    runs = []
    for comp in compositions:
        for T in comp.temperatures:
            rel = f"T{int(round(T))}K" if len(compositions) == 1 else f"{comp.label}/T{int(round(T))}K"
            runs.append(Run(comp.label, float(T), outdir / rel, rel, run_config(config, T), comp.atoms))
    return runs


def steps_done(run_dir: Path) -> int:
    ck = Path(run_dir) / "checkpoint.npz"
    return int(load_checkpoint(ck)["step"]) if ck.exists() else -1


def check_runs(runs: list[Run], backend=None, analyse_only: bool = False, overwrite: bool = False) -> None:
    """Refuse runs made with other settings than these (before any work when called without
    the backend: MD settings and atoms; with it, also backend and image)."""
    for r in runs:
        if analyse_only:
            if not (r.run_dir / "traj.extxyz").exists():
                raise NvnmdError(f"--analyse-only: no trajectory at {r.run_dir / 'traj.extxyz'}")
            continue
        if overwrite or not (r.run_dir / "checkpoint.npz").exists():
            continue
        run = run_identity(r.atoms, backend) if backend is not None else \
            {"natoms": len(r.atoms), "formula": r.atoms.get_chemical_formula()}
        why = resume_mismatch(load_checkpoint(r.run_dir / "checkpoint.npz"), r.config, run)
        if why:
            raise NvnmdError(f"{r.run_dir} holds a run with other settings: {why} (use another -o, the same "
                             f"settings, or --overwrite to run it again)")


def clear_run(run_dir: Path) -> None:
    """--overwrite: the run's files removed, so it starts again (and a retried task does not
    take the old checkpoint for its own)."""
    for name in RUN_FILES:
        (Path(run_dir) / name).unlink(missing_ok=True)


def advance_run(run: Run, backend, progress: bool = False, log=print, on_step=None) -> dict:
    """Bring `run` to its last step: nothing when finished, a resume from its checkpoint, or a
    new run. Returns {"state": "complete" | "resumed" | "new", "from_step", and run_md's summary}."""
    cfg = run.config
    done = steps_done(run.run_dir)
    where = run.where
    if done >= cfg.steps:
        return {"state": "complete", "from_step": done}
    resume = done >= 0
    log(f"{where}: {'resuming at step ' + str(done) + ' of' if resume else 'running'} {cfg.steps} steps of "
        f"{cfg.dt_fs:g} fs in {run.run_dir}")
    summary = run_md(run.atoms, backend, cfg, run.run_dir, resume=resume, progress=progress, log=log, on_step=on_step)
    if summary["guard_evaluations"]:
        log(f"{where}: the short-range guard acted in {summary['guard_evaluations']} force evaluations")
    return {"state": "resumed" if resume else "new", "from_step": max(done, 0), **summary}


def analyse_run(run_dir: Path, T: float, ion: str = "Li") -> dict:
    """A run's trajectory -> {"row": the table's numbers, "lag_ps", "msd_A2", "time_ps",
    "epot_eV_atom"}. The first 10 % of the trajectory is equilibration and not fitted."""
    from ase.data import atomic_masses, atomic_numbers

    run_dir = Path(run_dir)
    times, pos, symbols, cell = read_trajectory(run_dir / "traj.extxyz")
    mask = np.array([s == ion for s in symbols])
    volume = abs(float(np.linalg.det(cell)))
    start = len(times) // 10
    masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
    d = diffusion(times[start:] - times[start], pos[start:], mask, masses=masses)
    n = int(mask.sum())
    sigma = nernst_einstein(d["D_cm2_s"], n, volume, T)
    sigma_err = nernst_einstein(d["D_err_cm2_s"], n, volume, T) if np.isfinite(d["D_err_cm2_s"]) else float("nan")
    thermo = np.loadtxt(run_dir / "thermo.csv", delimiter=",", skiprows=1, ndmin=2)
    row = {"T_K": float(T), "D_cm2_s": d["D_cm2_s"], "D_err_cm2_s": d["D_err_cm2_s"], "sigma_mS_cm": sigma,
           "sigma_err_mS_cm": sigma_err, "n_ions": n, "volume_A3": volume, "length_ps": float(times[-1] - times[start]),
           "fit_window_ps": d["fit_window_ps"], "warning": d["warning"]}
    return {"row": row, "lag_ps": d["lag_ps"], "msd_A2": d["msd_A2"], "time_ps": thermo[:, 1],
            "epot_eV_atom": thermo[:, 3] / len(symbols)}


def report_run(run: Run, result: dict, ion: str, log=print) -> None:
    row = result["row"]
    where = run.where
    log(f"{where}: D({ion}) = {row['D_cm2_s']:.3e} ± {row['D_err_cm2_s']:.1e} cm²/s, σ = {row['sigma_mS_cm']:.3g} mS/cm")
    if row["warning"]:
        log(f"{where}: warning: {row['warning']}")


def conductivity_workflow(atoms, backend, temperatures, config: MDConfig, outdir, ion: str = "Li",
                          analyse_only: bool = False, progress: bool = True, log=print,
                          backend_note: str | None = None, overwrite: bool = False, label: str = "lgps") -> dict:
    """One structure at several temperatures, run serially in this process, then the table
    and plots (nvnmd.md.results.write_results)."""
    from nvnmd.md.results import write_results

    outdir = Path(outdir)
    comp = Composition(label, atoms, [float(t) for t in temperatures])
    if analyse_only:
        config = stored_config(outdir, plan_runs([comp], config, outdir), config)
    runs = plan_runs([comp], config, outdir)
    check_runs(runs, backend, analyse_only=analyse_only, overwrite=overwrite)
    results = []
    for run in runs:
        if not analyse_only:
            if overwrite:
                clear_run(run.run_dir)
            if advance_run(run, backend, progress=progress, log=log)["state"] == "complete":
                log(f"T = {run.T:g} K: already complete in {run.run_dir}")
        result = analyse_run(run.run_dir, run.T, ion)
        report_run(run, result, ion, log)
        results.append(result)
    return write_results(outdir, [comp], runs, results, config, ion=ion, backend_note=backend_note, log=log)


def stored_config(outdir: Path, runs: list[Run], config: MDConfig) -> MDConfig:
    """For --analyse-only: the settings the runs were made with (from their checkpoints), so
    conductivity.json describes the trajectories it analysed, not the command line."""
    from dataclasses import fields

    stored = None
    for r in runs:
        ck = r.run_dir / "checkpoint.npz"
        if not ck.exists():
            continue
        cfg = json.loads(str(load_checkpoint(ck)["config"]))
        cfg["seed"] = int(cfg["seed"]) - int(round(r.T))
        cfg["temperature"] = config.temperature
        known = {f.name for f in fields(MDConfig)}
        cfg = MDConfig(**{k: v for k, v in cfg.items() if k in known})
        if stored is None:
            stored = cfg
        elif replace(cfg, steps=stored.steps) != stored:
            raise NvnmdError(f"the runs in {outdir} were made with different settings ({ck} differs from the first)")
    return stored or config
