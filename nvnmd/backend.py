"""The one small interface every evaluator implements (board, sim, deepmd, ...).

    backend.compute(positions, types, cell, pbc=True, neighbors=None) -> Result

Positions in Å (float64 [N, 3]), types as indices into `backend.type_map`, cell rows as box
vectors. `neighbors` is an optional `NeighborList` (built with a skin by the MD engine);
backends that build their own (deepmd-kit) ignore it. The MD engine never knows which
backend it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class Result:
    energy: float  # eV
    forces: np.ndarray  # eV/Å [N, 3]
    virial: np.ndarray  # eV [3, 3] (deepmd-kit convention: -sum r_ij ⊗ f_ij)
    atom_energy: np.ndarray | None = None  # eV [N]
    info: dict = field(default_factory=dict)  # saturations, overflow, raw integer result, ...


class Backend(Protocol):
    name: str
    type_map: list[str]
    rcut: float

    def compute(self, positions, types, cell, pbc=True, neighbors=None) -> Result: ...
