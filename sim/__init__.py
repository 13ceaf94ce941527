"""nvnmd.sim: the bit-accurate golden model of the accelerator.

    sim = nvnmd.sim.load(image)          # an nvnmd.image.Image, dispatched on image.profile
    result = sim.compute(request)        # nvnmd.compute.ComputeRequest -> ComputeResult

Every profile registers a loader in PROFILES; the virtual board and the `sim` backend only
use `load`, `Simulator.compute` and the `limits` a simulator reports.
"""

from __future__ import annotations

from nvnmd.errors import UnsupportedModelError

PROFILES: dict[str, str] = {  # profile name -> "module:function" returning a Simulator
    "nvq1": "nvnmd.sim.nvq1:load",
    "nvnmd-v0": "nvnmd.sim.nvnmd_v0:load",
}


def load(image):
    import importlib

    target = PROFILES.get(image.profile)
    if target is None:
        raise UnsupportedModelError(
            f"image profile '{image.profile}' is not supported (known: {', '.join(sorted(PROFILES)) or 'none'})"
        )
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)(image)
