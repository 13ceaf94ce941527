/* nvq1 kernel: the C pass of the nvq1 fast simulator, one call per request (fpga/SPEC.md).

   nvq1_compute takes the atoms (sorted by type by the caller) in blocks of one centre type
   and, per block:

   * desc_fwd_rows, per atom and slot: §5.1 relative coordinates and range test, §5.2 u tables,
     §5.3 R~, §5.4 G tables, §5.5 T accumulation with the padding constants, §5.6 D. It leaves
     per-slot records (r, h, slopes, R~) and G, G' (18-bit, stored exactly as float32).
   * the fitting net: GEMMs through a BLAS dgemm pointer (or plain loops), and around each of
     them fit_fwd / fit_bwd_pre / fit_bwd_post (§6.1 rounding, bias, §6.2 tanh, idt, shortcut,
     §6.3 energy; §7.1 the same backwards).
   * desc_bwd_rows, per atom and slot: §7.2 gT, gR~, gG, gs, gh, gu, pair force and §7.3 the
     force and virial sums (forces rounded once all blocks are done).

   They perform the same exact float64 steps as the numpy path of sim/nvq1/fast.py (every value
   an integer below 2^53, floor(x*2^-k + 0.5) the spec's rounding), so results and saturation
   counters are bit-identical; the tests compare both with the reference kernel. Reassociation
   (-fassociative-math) is allowed because every sum is of integers below 2^53 and therefore
   exact in any order; floor() is untouched. Fixed-size scratch arrays follow the board limits
   (<= 256 slots per row, M1 <= 64, <= 8 types, fitting width <= 256) and <= 16 hidden layers;
   callers stay within them. The counter slots (NVQ1_SITE_*) come from nvq1_sites.h, generated
   from sim/nvq1/sites.py. */
#include "nvq1_kernel.h"
#include "nvq1_sites.h"
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define L27 67108863.0   /* 2^26 - 1 */
#define L18 131071.0     /* 2^17 - 1 */
#define R_LIM 8388608LL  /* 2^23: |r_d| < 8 Å at 20 fraction bits */
#define REC 10           /* per-slot record fields: r0 r1 r2 h qs qh R0 R1 R2 R3 */

static inline double rnd(double x, double s) { return floor(x * s + 0.5); }
/* clip to [-lim-1, lim] (ternaries, not fmin/fmax: those keep NaN rules and do not vectorise) */
static inline double clip(double x, double lim) { return x > lim ? lim : (x < -lim - 1 ? -lim - 1 : x); }
static inline double sat(double x, double lim, long long *c) {
    if (x > lim) { (*c)++; return lim; }
    if (x < -lim - 1) { (*c)++; return -lim - 1; }
    return x;
}



/* SPEC §4 cubic unit with the rounding constants folded into the planes A, B+.5, C+.5, D+.5,
   3A, 2B+.5 (value and slope at the table's own fraction). */
static inline void cubic6(const double *Q, double t, double *y, double *q) {
    double i1 = floor(Q[0] * t + Q[1]);
    double i2 = floor(i1 * t + Q[2]);
    *y = floor(i2 * t + Q[3]);
    double q1 = floor(Q[4] * t + Q[5]);
    *q = floor(q1 * t + Q[2]);
}

/* §5.1-5.6 for every atom. The in-range slots of atom i are stored compactly, c = 0..nk[i)-1
   at p = i*K + c: jj[p], the record field f at rec[(i*REC + f)*K + c] (per atom, field-major, so
   the backward pass vectorises over slots), and GG[p*2*m1..] = G[m1] then G'[m1] (18-bit
   integers, exact in float32). gplanes[row][4][m1] = A, B+.5, C+.5, D fused with the 9-bit
   rounding. Also T[i] (4 x m1, after rounding) and X[pos[i]] (m1*m2, the descriptor row). */
