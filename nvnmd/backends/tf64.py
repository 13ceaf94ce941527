"""The `tf64` backend: the quantized model evaluated in TensorFlow float64, bit-identical to the board.

The `sim` backend with the simulator's TensorFlow kernel (`nvnmd.sim.nvq1_tf`) in place of
the numpy/C one: same request encoding, same integer result, same decoding, so a trajectory
run here on a GPU node is bit for bit the trajectory a board (or the `sim` backend) produces.
Runs on a GPU when TensorFlow sees one, otherwise on the CPU; the choice is logged once.
"""

from __future__ import annotations

import logging

from nvnmd.backend import Result
from nvnmd.backends.sim import SimBackend

log = logging.getLogger("nvnmd")


class Tf64Backend(SimBackend):
    name = "tf64"

    def __init__(self, image_or_path):
        super().__init__(image_or_path, kernel="tf64")
        self.device = self.sim._fast.device
        log.info("tf64 backend on %s", self.device)

    def compute(self, positions, types, cell, pbc=True, neighbors=None) -> Result:
        res = super().compute(positions, types, cell, pbc=pbc, neighbors=neighbors)
        res.info["device"] = self.device
        return res
