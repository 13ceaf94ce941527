"""Profile "nvq1" simulator: `load(image)` -> `Nvq1Simulator` with `.compute(ComputeRequest)`.

Decodes and validates the image once, then evaluates requests with the fast kernel (or the
reference kernel, `kernel="reference"`, or the TensorFlow float64 kernel, `kernel="tf64"`);
all follow fpga/SPEC.md bit for bit. Requests wider
than the board's nlist row (MAX_NEIGHBORS) or with types the model lacks are refused.
"""

from __future__ import annotations

import numpy as np

from nvnmd.compute import ComputeRequest, ComputeResult
from nvnmd.sim.board import BoardModel
from nvnmd.sim.nvq1.model import MAX_NEIGHBORS, Nvq1Model


class Nvq1Simulator(BoardModel):
    profile = "nvq1"

    def __init__(self, model: Nvq1Model, kernel: str = "fast"):
        super().__init__(model, MAX_NEIGHBORS)
        self.kernel = kernel
        if kernel == "tf64":  # the same datapath in TensorFlow float64, on a GPU when TF sees one
            from nvnmd.sim.nvq1.tf import TfKernel as Kernel
        else:
            from nvnmd.sim.nvq1.fast import FastKernel as Kernel
        self._fast = Kernel(model)

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