static void desc_fwd_rows(const nvq1_fwd_params *P, const long long *coords, const long long *cell,
                          const long long *types, const int *nlist, const signed char *shifts, const long long *atoms,
                          long long na, long long *nk, long long *jj, double *rec, float *GG, double *T, double *X,
                          long long *counts) {
    const long long K = P->K, nt = P->nt, m1 = P->m1, m2 = P->m2;
    double tacc[4 * 64], gtau[256];
    long long nin[8], grow[256];
    int gclamp[256];
    for (long long row = 0; row < na; row++) {
        const long long i = atoms[row], ti = types[i];
        memset(tacc, 0, sizeof(double) * 4 * m1);
        for (int t = 0; t < nt; t++) nin[t] = 0;
        long long c = 0;
        double *qi = rec + REC * K * row;
        for (long long k = 0; k < K; k++) {
            const long long j = nlist[i * K + k];
            if (j < 0) continue;
            const signed char *sh = shifts + 3 * (i * K + k);
            long long r[3];
            int far = 0;
            for (int d = 0; d < 3; d++) {
                r[d] = coords[3 * j + d] - coords[3 * i + d] + sh[0] * cell[d] + sh[1] * cell[3 + d] + sh[2] * cell[6 + d];
                far |= r[d] >= R_LIM || r[d] <= -R_LIM;
            }
            if (far) continue;
            const long long u = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
            if (u >= P->u_cut) continue;
            jj[row * K + c] = j;
            const long long tj = types[j];
            nin[tj]++;
            /* §5.2: seg = u >> 37, t = (u >> 20) & (2^17 - 1); close contacts clamp to (k_lo, 0) */
            long long seg = u >> 37;
            double tau = (double)((u >> 20) & 131071) * (1.0 / 131072.0);
            const int close = seg < P->k_lo;
            if (close) { seg = P->k_lo; tau = 0.0; counts[NVQ1_SITE_close_contact]++; }
            const long long urow = (ti * P->n_u + seg) * 6;
            double s, qs, h, qh;
            cubic6(P->ups + urow, tau, &s, &qs);
            cubic6(P->uph + urow, tau, &h, &qh);
            if (close) { qs = 0.0; qh = 0.0; }
            s = sat(s, L27, &counts[NVQ1_SITE_s]);
            h = sat(h, L27, &counts[NVQ1_SITE_h]);
            double R[4];
            R[0] = s;
            for (int d = 0; d < 3; d++) {
                qi[d * K + c] = (double)r[d];
                R[1 + d] = sat(rnd(h * (double)r[d], P->s_R), L27, &counts[NVQ1_SITE_R]);
            }
            qi[3 * K + c] = h; qi[4 * K + c] = qs; qi[5 * K + c] = qh;
            for (int a = 0; a < 4; a++) qi[(6 + a) * K + c] = R[a];
            /* §5.4: x = s - s0 (s0 a multiple of 2^17), 17-bit offset, clamps outside the grid */
            const double x = s - (double)P->s0;
            double gseg = floor(x * (1.0 / 131072.0));
            double gt = x - gseg * 131072.0;
            int clamp = 0;
            if (gseg < 0) { gseg = 0; gt = 0; clamp = 1; }
            else if (gseg >= (double)P->n_s) { gseg = (double)(P->n_s - 1); gt = 131071.0; clamp = 1; }
            if (clamp) counts[NVQ1_SITE_g_range]++;
            const long long tab = P->type_one_side ? tj : ti * nt + tj;
            grow[c] = (tab * P->n_s + (long long)gseg) * 4 * m1;
            gtau[c] = gt * (1.0 / 131072.0);
            gclamp[c] = clamp;
            c++;
        }
        /* second sweep over the slots just found: the M1 channels (independent of each other's
           scalar chains above, so the two sweeps keep the core busier than one) */
        for (long long cc = 0; cc < c; cc++) {
            const long long p = row * K + cc;
            const double R[4] = {qi[6 * K + cc], qi[7 * K + cc], qi[8 * K + cc], qi[9 * K + cc]};
            const int clamp = gclamp[cc];
            /* planes A, B+.5, C+.5, D fused with >>9; the slope's 3A, 2B+.5 and C fused with >>Gq are
               derived exactly (small integers and powers of two), halving the table traffic */
            const double *restrict Q = P->gplanes + grow[cc];
            const double t = gtau[cc], tg = t * P->s_tg, tq = t * P->s_tq;
            float *restrict Go = GG + 2 * m1 * p, *restrict Gqo = Go + m1;
            double gv[64], qv[64];
            for (long long m = 0; m < m1; m++) {
                double i1 = floor(Q[m] * t + Q[m1 + m]);
                double i2 = floor(i1 * t + Q[2 * m1 + m]);
                gv[m] = floor(i2 * tg + Q[3 * m1 + m]);
                double q1 = floor(3.0 * Q[m] * t + (2.0 * Q[m1 + m] - 0.5));
                qv[m] = floor(q1 * tq + (Q[2 * m1 + m] + P->c9_off) * P->c9_sc);
            }
            /* SPEC §5.4 order: saturate (and count) G' first, then zero it at a clamped slot */
            long long cg = 0, cq = 0;
            for (long long m = 0; m < m1; m++) {
                cg += (gv[m] > L18) | (gv[m] < -L18 - 1);
                cq += (qv[m] > L18) | (qv[m] < -L18 - 1);
            }
            if (cg | cq)
                for (long long m = 0; m < m1; m++) {
                    gv[m] = gv[m] > L18 ? L18 : (gv[m] < -L18 - 1 ? -L18 - 1 : gv[m]);
                    qv[m] = qv[m] > L18 ? L18 : (qv[m] < -L18 - 1 ? -L18 - 1 : qv[m]);
                }
            if (clamp)
                for (long long m = 0; m < m1; m++) qv[m] = 0.0;
            for (long long m = 0; m < m1; m++) {
                Go[m] = (float)gv[m];
                Gqo[m] = (float)qv[m];
                tacc[m] += R[0] * gv[m];
                tacc[m1 + m] += R[1] * gv[m];
                tacc[2 * m1 + m] += R[2] * gv[m];
                tacc[3 * m1 + m] += R[3] * gv[m];
            }
            counts[NVQ1_SITE_G] += cg;
            counts[NVQ1_SITE_G_slope] += cq;
        }
        nk[row] = c;
        /* §5.5 padding constants; §5.1 overflow atoms */
        int over = 0;
        for (long long tj = 0; tj < nt; tj++) {
            const double npad = P->sel[tj] - (double)nin[tj];
            over |= npad < 0;
            if (npad > 0) {
                const double *pd = P->pad + (ti * nt + tj) * m1;
                for (long long m = 0; m < m1; m++) tacc[m] += npad * pd[m];
            }
        }
        counts[NVQ1_SITE_overflow] += over;
        double *Ti = T + 4 * m1 * row;
        for (long long m = 0; m < 4 * m1; m++) Ti[m] = sat(rnd(tacc[m], P->s_T), L18, &counts[NVQ1_SITE_T]);
        /* §5.6 D[m, a2] = sum_a T[a, m] T[a, a2] */
        double *Xi = X + m1 * m2 * row;
        for (long long m = 0; m < m1; m++)
            for (long long a2 = 0; a2 < m2; a2++) {
                double acc = Ti[m] * Ti[a2] + Ti[m1 + m] * Ti[m1 + a2] + Ti[2 * m1 + m] * Ti[2 * m1 + a2]
                             + Ti[3 * m1 + m] * Ti[3 * m1 + a2];
                Xi[m * m2 + a2] = sat(rnd(acc, P->s_D), L27, &counts[NVQ1_SITE_D]);
            }
    }
}


