/* Cell-list neighbour search, padded-layout unpacking and the Verlet rebuild test (neighbors.h). */
#include "neighbors.h"

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
