"""Energy/force/virial RMSE and MAE of a student on a deepmd/npy data tree (e.g. the validation split).

Usage: python student/evaluate.py MODEL.pb DATA_DIR [--json OUT] [--per-system]
Energies per atom in meV/atom, forces in meV/Å, virials per atom in meV/atom; frames pooled
over all systems (each frame weighted once for energy/virial, each force component once).
--per-system adds, for every system, its size, volume per atom and the mean and spread of the
energy error: a mean that differs between 50- and 400-atom cells at equal density is an offset
no local model can fit, a spread that scales as 1/sqrt(natoms) is the atomic-energy error.
The energy and force RMSE also get 95 % bootstrap intervals, resampling frames and, since
frames of one trajectory are correlated, whole systems: how far the figure could move on
another draw of the same kind of data.
"""
import argparse
import json
from pathlib import Path

import dpdata
import numpy as np


def predictions(model: str, data: str):
    """Yields (system dir, dpdata system, energy, force, virial) of MODEL on every system under DATA."""
    from deepmd.infer import DeepPot

    dp = DeepPot(model)
    for sysdir in sorted(p.parent for p in Path(data).rglob("type.raw")):
        s = dpdata.LabeledSystem(str(sysdir), fmt="deepmd/npy")
        e, f, v = dp.eval(s["coords"].reshape(len(s), -1), s["cells"].reshape(len(s), -1), s["atom_types"])[:3]
        yield sysdir, s, e, f, v


BOOTSTRAP_DRAWS = 2000


def bootstrap_rmse_ci95(sq_sums: np.ndarray, counts: np.ndarray, groups: np.ndarray) -> list[float]:
    """95 % interval of sqrt(sum(sq) / sum(n)) when the units of `groups` are drawn with replacement."""
    rng = np.random.default_rng(0)
    labels, inverse = np.unique(groups, return_inverse=True)
    sq_g = np.bincount(inverse, weights=sq_sums, minlength=len(labels))
    n_g = np.bincount(inverse, weights=counts, minlength=len(labels))
    draws = rng.integers(0, len(labels), size=(BOOTSTRAP_DRAWS, len(labels)))
    rmse = np.sqrt(sq_g[draws].sum(axis=1) / n_g[draws].sum(axis=1))
    return [float(x) for x in np.percentile(rmse, [2.5, 97.5])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--json")
    ap.add_argument("--per-system", action="store_true")
    args = ap.parse_args()
    de, df, dv, systems, f_sq = [], [], [], [], []
    for sysdir, s, e, f, v in predictions(args.model, args.data):
        n = s.get_natoms()
        de.append((e.ravel() - s["energies"]) / n)
        df.append((f.reshape(-1) - s["forces"].reshape(-1)))
        f_sq.append((df[-1].reshape(len(s), -1) ** 2).sum(axis=1))
        systems.append({
            "system": sysdir.name, "natoms": int(n), "frames": len(s),
            "volume_A3_atom": float(np.abs(np.linalg.det(s["cells"])).mean() / n),
            "energy_rmse_meV_atom": 1e3 * float(np.sqrt(np.mean(de[-1] ** 2))),
            "energy_mean_meV_atom": 1e3 * float(np.mean(de[-1])),
            "energy_std_meV_atom": 1e3 * float(np.std(de[-1])),
            "force_rmse_meV_A": 1e3 * float(np.sqrt(np.mean(df[-1] ** 2))),
        })
        if "virials" in s.data:
            dv.append((v.reshape(len(s), 9) - s["virials"].reshape(len(s), 9)) / n)
    de, df = np.concatenate(de), np.concatenate(df)
    dv = np.concatenate(dv).ravel() if dv else np.array([np.nan])
    out = {
        "frames": int(de.size),
        "energy_rmse_meV_atom": 1e3 * float(np.sqrt(np.mean(de**2))),
        "energy_mae_meV_atom": 1e3 * float(np.mean(np.abs(de))),
        "force_rmse_meV_A": 1e3 * float(np.sqrt(np.mean(df**2))),
        "force_mae_meV_A": 1e3 * float(np.mean(np.abs(df))),
        "virial_rmse_meV_atom": 1e3 * float(np.sqrt(np.mean(dv**2))),
        "virial_mae_meV_atom": 1e3 * float(np.mean(np.abs(dv))),
    }
    natoms = np.array([x["natoms"] for x in systems])
    frames = np.array([x["frames"] for x in systems])
    system_of_frame = np.repeat(np.arange(len(systems)), frames)
    f_n = 3 * natoms[system_of_frame]
    f_sq = np.concatenate(f_sq)
    for unit, groups in (("frames", np.arange(de.size)), ("systems", system_of_frame)):
        e_ci = bootstrap_rmse_ci95(de**2, np.ones(de.size), groups)
        f_ci = bootstrap_rmse_ci95(f_sq, f_n, groups)
        out[f"energy_rmse_ci95_resampling_{unit}_meV_atom"] = [1e3 * x for x in e_ci]
        out[f"force_rmse_ci95_resampling_{unit}_meV_A"] = [1e3 * x for x in f_ci]
    if args.per_system:
        out["systems"] = systems
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
