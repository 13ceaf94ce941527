"""Plot deepmd-kit's lcurve.out (energy and force RMSE, train and validation) to a PNG.

Each lcurve row is the error of one small batch, so the raw values scatter over a decade;
the plot draws them faint and, on top, their RMS over a sliding window of WINDOW rows (the
pooling an RMSE needs). Stage boundaries of a joined multi-stage curve are where the
learning rate jumps up, and are marked. With --summary (student/evaluate.py's JSON on the
whole validation split) the final figures and the targets are drawn at the end.

Usage: python plot_lcurve.py lcurve.out lcurve.png [--summary validation.json]
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

WINDOW = 25
TARGETS = {"e": 3.0, "f": 120.0}  # issue 2: meV/atom, meV/Å
SUMMARY_KEYS = {"e": "energy_rmse_meV_atom", "f": "force_rmse_meV_A"}


def windowed_rms(values: np.ndarray, window: int) -> np.ndarray:
    """RMS over the last `window` finite values at each row (NaN rows, deepmd-kit's
    'no virial in this batch', are skipped)."""
    finite = np.isfinite(values)
    sq = np.concatenate([[0.0], np.cumsum(np.where(finite, values**2, 0.0))])
    n = np.concatenate([[0], np.cumsum(finite)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((sq[end] - sq[start]) / (n[end] - n[start]))


def stage_starts(steps: np.ndarray, lr: np.ndarray) -> list[float]:
    return [float(steps[i]) for i in range(1, len(lr)) if lr[i] > 1.5 * lr[i - 1]]


def main(src: str, out: str, summary_path: str | None) -> None:
    names = open(src).readline().split()[1:]
    data = np.genfromtxt(src, names=names)
    summary = json.load(open(summary_path)) if summary_path else None
    starts = stage_starts(data["step"], data["lr"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, unit in ((axes[0], "e", "meV/atom"), (axes[1], "f", "meV/Å")):
        for split, colour in (("trn", "tab:blue"), ("val", "tab:orange")):
            values = data[f"rmse_{key}_{split}"] * 1e3
            ax.semilogy(data["step"], values, color=colour, lw=0.5, alpha=0.25)
            ax.semilogy(data["step"], windowed_rms(values, WINDOW), color=colour, lw=1.6,
                        label=f"{split} (RMS over {WINDOW} batches)")
        for i, s in enumerate(starts):
            ax.axvline(s, color="grey", lw=0.8, ls=":", label="stage start" if i == 0 else None)
        ax.axhline(TARGETS[key], color="tab:red", lw=1, ls="--", label=f"target {TARGETS[key]:g}")
        if summary:
            final = summary[SUMMARY_KEYS[key]]
            ax.plot([data["step"][-1]], [final], "k*", ms=11,
                    label=f"whole validation split: {final:.2f}")
        ax.set_xlabel("training step (all stages)")
        ax.set_ylabel(f"RMSE ({unit})")
        ax.legend(fontsize=8)
    axes[0].set_title("energy")
    axes[1].set_title("force")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lcurve")
    ap.add_argument("png")
    ap.add_argument("--summary", help="student/evaluate.py JSON of the validation split")
    args = ap.parse_args()
    main(args.lcurve, args.png, args.summary)
