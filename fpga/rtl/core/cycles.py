"""Closed-form cycle count of nvq1_core's schedule (fpga/rtl/core/nvq1_core.v), state by state.

The core evaluates one atom at a time; every state has a fixed length given the model's shape,
LANES and two counts from the frame: nlist slots per atom (K, every slot is decoded) and
in-range neighbours (pairs, which run the tables and the per-pair backward chain). The RTL counts
its own busy cycles (result port rd_sel 0, addr 2); tests hold the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nvnmd.sim.nvq1.model import F_U, R_LIM, Nvq1Model

# fixed state lengths (cycles), named after the RTL's states
ATOM = 5          # S_ATOM: coordinates and type of atom i
SLOT = 9          # S_SLOT: j, shift, coordinates of j, r, u, in-range test
UTAB = 10         # S_UT: 4 reads on 2 ports, coefficients, two cubic units (3 stages)
G_FIXED = 6       # S_G: 2 cycles per channel + pipeline
PAD_FIXED = 2     # S_PAD
MAC_FIXED = 4     # S_MAC per block: nin terms + memory and MAC pipeline
POST_FIXED = 8    # S_POST per block: LANES columns + e/b read, table read, cubic
FIN_FIXED = 2     # S_FIN: + adder tree latency
BINIT_FIXED = 2
GH_FIXED = 2
GX_FIXED = 2      # + adder tree latency
PAIR_FIXED = 6    # S_PB (M1 + 2) and S_PF1..4
AEND = 3
FORCE_FIXED = 2


@dataclass(frozen=True)
class Shape:
    ntypes: int
    m1: int
    m2: int
    widths: tuple[int, ...]  # hidden layer output widths; the final layer has one output

    @classmethod
    def of(cls, model: Nvq1Model) -> "Shape":
        return cls(model.ntypes, model.m1, model.m2, tuple(int(lay.w.shape[2]) for lay in model.layers[:-1]))


def tree_latency(lanes: int) -> int:
    return 1 + int(lanes).bit_length() - 1


def atom_fixed_cycles(shape: Shape, lanes: int) -> int:
    """Cycles per atom that do not depend on its neighbours: padding, T, D, fitting forward,
    final layer, fitting backward, gT, and the atom's bookkeeping."""
    m1, m2, tl = shape.m1, shape.m2, tree_latency(lanes)
    c = ATOM + shape.ntypes * m1 + PAD_FIXED + 4 * m1 + m1 * m2
    nin = m1 * m2
    ins = []
    for nout in shape.widths:
        ins.append((nin, nout))
        c += (nout // lanes) * ((nin + MAC_FIXED) + (lanes + POST_FIXED))
        nin = nout
    nb = nin // lanes
    c += nb + FIN_FIXED + tl + nb + BINIT_FIXED
    for nin_l, nout_l in ins:
        c += nout_l + GH_FIXED + nin_l * nout_l // lanes + GX_FIXED + tl
    c += 8 * m1 * m2 + AEND
    return c


def pair_cycles(shape: Shape) -> int:
    """Cycles per in-range neighbour: tables, G/G' channels, and the backward chain."""
    return UTAB + 2 * shape.m1 + G_FIXED + shape.m1 + PAIR_FIXED


def frame_cycles_counts(shape: Shape, lanes: int, natoms: int, k: int, pairs: int) -> int:
    """The RTL's busy cycles for a frame of natoms atoms, K slots per row, `pairs` in-range pairs."""
    return (natoms + natoms * (atom_fixed_cycles(shape, lanes) + k * SLOT) + pairs * pair_cycles(shape)
            + 3 * natoms + FORCE_FIXED)


def in_range_pairs(model: Nvq1Model, request) -> int:
    """In-range slots of a request (SPEC §5.1), by the same integer test the core applies."""
    nlist = np.asarray(request.nlist, dtype=np.int64)
    if nlist.size == 0:
        return 0
    coords, cell = np.asarray(request.coords, np.int64), np.asarray(request.cell, np.int64)
    j = np.where(nlist >= 0, nlist, 0)
    r = coords[j] + np.asarray(request.shifts, np.int64) @ cell - coords[:, None, :]
    ok = (nlist >= 0) & np.all(np.abs(r) < R_LIM, axis=-1)
    rr = np.where(ok[..., None], r, 0)
    u = (rr.astype(object) ** 2).sum(-1)  # exact (below 2^49, but keep Python ints)
    ok &= np.array(u < model.u_cut, dtype=bool)
    assert F_U == 40
    return int(ok.sum())


def frame_cycles(model: Nvq1Model, request, lanes: int) -> int:
    nlist = np.asarray(request.nlist)
    return frame_cycles_counts(Shape.of(model), lanes, nlist.shape[0], nlist.shape[1], in_range_pairs(model, request))


def cycles_per_atom(shape: Shape, lanes: int, k: int, pairs_per_atom: float) -> float:
    """Steady-state cycles per atom per MD step (the frame's per-atom terms only)."""
    return atom_fixed_cycles(shape, lanes) + k * SLOT + pairs_per_atom * pair_cycles(shape) + 4
