"""nvq1 fast kernel: the SPEC.md datapath vectorised over all atoms and neighbour slots.

Every quantity is an integer held in float64. SPEC.md bounds every product and partial sum
below 2^53, so numpy's float64 arithmetic and BLAS (any summation order, FMA or not) give the
exact integers, and `floor(x * 2^-k + 0.5)` is the round-half-up shift of the spec. Cubic
Horner steps fold the rounding constant into precomputed coefficient planes
(rnd(a*t)+b = floor(a*t*2^-17 + b + 0.5)), and a rounding to a narrower format that follows
a cubic is fused into its last step (floor(floor(x)/2^k) = floor(x/2^k)); both are exact
identities, checked bit for bit against ref.py by the tests.

When a C compiler is available (ckernel.py), `compute` is one C call instead: atoms sorted
by type are taken in blocks of 36 of one centre type; per block one sweep over the neighbour
slots for §5 (tables, R̃, T, D), the fitting net forward and backward with its GEMMs in the
kernel's own AVX tiles on weights packed once here (scipy's dgemm through its C API, or plain
C loops, as other routes) and the elementwise steps in C, then one sweep for §7.2-7.3 — the same exact float64 steps, with a block's per-slot data
still in cache for the backward sweep. Scratch arrays are cached per (atoms, slots, atoms per
type), so a kernel object must not be shared between threads. `use_c=False` keeps everything
in numpy (the tests compare all routes with each other and with the reference).

`probe=True` (used by the quantizer's calibration) turns saturation off and records the
largest magnitude reached at every calibrated site instead.
"""

from __future__ import annotations

import numpy as np

from nvnmd.sim.nvq1 import ckernel
from nvnmd.sim.nvq1.sites import SITES
from nvnmd.sim.nvq1.model import (
    DATA_BITS, F_A, F_COORD, F_DT, F_E, F_F, F_R18, F_S, F_TANH, F_U, F_V, F_Z, LS, LT, LU, MAX_M1, MAX_NEIGHBORS,
    MAX_TYPES, MAX_WIDTH, R_LIM, SHORT_SHIFT, TBITS, W_BITS, Nvq1Model, hermite_coefficients,
)

TSCALE = 2.0**-TBITS


def rnd(x, k):
    """floor(x * 2^-k + 0.5): SPEC §2.2 rounding (k ≤ 0 is an exact left shift)."""
    scale = 2.0 ** -float(k) if np.ndim(k) == 0 else np.exp2(-np.asarray(k, dtype=np.float64))
    if np.ndim(x) == 0 and np.ndim(scale) == 0:
        return np.floor(x * scale + 0.5)
    y = np.multiply(x, scale)
    y += 0.5
    return np.floor(y, out=y)


