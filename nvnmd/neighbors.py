"""Neighbour lists in the board's padded layout: nlist [N, K] (-1 = empty) and shifts [N, K, 3].

`build_neighbor_list` finds every pair within `cutoff` (periodic images included, so boxes
smaller than twice the cutoff work) and packs it; order within a row is by neighbour index,
then image, so the list is a pure function of the structure. r_ij = x_j + shift @ cell - x_i
for the positions as given (they may lie outside the cell: unwrapped MD coordinates).

Fully periodic cells (orthorhombic or triclinic, any size) go through a cell-list kernel in C,
compiled with cffi on first use and cached like sim/nvq1/ckernel.py; it produces exactly the
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


CDEF = """
long long nl_build(long long n, const double *xw, const double *xb, const long long *ib, const long long *cell_of,
                   const long long *cell_start, const long long *ncell, const long long *range,
                   const double *cell, const long long *offset, const long long *ob, double cutoff2, long long width,
                   unsigned long long *packed, long long *counts, double *best,
                   const double *fw, const double *blen, double bound_scale, long long *acc, double *dacc);
void nl_unpack(long long n, long long width, long long widest, unsigned long long *packed, const long long *counts,
               int *nlist, signed char *shifts);
int moved_beyond(long long n, const double *x, const double *ref, double limit2);
"""

SOURCE = r"""
/* Cell-list pair search for fully periodic cells. Atoms are binned by wrapped fractional
   coordinates (xb/ib: positions and indices in bin order, so the inner loop streams). The
   outer loop runs over j in ascending order and finds every i with j in its cutoff, appending
   (j, shift) to row i: rows therefore fill in ascending j without a sort. An entry is one
   64-bit key (j << 24 | each shift + 128 in a byte), written into rows of a scratch buffer:
   one cache line touched per pair instead of two, and keys order as (j, shift). Only entries
   of one row with the same j (several images of one atom, small boxes) can be out of order;
   they are adjacent, and nl_unpack sorts them while writing the padded layout. Bins within
   `range` are visited with the image shift the periodic wrap of the bin index implies, so
   boxes thinner than the cutoff get all their images. Bins that a lower bound on the
   distance puts beyond the cutoff are skipped, and the remaining bins of one z column are
   read as contiguous runs; neither changes which pairs are found, only how many candidates
   are looked at. */

#define MAXR 64

/* bin index a (within a few box lengths of [0, n)) -> image s and bin a - s n in [0, n);
   loops instead of / and %: integer division in the three bin loops dominated the kernel */
static inline long long wrap(long long a, long long n, long long *b) {
    long long s = 0;
    while (a < 0) { a += n; s--; }
    while (a >= n) { a -= n; s++; }
    *b = a;
    return s;
}

