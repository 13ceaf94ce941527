"""Resource estimates with yosys `synth_xilinx -family xcup` and the budget check against parts.

`synthesize(top, sources, params)` runs fpga/synth/synth_xcup.ys on the given Verilog and
returns the cell counts of `stat -json` folded into the four budgets of an UltraScale+ part:
DSP48E2, RAMB36E2 (a RAMB18E2 counts half), LUT (logic LUTs plus LUTs used as distributed
RAM or shift registers) and FF. `budget(counts)` compares them with the parts in PARTS.
DSP and BRAM counts are the trustworthy ones; yosys's LUT/FF are upper bounds (it packs no
pipeline registers into the DSP48E2 and keeps wide adders in fabric;
../shared/notes/rtl-toolchain.md). No timing is claimed from yosys.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from nvnmd.errors import NvnmdError
from nvnmd.fpga.sources import fpga_root

# Device resources of the named parts, as AMD's product tables give them (DS891 Zynq
# UltraScale+ MPSoC overview; DS962 Alveo U250) and as the project brief quotes them; the ZCU104
# carries an XCZU7EV-2FFVC1156. Not re-checked against the data sheets in this repository.
# URAM is not counted: the flow infers block RAM only (synth_xilinx without -uram).
PARTS = {
    "XCZU7EV (ZCU104)": {"DSP48E2": 1728, "RAMB36E2": 312, "LUT": 230_400, "FF": 460_800},
    "XCU250 (Alveo U250)": {"DSP48E2": 12_288, "RAMB36E2": 2688, "LUT": 1_728_000, "FF": 3_456_000},
}
BUDGETS = ("DSP48E2", "RAMB36E2", "LUT", "FF")

_LUT = {f"LUT{i}" for i in range(1, 7)} | {"LUT6_2"}
_LUTRAM = {"RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1D", "RAM32M", "RAM32M16", "RAM64M", "RAM64M8",
           "RAM32X1S", "RAM64X1S", "RAM128X1S", "RAM256X1S", "SRL16E", "SRLC32E"}
_LUTRAM_LUTS = {"RAM32M": 4, "RAM32M16": 8, "RAM64M": 4, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2,
                "RAM128X1D": 4, "RAM256X1D": 8, "RAM128X1S": 2, "RAM256X1S": 4}
_FF = {"FDRE", "FDSE", "FDCE", "FDPE"}


class SynthError(NvnmdError):
    """yosys is missing or the synthesis failed."""


def fold(cells: dict) -> dict:
    """num_cells_by_type -> {DSP48E2, RAMB36E2, LUT, LUTRAM, FF} (LUT includes LUTRAM)."""
    lutram = sum(n * _LUTRAM_LUTS.get(c, 1) for c, n in cells.items() if c in _LUTRAM)
    return {
        "DSP48E2": int(cells.get("DSP48E2", 0)),
        "RAMB36E2": cells.get("RAMB36E2", 0) + 0.5 * cells.get("RAMB18E2", 0),
        "LUT": int(sum(n for c, n in cells.items() if c in _LUT) + lutram),
        "LUTRAM": int(lutram),
        "FF": int(sum(n for c, n in cells.items() if c in _FF)),
    }


def _literal(value) -> str:
    """A parameter value as yosys reads it: negative integers as signed sized hex literals
    (chparam cannot decode a minus sign), everything else as given."""
    if isinstance(value, int) and value < 0:
        bits = 32 if value >= -(1 << 31) else 64
        return f"{bits}'sh{value & ((1 << bits) - 1):x}"
    return str(value)


def synthesize(top: str, sources: list[Path], params: dict | None = None, *, log: Path | None = None) -> dict:
    """Run the xcup flow; returns fold(cells) plus 'cells' (raw counts) and 'seconds'."""
    if shutil.which("yosys") is None:
        raise SynthError("synthesis estimates need yosys: `apt-get install yosys`")
    script = fpga_root() / "synth" / "synth_xcup.ys"
    with tempfile.TemporaryDirectory(prefix="nvnmd-synth-") as tmp:
        stat = Path(tmp) / "stat.json"
        incs = "".join(f"-I{d} " for d in sorted({str(Path(s).parent) for s in sources}))
        # -defer: elaborate only at `hierarchy`, with the parameters set, so `$readmemh` opens the
        # files under MEM_DIR and not under the default "" (string values keep their quotes)
        # one chparam for all: each chparam elaborates, and a partial set would read the files too
        sets = " ".join(f"-set {k} {_literal(v)}" for k, v in (params or {}).items())
        chparams = f"chparam {sets} {top}; " if sets else ""
        cmd = ["yosys", "-q", "-l", str(log or Path(tmp) / "yosys.log"), "-p",
               f"read_verilog -defer -sv {incs}{' '.join(str(s) for s in sources)}; {chparams}hierarchy -top {top}; "
               f"script {script}; tee -q -o {stat} stat -json"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not stat.exists():
            msg = next((ln for ln in (proc.stderr + proc.stdout).splitlines() if "ERROR" in ln), "see the yosys log")
            raise SynthError(f"yosys synthesis of {top} failed: {msg.strip()}")
        data = json.loads(stat.read_text())
    cells = (data.get("design") or {}).get("num_cells_by_type")
    if cells is None:  # a single flattened module
        cells = next(iter(data["modules"].values()))["num_cells_by_type"]
    out = fold(cells)
    out.update(cells=cells, seconds=round(time.perf_counter() - t0, 1))
    return out


def budget(counts: dict) -> list[dict]:
    """One row per part: used / available and the fraction for each budget, and whether all fit."""
    rows = []
    for part, avail in PARTS.items():
        row = {"part": part, "fits": True}
        for key in BUDGETS:
            frac = counts[key] / avail[key]
            row[key] = {"used": counts[key], "available": avail[key], "fraction": round(frac, 4)}
            row["fits"] = row["fits"] and frac <= 1.0
        rows.append(row)
    return rows


def format_table(results: list[dict]) -> str:
    """Markdown table: one row per (configuration, part); results items have 'what' and counts."""
    head = "| configuration | part | DSP48E2 | RAMB36E2 | LUT | FF | fits |\n|---|---|---|---|---|---|---|\n"
    lines = []
    for r in results:
        for b in budget(r):
            cells = [f"{b[k]['used']:g} ({100 * b[k]['fraction']:.0f} %)" for k in BUDGETS]
            lines.append(f"| {r['what']} | {b['part']} | " + " | ".join(cells) + f" | {'yes' if b['fits'] else 'no'} |")
    return head + "\n".join(lines)
