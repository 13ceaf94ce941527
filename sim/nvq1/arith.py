"""nvq1 arithmetic the float64 kernels share: rounding, cubic planes, bounds, seeds, shifts.

The fast kernel (fast.py, numpy and its C pass), the per-stage functions (stages.py) and the
TensorFlow kernel (tf.py) all hold integers in float64 (exact by SPEC.md §2.3) and evaluate
the same steps; what they would otherwise each write out lives here, once:

- `rnd`, `scale`: the round-half-up shift of SPEC §2.2 as floor(x·2^-k + 0.5);
- `Tables` (from `tables(M)`): every cubic unit's Hermite coefficients as planes with the
  rounding constants folded in (rnd(a·t)+b = floor(a·t·2^-17 + b + 0.5)) and a rounding to a
  narrower format that follows a cubic fused into its last step (floor(floor(x)/2^k) =
  floor(x/2^k)); the bound that proves G and G' cannot leave 18 bits; the tanh end value;
- `gradient_seeds(M)`: the §7.1 start, a constant per centre type, with its clip count;
- `Shifts` (from `shifts(M)`): every fraction difference of §5–§7 under the SPEC's name.

The counter sites come from sites.py (SITES). Both identities are exact and pinned bit for bit
against ref.py by tests/test_sim_nvq1.py and tests/test_sim_stages.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nvnmd.sim.nvq1.model import (
    DATA_BITS, F_A, F_COORD, F_DT, F_E, F_F, F_R18, F_S, F_TANH, F_V, F_Z, LS, LT, LU, SHORT_SHIFT, TBITS, W_BITS,
    Nvq1Model, hermite_coefficients,
)
from nvnmd.sim.nvq1.sites import SITE_INDEX, SITES

__all__ = ["SITES", "SITE_INDEX", "TSCALE", "Tables", "Shifts", "rnd", "scale", "fused", "tables", "shifts",
           "gradient_seeds"]

TSCALE = 2.0**-TBITS  # segment offset t -> t/2^17 in [0, 1)


def scale(k):
    """2^-k exactly, for a scalar or per-column integer shift (k < 0 is a left shift)."""
    if np.ndim(k) == 0:
        return float(np.ldexp(1.0, -int(k)))
    return np.ldexp(1.0, -np.asarray(k, dtype=np.int64))


def rnd(x, k):
    """floor(x * 2^-k + 0.5): SPEC §2.2 rounding (k ≤ 0 is an exact left shift)."""
    s = 2.0 ** -float(k) if np.ndim(k) == 0 else np.exp2(-np.asarray(k, dtype=np.float64))
    if np.ndim(x) == 0 and np.ndim(s) == 0:
        return np.floor(x * s + 0.5)
    y = np.multiply(x, s)
    y += 0.5
    return np.floor(y, out=y)


def fused(const, k):
    """Plane for floor(i·tau + const + 0.5) followed by a round-half-up shift by k, in one floor."""
    if k <= 0:
        return const + 0.5
    return (const + 0.5 + 2.0 ** (k - 1)) * 2.0**-k


@dataclass
class Tables:
    """The cubic units of one model as float64 planes (SPEC §4, rounding folded in).

    u: two arrays [ntypes, N_u, 6] (s̃ then h̃): A, B+.5, C+.5, D+.5, 3A, 2B+.5 (C+.5 serves
       the slope's last step too).
    g: [ntab, N_s, 7, M1]: A, B+.5, C+.5, D fused with the 9-bit rounding to 18 bits, 3A,
       2B+.5, C fused with the Gq rounding of G'.
    tanh: [256, 7]: A, B+.5, C+.5, D fused F_TANH -> F_A, 3A, 2B+.5, C fused to F_DT.
    """

    u: list
    g: np.ndarray
    tanh: np.ndarray
    t_end: float  # tanh at |z| ≥ 8 (F_A): the last table value, rounded
    g_in_range: bool  # G and G' provably fit 18 bits: their clips are no-ops and may be skipped


def tables(M: Nvq1Model) -> Tables:
    f = np.float64
    u = []
    for fn in (0, 2):
        a, b, c, d = (v.astype(f) for v in hermite_coefficients(M.u_tab[:, fn], M.u_tab[:, fn + 1], axis=1))
        u.append(np.stack([a, b + 0.5, c + 0.5, d + 0.5, 3 * a, 2 * b + 0.5], axis=-1))
    a, b, c, d = (v.astype(f) for v in hermite_coefficients(M.g_tab[:, 0], M.g_tab[:, 1], axis=1))
    kq = M.frac["Gq"]
    g = np.ascontiguousarray(
        np.stack([a, b + 0.5, c + 0.5, fused(d, SHORT_SHIFT), 3 * a, 2 * b + 0.5, fused(c, kq)], axis=2))
    # |y| ≤ |a|+|b|+|c|+|d| + 3 (one unit per rounding) bounds every cubic output of a segment;
    # when that already fits 18 bits after the shift, G and G' cannot saturate.
    lim = float((1 << (W_BITS - 1)) - 1)
    bound_g = (np.abs(a) + np.abs(b) + np.abs(c) + np.abs(d) + 3) * 2.0**-SHORT_SHIFT + 1
    bound_q = (3 * np.abs(a) + 2 * np.abs(b) + np.abs(c) + 2) * 2.0**-kq + 1
    g_in_range = bool(bound_g.max() <= lim and bound_q.max() <= lim)
    a, b, c, d = (v.astype(f) for v in hermite_coefficients(M.tanh_tab[0], M.tanh_tab[1], axis=0))
    kv, kd = F_TANH - F_A, F_TANH - LT - F_DT
    tanh = np.stack([a, b + 0.5, c + 0.5, fused(d, kv), 3 * a, 2 * b + 0.5, fused(c, kd)], axis=-1)
    t_end = float(np.floor((M.tanh_tab[0, -1] + 2.0 ** (kv - 1)) * 2.0**-kv))
    return Tables(u=u, g=g, tanh=tanh, t_end=t_end, g_in_range=g_in_range)


def gradient_seeds(M: Nvq1Model) -> list[tuple[np.ndarray, int]]:
    """§7.1 start per centre type: (g = sat(rnd(W_final, e − f_g[L]), 27), clipped entries).

    A clipped entry is counted once per atom of that type (every atom's unit clips it)."""
    nl = len(M.layers) - 1
    hi, lo = float((1 << (DATA_BITS - 1)) - 1), float(-(1 << (DATA_BITS - 1)))
    out = []
    for t in range(M.ntypes):
        wf, ef = M.layers[-1].w[t][:, 0].astype(np.float64), float(M.layers[-1].e[t][0])
        seed = rnd(wf, ef - M.f_g[nl])
        out.append((np.clip(seed, lo, hi), int(np.count_nonzero((seed > hi) | (seed < lo)))))
    return out


@dataclass(frozen=True)
class Shifts:
    """Every rounding shift of §5–§7 that follows from the model's fractions (rnd(x, k) takes k).

    Per-layer fitting shifts depend on per-column exponents and stay with the fitting stages."""

    R: int  # §5.3 R̃d = rnd(h·r_d, h + 20 − 22)
    G: int  # §5.4 G = rnd(y, 9)
    Gq: int  # §5.4 G' = rnd(y', Gq)
    T: int  # §5.5 T = rnd(T_acc, 22 + (Gt−9) − T)
    D: int  # §5.6 D = rnd(Σ T·T, 2T − D)
    tanh: int  # §6.2 tanh = rnd(y, F_TANH − F_A)
    dtanh: int  # §6.2 tanh' = rnd(y', F_TANH − LT − F_DT)
    gT: int  # §7.2 gT = rnd(…, f_g0 + T − gT)
    gTs: int  # §7.2 gTs = rnd(gT, 9)
    gR: int  # gT + (Gt−9) − gR
    gG: int  # gT − 9 + 22 − gG
    gs_G: int  # gG + Gt − Gq − 5 − gs  (Σ gG·G')
    gs_R: int  # gR − gs  (gR̃[0])
    gh: int  # gR + 20 − gh
    gu_s: int  # gs + 22 − 3 − gu
    gu_h: int  # gh + h − 3 − gu
    f_u: int  # gu + 20 − p  (2·gu·r_d)
    f_R: int  # gR + h − p  (gR̃[d]·h)
    r18: int  # §7.3 r18 = rnd(r, 20 − 14)
    V: int  # p + 14 − 24
    F: int  # p − 19
    # fractions the stages name directly
    F_G: int  # Gt − 9: fraction of G
    F_h: int


def shifts(M: Nvq1Model) -> Shifts:
    fr = M.frac
    F_G = fr["Gt"] - SHORT_SHIFT
    return Shifts(
        R=fr["h"] + F_COORD - F_S, G=SHORT_SHIFT, Gq=fr["Gq"], T=F_S + F_G - fr["T"], D=2 * fr["T"] - fr["D"],
        tanh=F_TANH - F_A, dtanh=F_TANH - LT - F_DT,
        gT=M.f_g[0] + fr["T"] - fr["gT"], gTs=SHORT_SHIFT, gR=fr["gT"] + F_G - fr["gR"],
        gG=fr["gT"] - SHORT_SHIFT + F_S - fr["gG"], gs_G=fr["gG"] + fr["Gt"] - fr["Gq"] - LS - fr["gs"],
        gs_R=fr["gR"] - fr["gs"], gh=fr["gR"] + F_COORD - fr["gh"], gu_s=fr["gs"] + F_S - LU - fr["gu"],
        gu_h=fr["gh"] + fr["h"] - LU - fr["gu"], f_u=fr["gu"] + F_COORD - fr["p"], f_R=fr["gR"] + fr["h"] - fr["p"],
        r18=F_COORD - F_R18, V=fr["p"] + F_R18 - F_V, F=fr["p"] - F_F, F_G=F_G, F_h=fr["h"],
    )

