"""Validation of a distilled student, and the decision: accepted, or rejected with reasons.

    errors       energy/force/virial RMSE and MAE (dp test's per-atom conventions) of predictions
                 against labels, plus the energy RMSE after removing the mean per-atom offset
    parity_png   predicted vs reference forces and energies, one panel per model
    robustness   MD of the quantized student (sim backend) at the highest temperature + dT:
                 closest pair per element pair against the training data's, conserved-energy drift
    decide       the thresholds of DistillConfig applied to the numbers above
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np


def errors(pred, frames, against: str) -> dict:
    from nvnmd.quantize.evaluate import compare

    res = compare(pred, "labels", frames, against)
    de = np.array([(p[0] - fr.energy) / fr.natoms for p, fr in zip(pred, frames) if fr.energy is not None])
    if len(de):
        res["energy_per_atom"]["rmse_offset_removed"] = float(np.sqrt(np.mean((de - de.mean()) ** 2)))
        res["energy_per_atom"]["mean_offset"] = float(de.mean())
    return res


def labels_as_pred(frames) -> list:
    return [(fr.energy, fr.forces, np.asarray(fr.virial).reshape(9)) for fr in frames]


def parity_png(path: Path, frames, panels: dict) -> None:
    """panels: {title: predictions}; references are the frames' labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 8), squeeze=False)
    ref_f = np.concatenate([fr.forces.ravel() for fr in frames])
    ref_e = np.array([fr.energy / fr.natoms for fr in frames])
    for k, (title, pred) in enumerate(panels.items()):
        f = np.concatenate([np.asarray(p[1]).ravel() for p in pred])
        e = np.array([p[0] / fr.natoms for p, fr in zip(pred, frames)])
        ax = axes[0, k]
        ax.plot(ref_f, f, ".", ms=1, alpha=0.4)
        lim = float(np.max(np.abs(ref_f))) * 1.05
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.5)
        ax.set(title=f"{title}\nforce RMSE {1e3 * np.sqrt(np.mean((f - ref_f) ** 2)):.1f} meV/Å",
               xlabel="reference force (eV/Å)", ylabel="predicted force (eV/Å)")
        ax = axes[1, k]
        ax.plot(ref_e, e, ".", ms=3)
        lo, hi = float(min(ref_e.min(), e.min())), float(max(ref_e.max(), e.max()))
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.5)
        ax.set(title=f"energy RMSE {1e3 * np.sqrt(np.mean((e - ref_e) ** 2)):.2f} meV/atom",
               xlabel="reference energy (eV/atom)", ylabel="predicted energy (eV/atom)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def robustness(image_path: Path, atoms, cfg, outdir: Path, progress=True) -> dict:
    from nvnmd.backends.sim import SimBackend
    from nvnmd.md.engine import MDConfig, load_checkpoint, resume_mismatch, run_identity, run_md

    steps = int(round(cfg.robust_ps * 1000.0 / cfg.robust_dt_fs))
    backend = SimBackend(image_path)
    md = MDConfig(ensemble=cfg.ensemble, temperature=cfg.robust_temperature, dt_fs=cfg.robust_dt_fs, steps=steps,
                  seed=cfg.seed + 7, tau_fs=cfg.tau_fs, traj_every=max(1, steps // 500), thermo_every=max(1, steps // 500),
                  checkpoint_every=max(1, min(5000, steps // 10)))
    ck = outdir / "checkpoint.npz"
    summary = {}
    done = False
    if ck.exists():
        saved = load_checkpoint(ck)
        if resume_mismatch(saved, md, run_identity(atoms, backend)):
            # this stage's own run of what the stage no longer runs (an image the quantize stage has since
            # replaced, changed robustness settings): start over instead of refusing to resume
            shutil.rmtree(outdir)
        else:
            done = int(saved["step"]) >= steps
    if not done:
        summary = run_md(atoms, backend, md, outdir, resume=ck.exists(), progress=progress)
    return {"temperature_K": md.temperature, "steps": steps, "dt_fs": md.dt_fs, "ensemble": md.ensemble,
            "guard_evaluations": summary.get("guard_evaluations"), **analyse_run(outdir, backend.type_map, backend.rcut)}


def analyse_run(outdir: Path, type_map: list[str], rcut: float) -> dict:
    from ase.io import read

    from nvnmd.distill.data import closest_pairs

    frames = read(str(outdir / "traj.extxyz"), index=":", format="extxyz")
    systems = [(np.array([f.positions for f in frames]), np.array([f.cell.array for f in frames]),
                frames[0].get_chemical_symbols())]
    pairs, _ = closest_pairs(systems, type_map, rcut)
    with open(outdir / "thermo.csv") as fh:
        rows = list(csv.DictReader(fh))
    t = np.array([float(r["time_ps"]) for r in rows])
    cons = np.array([float(r["conserved_eV"]) for r in rows])
    temp = np.array([float(r["T_K"]) for r in rows])
    natoms = len(frames[0])
    slope = float(np.polyfit(t, cons, 1)[0]) / natoms if len(t) > 2 else float("nan")
    return {"simulated_ps": float(t[-1]), "closest_pairs": pairs, "conserved_drift_eV_atom_ps": slope,
            "mean_T_K": float(temp[len(temp) // 10:].mean()), "frames": len(frames)}


def decide(cfg, holdout: dict, robust: dict, training_pairs: dict) -> list[str]:
    """Reasons to reject (empty: accepted)."""
    reasons = []
    f = holdout.get("force", {}).get("rmse", np.inf)
    if not f <= cfg.max_force_rmse:
        reasons.append(f"force RMSE vs teacher {1e3 * f:.1f} meV/Å > {1e3 * cfg.max_force_rmse:.1f}")
    e = holdout.get("energy_per_atom", {}).get("rmse", np.inf)
    if not e <= cfg.max_energy_rmse:
        reasons.append(f"energy RMSE vs teacher {1e3 * e:.2f} meV/atom > {1e3 * cfg.max_energy_rmse:.2f}")
    if robust.get("error"):
        reasons.append(f"robustness MD failed: {robust['error']}")
        return reasons
    drift = abs(robust.get("conserved_drift_eV_atom_ps", np.inf))
    if not drift <= cfg.max_drift:
        reasons.append(f"conserved-energy drift {1e3 * drift:.3f} meV/atom/ps > {1e3 * cfg.max_drift:.3f}")
    for pair, r in robust.get("closest_pairs", {}).items():
        a, b = pair.split("-")
        ref = training_pairs.get(pair, training_pairs.get(f"{b}-{a}"))
        if ref is not None and r < cfg.min_pair_fraction * ref:
            reasons.append(f"{pair} came to {r:.2f} Å in the robustness MD, < {cfg.min_pair_fraction} x the "
                           f"training data's {ref:.2f} Å")
    return reasons
