/* CRC-32C (Castagnoli) of the board protocol (fpga/PROTOCOL.md), slicing-by-8; host/protocol.py
   builds the eight tables from the polynomial and calls this through cffi (the block between
   the cffi markers is also the cffi declaration, nvnmd/cbuild.py). */
#ifndef NVNMD_CRC32C_H
#define NVNMD_CRC32C_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- cffi cdef begin --- */
/* CRC of p[0..n) continuing `crc`; t: 8 tables of 256 (t[0] the byte table) */
unsigned int crc32c_c(const unsigned char *p, size_t n, unsigned int crc, const unsigned int *t);
/* --- cffi cdef end --- */

#ifdef __cplusplus
}
#endif

#endif /* NVNMD_CRC32C_H */