/* §7.2-7.3 for every atom: gT from gD = gX[pos[i]] and T[i], then its in-range slots (compact,
   as nvq1_desc_fwd stored them): first the M1-channel sums per slot, then the scalar chain
   gR̃ -> gs, gh -> gu -> f vectorised across the slots, then the scatter into F and the virial.
   F (n x 3) and virial (9) are outputs (F rounded to FORCE, virial at VIRIAL). */
static void desc_bwd_rows(const nvq1_bwd_params *P, const long long *atoms, long long na, const double *gX,
                          const double *T, const long long *nk, const long long *jj, const double *rec,
                          const float *GG, double *F, double *virial, long long *counts) {
    const long long K = P->K, m1 = P->m1, m2 = P->m2;
    double gT[4 * 64], gTs[4 * 64], gg[64];
    double A0[256], A1[256], A2[256], A3[256], SG[256], f0[256], f1[256], f2[256];
    for (long long row = 0; row < na; row++) {
        const long long i = atoms[row];
        const double *gD = gX + m1 * m2 * row, *Ti = T + 4 * m1 * row;
        for (int a = 0; a < 4; a++) {
            const double *Ta = Ti + a * m1;
            for (long long m = 0; m < m1; m++) {
                double acc = 0.0;
                for (long long a2 = 0; a2 < m2; a2++) acc += gD[m * m2 + a2] * Ta[a2];
                if (m < m2)
                    for (long long mm = 0; mm < m1; mm++) acc += Ta[mm] * gD[mm * m2 + m];
                const double v = sat(rnd(acc, P->s_gT), L27, &counts[NVQ1_SITE_gT]);
                gT[a * m1 + m] = v;
                gTs[a * m1 + m] = sat(rnd(v, 1.0 / 512.0), L18, &counts[NVQ1_SITE_gT18]);
            }
        }
        const long long nc = nk[row];
        const double *q = rec + REC * K * row;
        const double *r0 = q, *r1 = q + K, *r2 = q + 2 * K, *hh = q + 3 * K, *qs = q + 4 * K, *qh = q + 5 * K;
        long long cgg = 0;
        for (long long c = 0; c < nc; c++) {
            const float *restrict G = GG + 2 * m1 * (row * K + c), *restrict Gq = G + m1;
            const double R0 = q[6 * K + c], R1 = q[7 * K + c], R2 = q[8 * K + c], R3 = q[9 * K + c];
            double a0 = 0, a1 = 0, a2 = 0, a3 = 0, sg = 0;
            for (long long m = 0; m < m1; m++) {
                const double g = G[m];
                a0 += gT[m] * g;
                a1 += gT[m1 + m] * g;
                a2 += gT[2 * m1 + m] * g;
                a3 += gT[3 * m1 + m] * g;
                gg[m] = rnd(gTs[m] * R0 + gTs[m1 + m] * R1 + gTs[2 * m1 + m] * R2 + gTs[3 * m1 + m] * R3, P->s_gg);
            }
            for (long long m = 0; m < m1; m++) {
                const double v = gg[m];
                cgg += (v > L27) | (v < -L27 - 1);
                sg += clip(v, L27) * (double)Gq[m];
            }
            A0[c] = a0; A1[c] = a1; A2[c] = a2; A3[c] = a3; SG[c] = sg;
        }
        counts[NVQ1_SITE_gG] += cgg;
        long long cr = 0, cs = 0, ch = 0, cu = 0, cf = 0;
        for (long long c = 0; c < nc; c++) {
            double gR0 = rnd(A0[c], P->s_gr), gR1 = rnd(A1[c], P->s_gr), gR2 = rnd(A2[c], P->s_gr),
                   gR3 = rnd(A3[c], P->s_gr);
            cr += ((gR0 > L27) | (gR0 < -L27 - 1)) + ((gR1 > L27) | (gR1 < -L27 - 1))
                  + ((gR2 > L27) | (gR2 < -L27 - 1)) + ((gR3 > L27) | (gR3 < -L27 - 1));
            gR0 = clip(gR0, L27);
            gR1 = clip(gR1, L27);
            gR2 = clip(gR2, L27);
            gR3 = clip(gR3, L27);
            double gs = rnd(SG[c], P->s_gs0) + rnd(gR0, P->s_gs1);
            cs += (gs > L27) | (gs < -L27 - 1);
            gs = clip(gs, L27);
            double gh = rnd(gR1 * r0[c] + gR2 * r1[c] + gR3 * r2[c], P->s_gh);
            ch += (gh > L27) | (gh < -L27 - 1);
            gh = clip(gh, L27);
            double gu = rnd(gs * qs[c], P->s_gu0) + rnd(gh * qh[c], P->s_gu1);
            cu += (gu > L27) | (gu < -L27 - 1);
            gu = clip(gu, L27);
            double x0 = rnd(2.0 * gu * r0[c], P->s_f0) + rnd(gR1 * hh[c], P->s_f1);
            double x1 = rnd(2.0 * gu * r1[c], P->s_f0) + rnd(gR2 * hh[c], P->s_f1);
            double x2 = rnd(2.0 * gu * r2[c], P->s_f0) + rnd(gR3 * hh[c], P->s_f1);
            cf += ((x0 > L27) | (x0 < -L27 - 1)) + ((x1 > L27) | (x1 < -L27 - 1)) + ((x2 > L27) | (x2 < -L27 - 1));
            f0[c] = clip(x0, L27);
            f1[c] = clip(x1, L27);
            f2[c] = clip(x2, L27);
        }
        counts[NVQ1_SITE_gR] += cr; counts[NVQ1_SITE_gs] += cs; counts[NVQ1_SITE_gh] += ch; counts[NVQ1_SITE_gu] += cu; counts[NVQ1_SITE_pair_force] += cf;
        double v[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0}, Fi[3] = {0, 0, 0};
        for (long long c = 0; c < nc; c++) {
            const double s0 = rnd(r0[c], P->s_r18), s1 = rnd(r1[c], P->s_r18), s2 = rnd(r2[c], P->s_r18);
            v[0] += s0 * f0[c]; v[1] += s0 * f1[c]; v[2] += s0 * f2[c];
            v[3] += s1 * f0[c]; v[4] += s1 * f1[c]; v[5] += s1 * f2[c];
            v[6] += s2 * f0[c]; v[7] += s2 * f1[c]; v[8] += s2 * f2[c];
            Fi[0] += f0[c]; Fi[1] += f1[c]; Fi[2] += f2[c];
        }
        for (long long c = 0; c < nc; c++) {
            const long long j = jj[row * K + c];
            F[3 * j] -= f0[c];
            F[3 * j + 1] -= f1[c];
            F[3 * j + 2] -= f2[c];
        }
        F[3 * i] += Fi[0]; F[3 * i + 1] += Fi[1]; F[3 * i + 2] += Fi[2];
        for (int d = 0; d < 9; d++) virial[d] -= rnd(v[d], P->s_v);
    }
}

