"""`--emit-mem DIR`: one $readmemh file per board memory (SPEC.md §8), for FPGA synthesis.

Each line is one value in two's complement, as many hex digits as its on-board width needs,
in the section's C order (last index fastest). A manifest.json lists file, depth, width and
the section shape so RTL address generators can be checked against it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nvnmd.quantize.report import memory_bits


def emit_mem(image, out_dir) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, manifest = [], []
    for row in memory_bits(image):
        name, bits = row["memory"], row["bits_per_value"]
        arr = np.asarray(image.sections[name]).astype(np.int64).ravel()
        digits = (bits + 3) // 4
        mask = (1 << bits) - 1
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise ValueError(f"section {name} does not fit its {bits}-bit memory")
        text = "\n".join(format(int(v) & mask, f"0{digits}x") for v in arr)
        path = out / f"{name}.mem"
        path.write_text(f"// {name} {row['shape']} {bits}-bit two's complement, C order\n{text}\n")
        written.append(path)
        manifest.append({"file": path.name, "depth": int(arr.size), "width": bits, "shape": row["shape"]})
    (out / "manifest.json").write_text(json.dumps({"profile": image.profile, "digest": image.digest(),
                                                   "memories": manifest}, indent=1))
    return written
