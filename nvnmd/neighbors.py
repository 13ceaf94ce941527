"""Neighbour lists in the board's padded layout: nlist [N, K] (-1 = empty) and shifts [N, K, 3].

`build_neighbor_list` finds every pair within `cutoff` (periodic images included, so boxes
smaller than twice the cutoff work) and packs it; order within a row is by neighbour index,
then image, so the list is a pure function of the structure. r_ij = x_j + shift @ cell - x_i
for the positions as given (they may lie outside the cell: unwrapped MD coordinates).

Fully periodic cells (orthorhombic or triclinic, any size) go through a cell-list kernel in C,
(csrc/neighbors.c, built on first use by nvnmd.cbuild); it produces exactly the
pairs of ASE's primitive_neighbor_list. Without a compiler (or with NVNMD_NO_C=1), and for
partially periodic systems, ASE's numpy cell list is used instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from nvnmd.cbuild import CLibrary
from nvnmd.errors import StructureError

NO_CELL = ("no periodic cell (zero volume); a plain .xyz carries none: give the cell, e.g. extxyz "
           "with Lattice=, a POSCAR or a deepmd system")


def check_cell(cell) -> float:
    """The cell's volume in Å^3; a missing or degenerate cell is refused."""
    volume = abs(float(np.linalg.det(np.asarray(cell, dtype=np.float64).reshape(3, 3))))
    if volume < 1e-6:
        raise StructureError(NO_CELL)
    return volume


