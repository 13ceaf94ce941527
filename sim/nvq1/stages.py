"""nvq1 datapath as named SPEC.md stages, vectorised over atoms and neighbour slots (numpy float64).

    st = Stages(model)                                  # an Nvq1Model (model.py)
    nb = st.neighbours(coords, types, cell, nlist, shifts)               # §5.1
    rad = st.radial_tables(nb.u, nb.ti, nb.inr)                          # §5.2
    emb = st.embedding(rad.s, rad.h, nb.r, nb.ti, nb.tj, nb.inr)         # §5.3-5.4
    dsc = st.descriptor(emb.R, emb.G, nb.ti, nb.n_in)                    # §5.5-5.6
    fwd = st.fitting_forward(dsc.D, nb.ti)                               # §6
    bwd = st.fitting_backward(fwd.dtanh, nb.ti)                          # §7.1
    pg = st.descriptor_backward(bwd.gD, dsc.T, emb.R, emb.G, emb.Gq, nb.r, rad.h, rad.qs, rad.qh, nb.inr)  # §7.2
    out = st.forces_virial(pg.f, nb.r, nb.j)                             # §7.3
    st.evaluate(coords, types, cell, nlist, shifts)     # all of them: (atom_e, forces, virial, counts, overflow)

Every stage takes integer codes (any integer or integer-valued float array; shapes below,
n atoms, K neighbour slots per row) and returns a small result whose arrays hold integer codes
in float64 (exact by SPEC §2.3; `result.ints()` gives int64 copies, e.g. for test vectors)
plus `counts`, the saturation/clamp counters of SPEC §2.2 (site names from sites.py) the stage
added to the `counts` dict passed in (a fresh one when none is). Slots outside `inr` (empty,
out of range) carry don't-care values in the per-slot arrays, as on the board, where they are
skipped; only in-range slots are defined. The fast kernel (fast.py) runs exactly these stages
when it does not take its C pass; tests/test_sim_stages.py holds each to ref.py's step.

`probe=True` (the quantizer's calibration) turns saturation off and records in `maxima` the
largest magnitude reached at every calibrated site instead.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from nvnmd.sim.nvq1 import arith
from nvnmd.sim.nvq1.arith import TSCALE, rnd
from nvnmd.sim.nvq1.model import (
    DATA_BITS, F_A, F_COORD, F_DT, F_E, F_S, F_U, F_Z, LS, LT, LU, R_LIM, TBITS, W_BITS, Nvq1Model,
)


class _Stage:
    """Arrays of one stage's result; `counts` is the counter dict the stage added to."""

    def ints(self) -> dict:
        """Every array field as int64 (booleans stay bool), lists of arrays as lists."""
        def conv(v):
            if isinstance(v, np.ndarray):
                return v if v.dtype == bool else v.astype(np.int64)
            if isinstance(v, list):
                return [conv(x) for x in v]
            return v
        return {f.name: conv(getattr(self, f.name)) for f in fields(self) if f.name != "counts"}


@dataclass
class Neighbours(_Stage):
    """§5.1: r [n,K,3] (F_COORD, 0 outside inr), u [n,K] (F_U, 0 outside inr), inr [n,K] bool,
    j [n,K] neighbour index (0 at empty slots), ti [n], tj [n,K] types, n_in [n,ntypes]
    in-range neighbours per type, overflow [n] bool (n_in > sel for some type)."""

    r: np.ndarray
    u: np.ndarray
    inr: np.ndarray
    j: np.ndarray
    ti: np.ndarray
    tj: np.ndarray
    n_in: np.ndarray
    overflow: np.ndarray
    counts: dict


@dataclass
class Radial(_Stage):
    """§5.2: s̃ (F_S) and h̃ (frac h) saturated to 27 bits, their per-segment slopes q_s, q_h
    (0 at close contacts), each [n,K]."""

    s: np.ndarray
    qs: np.ndarray
    h: np.ndarray
    qh: np.ndarray
    counts: dict


