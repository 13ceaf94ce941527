"""The `tf64` backend: the quantized model evaluated in TensorFlow float64, bit-identical to the board.

The `sim` backend with the simulator's TensorFlow kernel (`nvnmd.sim.nvq1.tf`) in place of
the numpy/C one: same request encoding, same integer result, same decoding, so a trajectory
run here on a GPU node is bit for bit the trajectory a board (or the `sim` backend) produces.
Runs on a GPU when TensorFlow sees one, otherwise on the CPU; the choice is logged once.
Its speed next to the simulator's: `nvnmd bench tf64` (nvnmd/bench/tf64.py).
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