@dataclass
class NeighborList:
    nlist: np.ndarray  # int32 [N, K]
    shifts: np.ndarray  # int8 [N, K, 3]
    cutoff: float

    @property
    def counts(self) -> np.ndarray:
        return np.count_nonzero(self.nlist >= 0, axis=1)

    def slots(self, cell) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The filled slots as flat arrays (centre i, neighbour j, shift @ cell): for positions x,
        r_ij = x[j] + shift - x[i]."""
        i, k = np.nonzero(self.nlist >= 0)
        shift = self.shifts[i, k].astype(np.float64) @ np.asarray(cell, dtype=np.float64).reshape(3, 3)
        return i.astype(np.intp), self.nlist[i, k].astype(np.intp), shift


FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math"]

_WIDTH_HINT: dict = {}
_SCRATCH = threading.local()  # per thread: cffi releases the GIL while the kernel runs


def _scratch(size: int) -> np.ndarray:
    """The kernel's private row buffer, kept between builds: an MD run rebuilds the same size
    often, and fresh pages every time cost as much as a good part of the search."""
    buf = getattr(_SCRATCH, "rows", None)
    if buf is None or buf.size < size:
        buf = _SCRATCH.rows = np.empty(size, dtype=np.uint64)
    return buf[:size]  # (natoms, cutoff) -> row width to try first
_LIBRARY = CLibrary("nvnmd_nl", "nvnmd", ["neighbors.c"], "neighbors.h", FLAGS, fallback="ASE's cell list")


def c_kernel():
    """The compiled cell-list library (ffi, lib), or None when no compiler is available."""
    return _LIBRARY.get()


def moved_beyond(positions: np.ndarray, reference: np.ndarray, distance: float) -> bool:
    """True if some atom is more than `distance` from its reference position (Verlet rebuild test)."""
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    reference = np.ascontiguousarray(reference, dtype=np.float64)
    kernel = c_kernel()
    if kernel is not None and len(positions):
        ffi, lib = kernel
        return bool(lib.moved_beyond(len(positions), ffi.cast("double *", positions.ctypes.data),
                                     ffi.cast("double *", reference.ctypes.data), distance * distance))
    d = positions - reference
    return bool(len(d)) and bool(np.max(np.sum(d * d, axis=1)) > distance * distance)


def build_neighbor_list(positions, cell, cutoff: float, pbc=True, min_distance: float | None = None) -> NeighborList:
    positions = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    pbc3 = np.array([bool(pbc)] * 3) if np.ndim(pbc) == 0 else np.asarray(pbc, dtype=bool)
    if np.any(pbc3):
        check_cell(cell)
    cutoff = float(cutoff)
    kernel = c_kernel() if np.all(pbc3) and len(positions) else None
    if kernel is None:
        return _build_ase(positions, cell, cutoff, pbc3, min_distance)
    return _build_c(kernel, positions, cell, cutoff, min_distance)


def _build_c(kernel, positions, cell, cutoff, min_distance) -> NeighborList:
    ffi, lib = kernel
    n = len(positions)
    frac = positions @ np.linalg.inv(cell)
    offset = np.floor(frac)
    frac -= offset
    offset = offset.astype(np.int64)
    xw = np.ascontiguousarray(positions - offset @ cell)
    volume = abs(np.linalg.det(cell))
    heights = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    # bins at least a cutoff wide: ~6 candidates per neighbour, but each z column of the 3x3
    # stencil is one contiguous run, and the branch-free distance loop over a long run is
    # cheaper than many short runs over half-cutoff bins (measured ~20 % faster on LGPS)
    ncell = np.maximum(1, np.floor(heights / cutoff)).astype(np.int64)
    rng = np.ceil(cutoff * ncell / heights).astype(np.int64)
    # shifts are int8 on the board and one byte each in the kernel's sort keys
    # bin images reach |s| <= ceil(range / ncell), so |shift| <= that + 2 max|offset|
    if 2 * int(np.abs(offset).max()) + int(np.max(-(-rng // ncell))) > 127:
        raise StructureError("positions lie too many periodic images away from the box for int8 shifts; wrap them")
    idx = np.minimum((frac * ncell).astype(np.int64), ncell - 1)  # frac may round to exactly 1.0
    cell_of = np.ascontiguousarray((idx[:, 0] * ncell[1] + idx[:, 1]) * ncell[2] + idx[:, 2])
    cell_atoms = np.argsort(cell_of, kind="stable").astype(np.int64)
    cell_start = np.zeros(int(ncell.prod()) + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell_of, minlength=int(ncell.prod())), out=cell_start[1:])
    # positions and image offsets in bin order: the inner loop reads them sequentially
    xb = np.ascontiguousarray(xw[cell_atoms])
    ob = np.ascontiguousarray(offset[cell_atoms])
    # rows are written in place at a guessed width; a row that does not fit makes one retry.
    # Repeated builds of one system (an MD run) guess from the last widest row: atoms move
    # little between builds, and a tight guess keeps the rows (and the compaction) small.
    key = (n, cutoff)
    width = _WIDTH_HINT.get(key) or int(4.19 * cutoff**3 * n / volume * 1.3 + 16)
    counts = np.empty(n, dtype=np.int64)
    best = np.zeros(6)
    cellc = np.ascontiguousarray(cell)
    offset = np.ascontiguousarray(offset)
    ll, dd = "long long *", "double *"
    # distance bound for bin pruning: |df @ cell|^2 >= lam * sum_d (|a_d| df_d)^2, lam the smallest
    # eigenvalue of the metric normalised by the vector lengths (1 for orthogonal cells)
    gram = cell @ cell.T
    blen = np.sqrt(np.diag(gram))
    lam = float(np.linalg.eigvalsh(gram / np.outer(blen, blen)).min()) * (1.0 - 1e-9)
    fw = np.ascontiguousarray(frac)
    blen = np.ascontiguousarray(blen)
    acc, dacc = np.empty(n, dtype=np.int64), np.empty(n)  # kernel scratch: one run of candidates
    while True:
        packed = _scratch(n * width)
        widest = lib.nl_build(n, ffi.cast(dd, xw.ctypes.data), ffi.cast(dd, xb.ctypes.data),
                              ffi.cast(ll, cell_atoms.ctypes.data), ffi.cast(ll, cell_of.ctypes.data),
                              ffi.cast(ll, cell_start.ctypes.data), ffi.cast(ll, ncell.ctypes.data),
                              ffi.cast(ll, rng.ctypes.data), ffi.cast(dd, cellc.ctypes.data),
                              ffi.cast(ll, offset.ctypes.data), ffi.cast(ll, ob.ctypes.data), cutoff * cutoff, width,
                              ffi.cast("unsigned long long *", packed.ctypes.data),
                              ffi.cast(ll, counts.ctypes.data), ffi.cast(dd, best.ctypes.data),
                              ffi.cast(dd, fw.ctypes.data), ffi.cast(dd, blen.ctypes.data), max(lam, 0.0),
                              ffi.cast(ll, acc.ctypes.data), ffi.cast(dd, dacc.ctypes.data))
        if widest <= width:
            break
        width = int(widest)
    nlist = np.empty((n, widest), dtype=np.int32)
    shifts = np.empty((n, widest, 3), dtype=np.int8)
    lib.nl_unpack(n, width, widest, ffi.cast("unsigned long long *", packed.ctypes.data), ffi.cast(ll, counts.ctypes.data),
                  ffi.cast("int *", nlist.ctypes.data), ffi.cast("signed char *", shifts.ctypes.data))
    if min_distance is not None and widest and best[0] < min_distance**2:
        raise StructureError(
            f"atoms {int(best[1])} and {int(best[2])} are {np.sqrt(best[0]):.3f} Å apart, "
            f"closer than the minimum {min_distance:.3f} Å"
        )
    _WIDTH_HINT.clear()  # one system at a time: the hint is for the run in progress
    _WIDTH_HINT[key] = int(widest) + max(4, int(widest) // 16)
    return NeighborList(nlist=nlist, shifts=shifts, cutoff=cutoff)


def _build_ase(positions, cell, cutoff, pbc3, min_distance) -> NeighborList:
    from ase.neighborlist import primitive_neighbor_list

    i, j, shift, dist = primitive_neighbor_list("ijSd", pbc3, cell, positions, cutoff, self_interaction=False)
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
