"""The `sim` backend: nvnmd.backend.Backend on top of the in-process bit-accurate simulator.

Encodes positions into the board's formats, builds a neighbour list at rcut when the caller
passes none, runs the simulator for the image's profile and decodes the integer result.
Neighbour overflow is an error (one line), never a silent truncation. Pairs closer than the
training data's closest pair of their elements get the host's short-range wall
(`nvnmd.backends.guard`; the image carries the radii).
"""

from __future__ import annotations

import os
from pathlib import Path

from nvnmd.backend import Result
from nvnmd.backends.decode import to_result
from nvnmd.backends.guard import ShortRangeGuard
from nvnmd.compute import encode_request
from nvnmd.image import Image
from nvnmd.neighbors import build_neighbor_list


class SimBackend:
    name = "sim"

    def __init__(self, image_or_path, kernel: str | None = None, threads: int = 1):
        import nvnmd.sim
        from nvnmd.errors import NvnmdError

        if int(threads) != threads or threads < 1:
            raise NvnmdError(f"threads must be a whole number >= 1, got {threads}")

        image = image_or_path if isinstance(image_or_path, Image) else Image.read(Path(os.fspath(image_or_path)))
        self.image = image
        self.sim = nvnmd.sim.load(image, kernel=kernel)
        self.type_map = list(self.sim.type_map)
        self.rcut = float(self.sim.rcut)
        self.guard = ShortRangeGuard.for_image(image, self.type_map)
        if threads > 1:  # the nvq1 fast kernel's C pass splits its atom blocks (same bits for any count)
            kernel_obj = getattr(self.sim, "engine", None)
            if not hasattr(kernel_obj, "threads"):
                raise NvnmdError(f"the {getattr(self.sim, 'profile', '?')} simulator ({kernel} kernel) runs on one thread")
            kernel_obj.threads = int(threads)
        self.threads = int(threads)

    def request(self, positions, types, cell, pbc=True, neighbors=None):
        if neighbors is None:
            neighbors = build_neighbor_list(positions, cell, self.rcut, pbc=pbc)
        return encode_request(positions, types, cell, neighbors.nlist, neighbors.shifts, pbc=pbc)

    def compute(self, positions, types, cell, pbc=True, neighbors=None) -> Result:
        if neighbors is None:
            neighbors = build_neighbor_list(positions, cell, self.rcut, pbc=pbc)
        res = self.sim.compute(self.request(positions, types, cell, pbc=pbc, neighbors=neighbors))
        result = to_result(res, self.rcut, self.sim.sel, counters=res.counters)
        return result if self.guard is None else self.guard.apply(result, positions, types, cell, pbc, neighbors)

