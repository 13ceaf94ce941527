/* Reader of the NVQ1LMP file (lammps_nvq1/NVQ1LMP.md, written by nvnmd.lammps.export): the nvq1
   kernel's three parameter blocks as they lay in memory, pointer fields as array indices, the
   float64 arrays, and key=value metadata. Checks magic, version, CRC-32C and each block's size
   against this build's sizeof, then points the fields at the arrays. Throws std::runtime_error
   with a one-line message on any mismatch. */
#ifndef NVQ1_LMP_FILE_H
#define NVQ1_LMP_FILE_H

#include "nvq1_kernel.h"
#include "nvq1_sites.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace nvq1lmp {

inline uint32_t crc32c(const unsigned char *p, size_t n) {
    static uint32_t table[256];
    static bool ready = false;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[i] = c;
        }
        ready = true;
    }
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

struct Model {
    nvq1_fwd_params fwd;
    nvq1_bwd_params bwd;
    nvq1_fit_params fit;
    std::vector<std::vector<double>> arrays;
    std::map<std::string, std::string> meta;

    const std::string &get(const std::string &key) const {
        auto it = meta.find(key);
        if (it == meta.end()) throw std::runtime_error("NVQ1LMP file lacks '" + key + "'");
        return it->second;
    }
    template <class T> std::vector<T> list(const std::string &key) const {
        std::istringstream in(get(key));
        std::vector<T> out;
        T v;
        while (in >> v) out.push_back(v);
        return out;
    }
    long long integer(const std::string &key) const { return std::stoll(get(key)); }
};

class Cursor {
  public:
    Cursor(const std::vector<unsigned char> &b, const std::string &path) : buf(b), where(path) {}
    const unsigned char *take(size_t n) {
        if (n > buf.size() - pos) throw std::runtime_error(where + ": NVQ1LMP file truncated");
        const unsigned char *p = buf.data() + pos;
        pos += n;
        return p;
    }
    uint64_t u64() { uint64_t v; std::memcpy(&v, take(8), 8); return v; }
    uint32_t u32() { uint32_t v; std::memcpy(&v, take(4), 4); return v; }
    void align8() { take((8 - pos % 8) % 8); }
    size_t pos = 0;

  private:
    const std::vector<unsigned char> &buf;
    std::string where;
};

/* One parameter block: raw bytes into `dst` (after a size check), pointer slots recorded. */
inline void read_block(Cursor &c, void *dst, size_t size, const char *name,
                       std::vector<std::pair<size_t, uint64_t>> &slots, const std::string &where) {
    const uint64_t n = c.u64(), nptr = c.u64();
    /* A block shorter than this build's struct is one written before fields were appended to
       it: the tail stays zero (NULL pointers, zero sizes), which the kernel reads as "not given"
       (nvq1_kernel.h appends optional fields only). Longer, or a layout change, is refused. */
    if (n > size || n % 8)
        throw std::runtime_error(where + ": " + name + " is " + std::to_string(n) + " bytes in the file, " +
                                 std::to_string(size) + " in this build (kernel header changed: re-export the model)");
    std::vector<uint64_t> offs(nptr);
    for (auto &o : offs) o = c.u64();
    const unsigned char *raw = c.take(n);
    std::memset(dst, 0, size);
    std::memcpy(dst, raw, n);
    c.align8();
    for (uint64_t o : offs) {
        if (o + 8 > n) throw std::runtime_error(where + ": pointer slot outside " + name);
        uint64_t idx;
        std::memcpy(&idx, raw + o, 8);
        slots.emplace_back(o, idx);
    }
}

inline void load(const std::string &path, Model &m) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open NVQ1LMP model file " + path);
    std::vector<unsigned char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (buf.size() < 16 + 4 || std::memcmp(buf.data(), "NVQ1LMP\0", 8) != 0)
        throw std::runtime_error(path + " is not an NVQ1LMP file (write one with nvnmd lammps or nvnmd.lammps.export)");
    uint32_t stored;
    std::memcpy(&stored, buf.data() + buf.size() - 4, 4);
    if (crc32c(buf.data(), buf.size() - 4) != stored) throw std::runtime_error(path + ": CRC-32C mismatch (file damaged)");
    Cursor c(buf, path);
    c.take(8);
    const uint32_t version = c.u32(), nblocks = c.u32();
    if (version != 1 || nblocks != 3)
        throw std::runtime_error(path + ": NVQ1LMP version " + std::to_string(version) + " (this pair style reads 1)");
    const uint64_t nmeta = c.u64();
    std::string text(reinterpret_cast<const char *>(c.take(nmeta)), nmeta);
    c.align8();
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        const size_t eq = line.find('=');
        if (eq != std::string::npos) m.meta[line.substr(0, eq)] = line.substr(eq + 1);
    }
    std::vector<std::pair<size_t, uint64_t>> s_fwd, s_bwd, s_fit;
    read_block(c, &m.fwd, sizeof m.fwd, "nvq1_fwd_params", s_fwd, path);
    read_block(c, &m.bwd, sizeof m.bwd, "nvq1_bwd_params", s_bwd, path);
    read_block(c, &m.fit, sizeof m.fit, "nvq1_fit_params", s_fit, path);
    const uint64_t narr = c.u64();
    m.arrays.resize(narr);
    for (auto &a : m.arrays) {
        const uint64_t n = c.u64();
        a.resize(n);
        if (n) std::memcpy(a.data(), c.take(n * 8), n * 8);
    }
    if (c.pos != buf.size() - 4) throw std::runtime_error(path + ": trailing bytes after the arrays");
    auto fix = [&](void *base, const std::vector<std::pair<size_t, uint64_t>> &slots) {
        for (auto &s : slots) {
            if (s.second > m.arrays.size()) throw std::runtime_error(path + ": pointer to array beyond the file's");
            const double *p = s.second ? m.arrays[s.second - 1].data() : nullptr;
            std::memcpy(static_cast<unsigned char *>(base) + s.first, &p, sizeof p);
        }
    };
    fix(&m.fwd, s_fwd);
    fix(&m.bwd, s_bwd);
    fix(&m.fit, s_fit);
}

}  // namespace nvq1lmp

#endif
