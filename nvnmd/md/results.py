"""The conductivity table and plots of a sweep, written atomically once every run is analysed.

`write_results(outdir, compositions, runs, results, config)` writes, in `outdir`:
  conductivity.json   every run (label, formula, T, D(Li) ± err, σ ± err, ...), every composition
                      (Arrhenius Ea ± err, σ(300 K) ± err, and "experiment": the published
                      measurement it is compared with, or null), the MD settings; with one
                      composition also its fit as "arrhenius" (the layout of earlier releases);
                      "experiment_LGPS" as earlier releases wrote it (now from the table)
  conductivity.csv    one row per run;  compositions.csv  one row per composition, with its
                      experiment's σ, T, Ea, key and DOI (empty where the table has none)
  msd.png             Li MSD against lag, one panel per composition, one curve per temperature
  arrhenius.png       log10(σT) against 1000/T, every composition with its fit and its
                      experiment (σ at its temperature; Ea as a dashed line over the measured range)
  composition.png     σ(300 K) and Ea against composition, MD beside experiment (two or more)
  msd_energy.png      at one temperature: MSD(t) of every composition and its potential energy
                      per atom against time (as Figure 6b of the seed paper, ordered against
                      disordered Li6PS5Cl)
The experiments are nvnmd.analysis.experiments (one table, cited); a composition finds its
entry by formula and, for argyrodites, by S/X site disorder. Nothing in them depends on wall
time or on where -o is, so a sweep interrupted and resumed writes the same table as one that
ran through.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from nvnmd.analysis.conductivity import KB_EV, arrhenius
from nvnmd.analysis.experiments import lgps_reference, match_atoms, site_disorder
from nvnmd.image import write_atomic

RUN_COLUMNS = ["label", "formula", "T_K", "D_cm2_s", "D_err_cm2_s", "sigma_mS_cm", "sigma_err_mS_cm", "n_ions",
               "volume_A3", "length_ps"]
COMPOSITION_COLUMNS = ["label", "formula", "natoms", "n_temperatures", "Ea_eV", "Ea_err_eV", "sigma_300K_mS_cm",
                       "sigma_300K_err_mS_cm", "site_disorder", "exp_sigma_mS_cm", "exp_T_K", "exp_Ea_eV", "exp_ref",
                       "exp_doi"]


def thermostat(config) -> dict:
    if config.ensemble == "langevin":
        return {"friction_per_fs": config.friction_per_fs}
    if config.ensemble in ("nose-hoover", "csvr"):
        return {"tau_fs": config.tau_fs}
    return {}


def _csv(rows, columns) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def compare_temperature(compositions, wanted: float | None = None) -> float | None:
    """The temperature of msd_energy.png: `wanted`, else the highest every composition ran at."""
    common = set.intersection(*[{float(t) for t in c.temperatures} for c in compositions])
    if wanted is not None:
        return float(wanted) if float(wanted) in common else None
    return max(common) if common else None


def write_results(outdir, compositions, runs, results, config, ion: str = "Li", backend_note: str | None = None,
                  compare_T: float | None = None, log=print) -> dict:
    rows = [{"label": r.label, "formula": r.atoms.get_chemical_formula(), **res["row"], "run_dir": r.rel}
            for r, res in zip(runs, results)]
    comps = []  # per composition: its identity and its Arrhenius fit
    for c in compositions:
        mine = [row for row in rows if row["label"] == c.label]
        fit = arrhenius([row["T_K"] for row in mine], [row["sigma_mS_cm"] for row in mine],
                        [row["sigma_err_mS_cm"] for row in mine])
        comps.append({"label": c.label, "formula": c.formula, "natoms": len(c.atoms), "source": c.source,
                      "temperatures": [float(t) for t in c.temperatures], "arrhenius": fit,
                      "site_disorder": site_disorder(c.atoms), "experiment": match_atoms(c.atoms)})
    summary = {"ion": ion, "runs": rows, "compositions": comps,
               "md": {"ensemble": config.ensemble, "dt_fs": config.dt_fs, "steps": config.steps, "seed": config.seed,
                      "skin_A": config.skin, "traj_every": config.traj_every, **thermostat(config)},
               "experiment_LGPS": lgps_reference()}
    if len(compositions) == 1:
        summary["natoms"] = len(compositions[0].atoms)
        summary["arrhenius"] = comps[0]["arrhenius"]
    if backend_note:
        summary["backend"] = backend_note
    write_atomic(outdir / "conductivity.json", (json.dumps(summary, indent=2) + "\n").encode())
    write_atomic(outdir / "conductivity.csv", _csv(rows, RUN_COLUMNS))
    flat = [{**c, "n_temperatures": len(c["temperatures"]), **c["arrhenius"], **_exp_columns(c["experiment"])}
            for c in comps]
    write_atomic(outdir / "compositions.csv", _csv(flat, COMPOSITION_COLUMNS))
    T_cmp = compare_temperature(compositions, compare_T)
    _plots(outdir, compositions, runs, results, comps, ion, T_cmp)
    if T_cmp is None:
        log("msd_energy.png not written: the compositions share no temperature" +
            (f" {compare_T:g} K" if compare_T is not None else ""))
    return summary


def _exp_columns(exp: dict | None) -> dict:
    if exp is None:
        return {}
    return {"exp_sigma_mS_cm": exp["sigma_mS_cm"], "exp_T_K": exp["T_K"], "exp_Ea_eV": exp["Ea_eV"],
            "exp_ref": exp["ref"], "exp_doi": exp["doi"]}


def _mark_experiments(ax, comps, colors) -> None:
    """Each composition's experiment on the Arrhenius plot: σ at its temperature, and its Ea as
    a dashed line over the measured range; one marker per experiment, in the colour of the
    composition that uses it (black when several share it)."""
    users: dict[str, list] = {}
    for c in comps:
        if c["experiment"] and c["experiment"]["sigma_mS_cm"] is not None:
            users.setdefault(c["experiment"]["ref"], []).append(c)
    for ref, cs in users.items():
        e = cs[0]["experiment"]
        color = colors[cs[0]["label"]] if len(cs) == 1 else "k"
        T0, s0 = e["T_K"], e["sigma_mS_cm"]
        ea = f", Ea {e['Ea_eV']:.2f} eV" if e["Ea_eV"] is not None else ""
        who = f" ({', '.join(c['label'] for c in cs)})" if len(comps) > 1 else ""
        ax.plot([1000.0 / T0], [np.log10(s0 * T0)], "s", mfc="none", mec=color, mew=1.5,
                label=f"exp. {e['short']}: {s0:.3g} mS/cm{ea}{who}")
        if e["Ea_eV"] is not None and e["T_range_K"]:
            Tl = np.linspace(*e["T_range_K"], 20)
            ax.plot(1000.0 / Tl, np.log10(s0 * T0) - e["Ea_eV"] / (KB_EV * np.log(10)) * (1.0 / Tl - 1.0 / T0), "--",
                    color=color, lw=1)


def _save(fig, path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    write_atomic(path, buf.getvalue())


def _plots(outdir, compositions, runs, results, comps, ion, T_cmp) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [c.label for c in compositions]
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    by = {(r.label, r.T): res for r, res in zip(runs, results)}

    n = len(compositions)
    ncol = min(n, 3)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.5 * ncol, 3.8 * nrow), squeeze=False)
    for ax, c in zip(axes.ravel(), compositions):
        for T in c.temperatures:
            res = by[(c.label, float(T))]
            ax.plot(res["lag_ps"], res["msd_A2"], label=f"{T:g} K")
        ax.set_xlabel("lag time (ps)")
        ax.set_ylabel(f"MSD {ion} (Å²)")
        if n > 1:
            ax.set_title(c.label)
        ax.legend()
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    _save(fig, outdir / "msd.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4.2) if n == 1 else (9.5, 4.6))
    for c, comp in zip(compositions, comps):
        T = np.array([float(t) for t in c.temperatures])
        s = np.array([by[(c.label, t)]["row"]["sigma_mS_cm"] for t in T])
        e = np.array([by[(c.label, t)]["row"]["sigma_err_mS_cm"] for t in T])
        ok = s > 0
        yerr = (e[ok] / s[ok] / np.log(10)) if np.all(np.isfinite(e[ok])) else None
        ax.errorbar(1000.0 / T[ok], np.log10(s[ok] * T[ok]), yerr=yerr, fmt="o", color=colors[c.label],
                    label=c.label if n > 1 else "MD")
        fit = comp["arrhenius"]
        if np.isfinite(fit.get("Ea_eV", np.nan)):
            Tf = np.linspace(280, max(T.max(), 300), 50)
            ax.plot(1000.0 / Tf, (fit["lnA"] - fit["Ea_eV"] / (KB_EV * Tf)) / np.log(10), "-", color=colors[c.label],
                    label=f"{c.label + ': ' if n > 1 else ''}Ea = {fit['Ea_eV']:.3f} ± {fit['Ea_err_eV']:.3f} eV")
    _mark_experiments(ax, comps, colors)
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("log10(σT / (mS K/cm))")
    if n == 1:
        ax.legend(fontsize=8)
    else:  # one fit and one experiment per composition: beside the axes, not over the points
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    _save(fig, outdir / "arrhenius.png")
    plt.close(fig)

    if n >= 2:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(max(8, 1.2 * n + 5), 3.8))
        x = np.arange(n)
        s300 = np.array([c["arrhenius"]["sigma_300K_mS_cm"] for c in comps])
        s300e = np.array([c["arrhenius"]["sigma_300K_err_mS_cm"] for c in comps])
        ea = np.array([c["arrhenius"]["Ea_eV"] for c in comps])
        eae = np.array([c["arrhenius"]["Ea_err_eV"] for c in comps])
        exps = [c["experiment"] or {} for c in comps]
        xs = np.array([i for i, e in enumerate(exps) if e.get("sigma_mS_cm") is not None])
        xe = np.array([i for i, e in enumerate(exps) if e.get("Ea_eV") is not None])
        a1.errorbar(x - 0.12, s300, yerr=np.nan_to_num(s300e), fmt="o", label="MD (Arrhenius, 300 K)")
        other = np.array([exps[i].get("same_disorder") is False for i in range(n)], dtype=bool)
        for sel, mec, what in ((~other, "k", "experiment (RT)"), (other, "0.6", "experiment, other S/X disorder")):
            xi = np.array([i for i in xs if sel[i]], dtype=int)
            if len(xi):
                a1.plot(xi + 0.12, [exps[i]["sigma_mS_cm"] for i in xi], "s", mfc="none", mec=mec, label=what)
        values = np.concatenate([s300, [exps[i]["sigma_mS_cm"] for i in xs]])
        if np.all(np.isfinite(values)) and np.all(values > 0):
            a1.set_yscale("log")
        a1.set_ylabel("σ(300 K) (mS/cm)")
        a2.errorbar(x - 0.12, ea, yerr=np.nan_to_num(eae), fmt="o", label="MD")
        for sel, mec, what in ((~other, "k", "experiment"), (other, "0.6", "experiment, other S/X disorder")):
            xi = np.array([i for i in xe if sel[i]], dtype=int)
            if len(xi):
                a2.plot(xi + 0.12, [exps[i]["Ea_eV"] for i in xi], "s", mfc="none", mec=mec, label=what)
        a2.set_ylabel("Ea (eV)")
        for a in (a1, a2):
            a.legend(fontsize=7)
        refs = sorted({e["short"] for e in exps if e})
        if refs:
            fig.suptitle("experiments: " + ", ".join(refs) + " (nvnmd.analysis.experiments)", fontsize=8)
        for a in (a1, a2):
            a.set_xticks(x)
            a.set_xticklabels(labels, rotation=30, ha="right")
            a.set_xlabel("composition")
        fig.tight_layout()
        _save(fig, outdir / "composition.png")
        plt.close(fig)

    if T_cmp is not None:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for c in compositions:
            res = by[(c.label, T_cmp)]
            a1.plot(res["lag_ps"], res["msd_A2"], color=colors[c.label], label=c.label)
            a2.plot(res["time_ps"], res["epot_eV_atom"], color=colors[c.label], label=c.label)
        a1.set_xlabel("lag time (ps)")
        a1.set_ylabel(f"MSD {ion} (Å²)")
        a1.set_title(f"{T_cmp:g} K")
        a2.set_xlabel("t (ps)")
        a2.set_ylabel("potential energy (eV/atom)")
        a2.set_title(f"{T_cmp:g} K")
        a1.legend()
        a2.legend()
        fig.tight_layout()
        _save(fig, outdir / "msd_energy.png")
        plt.close(fig)