#define R restrict
long long nl_build(long long n, const double *R xw, const double *R xb, const long long *R ib,
                   const long long *R cell_of, const long long *R cell_start, const long long *R ncell,
                   const long long *R range, const double *R cell, const long long *R offset, const long long *R ob,
                   double cutoff2, long long width, unsigned long long *R packed, long long *R counts,
                   double *R best, const double *R fw, const double *R blen, double bound_scale, long long *R acc,
                   double *R dacc) {
    /* restrict: the one-byte shift stores would otherwise make the compiler reload every array
       after each store (a char pointer may alias anything) */
    /* returns the widest row; rows wider than `width` are counted but not written (the caller
       retries wider). best = {d2, i, j, s0, s1, s2} of the closest pair, first in (i, j, shift)
       order on ties. */
    /* closest pair so far, kept in registers: {d2, i, j, t0, t1, t2} */
    double bd2 = 1e300;
    long long bi = 0, bj = 0, b0 = 0, b1 = 0, b2 = 0;
    /* bins entirely beyond the cutoff (a lower bound on the distance, with a margin far above
       rounding) are skipped; they cannot hold a pair, so the list is the same */
    const double lim = cutoff2 * (1.0 + 1e-9) + 1e-9;
    /* very thin boxes visit more bin images than the bound table holds: no pruning there */
    const int prune = range[0] <= MAXR && range[1] <= MAXR && range[2] <= MAXR;
#define G2(d, o) (prune ? g2[d][(o) + range[d]] : 0.0)
    const long long nx = ncell[0], ny = ncell[1], nz = ncell[2];
    for (long long i = 0; i < n; i++) counts[i] = 0;
    for (long long j = 0; j < n; j++) {
        const long long c = cell_of[j];
        const long long cx = c / (ny * nz), cy = (c / nz) % ny, cz = c % nz;
        const long long oj0 = offset[3 * j], oj1 = offset[3 * j + 1], oj2 = offset[3 * j + 2];
        const double xj = xw[3 * j], yj = xw[3 * j + 1], zj = xw[3 * j + 2];
        /* squared Cartesian-scaled fractional distance from j to each bin slab it visits */
        double g2[3][2 * MAXR + 1];
        for (int d = 0; d < 3 && prune; d++) {
            const long long cd = d == 0 ? cx : d == 1 ? cy : cz;
            const double f = fw[3 * j + d], inv = 1.0 / (double)ncell[d];
            for (long long o = -range[d]; o <= range[d]; o++) {
                const double lo = (double)(cd + o) * inv, hi = (double)(cd + o + 1) * inv;
                const double g = f < lo ? lo - f : (f > hi ? f - hi : 0.0);
                g2[d][o + range[d]] = g * g * blen[d] * blen[d] * bound_scale;
            }
        }
        for (long long dx = -range[0]; dx <= range[0]; dx++) {
            const double bxx = G2(0, dx);
            if (bxx > lim) continue;
            long long bx; const long long sx = wrap(cx + dx, nx, &bx);
            for (long long dy = -range[1]; dy <= range[1]; dy++) {
                const double bxy = bxx + G2(1, dy);
                if (bxy > lim) continue;
                long long by; const long long sy = wrap(cy + dy, ny, &by);
                /* the unpruned dz form one interval (the bound is unimodal in dz); its bins are
                   consecutive in bin order, so each stretch without a periodic wrap is one
                   contiguous run of candidates */
                long long zlo = -range[2], zhi = range[2];
                while (zlo <= zhi && bxy + G2(2, zlo) > lim) zlo++;
                while (zhi >= zlo && bxy + G2(2, zhi) > lim) zhi--;
                const long long row = (bx * ny + by) * nz;
                for (long long a = cz + zlo; a <= cz + zhi;) {
                    long long bz; const long long sz = wrap(a, nz, &bz);
                    long long last = bz + (cz + zhi - a);
                    if (last > nz - 1) last = nz - 1;
                    a += last - bz + 1;
                    /* candidate i sits at xb_i + S @ cell; vector i -> j is x_j - that */
                    const double ox = xj - (sx * cell[0] + sy * cell[3] + sz * cell[6]);
                    const double oy = yj - (sx * cell[1] + sy * cell[4] + sz * cell[7]);
                    const double oz = zj - (sx * cell[2] + sy * cell[5] + sz * cell[8]);
                    const long long qs = cell_start[row + bz], qe = cell_start[row + last + 1];
                    /* distances first, branch-free (accepted candidates compacted into acc/dacc):
                       the in-cutoff test is a coin flip the branch predictor loses */
                    long long m = 0;
                    for (long long q = qs; q < qe; q++) {
                        const double rx = ox - xb[3 * q], ry = oy - xb[3 * q + 1], rz = oz - xb[3 * q + 2];
                        const double d2 = rx * rx + ry * ry + rz * rz;
                        acc[m] = q;
                        dacc[m] = d2;
                        m += d2 < cutoff2;
                    }
                    for (long long u = 0; u < m; u++) {
                        const long long q = acc[u];
                        const double d2 = dacc[u];
                        const long long i = ib[q];
                        if (j == i && sx == 0 && sy == 0 && sz == 0) continue;
                        /* r_ij = xw_j - S @ cell - xw_i; back to the unwrapped inputs x = xw + o @ cell */
                        const long long t0 = -sx - oj0 + ob[3 * q], t1 = -sy - oj1 + ob[3 * q + 1],
                                        t2 = -sz - oj2 + ob[3 * q + 2];
                        const long long k = counts[i]++;
                        if (k < width)
                            packed[i * width + k] = (unsigned long long)j << 24 | (unsigned long long)(t0 + 128) << 16 |
                                                    (unsigned long long)(t1 + 128) << 8 | (unsigned long long)(t2 + 128);
                        if (d2 <= bd2) {
                            int better = d2 < bd2 || i < bi ||
                                (i == bi && (j < bj || (j == bj &&
                                 (t0 < b0 || (t0 == b0 && (t1 < b1 || (t1 == b1 && t2 < b2)))))));
                            if (better) { bd2 = d2; bi = i; bj = j; b0 = t0; b1 = t1; b2 = t2; }
                        }
                    }
                }
            }
        }
    }
    best[0] = bd2; best[1] = (double)bi; best[2] = (double)bj; best[3] = (double)b0; best[4] = (double)b1;
    best[5] = (double)b2;
    long long widest = 0;
    for (long long i = 0; i < n; i++) if (counts[i] > widest) widest = counts[i];
    return widest;
}

