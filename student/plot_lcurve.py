"""Plot deepmd-kit's lcurve.out (energy and force RMSE, train and validation) to a PNG."""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def main(src: str, out: str) -> None:
    names = open(src).readline().split()[1:]
    data = np.genfromtxt(src, names=names)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, unit, scale in ((axes[0], "e", "meV/atom", 1e3), (axes[1], "f", "meV/Å", 1e3)):
        for split in ("trn", "val"):
            col = f"rmse_{key}_{split}"
            ax.semilogy(data["step"], data[col] * scale, label=split, lw=1)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"RMSE ({unit})")
        ax.legend()
    axes[0].set_title("energy")
    axes[1].set_title("force")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
