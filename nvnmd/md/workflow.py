"""The conductivity workflow: NVT runs at several temperatures -> D(Li) -> σ -> Arrhenius.

`conductivity_workflow` runs (or, with `analyse_only`, re-reads) one trajectory per
temperature under `outdir/T{T}K/`, then writes `conductivity.json`, `conductivity.csv`,
`msd.png` and `arrhenius.png`. Every run can be resumed; finished runs are not redone. The
settings are part of a run's identity: a temperature's run directory whose checkpoint holds
other settings (dt, ensemble, thermostat, seed, atoms, image/model) is refused, or with
`overwrite` run again from the start, never silently reused (`check_runs`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from nvnmd.analysis.conductivity import arrhenius, diffusion, nernst_einstein
from nvnmd.errors import NvnmdError
from nvnmd.image import write_atomic
from nvnmd.md.engine import MDConfig, load_checkpoint, read_trajectory, resume_mismatch, run_identity, run_md
from nvnmd.resources import shipped


def default_structure_path() -> Path:
    """The shipped relaxed 50-atom LGPS cell."""
    return shipped("lgps_relaxed.extxyz")


def lgps_supercell(reps=(2, 2, 1), path=None):
    """The shipped relaxed 50-atom LGPS cell repeated `reps` times."""
    from ase.io import read

    atoms = read(str(path or default_structure_path()), format="extxyz")
    return atoms.repeat(tuple(int(r) for r in reps))


def _thermostat(config: MDConfig) -> dict:
    if config.ensemble == "langevin":
        return {"friction_per_fs": config.friction_per_fs}
    if config.ensemble in ("nose-hoover", "csvr"):
        return {"tau_fs": config.tau_fs}
    return {}


def _run_config(config: MDConfig, T: float) -> MDConfig:
    return replace(config, temperature=float(T), seed=config.seed + int(round(T)))


def _mismatch(run_dir: Path, cfg: MDConfig, run: dict) -> str | None:
    ck = run_dir / "checkpoint.npz"
    return resume_mismatch(load_checkpoint(ck), cfg, run) if ck.exists() else None


def check_runs(outdir, temperatures, config: MDConfig, atoms, backend=None, analyse_only: bool = False,
               overwrite: bool = False) -> None:
    """Refuse runs in `outdir` made with other settings than these (before any work when
    called without the backend: MD settings and atoms; with it, also backend and image)."""
    run = run_identity(atoms, backend) if backend is not None else \
        {"natoms": len(atoms), "formula": atoms.get_chemical_formula()}
    for T in temperatures:
        run_dir = Path(outdir) / f"T{int(round(T))}K"
        if analyse_only:
            if not (run_dir / "traj.extxyz").exists():
                raise NvnmdError(f"--analyse-only: no trajectory at {run_dir / 'traj.extxyz'}")
            continue
        why = None if overwrite else _mismatch(run_dir, _run_config(config, T), run)
        if why:
            raise NvnmdError(f"{run_dir} holds a run with other settings: {why} (use another -o, the same "
                             f"settings, or --overwrite to run it again)")


def _steps_done(run_dir: Path) -> int:
    ck = run_dir / "checkpoint.npz"
    return int(load_checkpoint(ck)["step"]) if ck.exists() else -1


def conductivity_workflow(atoms, backend, temperatures, config: MDConfig, outdir, ion: str = "Li",
                          analyse_only: bool = False, progress: bool = True, log=print,
                          backend_note: str | None = None, overwrite: bool = False) -> dict:
    outdir = Path(outdir)
    rows, curves = [], {}
    if analyse_only:
        config = _stored_config(outdir, temperatures, config)
    else:
        check_runs(outdir, temperatures, config, atoms, backend, overwrite=overwrite)
    for T in temperatures:
        run_dir = outdir / f"T{int(round(T))}K"
        cfg = _run_config(config, T)
        if not analyse_only:
            if not overwrite and _steps_done(run_dir) >= cfg.steps:
                log(f"T = {T:g} K: already complete in {run_dir}")
            else:
                resume = not overwrite and (run_dir / "checkpoint.npz").exists()
                log(f"T = {T:g} K: {'resuming' if resume else 'running'} {cfg.steps} steps of {cfg.dt_fs:g} fs in {run_dir}")
                done = run_md(atoms, backend, cfg, run_dir, resume=resume, progress=progress, log=log)
                if done["guard_evaluations"]:
                    log(f"T = {T:g} K: the short-range guard acted in {done['guard_evaluations']} force evaluations")
        times, pos, symbols, cell = read_trajectory(run_dir / "traj.extxyz")
        mask = np.array([s == ion for s in symbols])
        volume = abs(float(np.linalg.det(cell)))
        # skip the first 10 % as equilibration
        start = len(times) // 10
        from ase.data import atomic_masses, atomic_numbers

        masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
        d = diffusion(times[start:] - times[start], pos[start:], mask, masses=masses)
        sigma = nernst_einstein(d["D_cm2_s"], int(mask.sum()), volume, T)
        sigma_err = nernst_einstein(d["D_err_cm2_s"], int(mask.sum()), volume, T) if np.isfinite(d["D_err_cm2_s"]) else float("nan")
        rows.append({"T_K": float(T), "D_cm2_s": d["D_cm2_s"], "D_err_cm2_s": d["D_err_cm2_s"],
                     "sigma_mS_cm": sigma, "sigma_err_mS_cm": sigma_err, "n_ions": int(mask.sum()),
                     "volume_A3": volume, "length_ps": float(times[-1] - times[start]),
                     "fit_window_ps": d["fit_window_ps"], "warning": d["warning"]})
        curves[T] = (d["lag_ps"], d["msd_A2"])
        log(f"T = {T:g} K: D({ion}) = {d['D_cm2_s']:.3e} ± {d['D_err_cm2_s']:.1e} cm²/s, σ = {sigma:.3g} mS/cm")
        if d["warning"]:
            log(f"T = {T:g} K: warning: {d['warning']}")
    fit = arrhenius([r["T_K"] for r in rows], [r["sigma_mS_cm"] for r in rows],
                    [r["sigma_err_mS_cm"] for r in rows])
    summary = {"ion": ion, "natoms": len(atoms), "runs": rows, "arrhenius": fit,
               "md": {"ensemble": config.ensemble, "dt_fs": config.dt_fs, "steps": config.steps,
                      "seed": config.seed, "skin_A": config.skin, "traj_every": config.traj_every,
                      **_thermostat(config)},
               "experiment_LGPS": {"sigma_300K_mS_cm": 12.0, "Ea_eV": [0.22, 0.25]}}
    if backend_note:
        summary["backend"] = backend_note
    write_atomic(outdir / "conductivity.json", (json.dumps(summary, indent=2) + "\n").encode())
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["T_K", "D_cm2_s", "D_err_cm2_s", "sigma_mS_cm", "sigma_err_mS_cm", "n_ions", "volume_A3", "length_ps"],
                       extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_atomic(outdir / "conductivity.csv", buf.getvalue().encode())
    _plots(outdir, curves, rows, fit, ion)
    return summary


def _stored_config(outdir: Path, temperatures, config: MDConfig) -> MDConfig:
    """For --analyse-only: the settings the runs were made with (from their checkpoints), so
    conductivity.json describes the trajectories it analysed, not the command line."""
    from dataclasses import fields

    stored = None
    for T in temperatures:
        ck = outdir / f"T{int(round(T))}K" / "checkpoint.npz"
        if not ck.exists():
            continue
        cfg = json.loads(str(load_checkpoint(ck)["config"]))
        cfg["seed"] = int(cfg["seed"]) - int(round(T))
        cfg["temperature"] = config.temperature
        known = {f.name for f in fields(MDConfig)}
        cfg = MDConfig(**{k: v for k, v in cfg.items() if k in known})
        if stored is None:
            stored = cfg
        elif replace(cfg, steps=stored.steps) != stored:
            raise NvnmdError(f"the runs in {outdir} were made with different settings ({ck} differs from the first)")
    return stored or config


def _plots(outdir: Path, curves, rows, fit, ion) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for T, (lag, msd) in curves.items():
        ax.plot(lag, msd, label=f"{T:g} K")
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel(f"MSD {ion} (Å²)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(outdir / "msd.png", dpi=120)
    plt.close(fig)

    T = np.array([r["T_K"] for r in rows])
    s = np.array([r["sigma_mS_cm"] for r in rows])
    e = np.array([r["sigma_err_mS_cm"] for r in rows])
    fig, ax = plt.subplots(figsize=(5, 4))
    ok = s > 0
    ax.errorbar(1000.0 / T[ok], np.log10(s[ok] * T[ok]), yerr=(e[ok] / s[ok] / np.log(10)) if np.all(np.isfinite(e[ok])) else None,
                fmt="o", label="MD")
    if np.isfinite(fit.get("Ea_eV", np.nan)):
        Tf = np.linspace(280, max(T.max(), 300), 50)
        ax.plot(1000.0 / Tf, (fit["lnA"] - fit["Ea_eV"] / (8.617333262e-5 * Tf)) / np.log(10), "-",
                label=f"Ea = {fit['Ea_eV']:.3f} ± {fit['Ea_err_eV']:.3f} eV")
    ax.plot([1000.0 / 300], [np.log10(12.0 * 300)], "s", label="LGPS exp. 12 mS/cm")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("log10(σT / (mS K/cm))")
    ax.legend()
    fig.tight_layout()
    fig.savefig(outdir / "arrhenius.png", dpi=120)
    plt.close(fig)
