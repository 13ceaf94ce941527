"""Short-range guard: the host's repulsive wall below the board's radial-table floor r_lo.

An nvq1 image tabulates s̃(r), h̃(r) only down to r_lo (0.8 x the closest pair the quantizer
saw; fpga/SPEC.md §5.2). Closer pairs are clamped to r_lo with slope 0, so the model stops
pushing back there and, hot enough, atoms fall through one another. The image backends (sim,
tf64, board) therefore overlay, on every pair closer than r_lo, the ZBL universal screened
nuclear repulsion switched on smoothly below r_lo — what deepmd-kit's DP-ZBL model and LAMMPS'
`pair_style hybrid/overlay ... zbl` do for the float model:

    E_pair(r) = w(r) ZBL(r),  w = 1 below r_in = r_lo / 2, 0 from r_lo on, C2 in between

Pairs at or beyond r_lo are untouched, so ordinary configurations give bit-identical results
with and without the guard. The wall's energy, forces and virial are rounded to the board's
output formats, so a guarded result stays on the same integer grid and a trajectory stays
bit-reproducible across runs, restarts and transports. `info["guard_pairs"]` counts the pairs
it acted on.
"""

from __future__ import annotations

import math

import numpy as np

from nvnmd.backend import Result
from nvnmd.formats import ENERGY, FORCE, VIRIAL
from nvnmd.neighbors import build_neighbor_list

COULOMB_EV_A = 14.399645  # e^2 / (4 pi eps0) in eV Å
ZBL_SCREENING = ((0.18175, 3.19980), (0.50986, 0.94229), (0.28022, 0.40290), (0.02817, 0.20162))
ZBL_LENGTH = 0.46850  # Å; a = ZBL_LENGTH / (Zi^0.23 + Zj^0.23)
INNER_FRACTION = 0.5  # full ZBL below r_in = INNER_FRACTION * r_lo


def table_floor(image) -> float | None:
    """r_lo in Å for images whose radial tables end there (nvq1); None for other profiles."""
    if image.profile != "nvq1":
        return None
    from nvnmd.sim.nvq1_model import LU

    return math.sqrt(int(image.meta["k_lo"]) * 2.0**-LU)


def zbl(r, zi, zj):
    """ZBL pair energy (eV) and dE/dr (eV/Å) at distances r (Å)."""
    a = ZBL_LENGTH / (zi**0.23 + zj**0.23)
    x = r / a
    phi = sum(c * np.exp(-d * x) for c, d in ZBL_SCREENING)
    dphi = sum(-c * d / a * np.exp(-d * x) for c, d in ZBL_SCREENING)
    pref = COULOMB_EV_A * zi * zj
    return pref * phi / r, pref * (dphi / r - phi / r**2)


def switch(r, r_in, r_out):
    """w(r) = 1 below r_in, 0 above r_out, smootherstep between (C2); returns (w, dw/dr)."""
    x = np.clip((r_out - r) / (r_out - r_in), 0.0, 1.0)
    w = x**3 * (10 - 15 * x + 6 * x**2)
    dw_dx = 30 * x**2 * (1 - x) ** 2
    return w, -dw_dx / (r_out - r_in)


class ShortRangeGuard:
    def __init__(self, r_lo: float, type_map: list[str]):
        from ase.data import atomic_numbers

        self.r_lo = float(r_lo)
        self.r_in = INNER_FRACTION * self.r_lo
        self.z = np.array([atomic_numbers[s] for s in type_map], dtype=np.float64)

    @classmethod
    def for_image(cls, image, type_map) -> "ShortRangeGuard | None":
        r_lo = table_floor(image)
        return None if r_lo is None else cls(r_lo, type_map)

    def pair_energy(self, r, ti, tj):
        """Guard energy (eV) and dE/dr (eV/Å) of pairs at r with types ti, tj."""
        e, de = zbl(r, self.z[ti], self.z[tj])
        w, dw = switch(r, self.r_in, self.r_lo)
        return w * e, dw * e + w * de

    def apply(self, result: Result, positions, types, cell, pbc=True, neighbors=None) -> Result:
        positions = np.asarray(positions, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        if neighbors is None:
            neighbors = build_neighbor_list(positions, cell, self.r_lo, pbc=pbc)
        i, k = np.nonzero(neighbors.nlist >= 0)
        j = neighbors.nlist[i, k].astype(np.int64)
        rij = positions[j] + neighbors.shifts[i, k].astype(np.float64) @ cell - positions[i]
        r = np.sqrt(np.einsum("ij,ij->i", rij, rij))
        close = r < self.r_lo
        result.info["guard_pairs"] = int(np.count_nonzero(close)) // 2  # the list holds i->j and j->i
        if not close.any():
            return result
        i, j, rij, r = i[close], j[close], rij[close], r[close]
        types = np.asarray(types)
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