class FastKernel:
    def __init__(self, M: Nvq1Model, probe: bool = False, use_c: bool = True, use_blas: bool = True,
                 threads: int = 1):
        self.M, self.probe, self.use_blas = M, probe, use_blas
        self.threads = threads  # of the C pass (same bits for any count)
        self.maxima: dict[str, float] = {}
        f = np.float64
        # u tables: planes [nt, N_u, 6] per function: A, B, C, D, A3, B2 (C reused for slope)
        self.u_planes = []
        for fn in (0, 2):
            a, b, c, d = (v.astype(f) for v in hermite_coefficients(M.u_tab[:, fn], M.u_tab[:, fn + 1], axis=1))
            self.u_planes.append(np.stack([a, b + 0.5, c + 0.5, d + 0.5, 3 * a, 2 * b + 0.5], axis=-1))
        self.u_planes_c = [np.ascontiguousarray(p) for p in self.u_planes]
        # G tables: [ntab, N_s, 7, M1]: A, B, C, D9, A3, B2, C9 (the 9-bit rounding to 18 bits fused)
        a, b, c, d = (v.astype(f) for v in hermite_coefficients(M.g_tab[:, 0], M.g_tab[:, 1], axis=1))
        kq = M.frac["Gq"]
        self.g_planes = np.ascontiguousarray(
            np.stack([a, b + 0.5, c + 0.5, _fused(d, SHORT_SHIFT), 3 * a, 2 * b + 0.5, _fused(c, kq)], axis=2))
        ntab, ns = self.g_planes.shape[:2]
        self.ones_m1 = np.ones(M.m1)
        # the C pass's fixed-size arrays (board limits) and at least one hidden layer
        within = (M.m1 <= MAX_M1 and M.ntypes <= MAX_TYPES and 2 <= len(M.layers) <= 17
                  and max(layer.w.shape[2] for layer in M.layers) <= MAX_WIDTH)
        self.clib = None if (probe or not use_c or not within) else ckernel.get()
        # |y| ≤ |a|+|b|+|c|+|d| + 3 (one unit per rounding) bounds every cubic output of a segment;
        # when that already fits 18 bits after the shift, G and G' cannot saturate and the
        # per-call range checks are skipped (the reference kernel still checks; counts stay 0).
        lim = float((1 << (W_BITS - 1)) - 1)
        bound_g = (np.abs(a) + np.abs(b) + np.abs(c) + np.abs(d) + 3) * 2.0**-SHORT_SHIFT + 1
        bound_q = (3 * np.abs(a) + 2 * np.abs(b) + np.abs(c) + 2) * 2.0 ** -M.frac["Gq"] + 1
        self.g_in_range = bool(bound_g.max() <= lim and bound_q.max() <= lim)
        self.g_flat = self.g_planes.reshape(ntab * ns, 7, M.m1)
        # tanh: value rounded F_TANH -> F_A and slope rounded to F_DT fused in the last step
        a, b, c, d = (v.astype(f) for v in hermite_coefficients(M.tanh_tab[0], M.tanh_tab[1], axis=0))
        kv, kq = F_TANH - F_A, F_TANH - LT - F_DT
        self.t_planes = np.stack([a, b + 0.5, c + 0.5, _fused(d, kv), 3 * a, 2 * b + 0.5, _fused(c, kq)], axis=-1)
        self.t_planes_c = np.ascontiguousarray(self.t_planes)
        self.t_end = float(np.floor((M.tanh_tab[0, -1] + 2.0 ** (kv - 1)) * 2.0**-kv))
        self.layers = []
        for layer in M.layers:
            self.layers.append(dict(w=layer.w.astype(f), e=layer.e.astype(f),
                                    b=layer.b.astype(f), idt=None if layer.idt is None else layer.idt.astype(f)))
        self.pad = M.pad.astype(f)
        self.sel = np.asarray(M.sel, dtype=f)
        if self.clib is not None:
            self._setup_c()

    # -- helpers ------------------------------------------------------------------
    def _g_top(self, t, rows, counts):
        """§7.1 start: the constant gradient at the final layer's input for centre type t; a
        clip there is counted once per atom, as the reference does."""
        M, nl = self.M, len(self.M.layers) - 1
        wf, ef = self.layers[-1]["w"][t][:, 0], float(self.layers[-1]["e"][t][0])
        self.note(f"g{nl}", wf, ef)
        once: dict[str, int] = {}
        g = self.sat(rnd(wf, ef - M.f_g[nl]), DATA_BITS, "g", once)
        if once:
            counts["g"] = counts.get("g", 0) + once["g"] * rows
        return g

    def note(self, site, x, frac, mask=None):
        """Probe mode: remember the largest |value| (x holds codes at `frac`)."""
        if self.probe and x.size:
            v = np.abs(x if mask is None else np.where(mask, x, 0.0))
            self.maxima[site] = max(self.maxima.get(site, 0.0), float(v.max()) * 2.0**-frac)

    def sat(self, x, bits, site, counts, mask=None):
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

    def compute(self, coords, types, cell, nlist, shifts):
        if self.clib is not None and np.shape(nlist)[-1] <= MAX_NEIGHBORS:  # the C pass's slot arrays
            return self._compute_c(coords, types, cell, nlist, shifts)
        M, fr = self.M, self.M.frac
        counts: dict[str, int] = {}
        F_h, F_Gt, F_T, F_D = fr["h"], fr["Gt"], fr["T"], fr["D"]
        F_G = F_Gt - SHORT_SHIFT
        coords = np.asarray(coords, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64)
        types = np.asarray(types, dtype=np.int64)
        nlist = np.asarray(nlist)
        n, K = nlist.shape
        nt, m1, m2 = M.ntypes, M.m1, M.m2
        valid = nlist >= 0
        jj = np.where(valid, nlist, 0).astype(np.int64)
        # §5.1 relative coordinates, in-range test, u
        sh = np.asarray(shifts, dtype=np.float64)
        r = coords[jj] - coords[:, None, :]
        for e in range(3):  # shifts·cell as three broadcasts (a batched 3x3 matmul is slower)
            r += sh[..., e : e + 1] * cell[e]
        inr = valid & (np.abs(r).max(axis=2) < R_LIM)
        r *= inr[..., None]  # empty and far slots: r = 0 (also keeps u below 2^53)
        u = r[..., 0] * r[..., 0] + r[..., 1] * r[..., 1] + r[..., 2] * r[..., 2]
        inr &= u < M.u_cut
        r *= inr[..., None]
        u *= inr
        ti = types
        tj = types[jj]
        code = np.where(inr, np.arange(n)[:, None] * nt + tj, n * nt)  # (atom, neighbour type) or a dump bin
        n_in = np.bincount(code.reshape(-1), minlength=n * nt + 1)[: n * nt].reshape(n, nt).astype(np.float64)
        over = np.any(n_in > self.sel[None, :], axis=1)
        # §5.2 u tables
        s, qs, h, qh = self._u_eval(u, ti, inr, counts)
        s = self.sat(s, DATA_BITS, "s", counts, mask=inr)
        h = self.sat(h, DATA_BITS, "h", counts, mask=inr)
        # §5.3 R̃
        R = np.empty((n, K, 4))
        R[..., 0] = np.where(inr, s, 0.0)
        R[..., 1:] = self.sat(rnd(h[..., None] * r, F_h + F_COORD - F_S), DATA_BITS, "R", counts, mask=inr[..., None])
        # §5.4 G tables
        x = s - M.s0
        gseg = np.floor(x * 2.0 ** -(F_S - LS))
        gt = x - gseg * 2.0 ** (F_S - LS)
        lo_clamp, hi_clamp = gseg < 0, gseg >= M.n_s
        gclamp = (lo_clamp | hi_clamp)
        ng = int(np.count_nonzero(gclamp & inr))
        if ng:
            counts["g_range"] = ng
        gseg = np.clip(gseg, 0, M.n_s - 1).astype(np.int64)
        gt = np.where(lo_clamp, 0.0, np.where(hi_clamp, float((1 << TBITS) - 1), gt))
        tab = tj if M.type_one_side else ti[:, None] * nt + tj
        rows = tab * M.n_s + gseg
        P = self.g_flat[rows]  # [n, K, 7, M1]
        gtau = (gt * TSCALE)[..., None]
        G = _horner(P[:, :, 0], gtau, P[:, :, 1])
        G = _horner(G, gtau, P[:, :, 2])
        G = _horner(G, gtau * 2.0**-SHORT_SHIFT, P[:, :, 3])
        Gq = _horner(P[:, :, 4], gtau, P[:, :, 5])
        Gq = _horner(Gq, gtau * 2.0 ** -fr["Gq"], P[:, :, 6])
        # SPEC §5.4 order: saturate (and count) G' first, then zero it at clamped slots
        if not self.g_in_range:
            G = self.sat(G, W_BITS, "G", counts, mask=inr[..., None])
            Gq = self.sat(Gq, W_BITS, "G_slope", counts, mask=inr[..., None])
        if ng:
            Gq[gclamp] = 0.0
        # §5.5 T accumulation with the padded-slot constants
        t_acc = np.matmul(R.transpose(0, 2, 1), G)  # [n, 4, M1]
        npad = np.maximum(self.sel[None, :] - n_in, 0.0)  # [n, nt]
        t_acc[:, 0, :] += np.einsum("nt,ntm->nm", npad, self.pad[ti])
        self.note("T", t_acc, F_S + F_G)
        T = self.sat(rnd(t_acc, F_S + F_G - F_T), W_BITS, "T", counts)
        # §5.6 D
        Dm = np.matmul(T.transpose(0, 2, 1), T[:, :, :m2])  # [n, M1, M2]
        self.note("D", Dm, 2 * F_T)
        X = self.sat(rnd(Dm, 2 * F_T - F_D), DATA_BITS, "D", counts).reshape(n, m1 * m2)
        # §6 fitting net, per centre type
        atom_e = np.zeros(n)
        gX = np.zeros((n, m1 * m2))
        nl = len(M.layers) - 1
        for t in range(nt):
            idx = np.nonzero(ti == t)[0]
            if idx.size == 0:
                continue
            x, fx, saved = X[idx], F_D, []
            for l in range(nl):
                L, layer = self.layers[l], M.layers[l]
                acc = x @ L["w"][t]
                z = self.sat(rnd(acc, fx + L["e"][t] - F_Z) + L["b"][t], DATA_BITS, "z", counts)
                th, dt = self._tanh(z, counts)
                y = rnd(th * L["idt"][t], layer.f_idt) if L["idt"] is not None else th
                saved.append(dt)
                x = self.sat(y + _shortcut(layer.shortcut, x, fx - F_A), DATA_BITS, "x", counts)
                fx = F_A
            Lf = self.layers[-1]
            wf, ef = Lf["w"][t][:, 0], float(Lf["e"][t][0])
            atom_e[idx] = rnd(x @ wf, fx + ef - F_E) + float(M.e_const[t])
            # §7.1 backward through the fitting net
            g = np.broadcast_to(self._g_top(t, idx.size, counts), (idx.size, wf.size))
            for l in range(nl - 1, -1, -1):
                L, layer = self.layers[l], M.layers[l]
                gth = rnd(g * L["idt"][t], layer.f_idt) if L["idt"] is not None else g
                gz = rnd(gth * saved[l], F_DT)
                e = L["e"][t]
                emin = float(e.min())
                acc = rnd(gz, e - emin) @ L["w"][t].T
                back = _shortcut_grad(layer.shortcut, g, L["w"][t].shape[0], M.f_g[l + 1] - M.f_g[l])
                g = rnd(acc, M.f_g[l + 1] + emin - M.f_g[l]) + back
                self.note(f"g{l}", g, M.f_g[l])
                g = self.sat(g, DATA_BITS, "g", counts)
            gX[idx] = g
        # §7.2 descriptor backward
        gD = gX.reshape(n, m1, m2)
        gT_acc = np.matmul(T[:, :, :m2], gD.transpose(0, 2, 1))  # [n, 4, M1]: Σ_a2 gD[m,a2] T[a,a2]
        gT_acc[:, :, :m2] += np.matmul(T, gD)  # Σ_m' T[a,m'] gD[m',m] for m < M2
        self.note("gT", gT_acc, M.f_g[0] + F_T)
        gT = self.sat(rnd(gT_acc, M.f_g[0] + F_T - fr["gT"]), DATA_BITS, "gT", counts)
        gTs = self.sat(rnd(gT, SHORT_SHIFT), W_BITS, "gT18", counts)
        m3 = inr[..., None]
        k_gr = fr["gT"] + F_G - fr["gR"]
        k_gg = fr["gT"] - SHORT_SHIFT + F_S - fr["gG"]
        acc = np.matmul(G, gT.transpose(0, 2, 1))
        self.note("gR", acc, fr["gT"] + F_G, m3)
        gR = _rnd_inplace(acc, k_gr)
        acc = np.matmul(R, gTs)
        self.note("gG", acc, fr["gT"] - SHORT_SHIFT + F_S, m3)
        gG = self.sat(_rnd_inplace(acc, k_gg), DATA_BITS, "gG", counts, mask=m3)
        # Σ_m gG·G' as a BLAS matrix-vector product (exact: integer partial sums < 2^53)
        gG_Gq = (np.multiply(gG, Gq, out=Gq).reshape(-1, m1) @ self.ones_m1).reshape(n, K)
        gR = self.sat(gR, DATA_BITS, "gR", counts, mask=m3)
        F, vir_i = self._pair_force(jj, r, h, qs, qh, gR, gG_Gq, inr, counts)
        virial = -rnd(vir_i, fr["p"] + F_R18 - F_V).sum(axis=0)
        forces = self.sat(rnd(F, fr["p"] - F_F), 32, "force", counts)
        return atom_e, forces, virial, counts, int(np.count_nonzero(over))

    # -- fused C path ---------------------------------------------------------------
    BLOCK = 36  # atoms per block of the C pass: their per-slot G, G' stay in cache; 6 tiles of the GEMM's 6 rows

    def _setup_c(self):
        """Per-image constants of the C pass: table pointers, fractions as scales, the fitting
        layers per centre type, and BLAS dgemm (scipy's, through its C API) for the GEMMs."""
        ffi, _ = self.clib
        M, fr = self.M, self.M.frac
        F_G = fr["Gt"] - SHORT_SHIFT
        keep = self._c_keep = []  # arrays the C structs point into

        def ptr(a, ty="double *"):
            a = np.ascontiguousarray(a, dtype=np.float64) if ty == "double *" else a
            keep.append(a)
            return ffi.cast(ty, a.ctypes.data)

        def packed(w):  # the C pass's own GEMM reads the weights in its panel layout (nvq1_pack)
            if not self.use_blas:
                return ffi.NULL
            out = np.empty(self.clib[1].nvq1_packed_doubles(*w.shape))
            self.clib[1].nvq1_pack(ptr(w), *w.shape, ptr(out))
            return ptr(out)

        P = self._fwd = ffi.new("nvq1_fwd_params *")
        P.nt, P.m1, P.m2, P.n_u, P.k_lo, P.n_s = M.ntypes, M.m1, M.m2, M.n_u, M.k_lo, M.n_s
        P.type_one_side, P.u_cut, P.s0 = int(M.type_one_side), int(M.u_cut), int(M.s0)
        P.s_R = 2.0 ** -(fr["h"] + F_COORD - F_S)
        P.s_tg, P.s_tq = 2.0**-SHORT_SHIFT, 2.0 ** -fr["Gq"]
        P.s_T, P.s_D = 2.0 ** -(F_S + F_G - fr["T"]), 2.0 ** -(2 * fr["T"] - fr["D"])
        P.ups, P.uph = ptr(self.u_planes_c[0]), ptr(self.u_planes_c[1])
        # G planes A, B+.5, C+.5, D9; the C pass derives 3A, 2B+.5 and C9 = (C+.5 + c9_off)·c9_sc,
        # the same values as _fused(C, Gq)
        P.gplanes = ptr(self.g_planes[:, :, :4])
        P.c9_off, P.c9_sc = (2.0 ** (fr["Gq"] - 1), 2.0 ** -fr["Gq"]) if fr["Gq"] > 0 else (0.0, 1.0)
        P.pad, P.sel = ptr(self.pad), ptr(self.sel)
        B = self._bwd = ffi.new("nvq1_bwd_params *")
        B.m1, B.m2 = M.m1, M.m2
        k = dict(s_gT=M.f_g[0] + fr["T"] - fr["gT"], s_gr=fr["gT"] + F_G - fr["gR"],
                 s_gg=fr["gT"] - SHORT_SHIFT + F_S - fr["gG"], s_gs0=fr["gG"] + fr["Gt"] - fr["Gq"] - LS - fr["gs"],
                 s_gs1=fr["gR"] - fr["gs"], s_gh=fr["gR"] + F_COORD - fr["gh"], s_gu0=fr["gs"] + F_S - LU - fr["gu"],
                 s_gu1=fr["gh"] + fr["h"] - LU - fr["gu"], s_f0=fr["gu"] + F_COORD - fr["p"],
                 s_f1=fr["gR"] + fr["h"] - fr["p"], s_r18=F_COORD - F_R18, s_v=fr["p"] + F_R18 - F_V,
                 s_F=fr["p"] - F_F)
        for name, shift in k.items():
            setattr(B, name, 2.0 ** -shift)
        # fitting layers: per layer and centre type the GEMM operands and the scales of §6.1/§7.1
        Fp = self._fitp = ffi.new("nvq1_fit_params *")
        Fp.nl, Fp.m1, Fp.m2, Fp.blk = len(M.layers) - 1, M.m1, M.m2, self.BLOCK
        fx = fr["D"]
        for l, (L, layer) in enumerate(zip(self.layers[:-1], M.layers[:-1])):
            Fp.nin[l], Fp.nout[l] = L["w"].shape[1], L["w"].shape[2]
            Fp.kind[l] = {"none": 0, "identity": 1, "concat": 2}[layer.shortcut]
            Fp.s_sc[l], Fp.s_gsc[l] = 2.0 ** -(fx - F_A), 2.0 ** -(M.f_g[l + 1] - M.f_g[l])
            Fp.s_idt[l] = 1.0 if L["idt"] is None else 2.0**-layer.f_idt  # no idt: I = 1, rnd(th, 0) = th
            for t in range(M.ntypes):
                e = L["e"][t]
                emin = float(e.min())
                Fp.w[l][t], Fp.wt[l][t] = ptr(L["w"][t]), ptr(L["w"][t].T)
                Fp.wp[l][t], Fp.wtp[l][t] = packed(L["w"][t]), packed(L["w"][t].T)
                Fp.zs[l][t], Fp.b[l][t] = ptr(np.exp2(-(fx + e - F_Z))), ptr(L["b"][t])
                Fp.idt[l][t] = ptr(np.ones(Fp.nout[l]) if L["idt"] is None else L["idt"][t])
                Fp.s_col[l][t] = ptr(np.exp2(-(e - emin)))
                Fp.s_acc[l][t] = 2.0 ** -(M.f_g[l + 1] + emin - M.f_g[l])
            fx = F_A
        final = self.layers[-1]
        for t in range(M.ntypes):
            Fp.wf[t] = ptr(final["w"][t][:, 0])
            Fp.s_e[t], Fp.e_const[t] = 2.0 ** -(fx + float(final["e"][t][0]) - F_E), float(M.e_const[t])
            # §7.1 start: the constant gradient at the final layer's input, and its clip count
            once: dict[str, int] = {}
            Fp.gtop[t] = ptr(self._g_top(t, 1, once))
            Fp.gtop_clip[t] = once.get("g", 0)
        Fp.tplanes, Fp.nseg, Fp.t_end = ptr(self.t_planes_c), self.t_planes_c.shape[0], self.t_end
        Fp.s_th, Fp.s_dt = 2.0 ** -(F_TANH - F_A), 2.0 ** -(F_TANH - LT - F_DT)
        Fp.dgemm = _scipy_dgemm(ffi) if self.use_blas else ffi.NULL
        self._plan_key = None

    def _plan(self, n, K, bounds):
        """Scratch arrays and the atom blocks for one (atoms, slots, atoms per type) shape, reused
        between calls (so a kernel object must not be shared between threads)."""
        key = (n, K, bounds, self.threads)
        if self._plan_key == key:
            return self._plan_val
        ffi, lib = self.clib
        M, Fp, blk = self.M, self._fitp, self.BLOCK
        Fp.K = K
        self._fwd.n, self._fwd.K = n, K
        lo = [a for t in range(M.ntypes) for a in range(bounds[t], bounds[t + 1], blk)]
        hi = [min(a + blk, bounds[t + 1]) for t in range(M.ntypes) for a in range(bounds[t], bounds[t + 1], blk)]
        pl = dict(work=np.empty(lib.nvq1_work_doubles(self._fwd, Fp, self.threads)), lo=np.array(lo, np.int64),
                  hi=np.array(hi, np.int64), cnt=np.zeros(ckernel.NSLOTS, np.int64), virial=np.empty((3, 3)))
        p = {k: ffi.cast("double *" if v.dtype == np.float64 else "long long *", v.ctypes.data) for k, v in pl.items()}
        pl["args"] = (len(lo), p["lo"], p["hi"], self.threads, p["work"])
        pl["cnt_p"], pl["virial_p"] = p["cnt"], p["virial"]
        self._plan_key, self._plan_val = key, pl
        return pl

    def _compute_c(self, coords, types, cell, nlist, shifts):
        ffi, lib = self.clib
        M = self.M
        types = np.ascontiguousarray(types, dtype=np.int64)
        coords = np.ascontiguousarray(coords, dtype=np.int64)
        cell = np.ascontiguousarray(cell, dtype=np.int64)
        nlist = np.ascontiguousarray(nlist, dtype=np.int32)
        n, K = nlist.shape
        shifts = np.ascontiguousarray(np.broadcast_to(shifts, (n, K, 3)), dtype=np.int8)
        # the C pass indexes with these unchecked (Nvq1Simulator refuses such requests earlier)
        if (nlist.size and nlist.max() >= n) or (n and (types.min() < 0 or types.max() >= M.ntypes)):
            raise IndexError("neighbour index or atom type out of range")
        # atoms sorted by type: every block of the C pass has one centre type (one set of weights)
        per = np.bincount(types, minlength=M.ntypes)
        pl = self._plan(n, K, (0, *np.cumsum(per).tolist()))
        order = np.argsort(types, kind="stable")
        cnt = pl["cnt"]
        cnt[:] = 0
        self._fwd.n, self._fwd.K, self._bwd.n, self._bwd.K = n, K, n, K
        atom_e, forces = np.empty(n), np.empty((n, 3))
        lp = lambda a: ffi.cast("long long *", a.ctypes.data)  # noqa: E731
        lib.nvq1_compute(self._fwd, self._bwd, self._fitp, lp(coords), lp(cell), lp(types),
                         ffi.cast("int *", nlist.ctypes.data), ffi.cast("signed char *", shifts.ctypes.data),
                         lp(order), *pl["args"], ffi.cast("double *", atom_e.ctypes.data),
                         ffi.cast("double *", forces.ctypes.data), pl["virial_p"], pl["cnt_p"])
        counts = {site: c for site, c in zip(SITES, cnt.tolist()) if c}
        return atom_e, forces, pl["virial"].copy(), counts, int(cnt[ckernel.OVERFLOW])

    def _pair_force(self, jj, r, h, qs, qh, gR, gG_Gq, inr, counts):
        fr = self.M.frac
        n = r.shape[0]
        F_h, F_Gt = fr["h"], fr["Gt"]
        m3 = inr[..., None]
        gs = rnd(gG_Gq, fr["gG"] + F_Gt - fr["Gq"] - LS - fr["gs"]) + rnd(gR[..., 0], fr["gR"] - fr["gs"])
        self.note("gs", gs, fr["gs"], inr)
        gs = self.sat(gs, DATA_BITS, "gs", counts, mask=inr)
        acc = (gR[..., 1:] * r).sum(axis=2)
        self.note("gh", acc, fr["gR"] + F_COORD, inr)
        gh = self.sat(rnd(acc, fr["gR"] + F_COORD - fr["gh"]), DATA_BITS, "gh", counts, mask=inr)
        gu = rnd(gs * qs, fr["gs"] + F_S - LU - fr["gu"]) + rnd(gh * qh, fr["gh"] + F_h - LU - fr["gu"])
        self.note("gu", gu, fr["gu"], inr)
        gu = self.sat(gu, DATA_BITS, "gu", counts, mask=inr)
        f = rnd(2.0 * gu[..., None] * r, fr["gu"] + F_COORD - fr["p"]) + rnd(gR[..., 1:] * h[..., None], fr["gR"] + F_h - fr["p"])
        f = np.where(m3, f, 0.0)
        self.note("p", f, fr["p"])
        f = self.sat(f, DATA_BITS, "pair_force", counts)
        # §7.3 forces and virial
        F = f.sum(axis=1)
        jflat = jj.reshape(-1)
        for d in range(3):
            F[:, d] -= np.bincount(jflat, weights=f[..., d].reshape(-1), minlength=n)
        r18 = rnd(r, F_COORD - F_R18)
        vir_i = np.matmul(r18.transpose(0, 2, 1), f)  # [n, 3, 3]: Σ r_d0 f_d1
        return F, vir_i

    def _u_eval(self, u, ti, inr, counts):
        M = self.M
        seg = np.floor(u * 2.0 ** -(F_U - LU))
        tt = np.floor(u * 2.0 ** -(F_U - LU - TBITS)) - seg * 2.0**TBITS
        close = seg < M.k_lo
        nclose = int(np.count_nonzero(close & inr))
        if nclose:
            counts["close_contact"] = nclose
        seg = np.where(close, M.k_lo, seg).astype(np.int64)
        tau = np.where(close, 0.0, tt) * TSCALE
        vals = []
        for planes in self.u_planes:
            P = planes[ti[:, None], seg]  # [n, K, 6]
            i1 = np.floor(P[..., 0] * tau + P[..., 1])
            i2 = np.floor(i1 * tau + P[..., 2])
            y = np.floor(i2 * tau + P[..., 3])
            q1 = np.floor(P[..., 4] * tau + P[..., 5])
            q = np.where(close, 0.0, np.floor(q1 * tau + P[..., 2]))
            vals.append((y, q))
        (s, qs), (h, qh) = vals
        return s, qs, h, qh

    def _tanh(self, z, counts):
        mag = np.abs(z)
        seg = np.floor(mag * 2.0 ** -(F_Z - LT))
        nseg = self.t_planes.shape[0]
        beyond = seg >= nseg
        segc = np.minimum(seg, nseg - 1).astype(np.int64)
        tau = (mag - seg * 2.0 ** (F_Z - LT)) * TSCALE
        P = self.t_planes[segc]
        i1 = np.floor(P[..., 0] * tau + P[..., 1])
        i2 = np.floor(i1 * tau + P[..., 2])
        th = np.floor(i2 * (tau * 2.0 ** -(F_TANH - F_A)) + P[..., 3])
        q1 = np.floor(P[..., 4] * tau + P[..., 5])
        dt = np.floor(q1 * (tau * 2.0 ** -(F_TANH - LT - F_DT)) + P[..., 6])
        th = np.where(beyond, self.t_end, th)
        dt = self.sat(np.where(beyond, 0.0, dt), W_BITS, "tanh_slope", counts)
        return np.where(z < 0, -th, th), dt


