/* nvq1 kernel: the public interface of the C pass of the nvq1 fast simulator (fpga/SPEC.md).

   One call, nvq1_compute, evaluates a whole request of the nvq1 board: energies per atom,
   forces and virial as exact integers held in doubles, and the SPEC §2.2 saturation counters.
   The parameter blocks carry the decoded image (tables as coefficient planes, fitting
   weights, the fixed-point fractions as power-of-two scales); sim/nvq1/fast.py
   (FastKernel._setup_c) fills them from an image, and any other host (the LAMMPS pair style)
   fills them the same way. Plain C99, no Python: include this header from C or C++ and compile
   nvq1_kernel.c beside the generated nvq1_sites.h (nvnmd.sim.nvq1.ckernel.write_sites_header).

   The block between the cffi markers is also the cffi declaration (nvnmd/cbuild.py reads it),
   so the Python side and the C side share this one text. */
#ifndef NVQ1_KERNEL_H
#define NVQ1_KERNEL_H

#ifdef __cplusplus
extern "C" {
#endif

/* --- cffi cdef begin --- */
/* §5 descriptor: sizes, the u and G tables (coefficient planes), padding constants, sel */
typedef struct {
    long long n, K, nt, m1, m2, n_u, k_lo, n_s, type_one_side, u_cut, s0;
    double s_R, s_tg, s_tq, s_T, s_D, c9_off, c9_sc;
    const double *ups, *uph, *gplanes, *pad, *sel;
} nvq1_fwd_params;

/* §7.2-7.3 descriptor backward: the rounding scales of every gradient site */
typedef struct {
    long long n, K, m1, m2;
    double s_gT, s_gr, s_gg, s_gs0, s_gs1, s_gh, s_gu0, s_gu1, s_f0, s_f1, s_r18, s_v, s_F;
} nvq1_bwd_params;

/* §6-7.1 fitting net: per hidden layer l (< 16) and centre type t (< 8) the weights and
   scales; blk atoms per block, K neighbour slots. The GEMMs run on wp/wtp (w, wt packed by
   nvq1_pack) when given, else through dgemm (a BLAS dgemm_, Fortran ABI) when given, else in
   plain loops: the same bits every way. */
typedef struct {
    long long nl, m1, m2, blk, K;
    long long nin[16], nout[16], kind[16];
    double s_sc[16], s_idt[16], s_gsc[16];
    const double *w[16][8], *wt[16][8], *zs[16][8], *b[16][8], *idt[16][8], *s_col[16][8];
    double s_acc[16][8];
    const double *wf[8], *gtop[8];
    double s_e[8], e_const[8];
    long long gtop_clip[8];
    const double *tplanes;
    long long nseg;
    double t_end, s_th, s_dt;
    void *dgemm;
    const double *wp[16][8], *wtp[16][8];
} nvq1_fit_params;

/* doubles of a k x n row-major matrix packed for the kernel's GEMM, and the packing */
long long nvq1_packed_doubles(long long k, long long n);
void nvq1_pack(const double *W, long long k, long long n, double *out);

/* doubles of scratch (`work`) that nvq1_compute needs for P->n atoms, blocks of Fp->blk
   atoms with Fp->K slots, on `threads` threads */
long long nvq1_work_doubles(const nvq1_fwd_params *P, const nvq1_fit_params *Fp, int threads);

/* The whole evaluation. Atoms are taken in blocks of one centre type: block b is
   order[blk_lo[b] .. blk_hi[b]) (at most Fp->blk atoms, all of one type). The blocks are shared
   among `threads` threads when the kernel is compiled with OpenMP (else it runs on one);
   the result is the same bits for any thread count. work: nvq1_work_doubles(P, Fp, threads)
   doubles. atom_e (n), F (n x 3, at FORCE) and virial (9, at VIRIAL) are written in full;
   counts (NVQ1_NSLOTS long longs, slots of nvq1_sites.h) is added to. */
void nvq1_compute(const nvq1_fwd_params *P, const nvq1_bwd_params *B, const nvq1_fit_params *Fp,
                  const long long *coords, const long long *cell, const long long *types, const int *nlist,
                  const signed char *shifts, const long long *order, long long nblk, const long long *blk_lo,
                  const long long *blk_hi, int threads, double *work, double *atom_e, double *F, double *virial,
                  long long *counts);
/* --- cffi cdef end --- */

#ifdef __cplusplus
}
#endif

#endif /* NVQ1_KERNEL_H */
