"""`nvnmd bench fpga`: projected board speed from the RTL's own cycle count, next to the rest.

Cycles per atom per step come from two sources that must agree: nvq1_core simulated in
Verilator (its cycle counter, one LANES value: the build is the cost) and the closed-form model
of the same schedule (fpga/rtl/core/cycles.py) for every LANES value. At a stated clock they
give s/step/atom for each part and LANES; whether that LANES fits a part comes from the yosys
counts in fpga/synth/results.json (`nvnmd rtl synth --json`). Beside them: the published
NVNMD-v2 figure, this machine's sim backend on the same frames, and the host's own work per
MD step (the `nvnmd bench host` loop, zero forces), which the board cannot hide: if the host
needs more µs per atom and step than the board, the host is the bottleneck.
"""

from __future__ import annotations

import json
import time
from importlib import resources

import numpy as np

NVNMD_V2_US = 0.1  # published: ~1e-7 s/step/atom on one FPGA (DESIGN.md, "Numbers to beat")
DEFAULT_LANES = (8, 32, 64)
DEFAULT_CLOCKS_MHZ = (250.0, 300.0)
HOST_ATOMS = 10_000


def synth_results() -> dict:
    """{lanes: counts} from the shipped fpga/synth/results.json, {} if none was committed."""
    try:
        text = resources.files("nvnmd.fpga").joinpath("synth", "results.json").read_text()
    except (FileNotFoundError, OSError):
        return {}
    return {int(r["lanes"]): r for r in json.loads(text) if "lanes" in r}


def _requests(image, frames_path):
    from nvnmd.compute import encode_request
    from nvnmd.neighbors import build_neighbor_list
    from nvnmd.quantize.data import default_frames_path, load_frames
    from nvnmd.sim.nvq1.model import Nvq1Model

    model = Nvq1Model.from_image(image)
    frames = load_frames(frames_path or default_frames_path() / "lgps400", list(model.type_map))
    reqs = []
    for f in frames:
        nl = build_neighbor_list(f.coord, f.cell, float(model.rcut))
        reqs.append(encode_request(f.coord, f.types, f.cell, nl.nlist, nl.shifts))
    return model, reqs


def _host_us() -> float:
    """CPU µs/atom/step of the host's MD loop with zero forces (nvnmd bench host), one size."""
    import tempfile
    from pathlib import Path

    from nvnmd.bench.host import _ours, lgps_of_size

    atoms, _ = lgps_of_size(HOST_ATOMS)
    with tempfile.TemporaryDirectory() as tmp:
        return float(_ours(atoms, 100, 1.0, "nve", Path(tmp))["us_per_atom_step"])


def _sim_us(image, reqs, repeat: int) -> float:
    import nvnmd.sim

    sim = nvnmd.sim.load(image)
    sim.compute(reqs[0])
    times = []
    for req in reqs:
        for _ in range(max(1, repeat)):
            t0 = time.process_time()
            sim.compute(req)
            times.append((time.process_time() - t0) / req.natoms)
    return float(np.median(times) * 1e6)


