"""The quantize report: text + JSON + PNG parity plots, and the bits each board memory holds.

Parity plots show the quantized model against the float student and against the labels for
energy per atom, force components and virial per atom; `memory_bits` lists every image
section with its element width on the board (SPEC.md §8), so the report states the BRAM cost.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nvnmd.sim.nvq1 import model as S

# On-board element widths of each image section (bits); the file stores them in wider ints.
SECTION_BITS = {"u_tab": S.DATA_BITS, "g_tab": S.DATA_BITS, "tanh_tab": S.DATA_BITS, "pad": 48, "e_const": 48}
BRAM36_BITS = 36 * 1024


def memory_bits(image) -> list[dict]:
    rows = []
    for name, arr in image.sections.items():
        if name in SECTION_BITS:
            bits = SECTION_BITS[name]
        elif name.endswith("_w") or name.endswith("_idt"):
            bits = S.W_BITS
        elif name.endswith("_e"):
            bits = 8
        else:
            bits = S.DATA_BITS
        total = int(arr.size) * bits
        rows.append({"memory": name, "shape": list(arr.shape), "bits_per_value": bits, "bits": total,
                     "bram36": int(np.ceil(total / BRAM36_BITS))})
    return rows


def write_report(out_dir, *, image, info, results, pred, float_pred, frames, stats) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from nvnmd.quantize.evaluate import format_table

    mem = memory_bits(image)
    doc = {"profile": image.profile, "digest": image.digest(), "formats": image.meta.get("frac"),
           "gradient_fracs": image.meta.get("f_g"), "fixed": image.meta.get("fixed"),
           "calibration": info, "accuracy": results, "datapath": stats, "memories": mem,
           "total_bits": sum(m["bits"] for m in mem), "total_bram36": sum(m["bram36"] for m in mem)}
    (out / "report.json").write_text(json.dumps(doc, indent=1, default=float))
    lines = [f"nvq1 quantization report ({len(frames)} frames)", "", format_table(results), "",
             f"saturations {stats['saturations']}" + (f" {stats['counters']}" if stats["counters"] else "") +
             f", neighbour-overflow atoms {stats['overflow_atoms']}", "", f"{'memory':<14}{'shape':<22}{'bits/value':>11}{'bits':>12}{'BRAM36':>8}"]
    for m in mem:
        lines.append(f"{m['memory']:<14}{str(m['shape']):<22}{m['bits_per_value']:>11}{m['bits']:>12}{m['bram36']:>8}")
    lines.append(f"{'total':<14}{'':<22}{'':>11}{doc['total_bits']:>12}{doc['total_bram36']:>8}")
    lines += ["", "fractions " + json.dumps(image.meta.get("frac")), "gradient fractions " + json.dumps(image.meta.get("f_g"))]
    (out / "report.txt").write_text("\n".join(lines) + "\n")
    _parity(out / "parity.png", pred, float_pred, frames)
    return out


def _parity(path, pred, float_pred, frames):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    refs = [("float student", float_pred), ("labels", None)]
    for row, (label, ref) in enumerate(refs):
        for col, (name, unit) in enumerate((("energy/atom", "eV"), ("force", "eV/Å"), ("virial/atom", "eV"))):
            xs, ys = [], []
            for k, fr in enumerate(frames):
                q = pred[k]
                if ref is None:
                    r = (fr.energy, fr.forces, fr.virial)
                else:
                    r = ref[k]
                if r[col] is None:
                    continue
                n = fr.natoms if col != 1 else 1
                xs.append(np.ravel(r[col]) / n)
                ys.append(np.ravel(q[col]) / n)
            ax = axes[row, col]
            if xs:
                x, y = np.concatenate(xs), np.concatenate(ys)
                ax.plot(x, y, ".", ms=2)
                lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
                ax.plot([lo, hi], [lo, hi], "k-", lw=0.5)
                ax.set_title(f"{name}: RMSE {np.sqrt(np.mean((x - y) ** 2)) * 1e3:.3g} m{unit}")
            ax.set_xlabel(f"{label} [{unit}]")
            ax.set_ylabel(f"nvq1 [{unit}]")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
