"""Optional C inner loops for the nvq1 fast kernel: table lookups and per-neighbour backward sums.

The cubic-unit lookups (SPEC §5.2 u tables, §5.4 G tables, §6.2 tanh) and the §7.2 sums over
M1 channels per neighbour are the steps numpy cannot do at BLAS speed (gathers plus many
elementwise passes). This module compiles small C loops with cffi on first use (into
$NVNMD_CACHE or ~/.cache/nvnmd, keyed by source hash and machine) that perform the very same
exact float64 steps as the numpy path. Reassociation (-fassociative-math) is allowed because
every sum is of integers below 2^53 and therefore exact in any order; floor() is untouched. If no compiler is available, or NVNMD_NO_C=1, `get()`
returns None and the numpy path is used; the tests run both and demand bit identity.
"""

from __future__ import annotations

from nvnmd.cbuild import CLibrary

CDEF = """
void nvq1_g_eval(long long n, int m1, const long long *rows, const double *taus, const double *planes,
                 const unsigned char *inr, double *g, double *gq);
long long nvq1_pair_back(long long n, int m1, const long long *slots, const long long *atoms, const double *G,
                         const double *Gq, const double *R, const double *gT, const double *gTs,
                         double s_gr, double s_gg, double lim, double *gR, double *gGGq);
void nvq1_tanh(long long n, const double *z, const double *planes, long long nseg, double t_end,
               double s_th, double s_dt, double *th, double *dt);
long long nvq1_u_eval(long long n, const double *u, const long long *ti, const unsigned char *inr, long long n_u,
                      long long k_lo, const double *ps, const double *ph, double *out);
void nvq1_pair_force(long long n, long long K, const unsigned char *inr, const long long *jj, const double *r,
                     const double *h, const double *qs, const double *qh, const double *gR, const double *gGGq,
                     const double *sc, double lim, double *F, double *vir, long long *counts);
"""