def run(args) -> dict:
    from nvnmd.fpga.cli import load_image
    from nvnmd.fpga.rtl.core.cycles import frame_cycles

    image = load_image(getattr(args, "image", None))
    model, reqs = _requests(image, getattr(args, "frames", None))
    lanes_list = [int(x) for x in str(getattr(args, "lanes", None) or ",".join(map(str, DEFAULT_LANES))).split(",")]
    clocks = [float(x) for x in str(getattr(args, "clock_mhz", None) or ",".join(map(str, DEFAULT_CLOCKS_MHZ))).split(",")]
    atoms = sum(r.natoms for r in reqs)
    per_atom = {n: sum(int(frame_cycles(model, r, n)) for r in reqs) / atoms for n in lanes_list}
    notes = [f"{len(reqs)} frames of {reqs[0].natoms} atoms (lists at rcut {model.rcut:g} Å, "
             f"mean row width {np.mean([r.nlist.shape[1] for r in reqs]):.0f})"]

    # the RTL's own count, for the first LANES listed (one Verilator build), on the first frame
    rtl_lanes = lanes_list[0]
    try:
        from nvnmd.fpga.verilator import RtlCore

        with RtlCore(image, lanes=rtl_lanes, max_atoms=max(1024, reqs[0].natoms), max_k=256) as core:
            t0 = time.perf_counter()
            core.compute(reqs[0])
            wall = time.perf_counter() - t0
            rtl_cycles = core.last_cycles
        modelled = int(frame_cycles(model, reqs[0], rtl_lanes))
        notes.append(f"RTL cycle counter, LANES={rtl_lanes}, frame 0: {rtl_cycles} cycles "
                     f"({rtl_cycles / reqs[0].natoms:.0f}/atom); closed-form model: {modelled} "
                     f"({'equal' if modelled == rtl_cycles else 'DIFFERENT'}); Verilator took {wall:.1f} s")
    except Exception as exc:  # noqa: BLE001  (the projection stands on the model; say why the RTL did not run)
        notes.append(f"RTL not simulated ({type(exc).__name__}: {exc}); figures from the closed-form model only")

    fits = synth_results()
    from nvnmd.fpga.synth import BUDGETS, PARTS, budget

    rows = []
    for n in lanes_list:
        for part in PARTS:
            counts = fits.get(n)
            fit = next((b["fits"] for b in budget(counts) if b["part"] == part), None) if counts else None
            tag = {True: "fits", False: "does NOT fit", None: "not synthesized"}[fit]
            # atoms are independent (only the force sums F[j] meet), so copies of the core that
            # fit beside each other divide the time; the count comes from the yosys budgets
            copies = int(min(PARTS[part][k] / counts[k] for k in BUDGETS if counts[k])) if counts else 0
            for mhz in clocks:
                us = per_atom[n] / mhz  # cycles / (MHz) = µs
                rows.append({"what": f"{part}, LANES={n}, {mhz:g} MHz ({tag})", "us_per_atom_step": us,
                             "cycles_per_atom": per_atom[n], "lanes": n, "part": part, "clock_mhz": mhz, "fits": fit})
                if copies > 1:
                    rows.append({"what": f"  ... {copies} cores side by side ({part.split()[0]}, LANES={n}, {mhz:g} MHz)",
                                 "us_per_atom_step": us / copies,
                                 "lanes": n, "part": part, "clock_mhz": mhz, "fits": True, "copies": copies})
    rows.append({"what": "NVNMD-v2 on one FPGA (published)", "us_per_atom_step": NVNMD_V2_US})
    sim_us = _sim_us(image, reqs[:2], getattr(args, "repeat", 3) or 3)
    rows.append({"what": "nvq1 simulator on this CPU (1 core, measured)", "us_per_atom_step": sim_us})
    host_us = _host_us()
    rows.append({"what": f"host work per MD step, {HOST_ATOMS} atoms (measured)", "us_per_atom_step": host_us})

    fitting = [r for r in rows if r.get("fits")]
    best = min(fitting or [r for r in rows if "lanes" in r], key=lambda r: r["us_per_atom_step"])
    ratio = host_us / best["us_per_atom_step"]
    notes.append(f"cycles per atom per step (closed-form): " + ", ".join(f"LANES={n}: {per_atom[n]:.0f}" for n in lanes_list))
    notes.append(f"fastest {'fitting ' if fitting else ''}configuration: {best['what']}, "
                 f"{best['us_per_atom_step']:.3g} µs/atom/step; host work {host_us:.3g} µs/atom/step is "
                 + (f"{ratio:.1f}x the board: the host is the bottleneck" if ratio > 1
                    else f"{1 / ratio:.1f}x below the board: the board is the bottleneck"))
    notes.append("projected = cycles per atom / clock; no timing closure is claimed (yosys gives none); "
                 "the link (PCIe DMA or UART) and host work overlap the board only if the host pipelines steps")
    return {"bench": "fpga", "rows": rows, "notes": notes, "cycles_per_atom": per_atom}
