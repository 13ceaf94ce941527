"""What every simulator profile tells the world about the board it models.

`Profile` is what other modules may ask of a numeric profile without evaluating anything:
its limits, the kernels its simulator offers (whether the TensorFlow float64 kernel, and so
the `tf64` backend, applies), the radial-table floor r_lo an image's tables end at (the host's
short-range guard starts its wall there) and `load(image, kernel)`. `nvnmd.sim.profile(name)`
returns the registered one; nothing outside a profile's own package reads its constants or
compares `image.profile` with a name.

`BoardModel` holds the model-facing facts the sim backend and the virtual board read (type map,
cutoff, sel, neighbour-row width and the `limits` dict the board reports to a host), and
checks requests against them, so each profile only writes its datapath.
"""

from __future__ import annotations

from nvnmd.compute import ComputeRequest, check_request
from nvnmd.errors import UnsupportedModelError


class Profile:
    name: str = ""
    max_types: int = 0
    max_neighbors: int = 0  # widest nlist row a board accepts
    kernels: tuple[str, ...] = ("fast",)  # evaluators `load` accepts; the first is the default

    def table_floor(self, image) -> float | None:
        """r_lo in Å below which the image's radial tables are clamped (None: no such floor)."""
        return None

    def load(self, image, kernel: str | None = None):
        """The simulator of `image` evaluating with `kernel` (default: the profile's first)."""
        kernel = kernel or self.kernels[0]
        if kernel not in self.kernels:
            raise UnsupportedModelError(
                f"profile '{self.name}' has no '{kernel}' kernel (it offers {', '.join(self.kernels)})")
        return self._load(image, kernel)

    def _load(self, image, kernel: str):
        raise NotImplementedError


class BoardModel:
    def __init__(self, model, max_neighbors: int):
        self.model = model
        self.type_map = list(model.type_map)
        self.rcut = model.rcut
        self.sel = list(model.sel)
        self.ntypes = model.ntypes
        self.max_neighbors = max_neighbors
        self.limits = {"max_neighbors": max_neighbors, "sel": self.sel, "ntypes": self.ntypes}

    def checked_nlist(self, request: ComputeRequest):
        return check_request(request, type_map=self.type_map, max_neighbors=self.max_neighbors)

    @property
    def device(self) -> str:
        """Where the kernel runs ('CPU' unless a kernel says otherwise)."""
        return "CPU"

    def close(self) -> None:
        """Release what the kernel holds (a TensorFlow session); a no-op by default."""
