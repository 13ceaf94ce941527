"""Profile "nvnmd-v0" arithmetic primitives: deepmd-kit's NVNMD-v0 number formats in numpy.

Owns the element-wise and block operations that deepmd-kit 3.2's `*_nvnmd` TensorFlow ops
apply (fpga/SPEC.md, section "Profile nvnmd-v0"): the 21-bit "flt" reduced float, block
floating-point dot products, the flt->fixed product sum, quantize with C rounding, the
fixed-point fitting matmul, tanh4 and its gradient, and the piecewise-cubic table lookup.
Every function reproduces the op bit for bit on float64 arrays; the model evaluation that
chains them lives in `nvnmd.sim.nvnmd_v0`.

Two hardware details are emulated on purpose: a zero splits into exponent -1023 with an
implicit mantissa 2^20 (it only vanishes through the shift clamp at 63 and the block search
starting at -100), and power-of-two scale factors below the normal range are flushed to
zero, as TensorFlow's kernels run with denormals flushed (FTZ/DAZ).
"""

from __future__ import annotations

import numpy as np

FLT_MASK = np.uint64(0xFFFFFFFF00000000)  # sign, exponent, top 20 fraction bits
MAP_OFFSET_MASK = np.uint64(0xFFFFFFF000000000)  # map lookup offset: 16 fraction bits
FRAC_BITS = 20  # flt fraction bits (NBIT_FLTF, hard-coded in deepmd-kit's kernels)
BLOCK_EXP_START = -100  # block exponent search starts here, so an all-zero block gets -100
MAX_SHIFT = 63


def _bits(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)


def flt(x) -> np.ndarray:
    """Truncate a float64 to the flt format: keep sign, exponent and 20 fraction bits."""
    return (_bits(x) & FLT_MASK).view(np.float64)


