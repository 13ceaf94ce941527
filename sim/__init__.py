"""nvnmd.sim: the bit-accurate golden model of the accelerator.

    sim = nvnmd.sim.load(image)          # an nvnmd.image.Image, dispatched on image.profile
    result = sim.compute(request)        # nvnmd.compute.ComputeRequest -> ComputeResult
    nvnmd.sim.profile("nvq1")            # limits, kernels, table floor of a profile (sim/board.py)

Every profile registers its `Profile` object in PROFILES; the virtual board, the backends and
the guard only use `profile`, `load`, `Simulator.compute` and the `limits` a simulator reports.
"""

from __future__ import annotations

from nvnmd.errors import UnsupportedModelError

PROFILES: dict[str, str] = {  # profile name -> "module:attribute" holding its nvnmd.sim.board.Profile
    "nvq1": "nvnmd.sim.nvq1:BOARD",
    "nvnmd-v0": "nvnmd.sim.nvnmd_v0:BOARD",
}


def profile(name: str):
    """The registered `nvnmd.sim.board.Profile` called `name` (UnsupportedModelError if none)."""
    import importlib

    target = PROFILES.get(name)
    if target is None:
        raise UnsupportedModelError(
            f"image profile '{name}' is not supported (known: {', '.join(sorted(PROFILES)) or 'none'})"
        )
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def load(image, kernel: str | None = None):
    """The simulator for `image` (its profile's default kernel unless `kernel` names another)."""
    return profile(image.profile).load(image, kernel)