def _rnd_inplace(x, k):
    x *= 2.0**-k
    x += 0.5
    return np.floor(x, out=x)


def _horner(p, tau, plane):
    """floor(p * tau + plane) with one temporary (the Horner step of SPEC §4, rounding folded in)."""
    out = np.multiply(p, tau)
    out += plane
    return np.floor(out, out=out)


def _fused(const, k):
    """Plane for floor(i*tau + const + 0.5) followed by a round-half-up shift by k, in one floor."""
    if k <= 0:
        return const + 0.5
    return (const + 0.5 + 2.0 ** (k - 1)) * 2.0**-k


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


def _scipy_dgemm(ffi):
    """BLAS dgemm as a C function pointer (scipy.linalg.cython_blas exports it), or NULL: the
    C pass then multiplies with plain loops (exact too, slower)."""
    try:
        import ctypes

        from scipy.linalg import cython_blas

        capsule = cython_blas.__pyx_capi__["dgemm"]
        api = ctypes.pythonapi
        api.PyCapsule_GetName.restype, api.PyCapsule_GetName.argtypes = ctypes.c_char_p, [ctypes.py_object]
        api.PyCapsule_GetPointer.restype = ctypes.c_void_p
        api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        return ffi.cast("void *", api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule)))
    except Exception:  # no scipy, or a build without the C API
        return ffi.NULL