@dataclass
class Embedding(_Stage):
    """§5.3-5.4: R [n,K,4] (R̃0 = s̃, R̃xyz; F_S, 0 outside inr), G and G' [n,K,M1] (18-bit,
    fractions Gt−9 and Gt−Gq; G' = 0 where clamped), g_clamped [n,K] bool (outside the G grid)."""

    R: np.ndarray
    G: np.ndarray
    Gq: np.ndarray
    g_clamped: np.ndarray
    counts: dict


@dataclass
class Descriptor(_Stage):
    """§5.5-5.6: T [n,4,M1] (18-bit, frac T), D [n, M1·M2] (27-bit, frac D, m·M2 + a2 order)."""

    T: np.ndarray
    D: np.ndarray
    counts: dict


@dataclass
class FittingForward(_Stage):
    """§6: energy [n] (ENERGY, F_E), and per hidden layer l: z[l] [n,width] (F_Z), x[l] its
    output (F_A), dtanh[l] tanh'(z) (18-bit, F_DT)."""

    energy: np.ndarray
    z: list
    x: list
    dtanh: list
    counts: dict


@dataclass
class FittingBackward(_Stage):
    """§7.1: gD [n, M1·M2] (27-bit, fraction f_g[0]), the gradient at the descriptor."""

    gD: np.ndarray
    counts: dict


@dataclass
class PairGradients(_Stage):
    """§7.2: gT [n,4,M1] (27-bit), gTs (18-bit copy), and per slot gR [n,K,4], gG [n,K,M1],
    gs, gh, gu [n,K] and the pair force f [n,K,3] (∂E_i/∂r_ij, fraction p, 0 outside inr)."""

    gT: np.ndarray
    gTs: np.ndarray
    gR: np.ndarray
    gG: np.ndarray
    gs: np.ndarray
    gh: np.ndarray
    gu: np.ndarray
    f: np.ndarray
    counts: dict


@dataclass
class Assembly(_Stage):
    """§7.3: forces [n,3] (FORCE, 32-bit) and virial [3,3] (VIRIAL)."""

    forces: np.ndarray
    virial: np.ndarray
    counts: dict


def _f64(x):
    return np.asarray(x, dtype=np.float64)


