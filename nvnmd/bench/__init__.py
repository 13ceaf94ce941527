"""`nvnmd bench NAME`: speed benchmarks, all in this package, one registry so other parts add their own.

BENCHES maps a benchmark name to "module:function"; the function takes the parsed arguments
and returns a dict with "rows" (list of dicts with at least "what" and "us_per_atom_step")
and optional "notes". The benchmarks: sim (the nvq1 simulator next to deepmd-kit's DeepPot),
host (host-side MD cost next to LAMMPS), link (the board link), tf64 (the TensorFlow kernel
next to the simulator's). Speed targets live here, never in timed unit tests.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from nvnmd.errors import NvnmdError

BENCHES: dict[str, str] = {
    "sim": "nvnmd.bench.sim:bench_sim",
    "host": "nvnmd.bench.host:run",
    "link": "nvnmd.bench.link:run",
    "tf64": "nvnmd.bench.tf64:run",
    "fpga": "nvnmd.fpga.bench:run",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="speed benchmarks (µs/atom/step)")
    p.add_argument("name", help="benchmark: " + ", ".join(sorted(BENCHES)))
    p.add_argument("--student", help="float student (default: the embedded LGPS student)")
    p.add_argument("--image", help="nvq1 image of that student (default: quantized at bench time)")
    p.add_argument("--frames", help="frames to run (default: the shipped 400-atom LGPS frames)")
    p.add_argument("--repeat", type=int, default=5, help="evaluations per frame (default 5)")
    p.add_argument("--threads", type=int, default=1, help="threads for TensorFlow and BLAS (default 1)")
    p.add_argument("--sizes", help="host: comma-separated atom counts (default 10000,100000)")
    p.add_argument("--steps", type=int, help="host: MD steps per size (default: about 4e6 atom-steps, 50..400)")
    p.add_argument("--lanes", help="fpga: comma-separated LANES values (default 8,32,64)")
    p.add_argument("--clock-mhz", help="fpga: comma-separated clocks in MHz (default 250,300)")
    p.add_argument("--json", help="write the results as JSON here")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    target = BENCHES.get(args.name)
    if target is None:
        raise NvnmdError(f"unknown benchmark '{args.name}' (known: {', '.join(sorted(BENCHES))})")
    if args.json:
        from nvnmd.outputs import check_output_file

        check_output_file(args.json, "--json")
    module, func = target.split(":")
    out = getattr(importlib.import_module(module), func)(args)
    print(f"{'what':<52}{'µs/atom/step':>14}{'speed-up':>10}")
    base = next((r["us_per_atom_step"] for r in out["rows"] if r.get("baseline")), None)
    for r in out["rows"]:
        up = f"{base / r['us_per_atom_step']:.2f}x" if base else ""
        print(f"{r['what']:<52}{r['us_per_atom_step']:>14.2f}{up:>10}")
    for note in out.get("notes", []):
        print(note)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0