/* §6.2 odd tanh table, planes[seg][7] = A, B+.5, C+.5, D fused with the value rounding,
   3A, 2B+.5, C fused with the slope rounding. 131072 = 2^(F_Z - LT) (SPEC §3). Scalar with a
   branch for |z| >= 8: a branch-free version vectorised with gathers measured slower. */
static inline void tanh_unit(double z, const double *tplanes, long long nseg, double t_end, double s_th,
                             double s_dt, double *th, double *dt) {
    const double mag = fabs(z);
    const double seg = floor(mag * (1.0 / 131072.0));
    double y, q;
    if (seg >= (double)nseg) {
        y = t_end;
        q = 0.0;
    } else {
        const double t = (mag - seg * 131072.0) * (1.0 / 131072.0);
        const double *Q = tplanes + (long long)seg * 7;
        double i1 = floor(Q[0] * t + Q[1]);
        double i2 = floor(i1 * t + Q[2]);
        y = floor(i2 * (t * s_th) + Q[3]);
        double q1 = floor(Q[4] * t + Q[5]);
        q = floor(q1 * (t * s_dt) + Q[6]);
    }
    *th = z < 0 ? -y : y;
    *dt = q;
}

/* §6.1 after the GEMM acc = x W, columns j0..j1 (≤ 256, the board's fitting width):
   z = sat(rnd(acc, fx + e_j - 22) + B_j) (zs[j] = 2^-k_j), tanh, idt (I = 1 and s_idt = 1 for a
   layer without: rnd(th, 0) = th), the shortcut from xs[j] when xs is not NULL, sat. Three
   sweeps, so the two without table lookups vectorise. */
