/* CRC-32C of the board protocol, slicing-by-8 (declared in crc32c.h). */
#include "crc32c.h"
unsigned int crc32c_c(const unsigned char *p, size_t n, unsigned int crc, const unsigned int *t) {
    /* t: 8 tables of 256; t[0] is the byte table, t[k][b] = t[0][t[k-1][b] & 0xff] ^ (t[k-1][b] >> 8) */
    unsigned int c = crc ^ 0xFFFFFFFFu;
    while (n >= 8) {
        unsigned int lo = c ^ ((unsigned int)p[0] | (unsigned int)p[1] << 8 | (unsigned int)p[2] << 16 | (unsigned int)p[3] << 24);
        unsigned int hi = (unsigned int)p[4] | (unsigned int)p[5] << 8 | (unsigned int)p[6] << 16 | (unsigned int)p[7] << 24;
        c = t[7 * 256 + (lo & 0xff)] ^ t[6 * 256 + ((lo >> 8) & 0xff)] ^ t[5 * 256 + ((lo >> 16) & 0xff)] ^
            t[4 * 256 + (lo >> 24)] ^ t[3 * 256 + (hi & 0xff)] ^ t[2 * 256 + ((hi >> 8) & 0xff)] ^
            t[1 * 256 + ((hi >> 16) & 0xff)] ^ t[hi >> 24];
        p += 8; n -= 8;
    }
    while (n--) c = t[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}
