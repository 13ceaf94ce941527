"""nvq1_core's stage modules (fpga/rtl/core/nvq1_stages.v) in Icarus (cocotb) against the
simulator's stages (sim/nvq1/stages.py) on random vectors, saturating ones included: neighbour
decode, radial tables, embedding (R̃, G grid, every G channel), descriptor (padding, T, D),
fitting forward (z, tanh, x per column, energy), fitting backward (seed, ĝ, g_x), descriptor
backward (gT, gG, the per-pair chain to the pair force) and force/virial assembly. Each
module's outputs must equal the stage's arrays, and its clip flags summed over the vectors must
equal the stage's counters (sites.py) exactly. Table-fed stages go through the core's Hermite and
cubic units with the table words the core's memories hold. One Icarus build (the shipped
student's parameters); the Python side of each stage uses the shipped student or a variant with
tables and exponents pushed past the formats (same fractions, so the same build).

This file is both the pytest module and the cocotb test module the simulator imports."""

from __future__ import annotations

import copy
import os
import pickle
import random

import numpy as np
import pytest

try:
    import cocotb
    from cocotb.triggers import RisingEdge, Timer
except ImportError:  # the pytest side skips through conftest.need
    cocotb = None

N = int(os.environ.get("NVQ1_STAGE_VECTORS", "300"))
LANES = 8
TB_PARAMS = ("LANES", "NTYPES", "M1", "NS1", "TYPE_ONE_SIDE", "SEL", "U_CUT", "K_LO", "S0", "F_H", "F_GT", "F_GQ",
             "F_T", "F_D", "F_GTT", "F_GR", "F_GG", "F_GS", "F_GH", "F_GU", "F_P")


def forced_model(model):
    """Same shape and fractions, contents past the formats: s̃ and h̃ tables x4, G tables x3,
    tanh slopes x8, fitting exponents lowered (layer 0 every 5th column by 6, final by 12)."""
    m = copy.deepcopy(model)
    lim = (1 << 26) - 1
    m.u_tab = np.clip(model.u_tab * 4, -lim, lim)
    m.g_tab = np.clip(model.g_tab * 3, -lim, lim)
    m.tanh_tab = model.tanh_tab.copy()
    m.tanh_tab[1] = np.clip(model.tanh_tab[1] * 8, -(1 << 23), 1 << 23)
    m.layers[0].e = model.layers[0].e.copy()
    m.layers[0].e[:, ::5] -= 6
    m.layers[-1].e = model.layers[-1].e - 12
    return m