static inline void fit_fwd_span(long long j0, long long j1, const double *a, const double *zs, const double *b,
                                const double *tp, long long nseg, double t_end, double s_th, double s_dt,
                                const double *idt, double s_idt, const double *xs, double s_sc, double *xo, double *d,
                                long long *counts) {
    double zz[256], yy[256];
    long long cz = 0, cq = 0, cx = 0;
    for (long long j = j0; j < j1; j++) {
        const double z = rnd(a[j], zs[j]) + b[j];
        cz += (z > L27) | (z < -L27 - 1);
        zz[j - j0] = clip(z, L27);
    }
    for (long long j = j0; j < j1; j++) tanh_unit(zz[j - j0], tp, nseg, t_end, s_th, s_dt, &yy[j - j0], &d[j]);
    for (long long j = j0; j < j1; j++) {
        const double q = d[j];
        cq += (q > L18) | (q < -L18 - 1);
        d[j] = clip(q, L18);
        double y = rnd(yy[j - j0] * idt[j], s_idt);
        if (xs) y += rnd(xs[j], s_sc);
        cx += (y > L27) | (y < -L27 - 1);
        xo[j] = clip(y, L27);
    }
    counts[NVQ1_SITE_z] += cz;
    counts[NVQ1_SITE_tanh_slope] += cq;
    counts[NVQ1_SITE_x] += cx;
}

/* shortcut: 0 none, 1 identity (x of the same width), 2 concat ([x, x], double width) */
static void fit_fwd(long long rows, long long nout, long long nin, const double *acc, const double *zs,
                    const double *b, const double *tplanes, long long nseg, double t_end, double s_th, double s_dt,
                    const double *idt, double s_idt, const double *xin, int shortcut, double s_sc,
                    double *xout, double *dt, long long *counts) {
    for (long long r = 0; r < rows; r++) {
        const double *a = acc + r * nout, *xi = xin + r * nin;
        double *xo = xout + r * nout, *d = dt + r * nout;
        if (shortcut == 2) {  /* [x, x]: column j >= nin repeats x[j - nin] */
            fit_fwd_span(0, nin, a, zs, b, tplanes, nseg, t_end, s_th, s_dt, idt, s_idt, xi, s_sc, xo, d, counts);
            fit_fwd_span(nin, nout, a, zs, b, tplanes, nseg, t_end, s_th, s_dt, idt, s_idt, xi - nin, s_sc, xo, d,
                         counts);
        } else {
            fit_fwd_span(0, nout, a, zs, b, tplanes, nseg, t_end, s_th, s_dt, idt, s_idt, shortcut == 1 ? xi : 0,
                         s_sc, xo, d, counts);
        }
    }
}

/* §7.1 before the GEMM: rnd(rnd(g_th * tanh', 16), e_j - min e) with g_th = rnd(g I, f_idt).
   g_stride 0 broadcasts one row (the constant gradient at the final layer). */
static void fit_bwd_pre(long long rows, long long nout, const double *g, long long g_stride, const double *idt,
                        double s_idt, const double *dt, const double *s_col, double *out) {
    for (long long r = 0; r < rows; r++) {
        const double *gr = g + r * g_stride, *d = dt + r * nout;
        double *o = out + r * nout;
        for (long long j = 0; j < nout; j++) {
            const double gth = idt ? rnd(gr[j] * idt[j], s_idt) : gr[j];
            o[j] = rnd(rnd(gth * d[j], 1.0 / 65536.0), s_col[j]);
        }
    }
}

/* §7.1 after the GEMM: g_x = sat(rnd(acc, f_g[l+1] + min e - f_g[l]) + shortcut'(g)). */
static void fit_bwd_post(long long rows, long long nin, const double *acc, double s_acc, const double *g,
                         long long g_stride, int shortcut, double s_sc, double *out, long long *counts) {
    for (long long r = 0; r < rows; r++) {
        const double *a = acc + r * nin, *gr = g + r * g_stride;
        double *o = out + r * nin;
        for (long long k = 0; k < nin; k++) {
            double v = rnd(a[k], s_acc);
            if (shortcut == 1) v += rnd(gr[k], s_sc);
            else if (shortcut == 2) v += rnd(gr[k] + gr[k + nin], s_sc);
            o[k] = sat(v, L27, &counts[NVQ1_SITE_g]);
        }
    }
}


