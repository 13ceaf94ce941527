"""The `tf64` backend: the quantized model evaluated in TensorFlow float64, bit-identical to the board.

The `sim` backend with the simulator's TensorFlow kernel (`nvnmd.sim.nvq1.tf`) in place of
the numpy/C one: same request encoding, same integer result, same decoding, so a trajectory
run here on a GPU node is bit for bit the trajectory a board (or the `sim` backend) produces.
Runs on a GPU when TensorFlow sees one, otherwise on the CPU; the choice is logged once.
`bench` is `nvnmd bench tf64` (its speed next to the simulator's).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nvnmd.sim
from nvnmd.backend import Result
from nvnmd.backends.sim import SimBackend
from nvnmd.errors import UnsupportedModelError
from nvnmd.image import Image

log = logging.getLogger("nvnmd")


class Tf64Backend(SimBackend):
    name = "tf64"

    def __init__(self, image_or_path):
        image = image_or_path if isinstance(image_or_path, Image) else Image.read(Path(os.fspath(image_or_path)))
        if "tf64" not in nvnmd.sim.profile(image.profile).kernels:
            with_tf64 = [name for name in sorted(nvnmd.sim.PROFILES) if "tf64" in nvnmd.sim.profile(name).kernels]
            raise UnsupportedModelError(f"backend tf64 evaluates {' or '.join(with_tf64)} images; "
                                        f"this image is '{image.profile}' (use --backend sim)")
        super().__init__(image, kernel="tf64")
        self.device = self.sim.device
        log.info("tf64 backend on %s", self.device)

    def close(self):
        self.sim.close()

    def compute(self, positions, types, cell, pbc=True, neighbors=None) -> Result:
        res = super().compute(positions, types, cell, pbc=pbc, neighbors=neighbors)
        res.info["device"] = self.device
        return res


def bench(args) -> dict:
    """`nvnmd bench tf64`: the TensorFlow kernel next to the simulator's fast kernel (C and numpy
    paths) on the same image and requests, one thread each unless --threads says otherwise."""
    from nvnmd.bench import _pinned, _time_interleaved, bench_inputs

    threads = str(getattr(args, "threads", None) or 1)
    child = _pinned(args, threads)
    if child is not None:
        return child
    from nvnmd.sim.nvq1.fast import FastKernel

    _, frames, sim = bench_inputs(args)
    tf64 = Tf64Backend(sim.image)
    reqs = {id(fr): sim.request(fr.coord, fr.types, fr.cell) for fr in frames}
    numpy_only = FastKernel(sim.sim.model, use_c=False)

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