/* rows of packed (j, shift) keys at stride `width` -> the padded layout at stride `widest`.
   A key orders as (j, s0, s1, s2), so sorting keys sorts entries; only same-j runs (several
   images of one atom) can be out of order, and an insertion sort, linear on such nearly
   sorted rows, orders them. */
void nl_unpack(long long n, long long width, long long widest, unsigned long long *R packed,
               const long long *R counts, int *R nlist, signed char *R shifts) {
    for (long long i = 0; i < n; i++) {
        unsigned long long *p = packed + i * width;
        const long long c = counts[i];
        for (long long a = 1; a < c; a++) {
            if (p[a] >> 24 != p[a - 1] >> 24) continue;
            for (long long k = a; k > 0 && p[k - 1] > p[k]; k--) {
                const unsigned long long t = p[k]; p[k] = p[k - 1]; p[k - 1] = t;
            }
        }
        int *dn = nlist + i * widest;
        signed char *ds = shifts + 3 * i * widest;
        for (long long k = 0; k < c; k++) {
            const unsigned long long key = p[k];
            dn[k] = (int)(key >> 24);
            ds[3 * k] = (signed char)((int)((key >> 16) & 0xff) - 128);
            ds[3 * k + 1] = (signed char)((int)((key >> 8) & 0xff) - 128);
            ds[3 * k + 2] = (signed char)((int)(key & 0xff) - 128);
        }
        for (long long k = c; k < widest; k++) { dn[k] = -1; ds[3 * k] = ds[3 * k + 1] = ds[3 * k + 2] = 0; }
    }
}
#undef R

/* 1 if some atom moved more than sqrt(limit2) from ref: the Verlet-list rebuild test, run every
   step. The squared displacement is formed as ((dx*dx + dy*dy) + dz*dz) with no fused
   multiply-add, the arithmetic of the numpy expression it replaces, so the decision is the same. */
__attribute__((optimize("fp-contract=off")))
int moved_beyond(long long n, const double *x, const double *ref, double limit2) {
    for (long long i = 0; i < 3 * n; i += 3) {
        const double dx = x[i] - ref[i], dy = x[i + 1] - ref[i + 1], dz = x[i + 2] - ref[i + 2];
        const double xx = dx * dx, yy = dy * dy, zz = dz * dz;
        if ((xx + yy) + zz > limit2) return 1;
    }
    return 0;
}
"""

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
_LIBRARY = CLibrary("nvnmd_nl", CDEF, SOURCE, FLAGS, fallback="ASE's cell list")


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