/* --- the whole evaluation --------------------------------------------------------------- */
typedef void (*dgemm_t)(char *, char *, int *, int *, int *, double *, const double *, int *, const double *,
                        int *, double *, double *, int *);

/* --- the kernel's own GEMM on packed weights ----------------------------------------------
   B (k x n, row-major) is stored as panels of NVQ1_PANEL = 8 columns, each panel k rows of 8
   consecutive doubles (nvq1_pack; the last panel zero-padded), so the micro-kernel streams one
   panel while a tile of up to 6 rows of A times that panel accumulates in 12 AVX registers
   (6 x 8 outputs). The panel (16 kB for k = 256) stays in L1 while all rows of the block pass.
   Exact: products and sums of integers below 2^53, FMA or not, in any order. GCC vector
   extensions, so the file stays plain C; without AVX the compiler splits the vectors. */
typedef double v4d __attribute__((vector_size(32)));

static inline v4d load4(const double *p) { v4d v; memcpy(&v, p, sizeof v); return v; }
static inline void store4(double *p, v4d v) { memcpy(p, &v, sizeof v); }

#define TILE(R)                                                                                           \
    static void tile##R(long long k, const double *restrict A, long long lda, const double *restrict P,  \
                        double *restrict C, long long ldc, long long cols) {                            \
        v4d c0[R], c1[R];                                                                                \
        for (int r = 0; r < R; r++) { c0[r] = (v4d){0, 0, 0, 0}; c1[r] = (v4d){0, 0, 0, 0}; }           \
        for (long long q = 0; q < k; q++) {                                                              \
            const v4d b0 = load4(P + 8 * q), b1 = load4(P + 8 * q + 4);                                  \
            for (int r = 0; r < R; r++) {                                                                \
                const double a = A[r * lda + q];                                                         \
                const v4d av = {a, a, a, a};                                                             \
                c0[r] += av * b0;                                                                        \
                c1[r] += av * b1;                                                                        \
            }                                                                                            \
        }                                                                                                \
        for (int r = 0; r < R; r++) {                                                                    \
            if (cols == 8) { store4(C + r * ldc, c0[r]); store4(C + r * ldc + 4, c1[r]); continue; }     \
            double t[8];                                                                                 \
            store4(t, c0[r]); store4(t + 4, c1[r]);                                                      \
            for (long long j = 0; j < cols; j++) C[r * ldc + j] = t[j];                                  \
        }                                                                                                \
    }
TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6)
#undef TILE

long long nvq1_packed_doubles(long long k, long long n) { return (n + 7) / 8 * 8 * k; }

void nvq1_pack(const double *W, long long k, long long n, double *out) {
    for (long long j0 = 0; j0 < n; j0 += 8)
        for (long long q = 0; q < k; q++)
            for (long long c = 0; c < 8; c++) out[j0 * k + q * 8 + c] = j0 + c < n ? W[q * n + j0 + c] : 0.0;
}

static void gemm_packed(long long rows, long long n, long long k, const double *A, const double *P, double *C) {
    for (long long j0 = 0; j0 < n; j0 += 8) {
        const double *panel = P + j0 * k;
        const long long cols = n - j0 < 8 ? n - j0 : 8;
        long long r = 0;
        for (; r + 6 <= rows; r += 6) tile6(k, A + r * k, k, panel, C + r * n + j0, n, cols);
        switch (rows - r) {
            case 5: tile5(k, A + r * k, k, panel, C + r * n + j0, n, cols); break;
            case 4: tile4(k, A + r * k, k, panel, C + r * n + j0, n, cols); break;
            case 3: tile3(k, A + r * k, k, panel, C + r * n + j0, n, cols); break;
            case 2: tile2(k, A + r * k, k, panel, C + r * n + j0, n, cols); break;
            case 1: tile1(k, A + r * k, k, panel, C + r * n + j0, n, cols); break;
            default: break;
        }
    }
}

/* C[rows x n] = A[rows x k] B[k x n], all row-major: the packed GEMM when Bp (B packed) is
   given; else BLAS dgemm (column-major, so C^T = B^T A^T) when given and the block has 16 rows
   or more; else plain loops. Exact every way: integer products and sums below 2^53. */
static void gemm(const nvq1_fit_params *Fp, long long rows, long long n, long long k, const double *A,
                 const double *Bm, const double *Bp, double *C) {
    if (Bp) {
        gemm_packed(rows, n, k, A, Bp, C);
        return;
    }
    if (Fp->dgemm && rows >= 16) {
        int m_ = (int)n, n_ = (int)rows, k_ = (int)k, lda = (int)n, ldb = (int)k, ldc = (int)n;
        double one = 1.0, zero = 0.0;
        char N = 'N';
        ((dgemm_t)Fp->dgemm)(&N, &N, &m_, &n_, &k_, &one, Bm, &lda, A, &ldb, &zero, C, &ldc);
        return;
    }
    for (long long r = 0; r < rows; r++) {
        double *c = C + r * n;
        for (long long j = 0; j < n; j++) c[j] = 0.0;
        for (long long q = 0; q < k; q++) {
            const double a = A[r * k + q], *bq = Bm + q * n;
            for (long long j = 0; j < n; j++) c[j] += a * bq[j];
        }
    }
}

