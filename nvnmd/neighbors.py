"""Neighbour lists in the board's padded layout: nlist [N, K] (-1 = empty) and shifts [N, K, 3].

`build_neighbor_list` finds every pair within `cutoff` (periodic images included, so boxes
smaller than twice the cutoff work) and packs it; order within a row is by neighbour index,
then image, so the list is a pure function of the structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nvnmd.errors import StructureError


@dataclass
class NeighborList:
    nlist: np.ndarray  # int32 [N, K]
    shifts: np.ndarray  # int8 [N, K, 3]
    cutoff: float

    @property
    def counts(self) -> np.ndarray:
        return np.count_nonzero(self.nlist >= 0, axis=1)


def build_neighbor_list(positions, cell, cutoff: float, pbc=True, min_distance: float | None = None) -> NeighborList:
    from ase.neighborlist import primitive_neighbor_list

    positions = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    pbc3 = np.array([bool(pbc)] * 3) if np.ndim(pbc) == 0 else np.asarray(pbc, dtype=bool)
    if np.any(pbc3) and abs(np.linalg.det(cell)) < 1e-6:
        raise StructureError("periodic cell has zero volume")
    i, j, shift, dist = primitive_neighbor_list("ijSd", pbc3, cell, positions, float(cutoff), self_interaction=False)
    if min_distance is not None and dist.size and dist.min() < min_distance:
        k = int(np.argmin(dist))
        raise StructureError(
            f"atoms {i[k]} and {j[k]} are {dist[k]:.3f} Å apart, closer than the minimum {min_distance:.3f} Å"
        )
    order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], j, i))
    i, j, shift = i[order], j[order], shift[order]
    n = len(positions)
    counts = np.bincount(i, minlength=n)
    width = int(counts.max()) if n and counts.size else 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col = np.arange(len(i)) - starts[i]
    nlist = np.full((n, width), -1, dtype=np.int32)
    shifts = np.zeros((n, width, 3), dtype=np.int8)
    nlist[i, col] = j
    shifts[i, col] = shift
    return NeighborList(nlist=nlist, shifts=shifts, cutoff=float(cutoff))
