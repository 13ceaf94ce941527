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

The cubic planes (rounding constants folded in, roundings after a cubic fused into its last
step), the G-range bound, the gradient seeds, the shifts and the counter sites come from
arith.py, the module the fast kernel takes them from too.

The kernel builds its own graph once (placeholders with free atom and slot dimensions, so
every atom count and neighbour-row width reuses it) and runs it in its own session: that works
the same whether the process runs TensorFlow 2 eagerly or deepmd-kit has switched it to
TF1 graph mode. `device` names where it runs.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from nvnmd.sim.nvq1 import arith
from nvnmd.sim.nvq1.arith import SITES, TSCALE
from nvnmd.sim.nvq1.arith import rnd as _rnd_np
from nvnmd.sim.nvq1.arith import scale as _scale
from nvnmd.sim.nvq1.model import (
    DATA_BITS, F_A, F_DT, F_E, F_S, F_U, F_Z, LS, LT, LU, R_LIM, TBITS, W_BITS, Nvq1Model,
)

log = logging.getLogger("nvnmd")


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


class TfKernel:
    """`chunk_atoms` bounds memory: centre atoms are evaluated in blocks of that many (the
    [atoms, slots, M1] intermediates take a few kB per neighbour slot); force accumulators are
    summed over the blocks before the one rounding to FORCE, so the result does not depend on
    the block size.

    The graph is built stage by stage with the names of stages.py (neighbours §5.1,
    radial_tables §5.2, embedding §5.3-5.4, descriptor §5.5-5.6, fitting §6 + §7.1,
    descriptor_backward §7.2, forces_virial §7.3), each the TensorFlow form of its numpy twin."""

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
        const = lambda a: tf.constant(np.ascontiguousarray(a, dtype=f))  # noqa: E731
        tab = arith.tables(M)
        self.sh = arith.shifts(M)
        # u tables flattened over (centre type, segment), G tables over (table, segment)
        self.u_planes = [const(planes.reshape(-1, 6)) for planes in tab.u]
        self.g_planes = [const(tab.g[:, :, k].reshape(-1, M.m1)) for k in range(7)]
        self.g_in_range = tab.g_in_range  # G and G' clips are provably no-ops: left out of the graph
        self.n_tanh = tab.tanh.shape[0]
        self.t_planes = const(tab.tanh)
        self.t_end = tab.t_end
        self.pad = const(M.pad)
        self.sel = const(M.sel)
        self.e_const = [float(v) for v in M.e_const]
        # fitting net per centre type; the final layer's gradient seed is a per-type constant
        self.layers = []
        for layer in M.layers:
            self.layers.append([dict(w=const(layer.w[t]), e=layer.e[t].astype(np.int64), b=const(layer.b[t]),
                                     idt=None if layer.idt is None else const(layer.idt[t]))
                                for t in range(M.ntypes)])
        seeds = arith.gradient_seeds(M)
        self.g_seed = [const(seed) for seed, _ in seeds]
        self.g_seed_clips = [clips for _, clips in seeds]
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
        forces = _rnd_np(f_acc, self.sh.F)
        counts[SITES.index("force")] += int(np.count_nonzero((forces > lim) | (forces < -lim - 1)))
        forces = np.clip(forces, -lim - 1, lim)
        return atom_e, forces, virial, {s: int(c) for s, c in zip(SITES, counts.tolist()) if c}, over

    def close(self):
        self.session.close()

    # -- the graph ------------------------------------------------------------------
    def _compute(self, coords, types, cell, nlist, shifts, first):
        """One block of centre atoms first..first+len(nlist): their energies, the force
        accumulators (fraction p) of all atoms, their virial share, counts, overflow atoms."""
        tf = self.tf
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

        self._add, self._sat = add, sat
        nb = self._neighbours(coords, types, cell, nlist, shifts, first)
        s, qs, h, qh = self._radial_tables(nb)
        R, G, Gq = self._embedding(nb, s, h)
        T, X = self._descriptor(nb, R, G)
        atom_e, gX = self._fitting(nb, X)
        pf = self._descriptor_backward(nb, gX, T, R, G, Gq, h, qs, qh)
        F, virial = self._forces_virial(nb, coords, pf)
        zero = tf.constant(0, tf.int64)
        count_vec = tf.stack([counts.get(site, zero) for site in SITES])
        return atom_e, F, virial, count_vec, nb["over"]

    def _rnd(self, x, k):
        return self.tf.floor(x * _scale(k) + 0.5)

    def _neighbours(self, coords, types, cell, nlist, shifts, first):
        """§5.1 relative coordinates, in-range test, u, neighbour counts per type."""
        tf, M = self.tf, self.M
        f64 = tf.float64
        n = tf.shape(nlist)[0]  # centre atoms of this block
        centres = first + tf.range(tf.cast(n, tf.int64))
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
        ti = tf.gather(types, centres)
        tj = tf.gather(types, jj)
        n_in = tf.reduce_sum(tf.one_hot(tj, M.ntypes, dtype=f64) * inrf[..., None], axis=1)  # [n, nt]
        over = tf.math.count_nonzero(tf.reduce_any(n_in > self.sel[None, :], axis=1), dtype=tf.int64)
        return dict(n=n, centres=centres, jj=jj, r=r, u=u, inr=inr, inrf=inrf, m3=inr[..., None], ti=ti, tj=tj,
                    n_in=n_in, over=over)

    def _radial_tables(self, nb):
        """§5.2 u tables: s̃, q_s, h̃, q_h."""
        tf, M, sat = self.tf, self.M, self._sat
        u, inr, ti = nb["u"], nb["inr"], nb["ti"]
        seg = tf.floor(u * _scale(F_U - LU))
        tt = tf.floor(u * _scale(F_U - LU - TBITS)) - seg * 2.0**TBITS
        close = seg < float(M.k_lo)
        self._add("close_contact", tf.math.count_nonzero(tf.logical_and(close, inr), dtype=tf.int64))
        rows = ti[:, None] * M.n_u + tf.cast(tf.where(close, tf.constant(float(M.k_lo), tf.float64), seg), tf.int64)
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
        return sat(s, DATA_BITS, "s", inr), qs, sat(h, DATA_BITS, "h", inr), qh

    def _embedding(self, nb, s, h):
        """§5.3 R̃ and §5.4 G, G'."""
        tf, M, sat, sh = self.tf, self.M, self._sat, self.sh
        inr, ti, tj = nb["inr"], nb["ti"], nb["tj"]
        Rd = sat(self._rnd(h[..., None] * nb["r"], sh.R), DATA_BITS, "R", nb["m3"])
        R = tf.concat([(s * nb["inrf"])[..., None], Rd], axis=2)  # [n, K, 4]
        x = s - float(M.s0)
        gseg = tf.floor(x * _scale(F_S - LS))
        gt = x - gseg * 2.0 ** (F_S - LS)
        lo_clamp, hi_clamp = gseg < 0.0, gseg >= float(M.n_s)
        gclamp = tf.logical_or(lo_clamp, hi_clamp)
        self._add("g_range", tf.math.count_nonzero(tf.logical_and(gclamp, inr), dtype=tf.int64))
        gseg = tf.cast(tf.clip_by_value(gseg, 0.0, float(M.n_s - 1)), tf.int64)
        gt = tf.where(lo_clamp, tf.zeros_like(gt),
                      tf.where(hi_clamp, tf.constant(float((1 << TBITS) - 1), tf.float64), gt))
        tab = tj if M.type_one_side else ti[:, None] * M.ntypes + tj
        rows = tab * M.n_s + gseg
        P = [tf.gather(p, rows) for p in self.g_planes]  # 7 x [n, K, M1]
        gtau = (gt * TSCALE)[..., None]
        G = tf.floor(P[0] * gtau + P[1])
        G = tf.floor(G * gtau + P[2])
        G = tf.floor(G * (gtau * _scale(sh.G)) + P[3])
        Gq = tf.floor(P[4] * gtau + P[5])
        Gq = tf.floor(Gq * (gtau * _scale(sh.Gq)) + P[6])
        if not self.g_in_range:
            G = sat(G, W_BITS, "G", nb["m3"])
            Gq = sat(Gq, W_BITS, "G_slope", nb["m3"])
        Gq = tf.where(gclamp[..., None], tf.zeros_like(Gq), Gq)  # after the clip, as the reference
        return R, G, Gq

    def _descriptor(self, nb, R, G):
        """§5.5 T accumulation with the padded-slot constants, §5.6 D."""
        tf, M, sat = self.tf, self.M, self._sat
        t_acc = tf.linalg.matmul(R, G, transpose_a=True)  # [n, 4, M1]
        npad = tf.maximum(self.sel[None, :] - nb["n_in"], 0.0)  # [n, nt]
        pad_sum = tf.einsum("nt,ntm->nm", npad, tf.gather(self.pad, nb["ti"]))
        t_acc = tf.concat([t_acc[:, :1, :] + pad_sum[:, None, :], t_acc[:, 1:, :]], axis=1)
        T = sat(self._rnd(t_acc, self.sh.T), W_BITS, "T")
        Dm = tf.linalg.matmul(T, T[:, :, :M.m2], transpose_a=True)  # [n, M1, M2]
        X = tf.reshape(sat(self._rnd(Dm, self.sh.D), DATA_BITS, "D"), [nb["n"], M.m1 * M.m2])
        return T, X

    def _fitting(self, nb, X):
        """§6 fitting net forward and §7.1 its backward pass, per centre type: (E_i, gD)."""
        tf, M, sat, rnd = self.tf, self.M, self._sat, self._rnd
        parts = tf.dynamic_partition(tf.range(nb["n"]), tf.cast(nb["ti"], tf.int32), M.ntypes)
        energies, grads = [], []
        nl = len(M.layers) - 1
        for t in range(M.ntypes):
            idx = parts[t]
            x, fx, saved = tf.gather(X, idx), M.frac["D"], []
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
                self._add("g", tf.cast(m, tf.int64) * self.g_seed_clips[t])
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
        return tf.dynamic_stitch(parts, energies), tf.dynamic_stitch(parts, grads)

    def _descriptor_backward(self, nb, gX, T, R, G, Gq, h, qs, qh):
        """§7.2 gT, gTs and every slot's chain down to its pair force (fraction p)."""
        tf, M, sat, rnd, sh = self.tf, self.M, self._sat, self._rnd, self.sh
        m1, m2, inr, m3, r = M.m1, M.m2, nb["inr"], nb["m3"], nb["r"]
        gD = tf.reshape(gX, [nb["n"], m1, m2])
        gT_acc = tf.linalg.matmul(T[:, :, :m2], gD, transpose_b=True)  # [n, 4, M1]
        gT_acc += tf.pad(tf.linalg.matmul(T, gD), [[0, 0], [0, 0], [0, m1 - m2]])
        gT = sat(rnd(gT_acc, sh.gT), DATA_BITS, "gT")
        gTs = sat(rnd(gT, sh.gTs), W_BITS, "gT18")
        gR = rnd(tf.linalg.matmul(G, gT, transpose_b=True), sh.gR)  # [n, K, 4]
        gG = sat(rnd(tf.linalg.matmul(R, gTs), sh.gG), DATA_BITS, "gG", m3)
        gG_Gq = tf.reduce_sum(gG * Gq, axis=2)  # exact: integer partial sums < 2^53
        gR = sat(gR, DATA_BITS, "gR", m3)
        gs = sat(rnd(gG_Gq, sh.gs_G) + rnd(gR[..., 0], sh.gs_R), DATA_BITS, "gs", inr)
        gh = sat(rnd(tf.reduce_sum(gR[..., 1:] * r, axis=2), sh.gh), DATA_BITS, "gh", inr)
        gu = sat(rnd(gs * qs, sh.gu_s) + rnd(gh * qh, sh.gu_h), DATA_BITS, "gu", inr)
        pf = rnd(2.0 * gu[..., None] * r, sh.f_u) + rnd(gR[..., 1:] * h[..., None], sh.f_R)
        return sat(pf * nb["inrf"][..., None], DATA_BITS, "pair_force")

    def _forces_virial(self, nb, coords, pf):
        """§7.3 force accumulators (fraction p; rounded once in `compute`) and virial (scatter-add
        of exact integers: any order gives the same sums)."""
        tf, rnd = self.tf, self._rnd
        F = tf.math.unsorted_segment_sum(tf.concat([tf.reduce_sum(pf, axis=1), -tf.reshape(pf, [-1, 3])], axis=0),
                                         tf.concat([nb["centres"], tf.reshape(nb["jj"], [-1])], axis=0),
                                         tf.shape(coords)[0])
        r18 = rnd(nb["r"], self.sh.r18)
        vir_i = tf.linalg.matmul(r18, pf, transpose_a=True)  # [n, 3, 3]: Σ r_d0 f_d1
        virial = -tf.reduce_sum(rnd(vir_i, self.sh.V), axis=0)
        return F, virial

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
        th = tf.floor(i2 * (tau * _scale(self.sh.tanh)) + P[..., 3])
        q1 = tf.floor(P[..., 4] * tau + P[..., 5])
        dt = tf.floor(q1 * (tau * _scale(self.sh.dtanh)) + P[..., 6])
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
