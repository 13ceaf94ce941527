"""deepmd-kit's wrapped NVNMD-v0 board image (`nvnmd_qnn/model.pb`): reader and cross-check.

`read_wrapped(path)` parses the file: a 512-byte header of 32-bit words (version, section
heights and widths, rcut, ntype, sel, per-type energy shift), then seven sections of rows
(cfg, fps, bps, swt, dsw, fea, gra), each row a little-endian integer whose width is the
section's hex width rounded up to 32 bits. `expected_wrapped(model)` encodes an imported
"nvnmd-v0" model the way the board holds it (fpga/SPEC.md, "Profile nvnmd-v0", wrapped
image), and `check_wrapped` / `verify_wrapped` compare the two field by field, so the file
the board loads and the image our simulator runs provably hold the same model. Nothing here
is pickled: the wrapped image is plain binary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvnmd.errors import CorruptFileError, UnsupportedModelError
from nvnmd.sim.nvnmd_v0.model import FIX_FRAC as NBIT_FIXD_FL
from nvnmd.sim.nvnmd_v0.model import MAX_TYPES as NTYPE_MAX
from nvnmd.sim.nvnmd_v0.model import NvnmdV0Model
from nvnmd.sim.nvnmd_v0.ops import map_flt

SECTIONS = ("cfg", "fps", "bps", "swt", "dsw", "fea", "gra")
HEADER_WORDS = 128
HEAD_BITS = 32
# v0 bit widths of the board image (deepmd-kit's NVNMD-v0 config; only the layout uses them)
NBIT_IDX_S2G, NBIT_NEIB, NBIT_FIXD, NBIT_FLTE = 9, 9, 32, 8
NBIT_FIT_WEIGHT, NBIT_FIT_DISP, NBIT_FIT_WXDB, NBIT_FLT = 18, 3, 29, 29
NET_ROW, CFG_MIN_ROWS = 72, 128


@dataclass
class WrappedImage:
    version: int
    sub_version: int
    max_nnei: int
    heights: list[int]
    widths: list[int]  # hex digits per row
    rcut_code: int
    ntype: int
    sel: list[int]
    shift_codes: list[int]
    max_ea: int
    rows: dict[str, list[int]]

    @property
    def rcut(self) -> float:
        return self.rcut_code / 2.0**NBIT_FIXD_FL


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


def read_wrapped(path) -> WrappedImage:
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < HEADER_WORDS * 4:
        raise CorruptFileError(f"{path}: too short for an NVNMD wrapped image")
    w = [int(x) for x in np.frombuffer(raw[: HEADER_WORDS * 4], "<u4")]
    version, sub, max_nnei = w[0] & 0xFF, (w[0] >> 8) & 0xFF, w[0] >> 16
    if w[1] != HEADER_WORDS:
        raise CorruptFileError(f"{path}: header length word {w[1]}, expected {HEADER_WORDS}")
    if version != 0:
        raise UnsupportedModelError(f"{path}: NVNMD wrapped image version {version}; only version 0 is read")
    heights, widths = w[2:9], w[9:16]
    ntype = w[17]
    if not 1 <= ntype <= NTYPE_MAX:
        raise CorruptFileError(f"{path}: ntype {ntype} out of range")
    sel = w[18 : 18 + ntype]
    shifts = [_signed(x, 32) for x in w[18 + ntype : 18 + 2 * ntype]]
    max_ea = _signed(w[18 + 2 * ntype], 32)
    rows, pos = {}, HEADER_WORDS * 4
    for name, h, wd in zip(SECTIONS, heights, widths):
        nbytes = -(-wd * 4 // 32) * 4
        end = pos + h * nbytes
        if end > len(raw):
            raise CorruptFileError(f"{path}: section {name} ({h} rows of {nbytes} bytes) runs past the end of the file")
        rows[name] = [int.from_bytes(raw[p : p + nbytes], "little") for p in range(pos, end, nbytes)]
        pos = end
    if pos != len(raw):
        raise CorruptFileError(f"{path}: {len(raw) - pos} bytes after the last section")
    return WrappedImage(version, sub, max_nnei, heights, widths, w[16], ntype, sel, shifts, max_ea, rows)


# ---- encoding the board's fields from an imported model ----
def _twos(v: int, bits: int, signed: bool) -> int:
    """deepmd-kit's dec2bin: saturate (symmetric range when signed), two's complement."""
    top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    v = max(-top if signed else 0, min(top, int(v)))
    return v & ((1 << bits) - 1)


def _pack(fields) -> tuple[int, int]:
    """[(value, bits), ...] with the first field in the least significant bits -> (int, width)."""
    acc, off = 0, 0
    for v, bits in fields:
        acc |= int(v) << off
        off += bits
    return acc, off


def _rows(acc: int, width: int, row_bits: int) -> list[int]:
    mask = (1 << row_bits) - 1
    return [(acc >> (row_bits * r)) & mask for r in range(-(-width // row_bits))]


def flt29(values) -> np.ndarray:
    """The board's 29-bit float: sign, exponent + 128 in 8 bits, top 20 fraction bits; 0 for
    zero and denormals (deepmd-kit Encode.flt2bin_one)."""
    b = np.ascontiguousarray(values, np.float64).view(np.uint64)
    sign = (b >> np.uint64(63)).astype(np.int64)
    bexp = ((b >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
    frac = ((b >> np.uint64(32)) & np.uint64(0xFFFFF)).astype(np.int64)
    code = (sign << 28) | (((bexp - 1023 + 128) & 0xFF) << 20) | frac
    return np.where(bexp == 0, 0, code)


def _weight_codes(w: np.ndarray, axis: int):
    """deepmd-kit wrap_weight: exponent E = max(floor(log2 max|w|), 0) per row (axis=1) or column
    (axis=0), values sign * floor(|w| 2^(16-E)) as 18-bit integers."""
    e = np.maximum(np.floor(np.maximum(np.log2(np.max(np.abs(w), axis=axis, keepdims=True) + 1e-50), -1000)), 0)
    code = np.sign(w) * np.floor(np.abs(w) * 2.0 ** (NBIT_FIT_WEIGHT - 2 - e))
    return code.astype(np.int64), e.reshape(-1).astype(np.int64)


def _round_half_even(x) -> np.ndarray:
    return np.round(np.asarray(x, np.float64)).astype(np.int64)


def _bitfield(values, bits: int, signed: bool) -> np.ndarray:
    """[..., n] integers -> [..., n * bits] bits, least significant first, saturated as dec2bin."""
    v = np.asarray(values, np.int64)
    top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    v = np.minimum(np.maximum(v, -top if signed else 0), top) & ((1 << bits) - 1)
    out = (v[..., None] >> np.arange(bits)) & 1
    return out.reshape(v.shape[:-1] + (-1,)).astype(np.uint8)


def _bit_rows(bits: np.ndarray, row_bits: int) -> list[int]:
    """[blocks, nbits] bit strings (LSB first) -> row integers, each block cut into row_bits rows."""
    nrow = -(-bits.shape[1] // row_bits)
    padded = np.zeros((bits.shape[0], nrow * row_bits), np.uint8)
    padded[:, : bits.shape[1]] = bits
    rows = padded.reshape(-1, row_bits)
    width = -(-row_bits // 8) * 8
    full = np.zeros((rows.shape[0], width), np.uint8)
    full[:, :row_bits] = rows
    data = np.packbits(full, axis=1, bitorder="little")
    return [int.from_bytes(r.tobytes(), "little") for r in data]


def expected_wrapped(model: NvnmdV0Model) -> dict:
    """{"header": {...}, section name: [row ints]} as deepmd-kit's wrap would write for `model`."""
    nt, m1 = model.ntypes, model.m1
    nstdm = {128: 64, 256: 128}[model.max_nnei]
    out: dict = {}
    # header
    fb = [model.b[3][t][0] for t in range(nt)]
    shift = np.array([model.e_shift[t] + fb[t] for t in range(nt)])
    max_ea = int(max(np.ceil(np.log2(np.max(np.abs(shift)))) + NBIT_FIXD_FL - HEAD_BITS + 1, 0))
    out["header"] = {"ntype": nt, "sel": list(model.sel), "max_nnei": model.max_nnei,
                     "rcut_code": int(_round_half_even(model.rcut * 2.0**NBIT_FIXD_FL)),
                     "shift_codes": [_signed(_twos(c, 32, True), 32)
                                     for c in _round_half_even(shift / 2.0**max_ea * 2.0**NBIT_FIXD_FL)],
                     "max_ea": max_ea}
    # cfg: SHIFT_IDX_S2G, SEL[0..3], GS[tt][tt2][m] = s_tt(u=0) * G_tt2(s)[m], NEXPO_DIV_NI
    x0, _, dx = model.cfg_s2g[0][:3]
    sel4 = list(model.sel) + [0] * (NTYPE_MAX - nt)
    fields = [(_twos(round(-x0 / dx), NBIT_IDX_S2G, False), NBIT_IDX_S2G)]
    fields += [(_twos(s, NBIT_NEIB, False), NBIT_NEIB) for s in sel4]
    for tt in range(NTYPE_MAX):
        for tt2 in range(NTYPE_MAX):
            if tt < nt and tt2 < nt:
                s0 = map_flt(np.zeros(1), model.s_h[tt][:, :4], model.cfg_u2s)[0, 0]
                gs = s0 * map_flt(np.array([s0]), model.g[tt2], model.cfg_s2g)[0]
                codes = _round_half_even(gs * 2.0**NBIT_FIXD_FL)
            else:
                codes = np.zeros(m1, np.int64)
            fields += [(_twos(c, NBIT_FIXD, True), NBIT_FIXD) for c in codes]
    fields.append((_twos(-int(np.log2(model.nix)), NBIT_FLTE, True), NBIT_FLTE))
    acc, width = _pack(fields)
    rows = _rows(acc, width, NET_ROW)
    out["cfg"] = rows + [0] * max(0, CFG_MIN_ROWS - len(rows))
    # fps / bps: one bit string per ss = 0..NSEL-1 (tt = ss // NSTDM, sc = ss % NSTDM), 72-bit rows
    W, D, B = NBIT_FIT_WEIGHT, NBIT_FIT_DISP, NBIT_FIT_WXDB
    fps_t, bps_t = [], []
    for tt in range(NTYPE_MAX):
        ff, bf = [], []
        for layer in range(4):
            w = model.w[layer][min(tt, nt - 1)] * (1.0 if tt < nt else 0.0)
            b = model.b[layer][min(tt, nt - 1)] * (1.0 if tt < nt and layer < 3 else 0.0)
            wr, er = _weight_codes(w, 1)
            wc, ec = _weight_codes(w, 0)
            bq = _round_half_even(b * 2.0**NBIT_FIXD_FL)
            if wc.shape[1] == 1:  # final layer: rows 2sr.., the column exponent, the (zero) bias
                common = [_bitfield(wc[:, 0].reshape(nstdm, -1), W, True),
                          _bitfield(np.repeat(ec[:1], nstdm).reshape(nstdm, 1), D, False),
                          _bitfield(np.repeat(bq[:1], nstdm).reshape(nstdm, 1), B, True)]
                ff += common
                bf += common
            else:  # hidden: fps columns 2sc.. (rows inner), bps rows 2sr.. (columns inner)
                ff += [_bitfield(wc.T.reshape(nstdm, -1), W, True), _bitfield(ec.reshape(nstdm, -1), D, False),
                       _bitfield(bq.reshape(nstdm, -1), B, True)]
                bf += [_bitfield(wr.reshape(nstdm, -1), W, True), _bitfield(er.reshape(nstdm, -1), D, False),
                       _bitfield(bq.reshape(nstdm, -1), B, True)]
        fps_t.append(np.concatenate(ff, axis=1))
        bps_t.append(np.concatenate(bf, axis=1))
    out["fps"] = _bit_rows(np.concatenate(fps_t), NET_ROW)
    out["bps"] = _bit_rows(np.concatenate(bps_t), NET_ROW)
    # tables: per type slot the (a, b) pairs of every segment, then the (c, d) pairs
    for name, table, per_row in (("swt", model.s_h, 4), ("dsw", model.s_h_grad, 4), ("fea", model.g, 8),
                                 ("gra", model.g_grad, 8)):
        full = np.zeros((NTYPE_MAX,) + table.shape[1:])
        full[:nt] = table
        quads = full.reshape(NTYPE_MAX, -1, 4)
        vals = np.concatenate([quads[:, :, 0:2], quads[:, :, 2:4]]).reshape(-1, per_row)
        out[name] = _bit_rows(_bitfield(flt29(vals), NBIT_FLT, False), per_row * NBIT_FLT)
    return out


