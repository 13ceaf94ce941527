"""Verlet neighbour lists with a skin, for the host side of the MD loop.

The list is built at `cutoff + skin` and reused until some atom has moved more than skin/2
since the build (the standard displacement rule) or the cell changed. Positions are never
re-wrapped between builds, so the periodic shifts stored at build time stay valid; the board
treats listed neighbours beyond rcut exactly like empty slots.

Limits are enforced at every build: a row wider than the backend accepts, or more in-cutoff
neighbours of one type than the model's sel, is a `NeighborOverflowError`; atoms closer than
`min_distance` are a `StructureError`.
"""

from __future__ import annotations

import numpy as np

from nvnmd.errors import NeighborOverflowError
from nvnmd.neighbors import NeighborList, build_neighbor_list, moved_beyond


class VerletList:
    def __init__(self, cutoff: float, skin: float = 1.0, max_neighbors: int | None = None,
                 sel: list[int] | None = None, min_distance: float | None = None):
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.max_neighbors = max_neighbors
        self.sel = None if sel is None else np.asarray(sel)
        self.min_distance = min_distance
        self.neighbors: NeighborList | None = None
        self._ref_positions: np.ndarray | None = None
        self._ref_cell: np.ndarray | None = None
        self.builds = 0

    def needs_rebuild(self, positions: np.ndarray, cell: np.ndarray) -> bool:
        if self.neighbors is None or not np.array_equal(cell, self._ref_cell):
            return True
        return moved_beyond(positions, self._ref_positions, 0.5 * self.skin)

    def update(self, positions: np.ndarray, types: np.ndarray, cell: np.ndarray, pbc=True) -> tuple[NeighborList, bool]:
        if not self.needs_rebuild(positions, cell):
            return self.neighbors, False
        nl = build_neighbor_list(positions, cell, self.cutoff + self.skin, pbc=pbc, min_distance=self.min_distance)
        width = nl.nlist.shape[1]
        if self.max_neighbors is not None and width > self.max_neighbors:
            worst = int(np.argmax(nl.counts))
            raise NeighborOverflowError(
                f"atom {worst} has {width} neighbours within {self.cutoff + self.skin:g} Å (cutoff + skin); "
                f"the backend accepts at most {self.max_neighbors}: reduce --skin")
        if self.sel is not None:
            check_sel(positions, types, cell, nl, self.cutoff, self.sel)
        self.neighbors = nl
        self._ref_positions = positions.copy()
        self._ref_cell = np.array(cell, copy=True)
        self.builds += 1
        return nl, True


def check_sel(positions, types, cell, nl: NeighborList, cutoff: float, sel) -> None:
    """Raise if any atom has more neighbours of one type within `cutoff` than sel allows."""
    valid = nl.nlist >= 0
    j = np.where(valid, nl.nlist, 0)
    rij = positions[j] + nl.shifts.astype(np.float64) @ np.asarray(cell, dtype=np.float64) - positions[:, None, :]
    inside = valid & (np.einsum("ikx,ikx->ik", rij, rij) < cutoff * cutoff)
    ntypes = len(sel)
    counts = np.zeros((len(positions), ntypes), dtype=np.int64)
    tj = np.asarray(types)[j]
    for t in range(ntypes):
        counts[:, t] = np.count_nonzero(inside & (tj == t), axis=1)
    over = counts > np.asarray(sel)[None, :]
    if over.any():
        i, t = map(int, np.argwhere(over)[0])
        raise NeighborOverflowError(
            f"atom {i} has {counts[i, t]} neighbours of type {t} within {cutoff:g} Å, more than the model's "
            f"sel {int(sel[t])} ({int(over.any(axis=1).sum())} atoms over the limit)")
