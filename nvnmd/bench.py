"""`nvnmd bench NAME`: speed benchmarks, one registry so other parts add their own.

BENCHES maps a benchmark name to "module:function"; the function takes the parsed arguments
and returns a dict with "rows" (list of dicts with at least "what" and "us_per_atom_step")
and optional "notes". `sim` compares the fast nvq1 simulator with deepmd-kit's DeepPot on the
same student, compressed with `dp --tf compress` at bench time, on the same frames in the
same run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nvnmd.errors import NvnmdError

BENCHES: dict[str, str] = {
    "sim": "nvnmd.bench:bench_sim",
    "host": "nvnmd.md.bench:run",
    "link": "nvnmd.host.bench:run",
    "tf64": "nvnmd.backends.tf64:bench",
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


def _time_interleaved(contenders: dict, frames, repeat) -> dict:
    """Median wall and CPU (process) time per atom and step for every contender, in µs.

    Within every repeat of every frame the contenders run in turn, so a change of load on a
    shared machine falls on all of them alike and their ratios stay meaningful. CPU time counts
    every thread of the process; with one thread each it is the per-core cost, untouched by
    time slices handed to other processes."""
    for fn in contenders.values():
        fn(frames[0])  # warm-up: first-call allocations and lazy initialisation
    wall = {k: [] for k in contenders}
    cpu = {k: [] for k in contenders}
    for fr in frames:
        ws = {k: [] for k in contenders}
        cs = {k: [] for k in contenders}
        for _ in range(repeat):
            for k, fn in contenders.items():
                t0, c0 = time.perf_counter(), time.process_time()
                fn(fr)
                c1, t1 = time.process_time(), time.perf_counter()
                ws[k].append(t1 - t0)
                cs[k].append(c1 - c0)
        for k in contenders:
            wall[k].append(np.median(ws[k]) / fr.natoms)
            cpu[k].append(np.median(cs[k]) / fr.natoms)
    return {k: (float(np.mean(wall[k])) * 1e6, float(np.mean(cpu[k])) * 1e6) for k in contenders}


def compress(student: Path, workdir: Path) -> Path:
    """`dp --tf compress` of the student into workdir; returns the compressed .pb."""
    dp = shutil.which("dp") or str(Path(sys.executable).parent / "dp")
    out = workdir / "compressed.pb"
    proc = subprocess.run([dp, "--tf", "compress", "-i", str(student), "-o", str(out)], cwd=workdir,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise NvnmdError(f"dp --tf compress failed: {tail[0][:200]}")
    return out


THREAD_VARS = ("DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS", "OMP_NUM_THREADS",
               "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def _pinned(args, threads: str) -> dict | None:
    """Re-run this benchmark in a child whose thread counts are fixed before numpy/TF start
    (BLAS and TensorFlow read them once, at import). Returns None inside the child."""
    if all(os.environ.get(v) == threads for v in THREAD_VARS):
        return None
    env = dict(os.environ, **{v: threads for v in THREAD_VARS})
    with tempfile.TemporaryDirectory(prefix="nvnmd-bench-") as tmp:
        out = Path(tmp) / "out.json"
        argv = [sys.executable, "-m", "nvnmd.cli", "bench", args.name, "--repeat", str(args.repeat),
                "--threads", threads, "--json", str(out)]
        for opt in ("student", "image", "frames"):
            if getattr(args, opt, None):
                argv += [f"--{opt}", str(getattr(args, opt))]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            raise NvnmdError(f"benchmark child failed: {tail[0][:200]}")
        return json.loads(out.read_text())


def bench_inputs(args):
    """(student path, frames, SimBackend) the simulator benchmarks share: --student (default the
    embedded one), --frames (default the shipped 400-atom LGPS frames) and --image (default the
    student quantized now on the shipped frames)."""
    from nvnmd.backends.sim import SimBackend
    from nvnmd.quantize.data import default_frames_path, load_frames
    from nvnmd.student import default_student_path, load_student

    student_path = Path(args.student) if args.student else default_student_path()
    student = load_student(student_path)
    frames = load_frames(args.frames or default_frames_path() / "lgps400", student.type_map)
    if args.image:
        return student_path, frames, SimBackend(args.image)
    from nvnmd.quantize.build import quantize

    model, _ = quantize(student, load_frames(default_frames_path(), student.type_map))
    return student_path, frames, SimBackend(model.to_image())


def bench_sim(args) -> dict:
    # Same thread count for DeepPot (TensorFlow would otherwise take every core) and for the
    # simulator's BLAS, so the comparison is per core.
    threads = str(getattr(args, "threads", None) or 1)
    child = _pinned(args, threads)
    if child is not None:
        return child
    from deepmd.infer import DeepPot

    from nvnmd.quiet import quiet_native

    student_path, frames, backend = bench_inputs(args)
    sim = backend.sim
    reqs = {id(fr): backend.request(fr.coord, fr.types, fr.cell) for fr in frames}
    with tempfile.TemporaryDirectory(prefix="nvnmd-bench-") as tmp:
        with quiet_native():
            comp = compress(student_path, Path(tmp))
            dp_c = DeepPot(str(comp))
            dp_u = DeepPot(str(student_path))

        def dp_eval(dp):
            return lambda fr: dp.eval(fr.coord.reshape(1, -1), fr.cell.reshape(1, 9), fr.types)

        from nvnmd.sim.nvq1.fast import FastKernel

        contenders = {
            "deepmd-kit DeepPot, compressed (TF CPU)": dp_eval(dp_c),
            "deepmd-kit DeepPot, uncompressed (TF CPU)": dp_eval(dp_u),
            "nvq1 fast simulator, kernel (list given)": lambda fr: sim.compute(reqs[id(fr)]),
        }
        if getattr(sim, "profile", "") == "nvq1":
            numpy_only = FastKernel(sim.model, use_c=False)
            contenders["nvq1 fast simulator, numpy only (no C loops)"] = lambda fr: numpy_only.compute(
                *(getattr(reqs[id(fr)], k) for k in ("coords", "types", "cell", "nlist", "shifts")))
        contenders["nvq1 sim backend (nlist + encode + kernel + decode)"] = (
            lambda fr: backend.compute(fr.coord, fr.types, fr.cell))
        times = _time_interleaved(contenders, frames, args.repeat)
    rows = [{"what": what, "us_per_atom_step": w, "cpu_us_per_atom_step": c} for what, (w, c) in times.items()]
    rows[0]["baseline"] = True
    base_cpu = rows[0]["cpu_us_per_atom_step"]
    notes = [f"{len(frames)} frames of {frames[0].natoms} atoms, median of {args.repeat} runs per frame, "
             f"{threads} thread(s) for TensorFlow and BLAS, {os.cpu_count()} CPUs, contenders run in turn",
             "CPU time (process) of the same runs, µs/atom/step and speed-up:"]
    notes += [f"  {r['what']:<50}{r['cpu_us_per_atom_step']:>14.2f}{base_cpu / r['cpu_us_per_atom_step']:>9.2f}x"
              for r in rows]
    notes.append("the sim backend row includes building the neighbour list (nvnmd.neighbors, ASE) every step")
    return {"bench": "sim", "frames": len(frames), "natoms": frames[0].natoms, "rows": rows, "notes": notes}
