"""nvq1 TensorFlow kernel: the SPEC.md datapath in TensorFlow float64, on a GPU when TF sees one.

`TfKernel(model).compute(coords, types, cell, nlist, shifts)` returns what the simulator's
kernels return (atom energies, forces, virial as integer codes, the per-site saturation
counters, the overflow-atom count): the numpy path of `fast.FastKernel` step by step,
forward pass, the hardware's backward pass and every saturation site. Where the reference
kernel is more precise about a count (G' clipped before out-of-grid slots are zeroed, §5.4;
a clipped final-layer gradient seed counted per atom, §7.1) it follows the reference. It is bit-identical
for the reason SPEC.md §2.3 gives: every value is an integer (or a dyadic fraction in the
cubic units) held in float64 with every product and partial sum below 2^53, so TensorFlow's
matmuls, reductions and scatter-adds (any order, FMA or not, CPU or cuBLAS) give the exact
integers, and the only rounding, floor(x·2^-k + 0.5), is the same `tf.floor`.

The cubic planes fold the rounding constants in the same way as the fast kernel (its module
docstring: rnd(a·t)+b = floor(a·t·2^-17 + b + 0.5), roundings after a cubic fused into its
last step); they are rebuilt here from the model so this kernel does not depend on the fast
kernel's internals.

The kernel builds its own graph once (placeholders with free atom and slot dimensions, so
every atom count and neighbour-row width reuses it) and runs it in its own session: that works
the same whether the process runs TensorFlow 2 eagerly or deepmd-kit has switched it to
TF1 graph mode. `device` names where it runs.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from nvnmd.sim.nvq1.model import (
    DATA_BITS, F_A, F_COORD, F_DT, F_E, F_F, F_R18, F_S, F_TANH, F_U, F_V, F_Z, LS, LT, LU, R_LIM,
    SHORT_SHIFT, TBITS, W_BITS, Nvq1Model, hermite_coefficients,
)

log = logging.getLogger("nvnmd")

TSCALE = 2.0**-TBITS
# Every saturation/clamp site of SPEC.md §2.2, in a fixed order (the graph returns a count vector).
SITES = ("s", "h", "R", "G", "G_slope", "T", "D", "z", "x", "tanh_slope", "g", "gT", "gT18", "gR", "gG",
         "gs", "gh", "gu", "pair_force", "force", "close_contact", "g_range")


def _tensorflow():
    from nvnmd.quiet import quiet_native

    with quiet_native():
        import tensorflow as tf
    return tf


def _session_config(tf):
    """Soft placement (GPU when seen), GPU memory on demand, and the thread limits deepmd-kit
    users already set (DP_INTRA/INTER_OP_PARALLELISM_THREADS; 0 = TensorFlow's default)."""
    threads = {}
    for env in ("DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS"):
        value = os.environ.get(env, "")
        threads[env] = int(value) if value.isdigit() else 0
    config = tf.compat.v1.ConfigProto(allow_soft_placement=True,
                                      intra_op_parallelism_threads=threads["DP_INTRA_OP_PARALLELISM_THREADS"],
                                      inter_op_parallelism_threads=threads["DP_INTER_OP_PARALLELISM_THREADS"])
    config.gpu_options.allow_growth = True
    return config


def tensorflow_device() -> str:
    """Where TF places this kernel's ops: 'GPU (<names>)' or 'CPU'."""
    tf = _tensorflow()
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return f"GPU ({', '.join(gpus)})" if gpus else "CPU"


def _scale(k):
    """2^-k exactly, for a scalar or per-column integer shift (k < 0 is a left shift)."""
    if np.ndim(k) == 0:
        return float(np.ldexp(1.0, -int(k)))
    return np.ldexp(1.0, -np.asarray(k, dtype=np.int64))


def _fused(const, k):
    """Plane for floor(i·tau + const + 0.5) followed by a round-half-up shift by k, in one floor."""
    if k <= 0:
        return const + 0.5
    return (const + 0.5 + 2.0 ** (k - 1)) * 2.0**-k


def _rnd_np(x, k):
    return np.floor(x * _scale(k) + 0.5)


class TfKernel:
    """`chunk_atoms` bounds memory: centre atoms are evaluated in blocks of that many (the
    [atoms, slots, M1] intermediates take a few kB per neighbour slot); force accumulators are
    summed over the blocks before the one rounding to FORCE, so the result does not depend on
    the block size."""

    def __init__(self, M: Nvq1Model, chunk_atoms: int = 4096):
        tf = self.tf = _tensorflow()
        self.M = M
        self.chunk_atoms = max(1, int(chunk_atoms))
        self.device = tensorflow_device()
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._build(tf, M)
        self.session = tf.compat.v1.Session(graph=self.graph, config=_session_config(tf))
        log.info("nvq1 TensorFlow float64 kernel on %s", self.device)

    def _build(self, tf, M):
        f = np.float64
        fr = M.frac
        const = lambda a: tf.constant(np.ascontiguousarray(a, dtype=f))  # noqa: E731
        # u tables, flattened over (centre type, segment): columns A, B, C, D, A3, B2
        self.u_planes = []
        for fn in (0, 2):
            a, b, c, d = (v.astype(f) for v in hermite_coefficients(M.u_tab[:, fn], M.u_tab[:, fn + 1], axis=1))
            planes = np.stack([a, b + 0.5, c + 0.5, d + 0.5, 3 * a, 2 * b + 0.5], axis=-1)
            self.u_planes.append(const(planes.reshape(-1, 6)))
        # G tables, flattened over (table, segment): seven [rows, M1] planes
        a, b, c, d = (v.astype(f) for v in hermite_coefficients(M.g_tab[:, 0], M.g_tab[:, 1], axis=1))
        g_planes = [a, b + 0.5, c + 0.5, _fused(d, SHORT_SHIFT), 3 * a, 2 * b + 0.5, _fused(c, fr["Gq"])]
        self.g_planes = [const(p.reshape(-1, M.m1)) for p in g_planes]
        # G and G' cannot leave 18 bits when the table's cubic bound says so (|y| ≤ |a|+|b|+|c|+|d|+3,
        # one unit per rounding); then the clips are provably no-ops and are left out of the graph.
        lim = float((1 << (W_BITS - 1)) - 1)
        bound_g = (np.abs(a) + np.abs(b) + np.abs(c) + np.abs(d) + 3) * 2.0**-SHORT_SHIFT + 1
        bound_q = (3 * np.abs(a) + 2 * np.abs(b) + np.abs(c) + 2) * 2.0 ** -fr["Gq"] + 1
        self.g_in_range = bool(bound_g.max() <= lim and bound_q.max() <= lim)
        # tanh: value rounded F_TANH -> F_A and slope rounded to F_DT fused in the last step
        a, b, c, d = (v.astype(f) for v in hermite_coefficients(M.tanh_tab[0], M.tanh_tab[1], axis=0))
        kv, kq = F_TANH - F_A, F_TANH - LT - F_DT
        t_planes = np.stack([a, b + 0.5, c + 0.5, _fused(d, kv), 3 * a, 2 * b + 0.5, _fused(c, kq)], axis=-1)
        self.n_tanh = t_planes.shape[0]
        self.t_planes = const(t_planes)
        self.t_end = float(np.floor((M.tanh_tab[0, -1] + 2.0 ** (kv - 1)) * 2.0**-kv))
        self.pad = const(M.pad)
        self.sel = const(M.sel)
        self.e_const = [float(v) for v in M.e_const]
        # fitting net per centre type; the final layer's gradient seed is a per-type constant
        self.layers = []
        for layer in M.layers:
            self.layers.append([dict(w=const(layer.w[t]), e=layer.e[t].astype(np.int64), b=const(layer.b[t]),
                                     idt=None if layer.idt is None else const(layer.idt[t]))
                                for t in range(M.ntypes)])
        nl = len(M.layers) - 1
        lim = float((1 << (DATA_BITS - 1)) - 1)
        self.g_seed, self.g_seed_clips = [], []
        for t in range(M.ntypes):
            wf, ef = M.layers[-1].w[t][:, 0].astype(f), int(M.layers[-1].e[t][0])
            seed = _rnd_np(wf, ef - M.f_g[nl])
            self.g_seed_clips.append(int(np.count_nonzero((seed > lim) | (seed < -lim - 1))))
            self.g_seed.append(const(np.clip(seed, -lim - 1, lim)))
        ph = tf.compat.v1.placeholder
        self._inputs = (ph(tf.float64, [None, 3], "coords"), ph(tf.int64, [None], "types"),
                        ph(tf.float64, [3, 3], "cell"), ph(tf.int64, [None, None], "nlist"),
                        ph(tf.float64, [None, None, 3], "shifts"), ph(tf.int64, [], "first"))
        self._outputs = self._compute(*self._inputs)

    def compute(self, coords, types, cell, nlist, shifts):
        """(atom_e [N], forces [N,3], virial [3,3], counts {site: n}, overflow_atoms), codes as float64."""
        as64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        coords, types, cell = as64(coords), np.ascontiguousarray(types, dtype=np.int64), as64(cell)
        nlist = np.asarray(nlist, dtype=np.int64)
        n = nlist.shape[0]
        shifts = np.broadcast_to(np.asarray(shifts, dtype=np.float64), nlist.shape + (3,))
        atom_e, f_acc, virial = np.zeros(n), np.zeros((n, 3)), np.zeros((3, 3))
        counts, over = np.zeros(len(SITES), dtype=np.int64), 0
        for first in range(0, n, self.chunk_atoms):
            block = slice(first, min(n, first + self.chunk_atoms))
            feed = dict(zip(self._inputs, (coords, types, cell, np.ascontiguousarray(nlist[block]),
                                           as64(shifts[block]), first)))
            e, f, v, c, o = self.session.run(self._outputs, feed)
            atom_e[block] = e
            f_acc += f
            virial += v
            counts += c
            over += int(o)
        # §7.3 FORCE: one rounding of the complete accumulators
        lim = float((1 << 31) - 1)
        forces = _rnd_np(f_acc, self.M.frac["p"] - F_F)
        counts[SITES.index("force")] += int(np.count_nonzero((forces > lim) | (forces < -lim - 1)))
        forces = np.clip(forces, -lim - 1, lim)
        return atom_e, forces, virial, {s: int(c) for s, c in zip(SITES, counts.tolist()) if c}, over

    def close(self):
        self.session.close()

    # -- the graph ------------------------------------------------------------------
    def _compute(self, coords, types, cell, nlist, shifts, first):
        """One block of centre atoms first..first+len(nlist): their energies, the force
        accumulators (fraction p) of all atoms, their virial share, counts, overflow atoms."""
        tf, M, fr = self.tf, self.M, self.M.frac
        f64 = tf.float64
        counts: dict[str, object] = {}

        def add(site, n):
            counts[site] = counts[site] + n if site in counts else n

        def sat(x, bits, site, mask=None):
            hi, lo = float((1 << (bits - 1)) - 1), float(-(1 << (bits - 1)))
            y = tf.clip_by_value(x, lo, hi)
            bad = tf.not_equal(x, y)
            if mask is not None:
                bad = tf.logical_and(bad, mask)
            add(site, tf.math.count_nonzero(bad, dtype=tf.int64))
            return y

        def rnd(x, k):
            return tf.floor(x * _scale(k) + 0.5)

        F_h, F_Gt, F_T, F_D = fr["h"], fr["Gt"], fr["T"], fr["D"]
        F_G = F_Gt - SHORT_SHIFT
        nt, m1, m2 = M.ntypes, M.m1, M.m2
        n = tf.shape(nlist)[0]  # centre atoms of this block
        centres = first + tf.range(tf.cast(n, tf.int64))
        # §5.1 relative coordinates, in-range test, u
        valid = nlist >= 0
        jj = tf.where(valid, nlist, tf.zeros_like(nlist))
        r = tf.gather(coords, jj) - tf.gather(coords, centres)[:, None, :] + tf.einsum("nke,ed->nkd", shifts, cell)
        inr = tf.logical_and(valid, tf.reduce_max(tf.abs(r), axis=2) < float(R_LIM))
        r = r * tf.cast(inr, f64)[..., None]  # empty and far slots: r = 0 (keeps u below 2^53)
        u = r[..., 0] * r[..., 0] + r[..., 1] * r[..., 1] + r[..., 2] * r[..., 2]
        inr = tf.logical_and(inr, u < float(M.u_cut))
        inrf = tf.cast(inr, f64)
        r = r * inrf[..., None]
        u = u * inrf
        m3 = inr[..., None]
        ti = tf.gather(types, centres)
        tj = tf.gather(types, jj)
        n_in = tf.reduce_sum(tf.one_hot(tj, nt, dtype=f64) * inrf[..., None], axis=1)  # [n, nt]
        over = tf.math.count_nonzero(tf.reduce_any(n_in > self.sel[None, :], axis=1), dtype=tf.int64)
        # §5.2 u tables
        seg = tf.floor(u * _scale(F_U - LU))
        tt = tf.floor(u * _scale(F_U - LU - TBITS)) - seg * 2.0**TBITS
        close = seg < float(M.k_lo)
        add("close_contact", tf.math.count_nonzero(tf.logical_and(close, inr), dtype=tf.int64))
        rows = ti[:, None] * M.n_u + tf.cast(tf.where(close, tf.constant(float(M.k_lo), f64), seg), tf.int64)
        tau = tf.where(close, tf.zeros_like(tt), tt) * TSCALE
        vals = []
        for planes in self.u_planes:
            P = tf.gather(planes, rows)  # [n, K, 6]
            i1 = tf.floor(P[..., 0] * tau + P[..., 1])
            i2 = tf.floor(i1 * tau + P[..., 2])
            y = tf.floor(i2 * tau + P[..., 3])
            q1 = tf.floor(P[..., 4] * tau + P[..., 5])
            q = tf.where(close, tf.zeros_like(q1), tf.floor(q1 * tau + P[..., 2]))
            vals.append((y, q))
        (s, qs), (h, qh) = vals
        s = sat(s, DATA_BITS, "s", inr)
        h = sat(h, DATA_BITS, "h", inr)
        # §5.3 R̃
        Rd = sat(rnd(h[..., None] * r, F_h + F_COORD - F_S), DATA_BITS, "R", m3)
        R = tf.concat([(s * inrf)[..., None], Rd], axis=2)  # [n, K, 4]
        # §5.4 G tables
        x = s - float(M.s0)
        gseg = tf.floor(x * _scale(F_S - LS))
        gt = x - gseg * 2.0 ** (F_S - LS)
        lo_clamp, hi_clamp = gseg < 0.0, gseg >= float(M.n_s)
        gclamp = tf.logical_or(lo_clamp, hi_clamp)
        add("g_range", tf.math.count_nonzero(tf.logical_and(gclamp, inr), dtype=tf.int64))
        gseg = tf.cast(tf.clip_by_value(gseg, 0.0, float(M.n_s - 1)), tf.int64)
        gt = tf.where(lo_clamp, tf.zeros_like(gt), tf.where(hi_clamp, tf.constant(float((1 << TBITS) - 1), f64), gt))
        tab = tj if M.type_one_side else ti[:, None] * nt + tj
        rows = tab * M.n_s + gseg
        P = [tf.gather(p, rows) for p in self.g_planes]  # 7 x [n, K, M1]
        gtau = (gt * TSCALE)[..., None]
        G = tf.floor(P[0] * gtau + P[1])
        G = tf.floor(G * gtau + P[2])
        G = tf.floor(G * (gtau * _scale(SHORT_SHIFT)) + P[3])
        Gq = tf.floor(P[4] * gtau + P[5])
        Gq = tf.floor(Gq * (gtau * _scale(fr["Gq"])) + P[6])
        if not self.g_in_range:
            G = sat(G, W_BITS, "G", m3)
            Gq = sat(Gq, W_BITS, "G_slope", m3)
        Gq = tf.where(gclamp[..., None], tf.zeros_like(Gq), Gq)  # after the clip, as the reference
        # §5.5 T accumulation with the padded-slot constants
        t_acc = tf.linalg.matmul(R, G, transpose_a=True)  # [n, 4, M1]
        npad = tf.maximum(self.sel[None, :] - n_in, 0.0)  # [n, nt]
        pad_sum = tf.einsum("nt,ntm->nm", npad, tf.gather(self.pad, ti))
        t_acc = tf.concat([t_acc[:, :1, :] + pad_sum[:, None, :], t_acc[:, 1:, :]], axis=1)
        T = sat(rnd(t_acc, F_S + F_G - F_T), W_BITS, "T")
        # §5.6 D
        Dm = tf.linalg.matmul(T, T[:, :, :m2], transpose_a=True)  # [n, M1, M2]
        X = tf.reshape(sat(rnd(Dm, 2 * F_T - F_D), DATA_BITS, "D"), [n, m1 * m2])
        # §6 fitting net and §7.1 its backward pass, per centre type
        parts = tf.dynamic_partition(tf.range(n), tf.cast(ti, tf.int32), nt)
        energies, grads = [], []
        nl = len(M.layers) - 1
        for t in range(nt):
            idx = parts[t]
            x, fx, saved = tf.gather(X, idx), F_D, []
            for l in range(nl):
                L, layer = self.layers[l][t], M.layers[l]
                acc = tf.linalg.matmul(x, L["w"])
                z = sat(rnd(acc, fx + L["e"] - F_Z) + L["b"], DATA_BITS, "z")
                th, dt = self._tanh(z, sat)
                y = rnd(th * L["idt"], layer.f_idt) if L["idt"] is not None else th
                saved.append(dt)
                x = sat(y + _shortcut(tf, layer.shortcut, x, fx - F_A, rnd), DATA_BITS, "x")
                fx = F_A
            Lf = self.layers[-1][t]
            ef = int(Lf["e"][0])
            energies.append(rnd(tf.linalg.matmul(x, Lf["w"])[:, 0], fx + ef - F_E) + self.e_const[t])
            m = tf.size(idx)
            if self.g_seed_clips[t]:  # a clipped seed counts once per atom (every atom's unit clips it)
                add("g", tf.cast(m, tf.int64) * self.g_seed_clips[t])
            g = tf.broadcast_to(self.g_seed[t], tf.stack([m, tf.size(self.g_seed[t])]))
            for l in range(nl - 1, -1, -1):
                L, layer = self.layers[l][t], M.layers[l]
                gth = rnd(g * L["idt"], layer.f_idt) if L["idt"] is not None else g
                gz = rnd(gth * saved[l], F_DT)
                emin = int(L["e"].min())
                acc = tf.linalg.matmul(rnd(gz, L["e"] - emin), L["w"], transpose_b=True)
                back = _shortcut_grad(tf, layer.shortcut, g, M.layers[l].w.shape[1], M.f_g[l + 1] - M.f_g[l], rnd)
                g = sat(rnd(acc, M.f_g[l + 1] + emin - M.f_g[l]) + back, DATA_BITS, "g")
            grads.append(g)
        atom_e = tf.dynamic_stitch(parts, energies)
        gX = tf.dynamic_stitch(parts, grads)
        # §7.2 descriptor backward
        gD = tf.reshape(gX, [n, m1, m2])
        gT_acc = tf.linalg.matmul(T[:, :, :m2], gD, transpose_b=True)  # [n, 4, M1]
        gT_acc += tf.pad(tf.linalg.matmul(T, gD), [[0, 0], [0, 0], [0, m1 - m2]])
        gT = sat(rnd(gT_acc, M.f_g[0] + F_T - fr["gT"]), DATA_BITS, "gT")
        gTs = sat(rnd(gT, SHORT_SHIFT), W_BITS, "gT18")
        gR = rnd(tf.linalg.matmul(G, gT, transpose_b=True), fr["gT"] + F_G - fr["gR"])  # [n, K, 4]
        gG = sat(rnd(tf.linalg.matmul(R, gTs), fr["gT"] - SHORT_SHIFT + F_S - fr["gG"]), DATA_BITS, "gG", m3)
        gG_Gq = tf.reduce_sum(gG * Gq, axis=2)  # exact: integer partial sums < 2^53
        gR = sat(gR, DATA_BITS, "gR", m3)
        gs = rnd(gG_Gq, fr["gG"] + F_Gt - fr["Gq"] - LS - fr["gs"]) + rnd(gR[..., 0], fr["gR"] - fr["gs"])
        gs = sat(gs, DATA_BITS, "gs", inr)
        gh = sat(rnd(tf.reduce_sum(gR[..., 1:] * r, axis=2), fr["gR"] + F_COORD - fr["gh"]), DATA_BITS, "gh", inr)
        gu = rnd(gs * qs, fr["gs"] + F_S - LU - fr["gu"]) + rnd(gh * qh, fr["gh"] + F_h - LU - fr["gu"])
        gu = sat(gu, DATA_BITS, "gu", inr)
        pf = (rnd(2.0 * gu[..., None] * r, fr["gu"] + F_COORD - fr["p"])
              + rnd(gR[..., 1:] * h[..., None], fr["gR"] + F_h - fr["p"]))
        pf = sat(pf * inrf[..., None], DATA_BITS, "pair_force")
        # §7.3 forces and virial (scatter-add of exact integers: any order gives the same sums)
        F = tf.math.unsorted_segment_sum(tf.concat([tf.reduce_sum(pf, axis=1), -tf.reshape(pf, [-1, 3])], axis=0),
                                         tf.concat([centres, tf.reshape(jj, [-1])], axis=0), tf.shape(coords)[0])
        r18 = rnd(r, F_COORD - F_R18)
        vir_i = tf.linalg.matmul(r18, pf, transpose_a=True)  # [n, 3, 3]: Σ r_d0 f_d1
        virial = -tf.reduce_sum(rnd(vir_i, fr["p"] + F_R18 - F_V), axis=0)
        zero = tf.constant(0, tf.int64)
        count_vec = tf.stack([counts.get(site, zero) for site in SITES])
        return atom_e, F, virial, count_vec, over

    def _tanh(self, z, sat):
        """§6.2 odd tanh table: (tanh at F_A, tanh' at F_DT, saturated to 18 bits)."""
        tf = self.tf
        mag = tf.abs(z)
        seg = tf.floor(mag * _scale(F_Z - LT))
        beyond = seg >= float(self.n_tanh)
        segc = tf.cast(tf.minimum(seg, float(self.n_tanh - 1)), tf.int64)
        tau = (mag - seg * 2.0 ** (F_Z - LT)) * TSCALE
        P = tf.gather(self.t_planes, segc)  # [m, width, 7]
        i1 = tf.floor(P[..., 0] * tau + P[..., 1])
        i2 = tf.floor(i1 * tau + P[..., 2])
        th = tf.floor(i2 * (tau * _scale(F_TANH - F_A)) + P[..., 3])
        q1 = tf.floor(P[..., 4] * tau + P[..., 5])
        dt = tf.floor(q1 * (tau * _scale(F_TANH - LT - F_DT)) + P[..., 6])
        th = tf.where(beyond, tf.constant(self.t_end, tf.float64), th)
        dt = sat(tf.where(beyond, tf.zeros_like(dt), dt), W_BITS, "tanh_slope")
        return tf.where(z < 0, -th, th), dt


def _shortcut(tf, kind, x, shift, rnd):
    if kind == "identity":
        return rnd(x, shift)
    if kind == "concat":
        return rnd(tf.concat([x, x], axis=-1), shift)
    return 0.0


def _shortcut_grad(tf, kind, g, nin, shift, rnd):
    if kind == "identity":
        return rnd(g, shift)
    if kind == "concat":
        return rnd(g[:, :nin] + g[:, nin:], shift)
    return 0.0
