"""Profile "nvq1" simulator: `load(image)` -> `Nvq1Simulator` with `.compute(ComputeRequest)`,
and `BOARD`, what the rest of nvnmd may know about the profile (nvnmd.sim.board.Profile).

Decodes and validates the image once, then evaluates requests with the fast kernel (or its
numpy path alone, `kernel="numpy"`, the reference kernel, `kernel="reference"`, or the
TensorFlow float64 kernel, `kernel="tf64"`); all follow fpga/SPEC.md bit for bit. Requests
wider than the board's nlist row (MAX_NEIGHBORS) or with types the model lacks are refused.
"""

from __future__ import annotations

import numpy as np

from nvnmd.compute import ComputeRequest, ComputeResult
from nvnmd.sim.board import BoardModel, Profile
from nvnmd.sim.nvq1.model import MAX_NEIGHBORS, MAX_TYPES, PROFILE as NAME, Nvq1Model, u_grid_radius


class Nvq1Simulator(BoardModel):
    profile = NAME

    def __init__(self, model: Nvq1Model, kernel: str = "fast"):
        super().__init__(model, MAX_NEIGHBORS)
        self.kernel = kernel
        if kernel == "tf64":  # the same datapath in TensorFlow float64, on a GPU when TF sees one
            from nvnmd.sim.nvq1.tf import TfKernel

            self._fast = TfKernel(model)
        else:
            from nvnmd.sim.nvq1.fast import FastKernel

            self._fast = FastKernel(model, use_c=kernel != "numpy")

    @property
    def engine(self):
        """The kernel object: `.compute(coords, types, cell, nlist, shifts)` on raw arrays."""
        return self._fast

    @property
    def device(self) -> str:
        return getattr(self._fast, "device", "CPU")

    def close(self) -> None:
        if hasattr(self._fast, "close"):
            self._fast.close()

    def compute(self, request: ComputeRequest, kernel: str | None = None) -> ComputeResult:
        nlist = self.checked_nlist(request)
        types = np.asarray(request.types)
        args = (request.coords, types, request.cell, nlist, request.shifts)
        if (kernel or self.kernel) == "reference":
            from nvnmd.sim.nvq1.ref import compute_reference

            atom_e, forces, virial, counts, over = compute_reference(self.model, *args)
        else:
            atom_e, forces, virial, counts, over = self._fast.compute(*args)
        atom_e = np.asarray(atom_e).astype(np.int64)
        return ComputeResult(
            energy=np.int64(atom_e.sum()),
            atom_energy=atom_e,
            forces=np.asarray(forces).astype(np.int64),
            virial=np.asarray(virial).astype(np.int64),
            saturations=int(sum(counts.values())),
            overflow_atoms=int(over),
            counters=dict(sorted(counts.items())),
        )


def load(image, kernel: str = "fast") -> Nvq1Simulator:
    return Nvq1Simulator(Nvq1Model.from_image(image), kernel=kernel)


class Nvq1Profile(Profile):
    name = NAME
    max_types = MAX_TYPES
    max_neighbors = MAX_NEIGHBORS
    kernels = ("fast", "numpy", "reference", "tf64")

    def table_floor(self, image) -> float:
        """r_lo: the radius of the first valid u segment k_lo (SPEC §5.2), read from the meta."""
        return u_grid_radius(int(image.meta["k_lo"]))

    def _load(self, image, kernel: str) -> Nvq1Simulator:
        return load(image, kernel=kernel)


BOARD = Nvq1Profile()