class Stages:
    def __init__(self, M: Nvq1Model, probe: bool = False):
        self.M, self.probe = M, probe
        self.maxima: dict[str, float] = {}
        self.tab = arith.tables(M)
        self.sh = arith.shifts(M)
        self.seeds = arith.gradient_seeds(M)
        f = np.float64
        ntab, ns = self.tab.g.shape[:2]
        self.g_flat = self.tab.g.reshape(ntab * ns, 7, M.m1)
        self.ones_m1 = np.ones(M.m1)
        self.layers = []
        for layer in M.layers:
            self.layers.append(dict(w=layer.w.astype(f), e=layer.e.astype(f),
                                    b=layer.b.astype(f), idt=None if layer.idt is None else layer.idt.astype(f)))
        self.pad = M.pad.astype(f)
        self.sel = np.asarray(M.sel, dtype=f)

    # -- counters -------------------------------------------------------------------
    def note(self, site, x, frac, mask=None):
        """Probe mode: remember the largest |value| (x holds codes at `frac`)."""
        if self.probe and x.size:
            v = np.abs(x if mask is None else np.where(mask, x, 0.0))
            self.maxima[site] = max(self.maxima.get(site, 0.0), float(v.max()) * 2.0**-frac)

    def sat(self, x, bits, site, counts, mask=None):
        """sat(x, bits) of SPEC §2.2, counting the clipped entries (only where `mask`) in `site`."""
        if self.probe:
            return x
        hi, lo = float((1 << (bits - 1)) - 1), float(-(1 << (bits - 1)))
        if x.size and (x.max() > hi or x.min() < lo):
            bad = (x > hi) | (x < lo)
            if mask is not None:
                bad &= mask
            n = int(np.count_nonzero(bad))
            if n:
                counts[site] = counts.get(site, 0) + n
            x = np.clip(x, lo, hi)
        return x

    @staticmethod
    def _count(counts, site, n):
        if n:
            counts[site] = counts.get(site, 0) + n

    # -- §5 forward -------------------------------------------------------------------
    def neighbours(self, coords, types, cell, nlist, shifts, counts=None) -> Neighbours:
        """§5.1: coords [N,3] (COORD), types [N], cell [3,3] (CELL), nlist [n,K] (−1 empty),
        shifts [n,K,3] (or broadcastable) -> relative coordinates, u and the in-range mask."""
        counts = {} if counts is None else counts
        M = self.M
        coords, cell = _f64(coords), _f64(cell)
        types = np.asarray(types, dtype=np.int64)
        nlist = np.asarray(nlist)
        n, K = nlist.shape
        nt = M.ntypes
        valid = nlist >= 0
        jj = np.where(valid, nlist, 0).astype(np.int64)
        sh = _f64(shifts)
        r = coords[jj] - coords[:n, None, :]
        for e in range(3):  # shifts·cell as three broadcasts (a batched 3x3 matmul is slower)
            r += sh[..., e : e + 1] * cell[e]
        inr = valid & (np.abs(r).max(axis=2) < R_LIM)
        r *= inr[..., None]  # empty and far slots: r = 0 (also keeps u below 2^53)
        u = r[..., 0] * r[..., 0] + r[..., 1] * r[..., 1] + r[..., 2] * r[..., 2]
        inr &= u < M.u_cut
        r *= inr[..., None]
        u *= inr
        ti = types[:n]
        tj = types[jj]
        code = np.where(inr, np.arange(n)[:, None] * nt + tj, n * nt)  # (atom, neighbour type) or a dump bin
        n_in = np.bincount(code.reshape(-1), minlength=n * nt + 1)[: n * nt].reshape(n, nt).astype(np.float64)
        over = np.any(n_in > self.sel[None, :], axis=1)
        return Neighbours(r=r, u=u, inr=inr, j=jj, ti=ti, tj=tj, n_in=n_in, overflow=over, counts=counts)

    def radial_tables(self, u, ti, inr, counts=None) -> Radial:
        """§5.2: u [n,K] (F_U), centre types ti [n], inr [n,K] -> s̃, q_s, h̃, q_h
        (counters: close_contact, s, h)."""
        counts = {} if counts is None else counts
        M = self.M
        u, ti, inr = _f64(u), np.asarray(ti, dtype=np.int64), np.asarray(inr, dtype=bool)
        seg = np.floor(u * 2.0 ** -(F_U - LU))
        tt = np.floor(u * 2.0 ** -(F_U - LU - TBITS)) - seg * 2.0**TBITS
        close = seg < M.k_lo
        self._count(counts, "close_contact", int(np.count_nonzero(close & inr)))
        seg = np.where(close, M.k_lo, seg).astype(np.int64)
        tau = np.where(close, 0.0, tt) * TSCALE
        vals = []
        for planes in self.tab.u:
            P = planes[ti[:, None], seg]  # [n, K, 6]
            i1 = np.floor(P[..., 0] * tau + P[..., 1])
            i2 = np.floor(i1 * tau + P[..., 2])
            y = np.floor(i2 * tau + P[..., 3])
            q1 = np.floor(P[..., 4] * tau + P[..., 5])
            q = np.where(close, 0.0, np.floor(q1 * tau + P[..., 2]))
            vals.append((y, q))
        (s, qs), (h, qh) = vals
        s = self.sat(s, DATA_BITS, "s", counts, mask=inr)
        h = self.sat(h, DATA_BITS, "h", counts, mask=inr)
        return Radial(s=s, qs=qs, h=h, qh=qh, counts=counts)

    def embedding(self, s, h, r, ti, tj, inr, counts=None) -> Embedding:
        """§5.3 R̃ and §5.4 G, G': s̃, h̃ [n,K], r [n,K,3], types ti [n], tj [n,K], inr [n,K]
        (counters: R, g_range, G, G_slope)."""
        counts = {} if counts is None else counts
        M, sh = self.M, self.sh
        s, h, r = _f64(s), _f64(h), _f64(r)
        ti, tj, inr = np.asarray(ti, dtype=np.int64), np.asarray(tj, dtype=np.int64), np.asarray(inr, dtype=bool)
        n, K = s.shape
        nt = M.ntypes
        R = np.empty((n, K, 4))
        R[..., 0] = np.where(inr, s, 0.0)
        R[..., 1:] = self.sat(rnd(h[..., None] * r, sh.R), DATA_BITS, "R", counts, mask=inr[..., None])
        x = s - M.s0
        gseg = np.floor(x * 2.0 ** -(F_S - LS))
        gt = x - gseg * 2.0 ** (F_S - LS)
        lo_clamp, hi_clamp = gseg < 0, gseg >= M.n_s
        gclamp = (lo_clamp | hi_clamp)
        ng = int(np.count_nonzero(gclamp & inr))
        self._count(counts, "g_range", ng)
        gseg = np.clip(gseg, 0, M.n_s - 1).astype(np.int64)
        gt = np.where(lo_clamp, 0.0, np.where(hi_clamp, float((1 << TBITS) - 1), gt))
        tab = tj if M.type_one_side else ti[:, None] * nt + tj
        rows = tab * M.n_s + gseg
        P = self.g_flat[rows]  # [n, K, 7, M1]
        gtau = (gt * TSCALE)[..., None]
        G = _horner(P[:, :, 0], gtau, P[:, :, 1])
        G = _horner(G, gtau, P[:, :, 2])
        G = _horner(G, gtau * 2.0**-sh.G, P[:, :, 3])
        Gq = _horner(P[:, :, 4], gtau, P[:, :, 5])
        Gq = _horner(Gq, gtau * 2.0**-sh.Gq, P[:, :, 6])
        # SPEC §5.4 order: saturate (and count) G' first, then zero it at clamped slots
        if not self.tab.g_in_range:
            G = self.sat(G, W_BITS, "G", counts, mask=inr[..., None])
            Gq = self.sat(Gq, W_BITS, "G_slope", counts, mask=inr[..., None])
        if ng:
            Gq[gclamp] = 0.0
        return Embedding(R=R, G=G, Gq=Gq, g_clamped=gclamp & inr, counts=counts)

    def descriptor(self, R, G, ti, n_in, counts=None) -> Descriptor:
        """§5.5 T (with the padded-slot constants) and §5.6 D: R [n,K,4], G [n,K,M1] (0 or
        don't-care where R = 0), ti [n], n_in [n,ntypes] (counters: T, D)."""
        counts = {} if counts is None else counts
        M, sh = self.M, self.sh
        R, G, n_in = _f64(R), _f64(G), _f64(n_in)
        ti = np.asarray(ti, dtype=np.int64)
        n, m1, m2 = R.shape[0], M.m1, M.m2
        t_acc = np.matmul(R.transpose(0, 2, 1), G)  # [n, 4, M1]
        npad = np.maximum(self.sel[None, :] - n_in, 0.0)  # [n, nt]
        t_acc[:, 0, :] += np.einsum("nt,ntm->nm", npad, self.pad[ti])
        self.note("T", t_acc, F_S + sh.F_G)
        T = self.sat(rnd(t_acc, sh.T), W_BITS, "T", counts)
        Dm = np.matmul(T.transpose(0, 2, 1), T[:, :, :m2])  # [n, M1, M2]
        self.note("D", Dm, 2 * M.frac["T"])
        D = self.sat(rnd(Dm, sh.D), DATA_BITS, "D", counts).reshape(n, m1 * m2)
        return Descriptor(T=T, D=D, counts=counts)

    # -- §6 fitting net -----------------------------------------------------------------
    def tanh_unit(self, z, counts):
        """§6.2: z (F_Z) -> (tanh F_A, tanh' F_DT saturated to 18 bits; counter tanh_slope)."""
        mag = np.abs(z)
        seg = np.floor(mag * 2.0 ** -(F_Z - LT))
        planes = self.tab.tanh
        nseg = planes.shape[0]
        beyond = seg >= nseg
        segc = np.minimum(seg, nseg - 1).astype(np.int64)
        tau = (mag - seg * 2.0 ** (F_Z - LT)) * TSCALE
        P = planes[segc]
        i1 = np.floor(P[..., 0] * tau + P[..., 1])
        i2 = np.floor(i1 * tau + P[..., 2])
        th = np.floor(i2 * (tau * 2.0**-self.sh.tanh) + P[..., 3])
        q1 = np.floor(P[..., 4] * tau + P[..., 5])
        dt = np.floor(q1 * (tau * 2.0**-self.sh.dtanh) + P[..., 6])
        th = np.where(beyond, self.tab.t_end, th)
        dt = self.sat(np.where(beyond, 0.0, dt), W_BITS, "tanh_slope", counts)
        return np.where(z < 0, -th, th), dt

    def fitting_forward(self, D, ti, counts=None) -> FittingForward:
        """§6 per centre type: D [n, M1·M2] (frac D), ti [n] -> atom energies and each hidden
        layer's z, output and tanh' (counters: z, tanh_slope, x)."""
        counts = {} if counts is None else counts
        M = self.M
        X, ti = _f64(D), np.asarray(ti, dtype=np.int64)
        n, nl = X.shape[0], len(M.layers) - 1
        widths = [self.layers[l]["w"].shape[2] for l in range(nl)]
        atom_e = np.zeros(n)
        zs, xs, dts = ([np.zeros((n, w)) for w in widths] for _ in range(3))
        for t in range(M.ntypes):
            idx = np.nonzero(ti == t)[0]
            if idx.size == 0:
                continue
            x, fx = X[idx], M.frac["D"]
            for l in range(nl):
                L, layer = self.layers[l], M.layers[l]
                acc = x @ L["w"][t]
                z = self.sat(rnd(acc, fx + L["e"][t] - F_Z) + L["b"][t], DATA_BITS, "z", counts)
                th, dt = self.tanh_unit(z, counts)
                y = rnd(th * L["idt"][t], layer.f_idt) if L["idt"] is not None else th
                x = self.sat(y + _shortcut(layer.shortcut, x, fx - F_A), DATA_BITS, "x", counts)
                fx = F_A
                zs[l][idx], xs[l][idx], dts[l][idx] = z, x, dt
            Lf = self.layers[-1]
            wf, ef = Lf["w"][t][:, 0], float(Lf["e"][t][0])
            atom_e[idx] = rnd(x @ wf, fx + ef - F_E) + float(M.e_const[t])
        return FittingForward(energy=atom_e, z=zs, x=xs, dtanh=dts, counts=counts)

    # -- §7 backward --------------------------------------------------------------------
    def _g_top(self, t, rows, counts):
        """§7.1 start: the constant gradient at the final layer's input for centre type t; a
        clip there is counted once per atom, as the reference does."""
        M, nl = self.M, len(self.M.layers) - 1
        wf, ef = self.layers[-1]["w"][t][:, 0], float(self.layers[-1]["e"][t][0])
        self.note(f"g{nl}", wf, ef)
        if self.probe:
            return rnd(wf, ef - M.f_g[nl])
        g, clips = self.seeds[t]
        self._count(counts, "g", clips * rows)
        return g

    def fitting_backward(self, dtanh, ti, counts=None) -> FittingBackward:
        """§7.1 per centre type: tanh' of every hidden layer (list of [n, width], F_DT), ti [n]
        -> gD (counter: g)."""
        counts = {} if counts is None else counts
        M = self.M
        ti = np.asarray(ti, dtype=np.int64)
        dtanh = [_f64(d) for d in dtanh]
        n, nl = ti.shape[0], len(M.layers) - 1
        gX = np.zeros((n, M.m1 * M.m2))
        for t in range(M.ntypes):
            idx = np.nonzero(ti == t)[0]
            if idx.size == 0:
                continue
            g = self._g_top(t, idx.size, counts)
            g = np.broadcast_to(g, (idx.size, g.size))
            for l in range(nl - 1, -1, -1):
                L, layer = self.layers[l], M.layers[l]
                gth = rnd(g * L["idt"][t], layer.f_idt) if L["idt"] is not None else g
                gz = rnd(gth * dtanh[l][idx], F_DT)
                e = L["e"][t]
                emin = float(e.min())
                acc = rnd(gz, e - emin) @ L["w"][t].T
                back = _shortcut_grad(layer.shortcut, g, L["w"][t].shape[0], M.f_g[l + 1] - M.f_g[l])
                g = rnd(acc, M.f_g[l + 1] + emin - M.f_g[l]) + back
                self.note(f"g{l}", g, M.f_g[l])
                g = self.sat(g, DATA_BITS, "g", counts)
            gX[idx] = g
        return FittingBackward(gD=gX, counts=counts)

    def descriptor_backward(self, gD, T, R, G, Gq, r, h, qs, qh, inr, counts=None) -> PairGradients:
        """§7.2: gD [n, M1·M2], T [n,4,M1], and per slot R [n,K,4], G, G' [n,K,M1], r [n,K,3],
        h̃, q_s, q_h [n,K], inr [n,K] -> gT, gTs and every slot's chain down to its pair force
        (counters: gT, gT18, gR, gG, gs, gh, gu, pair_force)."""
        counts = {} if counts is None else counts
        M, sh, fr = self.M, self.sh, self.M.frac
        gD, T, R, G, Gq = _f64(gD), _f64(T), _f64(R), _f64(G), _f64(Gq)
        r, h, qs, qh, inr = _f64(r), _f64(h), _f64(qs), _f64(qh), np.asarray(inr, dtype=bool)
        n, K = inr.shape
        m1, m2 = M.m1, M.m2
        gD = gD.reshape(n, m1, m2)
        gT_acc = np.matmul(T[:, :, :m2], gD.transpose(0, 2, 1))  # [n, 4, M1]: Σ_a2 gD[m,a2] T[a,a2]
        gT_acc[:, :, :m2] += np.matmul(T, gD)  # Σ_m' T[a,m'] gD[m',m] for m < M2
        self.note("gT", gT_acc, M.f_g[0] + fr["T"])
        gT = self.sat(rnd(gT_acc, sh.gT), DATA_BITS, "gT", counts)
        gTs = self.sat(rnd(gT, sh.gTs), W_BITS, "gT18", counts)
        m3 = inr[..., None]
        acc = np.matmul(G, gT.transpose(0, 2, 1))
        self.note("gR", acc, fr["gT"] + sh.F_G, m3)
        gR = _rnd_inplace(acc, sh.gR)
        acc = np.matmul(R, gTs)
        self.note("gG", acc, fr["gT"] - sh.gTs + F_S, m3)
        gG = self.sat(_rnd_inplace(acc, sh.gG), DATA_BITS, "gG", counts, mask=m3)
        # Σ_m gG·G' as a BLAS matrix-vector product (exact: integer partial sums < 2^53)
        gG_Gq = (np.multiply(gG, Gq).reshape(-1, m1) @ self.ones_m1).reshape(n, K)
        gR = self.sat(gR, DATA_BITS, "gR", counts, mask=m3)
        gs = rnd(gG_Gq, sh.gs_G) + rnd(gR[..., 0], sh.gs_R)
        self.note("gs", gs, fr["gs"], inr)
        gs = self.sat(gs, DATA_BITS, "gs", counts, mask=inr)
        acc = (gR[..., 1:] * r).sum(axis=2)
        self.note("gh", acc, fr["gR"] + F_COORD, inr)
        gh = self.sat(rnd(acc, sh.gh), DATA_BITS, "gh", counts, mask=inr)
        gu = rnd(gs * qs, sh.gu_s) + rnd(gh * qh, sh.gu_h)
        self.note("gu", gu, fr["gu"], inr)
        gu = self.sat(gu, DATA_BITS, "gu", counts, mask=inr)
        f = rnd(2.0 * gu[..., None] * r, sh.f_u) + rnd(gR[..., 1:] * h[..., None], sh.f_R)
        f = np.where(m3, f, 0.0)
        self.note("p", f, fr["p"])
        f = self.sat(f, DATA_BITS, "pair_force", counts)
        return PairGradients(gT=gT, gTs=gTs, gR=gR, gG=gG, gs=gs, gh=gh, gu=gu, f=f, counts=counts)

    def forces_virial(self, f, r, j, counts=None) -> Assembly:
        """§7.3: pair forces f [n,K,3] (fraction p, 0 outside inr), r [n,K,3], neighbour index
        j [n,K] (N = n atoms) -> forces and virial (counter: force)."""
        counts = {} if counts is None else counts
        f, r = _f64(f), _f64(r)
        jj = np.asarray(j, dtype=np.int64)
        n = r.shape[0]
        F = f.sum(axis=1)
        jflat = jj.reshape(-1)
        for d in range(3):
            F[:, d] -= np.bincount(jflat, weights=f[..., d].reshape(-1), minlength=n)
        r18 = rnd(r, self.sh.r18)
        vir_i = np.matmul(r18.transpose(0, 2, 1), f)  # [n, 3, 3]: Σ r_d0 f_d1
        virial = -rnd(vir_i, self.sh.V).sum(axis=0)
        forces = self.sat(rnd(F, self.sh.F), 32, "force", counts)
        return Assembly(forces=forces, virial=virial, counts=counts)

    # -- all stages ---------------------------------------------------------------------
    def evaluate(self, coords, types, cell, nlist, shifts):
        """(atom_e [N], forces [N,3], virial [3,3], counts {site: n}, overflow atoms): §5–§7."""
        c: dict[str, int] = {}
        nb = self.neighbours(coords, types, cell, nlist, shifts, c)
        rad = self.radial_tables(nb.u, nb.ti, nb.inr, c)
        emb = self.embedding(rad.s, rad.h, nb.r, nb.ti, nb.tj, nb.inr, c)
        dsc = self.descriptor(emb.R, emb.G, nb.ti, nb.n_in, c)
        fwd = self.fitting_forward(dsc.D, nb.ti, c)
        bwd = self.fitting_backward(fwd.dtanh, nb.ti, c)
        pg = self.descriptor_backward(bwd.gD, dsc.T, emb.R, emb.G, emb.Gq, nb.r, rad.h, rad.qs, rad.qh, nb.inr, c)
        out = self.forces_virial(pg.f, nb.r, nb.j, c)
        return fwd.energy, out.forces, out.virial, c, int(np.count_nonzero(nb.overflow))


def _rnd_inplace(x, k):
    x *= 2.0**-k
    x += 0.5
    return np.floor(x, out=x)


def _horner(p, tau, plane):
    """floor(p * tau + plane) with one temporary (the Horner step of SPEC §4, rounding folded in)."""
    out = np.multiply(p, tau)
    out += plane
    return np.floor(out, out=out)


def _shortcut(kind, x, shift):
    if kind == "identity":
        return rnd(x, shift)
    if kind == "concat":
        return rnd(np.concatenate([x, x], axis=-1), shift)
    return 0.0


def _shortcut_grad(kind, g, nin, shift):
    if kind == "identity":
        return rnd(g, shift)
    if kind == "concat":
        return rnd(g[:, :nin] + g[:, nin:], shift)
    return 0.0