# ----------------------------------------------------------------------------- cocotb side
if cocotb is not None:

    def _models():
        with open(os.environ["NVQ1_MODELS"], "rb") as fh:  # written by the pytest side just before
            return pickle.load(fh)

    def _sv(sig):
        return sig.value.signed_integer

    def _count(total: dict, site: str, n: int):
        total[site] = total.get(site, 0) + int(n)

    def _sub(counts: dict, sites) -> dict:
        return {s: int(counts.get(s, 0)) for s in sites}

    async def _settle():
        await Timer(1, "ns")

    async def _cubic(dut):
        """Three register stages of nvq1_cubic plus one: the output is the inputs' after 4 edges."""
        for _ in range(4):
            await RisingEdge(dut.clk)
        await _settle()

    @cocotb.test()
    async def run_neighbours(dut):
        from nvnmd.sim.nvq1.model import F_U, LU, R_LIM, TBITS
        from nvnmd.sim.nvq1.stages import Stages

        model, _ = _models()
        st = Stages(model)
        rng = random.Random("nvq1-stage-nbr")
        got, want = {}, {}
        accepted = 0
        for v in range(N):
            cell = np.diag([rng.randint(8 << 20, 16 << 20) for _ in range(3)]).astype(np.int64)
            cell += np.array([[rng.randint(-(1 << 19), 1 << 19) if a != b else 0 for b in range(3)] for a in range(3)])
            ci = np.array([rng.randint(0, 1 << 24) for _ in range(3)], dtype=np.int64)
            sh = np.array([rng.randint(-2, 2) for _ in range(3)], dtype=np.int64)
            reach = rng.choice([1 << 20, 1 << 22, R_LIM + 4, 1 << 24])  # close, in range, at R_LIM, far
            delta = np.array([rng.randint(-reach, reach) for _ in range(3)], dtype=np.int64)
            cj = ci + delta - sh @ cell
            sj = -1 if v % 11 == 0 else 1
            tj = rng.randrange(model.ntypes)
            nb = st.neighbours(np.stack([ci, cj]), [0, tj], cell, np.array([[sj]]), sh[None, None, :])
            rad = st.radial_tables(nb.u, nb.ti, nb.inr)
            for name, val in zip(("ci0", "ci1", "ci2", "cj0", "cj1", "cj2", "sh0", "sh1", "sh2"),
                                 [*ci, *cj, *sh]):
                getattr(dut, f"nb_{name}").value = int(val)
            dut.nb_cell.value = sum((int(x) & 0xFFFFFFFF) << (32 * k) for k, x in enumerate(cell.reshape(-1)))
            dut.nb_sj.value = sj
            await _settle()
            r = [_sv(dut.nb_nr0), _sv(dut.nb_nr1), _sv(dut.nb_nr2)]
            dut.nb_r0.value, dut.nb_r1.value, dut.nb_r2.value = r
            await _settle()
            dut.nb_inr.value = int(dut.nb_ninr.value)
            dut.nb_uu.value = _sv(dut.nb_nuu)
            await _settle()
            inr = bool(nb.inr[0, 0])
            assert int(dut.nb_accept.value) == inr, (v, r)
            if inr:
                accepted += 1
                assert r == [int(x) for x in nb.r[0, 0]], v
                u = int(nb.u[0, 0])
                assert _sv(dut.nb_nuu) == u, v
                seg, t = u >> (F_U - LU), (u >> (F_U - LU - TBITS)) & ((1 << TBITS) - 1)
                close = seg < model.k_lo
                assert int(dut.nb_close.value) == close, v
                assert int(dut.nb_useg.value) == (model.k_lo if close else seg), v
                assert int(dut.nb_ut.value) == (0 if close else t), v
                _count(got, "close_contact", int(dut.nb_close.value))
            _count(want, "close_contact", rad.counts.get("close_contact", 0))
        dut._log.info("counters (RTL, stage): %s %s", got, want)
        assert got == want and N // 4 < accepted < N, (got, want, accepted)
        assert want["close_contact"] > 0

    @cocotb.test()
    async def run_radial(dut):
        from nvnmd.sim.nvq1.model import F_U, LU, TBITS
        from nvnmd.sim.nvq1.stages import Stages

        rng = random.Random("nvq1-stage-radial")
        got, want = {}, {}
        for which, model in enumerate(_models()):
            st = Stages(model)
            for v in range(N // 2):
                ti = rng.randrange(model.ntypes)
                u = rng.randrange(model.u_cut) if v % 5 else rng.randrange(max(1, model.k_lo) << (F_U - LU))
                seg, t = u >> (F_U - LU), (u >> (F_U - LU - TBITS)) & ((1 << TBITS) - 1)
                close = seg < model.k_lo
                seg, t = (model.k_lo, 0) if close else (seg, t)
                rad = st.radial_tables(np.array([[u]]), np.array([ti]), np.array([[True]]))
                tab = model.u_tab[ti]
                words = dict(sy0=tab[0, seg], sy1=tab[0, seg + 1], sm0=tab[1, seg], sm1=tab[1, seg + 1],
                             hy0=tab[2, seg], hy1=tab[2, seg + 1], hm0=tab[3, seg], hm1=tab[3, seg + 1])
                for k, x in words.items():
                    getattr(dut, f"ra_{k}").value = int(x)
                dut.ra_t.value = t
                dut.ra_uclose.value = int(close)
                await _cubic(dut)
                case = (which, v, u, ti)
                assert _sv(dut.ra_s) == rad.s[0, 0] and _sv(dut.ra_h) == rad.h[0, 0], case
                assert _sv(dut.ra_qs) == rad.qs[0, 0] and _sv(dut.ra_qh) == rad.qh[0, 0], case
                _count(got, "s", int(dut.ra_cs.value))
                _count(got, "h", int(dut.ra_ch.value))
                for s in ("s", "h"):
                    _count(want, s, rad.counts.get(s, 0))
        dut._log.info("counters (RTL, stage): %s %s", got, want)
        assert got == want and want["h"] > 0, (got, want)

    @cocotb.test()
    async def run_embedding(dut):
        from nvnmd.sim.nvq1.model import F_S, LS
        from nvnmd.sim.nvq1.stages import Stages

        rng = random.Random("nvq1-stage-embed")
        got, want = {}, {}
        sites = ("R", "g_range", "G", "G_slope")
        for which, model in enumerate(_models()):
            st = Stages(model)
            m1, ns1 = model.m1, model.n_s + 1
            gflat = model.g_tab.reshape(-1)
            span = (model.n_s + 4) << (F_S - LS)
            for v in range(N // 8):
                ti, tj = rng.randrange(model.ntypes), rng.randrange(model.ntypes)
                s = model.s0 + rng.randint(-span // 20, span)
                hs = rng.choice([1 << 12, 1 << 20, 1 << 26])
                h = rng.randint(-hs, hs - 1)
                r = [rng.randint(-(1 << 23) + 1, (1 << 23) - 1) for _ in range(3)]
                emb = st.embedding(np.array([[s]]), np.array([[h]]), np.array([[r]]), np.array([ti]),
                                   np.array([[tj]]), np.array([[True]]))
                dut.em_s.value, dut.em_h.value = s, h
                dut.em_r0.value, dut.em_r1.value, dut.em_r2.value = r
                dut.em_ti.value, dut.em_tj.value = ti, tj
                await _settle()
                case = (which, v, s, h, r, ti, tj)
                assert [_sv(dut.em_R1), _sv(dut.em_R2), _sv(dut.em_R3)] == [int(x) for x in emb.R[0, 0, 1:]], case
                assert int(dut.em_gclamp.value) == bool(emb.g_clamped[0, 0]), case
                _count(got, "R", int(dut.em_nR.value))
                _count(got, "g_range", int(dut.em_gclamp.value))
                base = int(dut.em_gbase.value)
                for m in range(m1):  # the G table words at the core's addresses (nvq1_core S_G)
                    dut.gc_y0.value = int(gflat[base + m])
                    dut.gc_y1.value = int(gflat[base + m1 + m])
                    dut.gc_m0.value = int(gflat[base + ns1 * m1 + m])
                    dut.gc_m1.value = int(gflat[base + ns1 * m1 + m1 + m])
                    await _cubic(dut)
                    assert _sv(dut.gc_G) == emb.G[0, 0, m] and _sv(dut.gc_Gq) == emb.Gq[0, 0, m], (case, m)
                    _count(got, "G", int(dut.gc_cG.value))
                    _count(got, "G_slope", int(dut.gc_cGq.value))
                for k, n in _sub(emb.counts, sites).items():
                    _count(want, k, n)
        dut._log.info("counters (RTL, stage): %s %s", got, want)
        assert got == want and want["R"] > 0 and want["g_range"] > 0, (got, want)

    @cocotb.test()
    async def run_descriptor(dut):
        from nvnmd.sim.nvq1.stages import Stages

        model, _ = _models()
        st = Stages(model)
        rng = random.Random("nvq1-stage-descriptor")
        m1, m2, nt = model.m1, model.m2, model.ntypes
        sel = np.array(model.sel)
        got, want = {}, {}
        for v in range(max(3, N // 30)):
            K = rng.randint(1, 6)
            ti = rng.randrange(nt)
            rs, gs = rng.choice([1 << 10, 1 << 18, 1 << 26]), rng.choice([1 << 8, 1 << 17])
            lo = lambda s: -s
            if v % 3 == 0:  # full scale, one sign: T clips, and D of clipped T
                rs, gs, lo = 1 << 26, 1 << 17, (lambda s: s // 2)
            R = np.array([[rng.randint(lo(rs), rs - 1) for _ in range(4)] for _ in range(K)], dtype=np.int64)
            G = np.array([[rng.randint(lo(gs), gs - 1) for _ in range(m1)] for _ in range(K)], dtype=np.int64)
            n_in = np.array([rng.randint(0, s + 2) for s in sel], dtype=np.int64)
            dsc = st.descriptor(R[None], G[None], np.array([ti]), n_in[None])
            # padding and overflow (nvq1_st_pad)
            dut.pad_nin.value = sum(int(x) << (8 * k) for k, x in enumerate(n_in))
            npad = []
            for n in range(nt):
                dut.pad_n.value = n
                await _settle()
                npad.append(int(dut.pad_cnt.value))
            assert npad == [int(x) for x in np.maximum(sel - n_in, 0)], v
            assert int(dut.pad_over.value) == bool(np.any(n_in > sel)), v
            # T from the core's accumulators: Σ_k R̃[k,a] G[k,m] (+ the padded slots' constants on a = 0)
            acc = R.T @ G
            acc[0] += np.array(npad, dtype=np.int64) @ model.pad[ti].astype(np.int64)
            T = []
            for a in range(4):
                for m in range(m1):
                    dut.t_acc.value = int(acc[a, m])
                    await _settle()
                    T.append(_sv(dut.t_T))
                    _count(got, "T", int(dut.t_clip.value))
            T = np.array(T).reshape(4, m1)
            np.testing.assert_array_equal(T, dsc.T[0])
            for m in range(m1):
                for a2 in range(m2):
                    for a in range(4):
                        getattr(dut, f"d_a{a}").value = int(T[a, m])
                        getattr(dut, f"d_b{a}").value = int(T[a, a2])
                    await _settle()
                    assert _sv(dut.d_D) == dsc.D[0, m * m2 + a2], (v, m, a2)
                    _count(got, "D", int(dut.d_clip.value))
            for k, n in _sub(dsc.counts, ("T", "D")).items():
                _count(want, k, n)
        dut._log.info("counters (RTL, stage): %s %s", got, want)
        assert got == want and want["T"] > 0 and want["D"] > 0, (got, want)

    async def _forward(dut, model, st, D, ti, got):
        """Every fitting column of one atom through zcol, the tanh unit and xcol; the energy."""
        from nvnmd.sim.nvq1.model import F_A, F_E

        tflat = model.tanh_tab.reshape(-1)
        nseg = model.tanh_tab.shape[1] - 1  # 256 segments, value row then slope row
        x, fx = np.asarray(D, dtype=np.int64), model.frac["D"]
        outs = []
        for layer in model.layers[:-1]:
            w = layer.w[ti].astype(np.int64)
            acc = x @ w
            nout = w.shape[1]
            z, xo, dt = (np.zeros(nout, dtype=np.int64) for _ in range(3))
            for j in range(nout):
                dut.zc_acc.value = int(acc[j])
                dut.zc_k.value = int(fx + layer.e[ti, j] - 22)
                dut.zc_bias.value = int(layer.b[ti, j])
                await _settle()
                z[j] = _sv(dut.zc_z)
                _count(got, "z", int(dut.zc_clip.value))
                # the core's tanh table addresses (nvq1_core S_POST): Y[k], Y[k+1], M[k], M[k+1];
                # beyond the table Y[256] twice and (unused: t = 0, slope forced 0) M[0] twice
                if int(dut.zc_beyond.value):
                    a = (nseg, nseg, nseg + 1, nseg + 1)
                else:
                    seg = int(dut.zc_seg.value)
                    a = (seg, seg + 1, nseg + 1 + seg, nseg + 2 + seg)
                dut.th_y0.value, dut.th_y1.value, dut.th_m0.value, dut.th_m1.value = (int(tflat[k]) for k in a)
                dut.xc_idt.value = int(layer.idt is not None)
                dut.xc_fidt.value = int(layer.f_idt)
                dut.xc_iq.value = int(layer.idt[ti, j]) if layer.idt is not None else 0
                dut.xc_sc.value = {"none": 0, "identity": 1, "concat": 2}[layer.shortcut]
                dut.xc_xsc.value = int(x[j % x.size]) if layer.shortcut != "none" else 0
                dut.xc_fx.value = int(fx)
                await _cubic(dut)
                xo[j], dt[j] = _sv(dut.xc_x), _sv(dut.xc_dt)
                _count(got, "x", int(dut.xc_cx.value))
                _count(got, "tanh_slope", int(dut.xc_cdt.value))
            outs.append((z, xo, dt))
            x, fx = xo, F_A
        fin = model.layers[-1]
        dut.en_acc.value = int(x @ fin.w[ti][:, 0].astype(np.int64))
        dut.en_e.value = int(fin.e[ti][0]) + fx - F_E
        dut.en_c.value = int(model.e_const[ti])
        await _settle()
        return outs, _sv(dut.en_E)

    @cocotb.test()
    async def run_fitting_forward(dut):
        from nvnmd.sim.nvq1.model import F_A, F_E
        from nvnmd.sim.nvq1.stages import Stages

        assert F_A == F_E  # the core's energy shift 24 + e - 24 (nvq1_st_energy) assumes it
        rng = random.Random("nvq1-stage-forward")
        got, want = {}, {}
        for which, model in enumerate(_models()):
            st = Stages(model)
            nin = model.m1 * model.m2
            for v in range(2):
                ti = rng.randrange(model.ntypes)
                scale = rng.choice([1 << 16, 1 << 22, 1 << 26])
                D = np.array([rng.randint(-scale, scale - 1) for _ in range(nin)], dtype=np.int64)
                fwd = st.fitting_forward(D[None], np.array([ti]))
                outs, energy = await _forward(dut, model, st, D, ti, got)
                for l, (z, x, dt) in enumerate(outs):
                    np.testing.assert_array_equal(z, fwd.z[l][0], err_msg=f"z layer {l} ({which}, {v})")
                    np.testing.assert_array_equal(x, fwd.x[l][0], err_msg=f"x layer {l} ({which}, {v})")
                    np.testing.assert_array_equal(dt, fwd.dtanh[l][0], err_msg=f"tanh' layer {l} ({which}, {v})")
                assert energy == fwd.energy[0], (which, v)
                for k, n in _sub(fwd.counts, ("z", "x", "tanh_slope")).items():
                    _count(want, k, n)
        # x cannot clip with this student: no shortcut at layer 0, |idt| < 1/2 after (|x| < 3 at F_A)
        dut._log.info("counters (RTL, stage): %s %s", got, want)
        assert got == want and want["z"] > 0 and want["tanh_slope"] > 0, (got, want)

    @cocotb.test()
    async def run_fitting_backward(dut):
        from nvnmd.sim.nvq1.stages import Stages

        rng = random.Random("nvq1-stage-backward")
        lanes = int(dut.LANES.value)
        got, want = {}, {}
        for which, model in enumerate(_models()):
            st = Stages(model)
            nl = len(model.layers) - 1
            nin = model.m1 * model.m2
            for v in range(2):
                ti = rng.randrange(model.ntypes)
                D = np.array([rng.randint(-(1 << 22), 1 << 22) for _ in range(nin)], dtype=np.int64)
                fwd = st.fitting_forward(D[None], np.array([ti]))
                bwd = st.fitting_backward(fwd.dtanh, np.array([ti]))
                fin = model.layers[-1]
                wf = fin.w[ti][:, 0].astype(np.int64)
                g = []
                for b in range(wf.size // lanes):  # the seed, LANES weights per cycle (S_BINIT)
                    dut.sd_w.value = sum((int(x) & 0x3FFFF) << (18 * k) for k, x in enumerate(wf[b * lanes:(b + 1) * lanes]))
                    dut.sd_k.value = int(fin.e[ti][0]) - model.f_g[nl]
                    await _settle()
                    word = int(dut.sd_g.value)
                    for k in range(lanes):
                        c = (word >> (27 * k)) & ((1 << 27) - 1)
                        g.append(c - (1 << 27) if c >> 26 else c)
                    _count(got, "g", int(dut.sd_n.value))
                g = np.array(g, dtype=np.int64)
                seed, _ = st.seeds[ti]
                np.testing.assert_array_equal(g, seed)
                for l in range(nl - 1, -1, -1):
                    layer = model.layers[l]
                    w, e = layer.w[ti].astype(np.int64), layer.e[ti].astype(np.int64)
                    emin = int(e.min())
                    ghat = np.zeros(w.shape[1], dtype=np.int64)
                    for j in range(w.shape[1]):
                        dut.gh_g.value = int(g[j])
                        dut.gh_idt.value = int(layer.idt is not None)
                        dut.gh_fidt.value = int(layer.f_idt)
                        dut.gh_iq.value = int(layer.idt[ti, j]) if layer.idt is not None else 0
                        dut.gh_dt.value = int(fwd.dtanh[l][0, j])
                        dut.gh_k.value = int(e[j]) - emin
                        await _settle()
                        ghat[j] = _sv(dut.gh_v)
                    acc = w @ ghat
                    nin_l = w.shape[0]
                    gx = np.zeros(nin_l, dtype=np.int64)
                    for k in range(nin_l):
                        dut.gx_acc.value = int(acc[k])
                        dut.gx_k.value = model.f_g[l + 1] + emin - model.f_g[l]
                        dut.gx_kind.value = {"none": 0, "identity": 1, "concat": 2}[layer.shortcut]
                        dut.gx_sc.value = int(g[k] + g[k + nin_l]) if layer.shortcut == "concat" else \
                            (int(g[k]) if layer.shortcut == "identity" else 0)
                        dut.gx_ksc.value = model.f_g[l + 1] - model.f_g[l]
                        await _settle()
                        gx[k] = _sv(dut.gx_g)
                        _count(got, "g", int(dut.gx_clip.value))
                    g = gx
                np.testing.assert_array_equal(g, bwd.gD[0], err_msg=f"gD ({which}, {v})")
                _count(want, "g", bwd.counts.get("g", 0))
        dut._log.info("counters (RTL, stage): %s %s", got, want)
        assert got == want and want["g"] > 0, (got, want)

    @cocotb.test()
    async def run_descriptor_backward(dut):
        from nvnmd.sim.nvq1.stages import Stages

        model, _ = _models()
        st = Stages(model)
        rng = random.Random("nvq1-stage-pairs")
        m1, m2 = model.m1, model.m2
        sites = ("gT", "gT18", "gR", "gG", "gs", "gh", "gu", "pair_force")
        got, want = {}, {}

        def ints(full, shape, scales):
            """Random codes at one of the scales; `full`: the largest scale, one sign (sums clip)."""
            s = scales[-1] if full else rng.choice(scales)
            lo = s // 2 if full else -s
            return np.array([rng.randint(lo, s - 1) for _ in range(int(np.prod(shape)))], dtype=np.int64).reshape(shape)

        for v in range(max(3, N // 15)):
            K = rng.randint(1, 8)
            full = v % 3 == 0
            gD = ints(full, (m1 * m2,), [1 << 12, 1 << 20, 1 << 26])
            T = ints(full, (4, m1), [1 << 10, 1 << 17])
            R = ints(full, (K, 4), [1 << 16, 1 << 26])
            G, Gq = ints(full, (K, m1), [1 << 10, 1 << 17]), ints(full, (K, m1), [1 << 10, 1 << 17])
            r = ints(full, (K, 3), [1 << 20, (1 << 23) - 1])
            h, qs, qh = ints(full, (K,), [1 << 16, 1 << 26]), ints(full, (K,), [1 << 16, 1 << 26]), ints(full, (K,), [1 << 16, 1 << 26])
            pg = st.descriptor_backward(gD[None], T[None], R[None], G[None], Gq[None], r[None], h[None], qs[None],
                                        qh[None], np.ones((1, K), dtype=bool))
            # gT: the core sums Σ_a2 gD[m,a2] T[a,a2] + [m < M2] Σ_m' gD[m',m] T[a,m'] term by term
            gDm = gD.reshape(m1, m2)
            acc = T[:, :m2] @ gDm.T
            acc[:, :m2] += T @ gDm
            gT, gTs = np.zeros((4, m1), dtype=np.int64), np.zeros((4, m1), dtype=np.int64)
            for a in range(4):
                for m in range(m1):
                    dut.gt_acc.value = int(acc[a, m])
                    await _settle()
                    gT[a, m], gTs[a, m] = _sv(dut.gt_gT), _sv(dut.gt_gTs)
                    _count(got, "gT", int(dut.gt_c1.value))
                    _count(got, "gT18", int(dut.gt_c2.value))
            np.testing.assert_array_equal(gT, pg.gT[0])
            np.testing.assert_array_equal(gTs, pg.gTs[0])
            for k in range(K):
                gG = np.zeros(m1, dtype=np.int64)
                for a in range(4):
                    getattr(dut, f"gg_R{a}").value = int(R[k, a])
                for m in range(m1):
                    for a in range(4):
                        getattr(dut, f"gg_t{a}").value = int(gTs[a, m])
                    await _settle()
                    gG[m] = _sv(dut.gg_v)
                    _count(got, "gG", int(dut.gg_c.value))
                np.testing.assert_array_equal(gG, pg.gG[0, k])
                # the per-pair chain, each step fed the previous step's registered outputs (S_PF1..4)
                gra = gT @ G[k]
                for a in range(4):
                    getattr(dut, f"pa_gra{a}").value = int(gra[a])
                dut.pa_gsacc.value = int(gG @ Gq[k])
                await _settle()
                gR = [_sv(getattr(dut, f"pa_gR{a}")) for a in range(4)]
                assert gR == [int(x) for x in pg.gR[0, k]] and _sv(dut.pa_gs) == pg.gs[0, k], (v, k)
                _count(got, "gR", int(dut.pa_ngR.value))
                _count(got, "gs", int(dut.pa_cgs.value))
                dut.pa_rgR1.value, dut.pa_rgR2.value, dut.pa_rgR3.value = gR[1:]
                dut.pa_r0.value, dut.pa_r1.value, dut.pa_r2.value = [int(x) for x in r[k]]
                await _settle()
                assert _sv(dut.pa_gh) == pg.gh[0, k], (v, k)
                _count(got, "gh", int(dut.pa_cgh.value))
                dut.pa_rgs.value, dut.pa_rgh.value = _sv(dut.pa_gs), _sv(dut.pa_gh)
                dut.pa_qs.value, dut.pa_qh.value = int(qs[k]), int(qh[k])
                await _settle()
                assert _sv(dut.pa_gu) == pg.gu[0, k], (v, k)
                _count(got, "gu", int(dut.pa_cgu.value))
                dut.pa_rgu.value, dut.pa_h.value = _sv(dut.pa_gu), int(h[k])
                await _settle()
                assert [_sv(dut.pa_f0), _sv(dut.pa_f1), _sv(dut.pa_f2)] == [int(x) for x in pg.f[0, k]], (v, k)
                _count(got, "pair_force", int(dut.pa_nf.value))
            for s, n in _sub(pg.counts, sites).items():
                _count(want, s, n)
        dut._log.info("counters (RTL, stage): %s %s", got, want)
        assert got == want, (got, want)
        assert sum(1 for s in sites if want[s] > 0) >= 6, want

    @cocotb.test()
    async def run_assembly(dut):
        from nvnmd.sim.nvq1.stages import Stages

        model, _ = _models()
        st = Stages(model)
        rng = random.Random("nvq1-stage-assembly")
        got, want = {}, {}
        for v in range(max(2, N // 30)):
            full = v % 3 == 0  # every slot of 8 atoms on atom 0 with one sign: F_acc[0] clips 32 bits
            n, K = (8, 48) if full else (rng.randint(2, 8), rng.randint(1, 24))
            fs = (1 << 26) if full else rng.choice([1 << 12, 1 << 26])
            flo = (1 << 25) if full else -fs
            f = np.array([rng.randint(flo, fs - 1) for _ in range(n * K * 3)], dtype=np.int64).reshape(n, K, 3)
            r = np.array([rng.randint(-(1 << 23) + 1, (1 << 23) - 1) for _ in range(n * K * 3)],
                         dtype=np.int64).reshape(n, K, 3)
            j = np.array([0 if full or rng.random() < 0.5 else rng.randrange(n) for _ in range(n * K)]).reshape(n, K)
            out = st.forces_virial(f, r, j)
            # what the core accumulates: F_acc (Σ f on i, −f on j) and V_i[a][b] = Σ f_a r18_b
            facc = f.sum(axis=1)
            for d in range(3):
                facc[:, d] -= np.bincount(j.reshape(-1), weights=f[..., d].reshape(-1), minlength=n).astype(np.int64)
            r18 = (r + 32) >> 6
            virial = np.zeros(9, dtype=np.int64)
            for i in range(n):
                vi = np.einsum("ka,kb->ab", f[i], r18[i]).reshape(-1)
                dut.as_vi.value = sum((int(x) & ((1 << 64) - 1)) << (64 * k) for k, x in enumerate(vi))
                await _settle()
                word = int(dut.as_dvir.value)
                for k in range(9):
                    c = (word >> (64 * k)) & ((1 << 64) - 1)
                    virial[k] -= c - (1 << 64) if c >> 63 else c
            np.testing.assert_array_equal(virial.reshape(3, 3), out.virial)
            forces = np.zeros((n, 3), dtype=np.int64)
            for i in range(n):
                for d in range(3):
                    dut.as_facc.value = int(facc[i, d])
                    await _settle()
                    forces[i, d] = _sv(dut.as_force)
                    _count(got, "force", int(dut.as_clip.value))
            np.testing.assert_array_equal(forces, out.forces)
            _count(want, "force", out.counts.get("force", 0))
        dut._log.info("counters (RTL, stage): %s %s", got, want)
        assert got == want and want["force"] > 0, (got, want)


# ----------------------------------------------------------------------------- pytest side
STAGES = ["run_neighbours", "run_radial", "run_embedding", "run_descriptor", "run_fitting_forward",
          "run_fitting_backward", "run_descriptor_backward", "run_assembly"]


@pytest.fixture(scope="module")
def stages_sim(quantized, tmp_path_factory):
    """run(testcase): the one Icarus build of nvq1_stages_tb with the shipped student's parameters."""
    from conftest import need

    need("iverilog", "cocotb")
    from cocotb.runner import get_results, get_runner

    from nvnmd.fpga.rtl.core import coreconfig as cc

    model = quantized[0]
    root = tmp_path_factory.mktemp("core_stages")
    models = root / "models.pkl"  # our own file, written here and read back by the cocotb side
    models.write_bytes(pickle.dumps((model, forced_model(model))))
    params = {k: v for k, v in cc.core_params(model, root, LANES, 1, 1).items() if k in TB_PARAMS}
    params["FG0"] = model.f_g[0]
    runner = get_runner("icarus")
    build = root / "build"
    runner.build(verilog_sources=[cc.CORE_DIR / "nvq1_cubic.v", cc.CORE_DIR / "nvq1_stages.v",
                                  cc.CORE_DIR / "tb" / "nvq1_stages_tb.v"],
                 includes=[cc.CORE_DIR], hdl_toplevel="nvq1_stages_tb", parameters=params, build_dir=build,
                 timescale=("1ns", "1ps"))

    def run(testcase):
        results = runner.test(hdl_toplevel="nvq1_stages_tb", test_module="test_core_stages", testcase=testcase,
                              build_dir=build, test_dir=root,
                              extra_env={"NVQ1_MODELS": str(models),
                                         "PYTHONPATH": os.path.dirname(__file__) + os.pathsep + os.environ.get("PYTHONPATH", "")})
        total, failed = get_results(results)
        assert total == 1 and failed == 0, f"cocotb stage test {testcase} failed ({results})"

    return run


@pytest.mark.parametrize("stage", STAGES)
def test_stage(stages_sim, stage):
    stages_sim(stage)
