"""Short-range guard: the host's repulsive wall where the student has seen no data.

A student knows nothing about pairs closer than its training data came: there its energy is
extrapolation. Hot LGPS (1000 K) finds such holes: S–S pairs closing to covalent 1.9–2.1 Å
(closest in the data: 2.31 Å) and Ge–P pairs to 2.5–3 Å (data: 3.70 Å) while the energy of
the float and the quantized student alike falls by tens of eV and the structure collapses.
Below the board's radial-table floor r_lo (fpga/SPEC.md §5.2) the quantized model moreover
stops pushing back at all. Every backend therefore overlays, on each pair closer than the
closest pair of its two elements in the training data (`Student.closest_pairs`, from the
model's `.pairs.json` sidecar; carried in the image as `closest_pairs`), a cubic wall:

    E_pair(r) = WALL_EV * ((r_out - r) / WALL_DEPTH_A)^3   for r < r_out, else 0
    r_out = max(closest pair of the two elements in the data, r_lo)   (r_lo alone without a sidecar)

It is C2 at r_out, so it costs nothing at the edge of the data and ~1 eV (~12 kT at 1000 K)
0.25 Å beyond it. It keeps pairs out of the holes; it cannot make a student reliable that
finds a many-body hole with every pair inside the data (student/EXPERIMENTS.md). Pairs at
or beyond r_out are untouched, so configurations inside the data give bit-identical results
with and without the guard. The wall's energy, forces and virial
are rounded to the board's output formats, so a guarded result stays on the same integer
grid and a trajectory stays bit-reproducible across runs, restarts and transports.
`info["guard_pairs"]` counts the pairs it acted on.
"""

from __future__ import annotations

import numpy as np

from nvnmd.backend import Result
from nvnmd.formats import ENERGY, FORCE, VIRIAL
from nvnmd.neighbors import build_neighbor_list, moved_beyond

WALL_EV = 1.0  # wall energy at WALL_DEPTH_A inside the data's closest pair
WALL_DEPTH_A = 0.25
SCREEN_MARGIN_A = 1.0  # slots screened once per this much motion (see ShortRangeGuard._slots)


def table_floor(image) -> float | None:
    """r_lo in Å where the image's radial tables end (its profile says; None: no floor)."""
    import nvnmd.sim
    from nvnmd.errors import UnsupportedModelError

    try:
        board = nvnmd.sim.profile(image.profile)
    except UnsupportedModelError:  # a profile only a real board knows: no floor known here
        return None
    return board.table_floor(image)


class ShortRangeGuard:
    def __init__(self, r_out, type_map: list[str]):
        """`r_out`: one distance (Å) for every element pair, or a [ntypes, ntypes] matrix."""
        nt = len(type_map)
        self.r_out = np.broadcast_to(np.asarray(r_out, dtype=np.float64), (nt, nt)).copy()
        self.reach = float(self.r_out.max())
        self._cache = None

    @classmethod
    def from_pairs(cls, pairs: dict | None, type_map, floor: float = 0.0) -> "ShortRangeGuard | None":
        """From {"A-B": Å} (either order), each raised to `floor`; None without pairs and floor."""
        if not pairs:
            return cls(floor, type_map) if floor > 0 else None
        r = np.array([[pairs[f"{a}-{b}"] if f"{a}-{b}" in pairs else pairs[f"{b}-{a}"] for b in type_map]
                      for a in type_map])
        return cls(np.maximum(r, floor), type_map)

    @classmethod
    def for_image(cls, image, type_map) -> "ShortRangeGuard | None":
        return cls.from_pairs(image.meta.get("closest_pairs"), type_map, table_floor(image) or 0.0)

    def pair_energy(self, r, ti, tj):
        """Guard energy (eV) and dE/dr (eV/Å) of pairs at r with types ti, tj."""
        depth = np.maximum(self.r_out[ti, tj] - r, 0.0) / WALL_DEPTH_A
        return WALL_EV * depth**3, -3 * WALL_EV * depth**2 / WALL_DEPTH_A

    def _slots(self, neighbors, positions, types, cell):
        """The slots of a neighbour list the wall might reach (neighbour, centre, shift vector,
        reach²): those within reach + SCREEN_MARGIN_A at the positions they were picked at. They
        are kept while the list is the same object (the MD engine's Verlet list between
        rebuilds) and no atom has moved SCREEN_MARGIN_A / 2 since, which keeps every pair now
        inside the reach among them."""
        key = (types.tobytes(), cell.tobytes())  # the list itself is compared by identity (and held)
        c = self._cache
        if c is None or c[0] is not neighbors or c[1] != key or moved_beyond(positions, c[2], 0.5 * SCREEN_MARGIN_A):
            centre, slots, shift = neighbors.slots(cell)
            rij = positions[slots] + shift - positions[centre]
            reach = self.r_out[types[centre], types[slots]]
            keep = np.einsum("sx,sx->s", rij, rij) < (reach + SCREEN_MARGIN_A) ** 2
            self._cache = c = (neighbors, key, positions.copy(),
                               (slots[keep], centre[keep], shift[keep], reach[keep] ** 2))
        return c[3]

    def apply(self, result: Result, positions, types, cell, pbc=True, neighbors=None) -> Result:
        positions = np.asarray(positions, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        if neighbors is None:
            neighbors = build_neighbor_list(positions, cell, self.reach, pbc=pbc)
        types = np.asarray(types)
        slots, centre, shift, reach2 = self._slots(neighbors, positions, types, cell)
        rij = np.take(positions, slots, axis=0)
        rij -= np.take(positions, centre, axis=0)
        rij += shift
        r2 = np.einsum("sx,sx->s", rij, rij)
        (hit,) = np.nonzero(r2 < reach2)
        result.info["guard_pairs"] = len(hit) // 2  # the list holds i->j and j->i
        if not len(hit):
            return result
        i, j, rij, r = centre[hit], slots[hit], rij[hit], np.sqrt(r2[hit])
        e, de = self.pair_energy(r, types[i], types[j])
        # each directed slot carries half the pair: its energy to atom i, half the pair force
        f_j = -0.5 * de[:, None] * rij / r[:, None]
        atom_e = np.zeros(len(positions))
        np.add.at(atom_e, i, 0.5 * e)
        forces = np.zeros_like(positions)
        np.add.at(forces, j, f_j)
        np.add.at(forces, i, -f_j)
        virial = rij.T @ f_j  # sum r_ij (x) F_j = -dE/d(strain), deepmd-kit's sign
        on_grid = lambda fmt, x: fmt.decode(fmt.encode(x)[0])  # noqa: E731
        atom_e = on_grid(ENERGY, atom_e)
        result.energy = float(on_grid(ENERGY, result.energy + atom_e.sum()))
        result.forces = result.forces + on_grid(FORCE, forces)
        result.virial = result.virial + on_grid(VIRIAL, virial)
        if result.atom_energy is not None:
            result.atom_energy = result.atom_energy + atom_e
        return result
