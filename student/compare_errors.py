"""Do several students miss the same frames? Per-frame energy errors of each model on a deepmd/npy tree.

Usage: python student/compare_errors.py DATA_DIR MODEL.pb MODEL.pb [...] [--json OUT]

For every pair of models: the correlation of their per-frame energy errors (meV/atom,
prediction − DFT label), also after removing each system's mean error (so that a shared
offset between systems does not count), and the RMSE of each and of their mean. A correlation near 1
between independently trained students says the error is a property of the frames and of the
model family (label noise, or what se_e2_a at this size cannot represent), not of one training
run: more steps or averaging such models will not remove it.
"""
import argparse
import json
from pathlib import Path

import numpy as np
from evaluate import predictions  # student/evaluate.py, beside this script


def per_frame_errors(model: str, data: str) -> tuple[np.ndarray, np.ndarray]:
    """(energy error per frame in meV/atom, system index per frame)."""
    out, system = [], []
    for _, s, e, _, _ in predictions(model, data):
        out.append(1e3 * (e.ravel() - s["energies"]) / s.get_natoms())
        system.append(np.full(len(s), len(system)))
    return np.concatenate(out), np.concatenate(system)


def without_system_means(err: np.ndarray, system: np.ndarray) -> np.ndarray:
    means = np.bincount(system, weights=err) / np.bincount(system)
    return err - means[system]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--json")
    args = ap.parse_args()
    err, within = {}, {}
    for m in args.models:
        err[m], system = per_frame_errors(m, args.data)
        within[m] = without_system_means(err[m], system)
    rms = {m: float(np.sqrt(np.mean(e**2))) for m, e in err.items()}
    pairs = []
    for i, a in enumerate(args.models):
        for b in args.models[i + 1:]:
            pairs.append({"a": a, "b": b, "correlation": float(np.corrcoef(err[a], err[b])[0, 1]),
                          "correlation_within_systems": float(np.corrcoef(within[a], within[b])[0, 1]),
                          "rmse_a": rms[a], "rmse_b": rms[b],
                          "rmse_of_mean": float(np.sqrt(np.mean(((err[a] + err[b]) / 2) ** 2)))})
    out = {"frames": int(next(iter(err.values())).size), "energy_rmse_meV_atom": rms, "pairs": pairs}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
