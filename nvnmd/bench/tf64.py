"""`nvnmd bench tf64`: the TensorFlow kernel (the `tf64` backend) next to the simulator's fast
kernel (C and numpy paths) on the same image and requests, one thread each unless --threads
says otherwise."""

from __future__ import annotations

import os


def run(args) -> dict:
    from nvnmd.bench.sim import _time_interleaved, bench_inputs, pinned

    threads, child = pinned(args)
    if child is not None:
        return child
    import nvnmd.sim
    from nvnmd.backends.tf64 import Tf64Backend

    _, frames, sim = bench_inputs(args)
    tf64 = Tf64Backend(sim.image)
    reqs = {id(fr): sim.request(fr.coord, fr.types, fr.cell) for fr in frames}
    numpy_only = nvnmd.sim.load(sim.image, kernel="numpy").engine

    def args_of(fr):
        return [getattr(reqs[id(fr)], k) for k in ("coords", "types", "cell", "nlist", "shifts")]

    contenders = {
        "nvq1 fast simulator, kernel (list given)": lambda fr: sim.sim.compute(reqs[id(fr)]),
        "nvq1 fast simulator, numpy only": lambda fr: numpy_only.compute(*args_of(fr)),
        f"tf64 kernel on {tf64.device} (list given)": lambda fr: tf64.sim.compute(reqs[id(fr)]),
        f"tf64 backend on {tf64.device} (nlist + kernel + decode)": lambda fr: tf64.compute(fr.coord, fr.types,
                                                                                            fr.cell),
    }
    times = _time_interleaved(contenders, frames, args.repeat)
    rows = [{"what": what, "us_per_atom_step": w, "cpu_us_per_atom_step": c} for what, (w, c) in times.items()]
    rows[0]["baseline"] = True
    notes = [f"{len(frames)} frames of {frames[0].natoms} atoms, median of {args.repeat} runs per frame, "
             f"{threads} thread(s) for TensorFlow and BLAS, {os.cpu_count()} CPUs, contenders run in turn",
             "CPU time (process) of the same runs, µs/atom/step:"]
    notes += [f"  {r['what']:<50}{r['cpu_us_per_atom_step']:>14.2f}" for r in rows]
    return {"bench": "tf64", "frames": len(frames), "natoms": frames[0].natoms, "rows": rows, "notes": notes}
