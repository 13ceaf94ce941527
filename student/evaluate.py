"""Energy/force/virial RMSE and MAE of a student on a deepmd/npy data tree (e.g. the validation split).

Usage: python student/evaluate.py MODEL.pb DATA_DIR [--json OUT]
Energies per atom in meV/atom, forces in meV/Å, virials per atom in meV/atom; frames pooled
over all systems (each frame weighted once for energy/virial, each force component once).
"""
import argparse
import json
from pathlib import Path

import dpdata
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--json")
    args = ap.parse_args()
    from deepmd.infer import DeepPot

    dp = DeepPot(args.model)
    de, df, dv = [], [], []
    for sysdir in sorted(p.parent for p in Path(args.data).rglob("type.raw")):
        s = dpdata.LabeledSystem(str(sysdir), fmt="deepmd/npy")
        n = s.get_natoms()
        types = s["atom_types"]
        e, f, v = dp.eval(s["coords"].reshape(len(s), -1), s["cells"].reshape(len(s), -1), types)[:3]
        de.append((e.ravel() - s["energies"]) / n)
        df.append((f.reshape(-1) - s["forces"].reshape(-1)))
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
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
