/* Neighbour search of nvnmd/neighbors.py: the cell-list pair search for fully periodic cells,
   its unpacking into the board's padded layout, and the Verlet rebuild test. Plain C99 (plus
   one GCC attribute); neighbors.py prepares the binned inputs and calls these through cffi.
   The block between the cffi markers is also the cffi declaration (nvnmd/cbuild.py). */
#ifndef NVNMD_NEIGHBORS_H
#define NVNMD_NEIGHBORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* --- cffi cdef begin --- */
/* Every pair within sqrt(cutoff2) into rows of `width` packed (j, shift) keys; returns the
   widest row (rows wider than `width` are counted, not written: the caller retries wider).
   best = {d2, i, j, s0, s1, s2} of the closest pair. */
long long nl_build(long long n, const double *xw, const double *xb, const long long *ib, const long long *cell_of,
                   const long long *cell_start, const long long *ncell, const long long *range,
                   const double *cell, const long long *offset, const long long *ob, double cutoff2, long long width,
                   unsigned long long *packed, long long *counts, double *best,
                   const double *fw, const double *blen, double bound_scale, long long *acc, double *dacc);
/* rows of packed keys (stride width) -> nlist [n, widest] (-1 empty) and shifts [n, widest, 3] */
void nl_unpack(long long n, long long width, long long widest, unsigned long long *packed, const long long *counts,
               int *nlist, signed char *shifts);
/* 1 if some atom moved more than sqrt(limit2) from ref */
int moved_beyond(long long n, const double *x, const double *ref, double limit2);
/* --- cffi cdef end --- */

#ifdef __cplusplus
}
#endif

#endif /* NVNMD_NEIGHBORS_H */
