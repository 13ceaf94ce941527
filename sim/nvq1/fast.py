"""nvq1 fast kernel: the SPEC.md datapath vectorised over all atoms and neighbour slots.

Every quantity is an integer held in float64. SPEC.md bounds every product and partial sum
below 2^53, so numpy's float64 arithmetic and BLAS (any summation order, FMA or not) give the
exact integers, and `floor(x * 2^-k + 0.5)` is the round-half-up shift of the spec. Cubic
Horner steps fold the rounding constant into precomputed coefficient planes
(rnd(a*t)+b = floor(a*t*2^-17 + b + 0.5)), and a rounding to a narrower format that follows
a cubic is fused into its last step (floor(floor(x)/2^k) = floor(x/2^k)); both are exact
identities (arith.py builds the planes), checked bit for bit against ref.py by the tests.
The numpy path is the named SPEC stages of stages.py, run in order (`Stages.evaluate`).

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
from nvnmd.sim.nvq1.arith import rnd  # noqa: F401  (the SPEC §2.2 rounding, as callers knew it here)
from nvnmd.sim.nvq1.sites import SITES
from nvnmd.sim.nvq1.model import (
    F_A, F_COORD, F_DT, F_E, F_F, F_R18, F_S, F_TANH, F_V, F_Z, LS, LT, LU, MAX_M1, MAX_NEIGHBORS,
    MAX_TYPES, MAX_WIDTH, SHORT_SHIFT, Nvq1Model,
)
from nvnmd.sim.nvq1.stages import Stages


class FastKernel(Stages):
    def __init__(self, M: Nvq1Model, probe: bool = False, use_c: bool = True, use_blas: bool = True,
                 threads: int = 1):
        super().__init__(M, probe=probe)
        self.use_blas = use_blas
        self.threads = threads  # of the C pass (same bits for any count)
        # the shared planes (arith.tables) under the names the C pass reads
        self.u_planes = self.tab.u
        self.u_planes_c = [np.ascontiguousarray(p) for p in self.u_planes]
        self.g_planes = self.tab.g
        self.t_planes = self.tab.tanh
        self.t_planes_c = np.ascontiguousarray(self.t_planes)
        self.t_end = self.tab.t_end
        self.g_in_range = self.tab.g_in_range
        # the C pass's fixed-size arrays (board limits) and at least one hidden layer
        within = (M.m1 <= MAX_M1 and M.ntypes <= MAX_TYPES and 2 <= len(M.layers) <= 17
                  and max(layer.w.shape[2] for layer in M.layers) <= MAX_WIDTH)
        self.clib = None if (probe or not use_c or not within) else ckernel.get()
        if self.clib is not None:
            self._setup_c()

    def compute(self, coords, types, cell, nlist, shifts):
        if self.clib is not None and np.shape(nlist)[-1] <= MAX_NEIGHBORS:  # the C pass's slot arrays
            return self._compute_c(coords, types, cell, nlist, shifts)
        return self.evaluate(coords, types, cell, nlist, shifts)

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