def split(x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(negative, exponent, 21-bit mantissa) as deepmd-kit splits a flt; zero -> (.., -1023, 2^20)."""
    b = _bits(x)
    neg = (b >> np.uint64(63)).astype(bool)
    expo = ((b >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64) - 1023
    mant = (((b & np.uint64((1 << 52) - 1)) | np.uint64(1 << 52)) >> np.uint64(32)).astype(np.int64)
    return neg, expo, mant


def pow2(e) -> np.ndarray:
    """2^e as float64, flushed to zero below the normal range (TF's FTZ/DAZ)."""
    e = np.minimum(np.maximum(np.asarray(e, dtype=np.int64), -1023), 1024)
    return ((e + 1023) << 52).view(np.float64)  # biased exponent 0 -> +0.0, 2047 -> inf


def _aligned(x, block_exp) -> np.ndarray:
    """Signed mantissas right-aligned (truncating) to the block exponent, as float64 integers."""
    neg, expo, mant = split(x)
    m = (mant >> np.minimum(block_exp - expo, MAX_SHIFT)).astype(np.float64)
    return np.where(neg, -m, m)


def block_expo(x, axis=None) -> np.ndarray:
    """Largest exponent over `axis` (kept as a size-1 axis), at least BLOCK_EXP_START."""
    _, expo, _ = split(x)
    return np.maximum(np.max(expo, axis=axis, keepdims=True), BLOCK_EXP_START)


def dotmul_flt(x, w) -> np.ndarray:
    """Block floating-point dot product over the last axis (one exponent per operand block)."""
    x, w = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(w, np.float64))
    ex, ew = block_expo(x, -1), block_expo(w, -1)
    s = np.sum(_aligned(x, ex) * _aligned(w, ew), axis=-1)  # integers below 2^53: exact in any order
    return flt(s * pow2(ex[..., 0] + ew[..., 0] - 2 * FRAC_BITS))


def matmul_flt(x, w, per_row: bool) -> np.ndarray:
    """x[..., N, M] @ w[..., M, K] with block exponents: per row of x and per column of w when
    `per_row` (low nibble of normx/normw != 0), else one exponent per whole x[...] / w[...]."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    if per_row:
        ex, ew = block_expo(x, -1), block_expo(w, -2)
    else:
        ex, ew = block_expo(x, (-2, -1)), block_expo(w, (-2, -1))
    s = _aligned(x, ex) @ _aligned(w, ew)  # |partial sums| <= M * 2^42 < 2^53: BLAS is exact
    return flt(s * pow2(ex + ew - 2 * FRAC_BITS))


def matmul_flt2fix(x, w, nbit: int = 23) -> np.ndarray:
    """x[..., N, M] @ w[..., M, K], each product truncated toward zero onto the 2^-nbit grid."""
    nx, ex, mx = split(np.asarray(x, np.float64))
    nw, ew, mw = split(np.asarray(w, np.float64))
    mx, mw = mx.astype(np.float64), mw.astype(np.float64)
    # product of the 21-bit mantissas (exact), scaled to units of 2^-nbit, magnitude truncated
    p = mx[..., :, :, None] * mw[..., None, :, :]
    shift = ex[..., :, :, None] + ew[..., None, :, :] - 2 * FRAC_BITS + nbit
    p = np.trunc(p * pow2(np.maximum(shift, -1100)))
    p = np.where(nx[..., :, :, None] ^ nw[..., None, :, :], -p, p)
    return flt(np.sum(p, axis=-2) * 2.0 ** -nbit)


def mul_flt(a, b) -> np.ndarray:
    return flt(flt(a) * flt(b))


def add_flt(a, b) -> np.ndarray:
    """Align the smaller exponent's mantissa (truncating), add as integers, truncate to flt."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    na, ea, ma = split(a)
    nb, eb, mb = split(b)
    e = np.maximum(ea, eb)
    ma = ma >> np.minimum(e - ea, MAX_SHIFT)
    mb = mb >> np.minimum(e - eb, MAX_SHIFT)
    s = np.where(na, -ma, ma) + np.where(nb, -mb, mb)
    return flt(s.astype(np.float64) * pow2(e - FRAC_BITS))


def c_round(y) -> np.ndarray:
    """C round(): to nearest, ties away from zero (numpy's rint would round ties to even)."""
    y = np.asarray(y, np.float64)
    t = np.trunc(y)
    return np.where(np.abs(y - t) == 0.5, t + np.sign(y), np.rint(y))


def q_round(x, nbit: int) -> np.ndarray:
    """quantize_nvnmd(isround=1): C-round onto the 2^-nbit grid."""
    s = 2.0 ** nbit
    return c_round(np.asarray(x, np.float64) * s) / s


def q_floor(x, nbit: int) -> np.ndarray:
    """quantize_nvnmd(isround=0): floor onto the 2^-nbit grid."""
    s = 2.0 ** nbit
    return np.floor(np.asarray(x, np.float64) * s) / s


def fitnet_weight(w, per_column: bool, nbitw: int = 19) -> tuple[np.ndarray, np.ndarray]:
    """matmul_fitnet's weight encoding: (significands floored to nbitw fraction bits relative to
    the block exponent, |wq| < 2; block scale 2^E per column or for the whole matrix)."""
    w = np.asarray(w, np.float64)
    e = block_expo(w, 0 if per_column else None)
    if not per_column:
        e = np.broadcast_to(e.reshape(1, 1), (1, w.shape[1]))
    scale = pow2(e)[0]  # [K]
    sw = 2.0 ** nbitw
    wq = np.floor(w * pow2(-e) * sw) / sw
    return wq, scale


def matmul_fitnet(x, wq, scale, nbitx: int = 23) -> np.ndarray:
    """x[N, M] @ W with W = wq * scale[col]: floor-quantized input, products accumulated in double
    sequentially over M, result floored onto 2^-nbitx after the block scale is applied."""
    sx = 2.0 ** nbitx
    xq = np.floor(np.asarray(x, np.float64) * sx) / sx
    acc = np.zeros((xq.shape[0], wq.shape[1]))
    for j in range(xq.shape[1]):  # deepmd-kit's kernel sums in this order
        acc += xq[:, j : j + 1] * wq[j : j + 1, :]
    return np.floor(acc * scale * sx) / sx


def tanh4(x) -> np.ndarray:
    """x - x^3/4 + x^4/16 on |x| < 2 (1 beyond), with deepmd-kit's floors; odd in x."""
    x = np.asarray(x, np.float64)
    a = np.abs(x)
    xhi = np.floor(a * 2.0**23) / 2.0**23
    xlo = np.floor(a * 2.0**19) / 2.0**19
    xxhi = np.floor((xhi * xlo) * 2.0**23) / 2.0**23
    y = np.where(a < 2, xxhi * (xxhi * 0.0625 - xhi * 0.25) + xhi, 1.0)
    y = np.floor(y * 2.0**23) / 2.0**23
    return np.where(x < 0, -y, y)


def tanh4_grad(x, g) -> np.ndarray:
    """Registered gradient of tanh4 at forward input x for upstream gradient g."""
    c = np.minimum(np.abs(np.asarray(x, np.float64)), 2.0)
    hi = np.floor(c * 2.0**23) / 2.0**23
    lo = np.floor(c * 2.0**19) / 2.0**19
    q = np.floor((hi * lo) * 2.0**19) / 2.0**19
    d = q * (hi / 4 - 0.75) + 1
    d = np.floor(d * 2.0**19) / 2.0**19
    gq = np.floor(np.asarray(g, np.float64) * 2.0**23) / 2.0**23
    return np.floor((d * gq) * 2.0**23) / 2.0**23


def map_flt(x, table, info) -> np.ndarray:
    """Piecewise-cubic lookup: x[...] -> y[..., M] with `table[row, 4c + (a,b,c,d)]` and `info`
    a list of (x0, x1, dx, N0, N1) intervals (first containing one wins, else the last; the
    offset clamps at the table edges and is truncated to 16 fraction bits); Horner in flt."""
    x = np.asarray(x, np.float64)
    flat = x.reshape(-1)
    info = np.asarray(info, np.float64).reshape(-1, 5)
    sel = np.full(flat.shape, len(info) - 1)
    for k in range(len(info) - 2, -1, -1):  # first matching interval wins
        sel = np.where((flat >= info[k, 0]) & (flat <= info[k, 1]), k, sel)
    x0, dx = info[sel, 0], info[sel, 2]
    n0, n1 = info[sel, 3].astype(np.int64), info[sel, 4].astype(np.int64)
    t = flat - x0
    idf = np.floor(t / dx)
    below = ~(idf >= 0)
    above = ~below & (idf >= (n1 - n0))
    ok = ~below & ~above
    t = np.where(below, 0.0, np.where(above, dx, t - np.where(ok, idf, 0) * dx))
    idx = np.where(below, 0, np.where(above, n1 - n0 - 1, np.where(ok, idf, 0))).astype(np.int64) + n0
    t = (_bits(t) & MAP_OFFSET_MASK).view(np.float64)[:, None]
    m = table.shape[1] // 4
    coef = np.asarray(table, np.float64)[idx].reshape(-1, m, 4)
    y = mul_flt(coef[..., 0], t)
    y = add_flt(coef[..., 1], y)
    y = mul_flt(y, t)
    y = add_flt(coef[..., 2], y)
    y = mul_flt(y, t)
    y = add_flt(coef[..., 3], y)
    return y.reshape(x.shape + (m,))


def eigen_sum(v) -> float:
    """TF's `Sum` of a float64 vector on x86 AVX: Eigen's tree reduction (leaves of 4096 values,
    four 4-lane accumulators over blocks of 16, leftover packets, scalar tail)."""
    v = np.ascontiguousarray(v, dtype=np.float64).reshape(-1)
    return float(_eigen_reduce(v, 0, v.size))


def _eigen_reduce(v, first: int, n: int) -> float:
    packet, leaf = 4, 1024
    if n > packet * leaf:
        half = first + -(-n // 2)
        split_at = packet * (-(-half // packet))
        num_left = min(split_at - first, n)
        acc = 0.0 + _eigen_reduce(v, first, num_left)
        if num_left < n:
            acc = acc + _eigen_reduce(v, split_at, n - num_left)
        return acc
    seg = v[first : first + n]
    vec = (n // packet) * packet
    unroll = (n // (4 * packet)) * 4 * packet
    if unroll:
        lanes = np.add.accumulate(seg[:unroll].reshape(-1, 16), axis=0)[-1]  # sequential per lane
        p0, p1, p2, p3 = lanes[0:4], lanes[4:8], lanes[8:12], lanes[12:16]
        p0 = ((p0 + p1) + p2) + p3
    else:
        p0 = np.zeros(4)
    for j in range(unroll, vec, packet):
        p0 = p0 + seg[j : j + packet]
    tail = 0.0
    for j in range(vec, n):
        tail = tail + seg[j]
    return tail + ((p0[0] + p0[2]) + (p0[1] + p0[3]))
