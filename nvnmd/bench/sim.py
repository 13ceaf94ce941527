"""`nvnmd bench sim`: the fast nvq1 simulator next to deepmd-kit's DeepPot on the same student,
compressed with `dp --tf compress` at bench time, on the same frames in the same run; and what
the simulator benchmarks share (interleaved timing, thread pinning in a child, inputs).
"""

from __future__ import annotations

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


def pinned(args) -> tuple[str, dict | None]:
    """(thread count, result): outside the pinned child, re-run this benchmark in a child whose
    thread counts are fixed before numpy/TF start (BLAS and TensorFlow read them once, at
    import) and return its result; inside the child the result is None and the caller measures."""
    threads = str(getattr(args, "threads", None) or 1)
    if all(os.environ.get(v) == threads for v in THREAD_VARS):
        return threads, None
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
        return threads, json.loads(out.read_text())


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
    from nvnmd.quantize.student_image import student_image

    return student_path, frames, SimBackend(student_image(student_path))


def gemm_peak(repeat: int = 30) -> float:
    """Measured fp64 GEMM rate of this process's BLAS, GFLOP/s: 400x256 @ 256x256 (the fitting
    net's shape at 400 atoms), best of `repeat` CPU-timed runs of 10 products. In the pinned
    benchmark child BLAS has one thread, so this is one core's peak."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((400, 256)), rng.standard_normal((256, 256))
    out = np.empty((400, 256))
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        for _ in range(10):
            np.matmul(a, b, out=out)
        best = min(best, (time.process_time() - c0) / 10)
    return 2 * 400 * 256 * 256 / best / 1e9


def kernel_flops(model, neighbours: float) -> dict:
    """The nvq1 kernel's multiply-adds (2 FLOP each) per atom and step, by stage: the fitting
    net's GEMMs forward and backward, the energy dot, and the descriptor's contractions with
    `neighbours` filled slots per atom (§5.5 T, §5.6 D, §7.2 gT and the per-slot gR~, gG, gG·G').
    Table lookups, roundings and clips are not counted (no multiply-add)."""
    m1, m2 = model.m1, model.m2
    hidden = model.layers[:-1]
    fit = sum(2 * layer.w.shape[1] * layer.w.shape[2] for layer in hidden)
    out = {"fitting_forward": fit, "fitting_backward": fit, "energy": 2 * model.layers[-1].w.shape[1],
           "descriptor": 2 * (4 * m1 * neighbours + 4 * m1 * m2 + 2 * 4 * m1 * m2 + 9 * m1 * neighbours)}
    out["total"] = float(sum(out.values()))
    return out


def bench_sim(args) -> dict:
    # Same thread count for DeepPot (TensorFlow would otherwise take every core) and for the
    # simulator's BLAS, so the comparison is per core.
    threads, child = pinned(args)
    if child is not None:
        return child
    from deepmd.infer import DeepPot

    import nvnmd.sim
    from nvnmd.quiet import quiet_native

    student_path, frames, backend = bench_inputs(args)
    sim = backend.sim
    from nvnmd.backends.sim import SimBackend

    # a second contender on 2 threads where the kernel takes a thread count (the same test as SimBackend)
    sim2 = SimBackend(backend.image, threads=2).sim if hasattr(getattr(sim, "engine", None), "threads") else None
    reqs = {id(fr): backend.request(fr.coord, fr.types, fr.cell) for fr in frames}
    with tempfile.TemporaryDirectory(prefix="nvnmd-bench-") as tmp:
        with quiet_native():
            comp = compress(student_path, Path(tmp))
            dp_c = DeepPot(str(comp))
            dp_u = DeepPot(str(student_path))

        def dp_eval(dp):
            return lambda fr: dp.eval(fr.coord.reshape(1, -1), fr.cell.reshape(1, 9), fr.types)

        contenders = {
            "deepmd-kit DeepPot, compressed (TF CPU)": dp_eval(dp_c),
            "deepmd-kit DeepPot, uncompressed (TF CPU)": dp_eval(dp_u),
            "nvq1 fast simulator, kernel (list given)": lambda fr: sim.compute(reqs[id(fr)]),
        }
        if sim2 is not None:
            contenders["nvq1 fast simulator, kernel, 2 threads"] = lambda fr: sim2.compute(reqs[id(fr)])
        if "numpy" in nvnmd.sim.profile(sim.profile).kernels:
            numpy_only = nvnmd.sim.load(backend.image, kernel="numpy").engine
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
    out = {"bench": "sim", "frames": len(frames), "natoms": frames[0].natoms, "rows": rows, "notes": notes,
           "load_average": list(os.getloadavg()), "cpus": os.cpu_count()}
    if getattr(sim, "profile", "") == "nvq1":
        peak = gemm_peak()
        nb = float(np.mean([np.count_nonzero(np.asarray(r.nlist) >= 0) / len(r.types) for r in reqs.values()]))
        flops = kernel_flops(sim.model, nb)
        k1 = times["nvq1 fast simulator, kernel (list given)"]
        k2 = times["nvq1 fast simulator, kernel, 2 threads"]
        dp = times["deepmd-kit DeepPot, compressed (TF CPU)"]
        limit = flops["total"] / (peak * 1e9) * 1e6
        out["kernel"] = {"gemm_peak_gflops_1core": peak, "flops_per_atom_step": flops, "neighbours_per_atom": nb,
                         "limit_us_per_atom_step": limit,
                         "threads1_us": k1[0], "threads1_cpu_us": k1[1], "threads2_us": k2[0],
                         "fraction_of_peak_1thread_cpu": limit / k1[1], "fraction_of_peak_1thread_wall": limit / k1[0],
                         "speedup_2_threads_wall": k1[0] / k2[0], "vs_deepmd_compressed_wall": dp[0] / k1[0],
                         "vs_deepmd_compressed_cpu": dp[1] / k1[1]}
        kk = out["kernel"]
        notes += [f"fp64 GEMM peak, one core (400x256 @ 256x256, BLAS, CPU time): {peak:.1f} GFLOP/s",
                  f"nvq1 kernel: {flops['total'] / 1e6:.3f} MFLOP per atom and step ({nb:.1f} neighbours/atom; "
                  f"fitting GEMMs {2 * flops['fitting_forward'] / 1e6:.3f}), limit at that peak "
                  f"{limit:.2f} µs/atom/step",
                  f"kernel, 1 thread: {k1[0]:.2f} µs/atom/step wall, {k1[1]:.2f} CPU = "
                  f"{100 * kk['fraction_of_peak_1thread_cpu']:.0f} % of peak (CPU time); "
                  f"{kk['vs_deepmd_compressed_cpu']:.2f}x DeepPot compressed (CPU), {kk['vs_deepmd_compressed_wall']:.2f}x (wall)",
                  f"kernel, 2 threads: {k2[0]:.2f} µs/atom/step wall: {kk['speedup_2_threads_wall']:.2f}x over 1 thread "
                  f"(wall time; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})"]
    return out