def check_wrapped(wrapped: WrappedImage, model: NvnmdV0Model) -> dict[str, list[int]]:
    """{what: [mismatching row indices]} for every section/header field that differs (empty: agree)."""
    exp = expected_wrapped(model)
    bad: dict[str, list[int]] = {}
    h = exp["header"]
    got = {"ntype": wrapped.ntype, "sel": list(wrapped.sel), "max_nnei": wrapped.max_nnei,
           "rcut_code": wrapped.rcut_code, "shift_codes": list(wrapped.shift_codes), "max_ea": wrapped.max_ea}
    for key, val in h.items():
        if got[key] != val:
            bad[f"header.{key}"] = [0]
    for name in SECTIONS:
        rows, want = wrapped.rows.get(name, []), exp[name]
        if len(rows) != len(want):
            bad[name] = [min(len(rows), len(want))]
            continue
        diff = [i for i, (a, b) in enumerate(zip(rows, want)) if a != b]
        if diff:
            bad[name] = diff
    return bad


def verify_wrapped(path, model: NvnmdV0Model) -> WrappedImage:
    """Read `path` and raise CorruptFileError (one line) unless it holds exactly `model`."""
    wrapped = read_wrapped(path)
    bad = check_wrapped(wrapped, model)
    if bad:
        first = next(iter(bad))
        raise CorruptFileError(f"{path}: wrapped image disagrees with the imported model in "
                               f"{', '.join(f'{k} ({len(v)} rows)' for k, v in bad.items())}; first: {first} row {bad[first][0]}")
    return wrapped