static long long widest(const nvq1_fit_params *Fp) {
    long long w = Fp->m1 * Fp->m2;
    for (long long l = 0; l < Fp->nl; l++) w = Fp->nout[l] > w ? Fp->nout[l] : w;
    return w;
}

/* Scratch of one thread, in doubles, each part rounded up to whole cache lines (64 bytes) so
   two threads never write into one line: the block buffers (rec, T, X acc gz g g2, x and tanh'
   per layer), G/G' of the block's slots (floats), the slot counts and neighbour indices (long
   long), and the thread's own force (3n), virial (9) and counter (NVQ1_NSLOTS) sums. */
static long long up8(long long k) { return (k + 7) / 8 * 8; }
/* doubles from one block buffer (X, acc, gz, ...) to the next: blk * w plus 3 cache lines, so
   that buffers a multiple of 4 kB apart (blk * w * 8 bytes is 18 pages for 36 x 256) do not
   alias: a GEMM's stores into C then falsely wait on its loads of A (4k aliasing), which cost
   the GEMM a third of its speed */
static long long buf_stride(const nvq1_fit_params *Fp) { return up8(Fp->blk * widest(Fp)) + 24; }
static long long part_block(const nvq1_fit_params *Fp) {
    const long long blk = Fp->blk, K = Fp->K, m1 = Fp->m1;
    return up8(blk * (REC * K + 4 * m1) + (2 * Fp->nl + 5) * buf_stride(Fp));
}
static long long part_gg(const nvq1_fit_params *Fp) { return up8(Fp->blk * Fp->K * Fp->m1); } /* 2 floats each */
static long long part_iwork(const nvq1_fit_params *Fp) { return up8(Fp->blk * (Fp->K + 1)); }
static long long slot_doubles(const nvq1_fwd_params *P, const nvq1_fit_params *Fp) {
    return part_block(Fp) + part_gg(Fp) + part_iwork(Fp) + up8(3 * P->n) + up8(9) + up8(NVQ1_NSLOTS);
}

long long nvq1_work_doubles(const nvq1_fwd_params *P, const nvq1_fit_params *Fp, int threads) {
    return (threads > 1 ? threads : 1) * slot_doubles(P, Fp);
}

typedef struct {
    double *work, *F, *virial;
    float *GG;
    long long *iwork, *counts;
} nvq1_slot;

static nvq1_slot slot_of(const nvq1_fwd_params *P, const nvq1_fit_params *Fp, double *work, int t) {
    double *base = work + (long long)t * slot_doubles(P, Fp);
    nvq1_slot s;
    s.work = base;
    base += part_block(Fp);
    s.GG = (float *)base;
    base += part_gg(Fp);
    s.iwork = (long long *)base;
    base += part_iwork(Fp);
    s.F = base;
    base += up8(3 * P->n);
    s.virial = base;
    base += up8(9);
    s.counts = (long long *)base;
    memset(s.F, 0, sizeof(double) * (size_t)(up8(3 * P->n) + up8(9) + up8(NVQ1_NSLOTS)));
    return s;
}

/* One block of atoms of one centre type (order[blk_lo[bi]..blk_hi[bi]), at most Fp->blk): §5
   for its atoms, the fitting net forward (§6) and backward (§7.1) with the GEMMs on the block,
   then §7.2-7.3; so the per-slot G, G' stay in cache between the two descriptor passes. Forces,
   virial and counters go to the slot's own sums; atom_e[i] is written for the block's atoms. */