SOURCE = r"""
#include <math.h>
/* SPEC §4 cubic unit in float64, exactly as nvq1_fast's numpy path: every value is an integer
   below 2^53, so mul/add (fused or not) are exact and floor() is the spec's rounding.
   planes[row][7][m1] = A, B+.5, C+.5, D fused with >>9, 3A, 2B+.5, C fused with >>Gq;
   taus[p][2] = t*2^-17, t*2^-17 scaled for the last G step; the slope's scale follows. */
void nvq1_g_eval(long long n, int m1, const long long *rows, const double *taus, const double *restrict planes,
                 const unsigned char *inr, double *restrict g, double *restrict gq) {
    for (long long p = 0; p < n; p++) {
        double *restrict G = g + p * m1, *restrict Q = gq + p * m1;
        if (!inr[p]) {  /* empty or out-of-range slot: G = G' = 0 (its R̃ is 0 too) */
            for (int m = 0; m < m1; m++) G[m] = Q[m] = 0.0;
            continue;
        }
        const double t = taus[3 * p], tg = taus[3 * p + 1], tq = taus[3 * p + 2];
        const double *restrict P = planes + rows[p] * 7 * (long long)m1;
        for (int m = 0; m < m1; m++) {
            double i1 = floor(P[m] * t + P[m1 + m]);
            double i2 = floor(i1 * t + P[2 * m1 + m]);
            G[m] = floor(i2 * tg + P[3 * m1 + m]);
            double q1 = floor(P[4 * m1 + m] * t + P[5 * m1 + m]);
            Q[m] = floor(q1 * tq + P[6 * m1 + m]);
        }
    }
}

/* SPEC §7.2 per neighbour: gR[a] = rnd(sum_m gT[a,m] G[m]) (unclipped, numpy clips and counts),
   gG[m] = sat(rnd(sum_a gTs[a,m] R[a]), 27) and sum_m gG[m] G'[m]; returns the gG clip count.
   s_gr, s_gg are 2^-k of the two roundings; all sums are exact integers below 2^53. */
long long nvq1_pair_back(long long n, int m1, const long long *slots, const long long *atoms, const double *G,
                         const double *Gq, const double *R, const double *gT, const double *gTs,
                         double s_gr, double s_gg, double lim, double *gR, double *gGGq) {
    long long clipped = 0;
    double gg[256];  /* M1 <= 64 on the board */
    for (long long p = 0; p < n; p++) {
        const long long k = slots[p];
        const double *g = G + k * m1, *q = Gq + k * m1, *r = R + 4 * k;
        const double *t = gT + atoms[p] * 4 * (long long)m1, *ts = gTs + atoms[p] * 4 * (long long)m1;
        for (int a = 0; a < 4; a++) {
            double acc = 0;
            for (int m = 0; m < m1; m++) acc += t[a * m1 + m] * g[m];
            gR[4 * k + a] = floor(acc * s_gr + 0.5);
        }
        for (int m = 0; m < m1; m++)
            gg[m] = floor((ts[m] * r[0] + ts[m1 + m] * r[1] + ts[2 * m1 + m] * r[2] + ts[3 * m1 + m] * r[3]) * s_gg + 0.5);
        long long c = 0;
        for (int m = 0; m < m1; m++) c += (gg[m] > lim) | (gg[m] < -lim - 1);
        if (c) {
            clipped += c;
            for (int m = 0; m < m1; m++) gg[m] = gg[m] > lim ? lim : (gg[m] < -lim - 1 ? -lim - 1 : gg[m]);
        }
        double sum = 0;
        for (int m = 0; m < m1; m++) sum += gg[m] * q[m];
        gGGq[k] = sum;
    }
    return clipped;
}

/* SPEC §6.2 odd tanh table: planes[seg][7] as for G (value fused with >>1, slope with >>4).
   131072 = 2^(F_Z - LT) = 2^17 and 0x1p-37 = 2^-(F_U - LU) below are the fixed formats of SPEC §3. */
void nvq1_tanh(long long n, const double *z, const double *planes, long long nseg, double t_end,
               double s_th, double s_dt, double *th, double *dt) {
    for (long long i = 0; i < n; i++) {
        const double mag = fabs(z[i]);
        const double seg = floor(mag * (1.0 / 131072.0));
        double y, q;
        if (seg >= (double)nseg) {
            y = t_end;
            q = 0.0;
        } else {
            const double t = (mag - seg * 131072.0) * (1.0 / 131072.0);
            const double *P = planes + (long long)seg * 7;
            double i1 = floor(P[0] * t + P[1]);
            double i2 = floor(i1 * t + P[2]);
            y = floor(i2 * (t * s_th) + P[3]);
            double q1 = floor(P[4] * t + P[5]);
            q = floor(q1 * (t * s_dt) + P[6]);
        }
        th[i] = z[i] < 0 ? -y : y;
        dt[i] = q;
    }
}

/* SPEC §5.2 radial tables: planes[type][seg][6] = A, B+.5, C+.5, D+.5, 3A, 2B+.5 for s̃ and h̃;
   out[slot][4] = s, slope s, h, slope h. Returns the number of close-contact clamps. */
static inline void cubic6(const double *P, double t, double *y, double *q) {
    double i1 = floor(P[0] * t + P[1]);
    double i2 = floor(i1 * t + P[2]);
    *y = floor(i2 * t + P[3]);
    double q1 = floor(P[4] * t + P[5]);
    *q = floor(q1 * t + P[2]);
}
long long nvq1_u_eval(long long n, const double *u, const long long *ti, const unsigned char *inr, long long n_u,
                      long long k_lo, const double *ps, const double *ph, double *out) {
    long long close = 0;
    for (long long i = 0; i < n; i++) {
        double *o = out + 4 * i;
        if (!inr[i]) { o[0] = o[1] = o[2] = o[3] = 0.0; continue; }
        double seg = floor(u[i] * 0x1p-37);
        double t = (floor(u[i] * 0x1p-20) - seg * 131072.0) * (1.0 / 131072.0);
        int clamp = seg < (double)k_lo;
        if (clamp) { seg = (double)k_lo; t = 0.0; close++; }
        const long long row = (ti[i] * n_u + (long long)seg) * 6;
        cubic6(ps + row, t, &o[0], &o[1]);
        cubic6(ph + row, t, &o[2], &o[3]);
        if (clamp) { o[1] = 0.0; o[3] = 0.0; }
    }
    return close;
}

/* SPEC §7.2 from gs on, and §7.3: per in-range slot p of atom i = p / K, neighbour jj[p].
   sc[] = 2^-k of the roundings: gs (two), gh, gu (two), f (two), r18. counts: gs gh gu f. */
static inline double clip(double x, double lim, long long *c) {
    if (x > lim) { (*c)++; return lim; }
    if (x < -lim - 1) { (*c)++; return -lim - 1; }
    return x;
}
void nvq1_pair_force(long long n, long long K, const unsigned char *inr, const long long *jj, const double *r,
                     const double *h, const double *qs, const double *qh, const double *gR, const double *gGGq,
                     const double *sc, double lim, double *F, double *vir, long long *counts) {
    for (long long p = 0; p < n * K; p++) {
        if (!inr[p]) continue;
        const long long i = p / K, j = jj[p];
        const double *rr = r + 3 * p, *g = gR + 4 * p;
        double gs = floor(gGGq[p] * sc[0] + 0.5) + floor(g[0] * sc[1] + 0.5);
        gs = clip(gs, lim, &counts[0]);
        double gh = clip(floor((g[1] * rr[0] + g[2] * rr[1] + g[3] * rr[2]) * sc[2] + 0.5), lim, &counts[1]);
        double gu = floor(gs * qs[p] * sc[3] + 0.5) + floor(gh * qh[p] * sc[4] + 0.5);
        gu = clip(gu, lim, &counts[2]);
        double f[3], r18[3];
        for (int d = 0; d < 3; d++) {
            f[d] = clip(floor(2.0 * gu * rr[d] * sc[5] + 0.5) + floor(g[1 + d] * h[p] * sc[6] + 0.5), lim, &counts[3]);
            r18[d] = floor(rr[d] * sc[7] + 0.5);
            F[3 * i + d] += f[d];
            F[3 * j + d] -= f[d];
        }
        for (int d0 = 0; d0 < 3; d0++)
            for (int d1 = 0; d1 < 3; d1++) vir[9 * i + 3 * d0 + d1] += r18[d0] * f[d1];
    }
}
"""

FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros"]

_LIBRARY = CLibrary("nvq1_c", CDEF, SOURCE, FLAGS, fallback="numpy")


def get():
    """The compiled library (ffi, lib) or None."""
    return _LIBRARY.get()