static void run_block(const nvq1_fwd_params *P, const nvq1_bwd_params *B, const nvq1_fit_params *Fp,
                      const long long *coords, const long long *cell, const long long *types, const int *nlist,
                      const signed char *shifts, const long long *atoms, long long rows, const nvq1_slot *S,
                      double *atom_e) {
    const long long K = P->K, m1 = P->m1, blk = Fp->blk, bs = buf_stride(Fp), nl = Fp->nl, t = types[atoms[0]];
    double *rec = S->work, *T = rec + blk * REC * K, *buf = T + blk * 4 * m1;
    double *X = buf, *acc = X + bs, *gz = acc + bs, *gbuf = gz + bs, *gbuf2 = gbuf + bs;
    double *xs = gbuf2 + bs, *dts = xs + nl * bs;  /* layer l: xs + l*bs, dts + l*bs */
    long long *nk = S->iwork, *jj = nk + blk, *counts = S->counts;
    float *GG = S->GG;
    desc_fwd_rows(P, coords, cell, types, nlist, shifts, atoms, rows, nk, jj, rec, GG, T, X, counts);
    const double *x = X;
    for (long long l = 0; l < nl; l++) {
        gemm(Fp, rows, Fp->nout[l], Fp->nin[l], x, Fp->w[l][t], Fp->wp[l][t], acc);
        double *xo = xs + l * bs, *dt = dts + l * bs;
        fit_fwd(rows, Fp->nout[l], Fp->nin[l], acc, Fp->zs[l][t], Fp->b[l][t], Fp->tplanes, Fp->nseg, Fp->t_end,
                Fp->s_th, Fp->s_dt, Fp->idt[l][t], Fp->s_idt[l], x, (int)Fp->kind[l], Fp->s_sc[l], xo, dt, counts);
        x = xo;
    }
    /* §6.3 energy: E = rnd(sum_k x_k W_k, F_A + e - 24) + C */
    const long long nlast = nl ? Fp->nout[nl - 1] : m1 * P->m2;
    for (long long r = 0; r < rows; r++) {
        double e = 0.0;
        for (long long k = 0; k < nlast; k++) e += x[r * nlast + k] * Fp->wf[t][k];
        atom_e[atoms[r]] = rnd(e, Fp->s_e[t]) + Fp->e_const[t];
    }
    /* §7.1, from the constant gradient at the final layer's input (clips charged per atom) */
    counts[NVQ1_SITE_g] += Fp->gtop_clip[t] * rows;
    const double *g = Fp->gtop[t];
    long long stride = 0;
    double *gout = gbuf, *gother = gbuf2;
    for (long long l = nl - 1; l >= 0; l--) {
        fit_bwd_pre(rows, Fp->nout[l], g, stride, Fp->idt[l][t], Fp->s_idt[l], dts + l * bs,
                    Fp->s_col[l][t], gz);
        gemm(Fp, rows, Fp->nin[l], Fp->nout[l], gz, Fp->wt[l][t], Fp->wtp[l][t], acc);
        fit_bwd_post(rows, Fp->nin[l], acc, Fp->s_acc[l][t], g, stride, (int)Fp->kind[l], Fp->s_gsc[l], gout,
                     counts);
        g = gout;
        stride = Fp->nin[l];
        double *tmp = gout; gout = gother; gother = tmp;
    }
    desc_bwd_rows(B, atoms, rows, g, T, nk, jj, rec, GG, S->F, S->virial, counts);
}

/* The blocks are shared out among `threads` threads (OpenMP, when compiled with it; else one).
   Each thread sums into its own slot; the slots are then added in thread order. Every sum is of
   integers below 2^53, hence exact in any order and any split: the result is the same bits for
   any thread count and any assignment of blocks to threads. */
void nvq1_compute(const nvq1_fwd_params *P, const nvq1_bwd_params *B, const nvq1_fit_params *Fp,
                  const long long *coords, const long long *cell, const long long *types, const int *nlist,
                  const signed char *shifts, const long long *order, long long nblk, const long long *blk_lo,
                  const long long *blk_hi, int threads, double *work, double *atom_e, double *F, double *virial,
                  long long *counts) {
    const long long n = P->n;
    int used = 1;
#ifdef _OPENMP
    if (threads > 1 && nblk > 1) {
        used = threads < nblk ? threads : (int)nblk;
#pragma omp parallel num_threads(used)
        {
            const nvq1_slot S = slot_of(P, Fp, work, omp_get_thread_num());
            if (omp_get_thread_num() == 0) used = omp_get_num_threads();  /* the team may be smaller */
#pragma omp for schedule(dynamic, 1)
            for (long long bi = 0; bi < nblk; bi++)
                run_block(P, B, Fp, coords, cell, types, nlist, shifts, order + blk_lo[bi], blk_hi[bi] - blk_lo[bi],
                          &S, atom_e);
        }
    } else
#endif
    {
        (void)threads;
        const nvq1_slot S = slot_of(P, Fp, work, 0);
        for (long long bi = 0; bi < nblk; bi++)
            run_block(P, B, Fp, coords, cell, types, nlist, shifts, order + blk_lo[bi], blk_hi[bi] - blk_lo[bi], &S,
                      atom_e);
    }
    memset(F, 0, sizeof(double) * (size_t)(3 * n));
    for (int d = 0; d < 9; d++) virial[d] = 0.0;
    for (int t = 0; t < used; t++) {
        const long long stride = slot_doubles(P, Fp);
        const double *base = work + t * stride + part_block(Fp) + part_gg(Fp) + part_iwork(Fp);
        const double *Ft = base, *vt = base + up8(3 * n);
        const long long *ct = (const long long *)(vt + up8(9));
        for (long long k = 0; k < 3 * n; k++) F[k] += Ft[k];
        for (int d = 0; d < 9; d++) virial[d] += vt[d];
        for (int k = 0; k < NVQ1_NSLOTS; k++) counts[k] += ct[k];
    }
    const double lim32 = 2147483647.0;
    for (long long k = 0; k < 3 * n; k++) F[k] = sat(rnd(F[k], B->s_F), lim32, &counts[NVQ1_SITE_force]);
}
