"""nvq1 reference kernel: plain integer loops that read like fpga/SPEC.md, step by step.

Python ints for per-neighbour scalars and numpy int64 vectors for the M1 channels, so every
shift is a true arithmetic shift and nothing relies on float64. It is slow (seconds for a
400-atom frame) and exists to pin the fast kernel (fast.py) down bit for bit.
Section numbers refer to SPEC.md.
"""

from __future__ import annotations

import numpy as np

from nvnmd.sim.nvq1.model import (
    DATA_BITS, F_A, F_COORD, F_DT, F_E, F_F, F_R18, F_S, F_TANH, F_U, F_V, F_Z, LS, LT, LU, R_LIM,
    SHORT_SHIFT, TBITS, W_BITS, Nvq1Model,
)

MASK = (1 << TBITS) - 1


def rnd(x, k):
    """Round-half-up right shift by k bits (left shift when k < 0); ints or int64 arrays."""
    if isinstance(x, np.ndarray):
        k = np.asarray(k, dtype=np.int64)
        pos = np.maximum(k, 0)
        right = (x + np.where(k > 0, np.left_shift(1, np.maximum(pos - 1, 0)), 0)) >> pos
        return np.where(k < 0, x * np.left_shift(1, np.maximum(-k, 0)), right)
    k = int(k)
    if k > 0:
        return (x + (1 << (k - 1))) >> k
    return x << (-k)


class Counts:
    def __init__(self):
        self.sites: dict[str, int] = {}

    def sat(self, x, bits: int, site: str):
        hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
        if isinstance(x, np.ndarray):
            n = int(np.count_nonzero((x > hi) | (x < lo)))
            x = np.clip(x, lo, hi)
        else:
            n = int(x > hi or x < lo)
            x = min(max(x, lo), hi)
        if n:
            self.sites[site] = self.sites.get(site, 0) + n
        return x


def cubic(a, b, c, d, t):
    """§4 cubic unit: value at offset t (TBITS-bit) from integer Hermite coefficients."""
    return d + rnd(t * (c + rnd(t * (b + rnd(t * a, TBITS)), TBITS)), TBITS)


def cubic_slope(a, b, c, t):
    """§4: dy/dt (per segment) from the same coefficients."""
    return c + rnd(t * (2 * b + rnd(3 * a * t, TBITS)), TBITS)


def coeffs(y, m, k):
    """Hermite coefficients of segment k from grid values/slopes (last axis or first index)."""
    y0, y1, m0, m1 = y[k], y[k + 1], m[k], m[k + 1]
    return 2 * (y0 - y1) + m0 + m1, 3 * (y1 - y0) - 2 * m0 - m1, m0, y0


def tanh_unit(M: Nvq1Model, z: int, cnt: Counts):
    """§6.2 tanh: odd table over |z| < 8, constant beyond; returns (tanh F_A, tanh' F_DT)."""
    y_tab, m_tab = M.tanh_tab[0], M.tanh_tab[1]
    mag, neg = abs(z), z < 0
    seg, t = mag >> (F_Z - LT), mag & MASK
    nseg = len(y_tab) - 1
    if seg >= nseg:
        y, q = int(y_tab[nseg]), 0
    else:
        a, b, c, d = (int(v) for v in coeffs(y_tab, m_tab, seg))
        y, q = cubic(a, b, c, d, t), cubic_slope(a, b, c, t)
    th = rnd(y, F_TANH - F_A)
    dt = cnt.sat(rnd(q, F_TANH - LT - F_DT), W_BITS, "tanh_slope")
    return (-th if neg else th), dt


def compute_reference(M: Nvq1Model, coords, types, cell, nlist, shifts, trace: list | None = None):
    """Returns (atom_energy[N], forces[N,3], virial[3,3], counts dict, overflow_atoms).

    With `trace` (a list), one dict per atom is appended holding every intermediate of its
    §5–§7 steps under the names of stages.py (per in-range slot k: "slots"[k]), so the stages
    can be held to these loops one at a time (tests/test_sim_stages.py)."""
    cnt = Counts()
    fr = M.frac
    F_h, F_Gt, F_T, F_D = fr["h"], fr["Gt"], fr["T"], fr["D"]
    F_G = F_Gt - SHORT_SHIFT
    coords = [[int(v) for v in row] for row in coords]
    cell = [[int(v) for v in row] for row in cell]
    types = [int(t) for t in types]
    n, nt, m1, m2 = len(coords), M.ntypes, M.m1, M.m2
    force_acc = [[0, 0, 0] for _ in range(n)]
    atom_e = np.zeros(n, dtype=np.int64)
    vir_acc = [[0] * 3 for _ in range(3)]
    overflow = 0
    for i in range(n):
        ti = types[i]
        # §5.1-5.4: per listed neighbour, in-range test, u tables, R̃, G tables
        t_acc = np.zeros((4, m1), dtype=np.int64)
        n_in = [0] * nt
        pairs = []
        tr = None if trace is None else {"slots": {}, "z": [], "x": [], "dtanh": [], "pair_grads": {}}
        for k in range(nlist.shape[1]):
            j = int(nlist[i][k])
            if j < 0:
                continue
            sh = [int(v) for v in shifts[i][k]]
            r = [coords[j][d] + sum(sh[e] * cell[e][d] for e in range(3)) - coords[i][d] for d in range(3)]
            if any(abs(v) >= R_LIM for v in r):
                continue
            u = r[0] * r[0] + r[1] * r[1] + r[2] * r[2]
            if u >= M.u_cut:
                continue
            tj = types[j]
            n_in[tj] += 1
            seg, t = u >> (F_U - LU), (u >> (F_U - LU - TBITS)) & MASK
            close = seg < M.k_lo
            if close:
                seg, t = M.k_lo, 0
                cnt.sites["close_contact"] = cnt.sites.get("close_contact", 0) + 1
            ut = M.u_tab[ti]
            a, b, c, d = (int(v) for v in coeffs(ut[0], ut[1], seg))
            s, qs = cubic(a, b, c, d, t), cubic_slope(a, b, c, t)
            a, b, c, d = (int(v) for v in coeffs(ut[2], ut[3], seg))
            h, qh = cubic(a, b, c, d, t), cubic_slope(a, b, c, t)
            if close:
                qs = qh = 0
            s = cnt.sat(s, DATA_BITS, "s")
            h = cnt.sat(h, DATA_BITS, "h")
            R = [s] + [cnt.sat(rnd(h * r[dd], F_h + F_COORD - F_S), DATA_BITS, "R") for dd in range(3)]
            x = s - M.s0
            gseg, gt = x >> (F_S - LS), x & MASK
            clamped = gseg < 0 or gseg >= M.n_s
            if clamped:
                cnt.sites["g_range"] = cnt.sites.get("g_range", 0) + 1
                gseg, gt = (0, 0) if gseg < 0 else (M.n_s - 1, MASK)
            gtab = M.g_tab[M.gtab_index(ti, tj)]
            a, b, c, d = coeffs(gtab[0], gtab[1], gseg)
            G = cnt.sat(rnd(cubic(a, b, c, d, gt), SHORT_SHIFT), W_BITS, "G")
            Gq = cnt.sat(rnd(cubic_slope(a, b, c, gt), fr["Gq"]), W_BITS, "G_slope")
            if clamped:
                Gq = np.zeros_like(Gq)
            for aa in range(4):
                t_acc[aa] += R[aa] * G
            pairs.append((k, j, r, h, qs, qh, R, G, Gq))
            if tr is not None:
                tr["slots"][k] = dict(j=j, r=r, u=u, s=s, qs=qs, h=h, qh=qh, R=R, G=G, Gq=Gq)
        # §5.5 padded slots: a constant per (centre type, neighbour type)
        for tj in range(nt):
            t_acc[0] += max(M.sel[tj] - n_in[tj], 0) * M.pad[ti, tj]
        if any(n_in[tj] > M.sel[tj] for tj in range(nt)):
            overflow += 1
        # §5.6 T and D
        T = cnt.sat(rnd(t_acc, F_S + F_G - F_T), W_BITS, "T")
        D = np.zeros((m1, m2), dtype=np.int64)
        for m in range(m1):
            for a2 in range(m2):
                D[m, a2] = sum(int(T[aa, m]) * int(T[aa, a2]) for aa in range(4))
        x = cnt.sat(rnd(D, 2 * F_T - F_D), DATA_BITS, "D").reshape(-1)
        if tr is not None:
            tr.update(n_in=list(n_in), T=T, D=x)
        # §6 fitting net forward
        fx, saved = F_D, []
        for layer in M.layers[:-1]:
            W, E = layer.w[ti], layer.e[ti]
            acc = x @ W  # int64 matmul: exact integer dot products (no float)
            z = cnt.sat(rnd(acc, fx + E - F_Z) + layer.b[ti], DATA_BITS, "z")
            th, dt = zip(*(tanh_unit(M, int(v), cnt) for v in z))
            y = np.array(th, dtype=np.int64)
            if layer.idt is not None:
                y = rnd(y * layer.idt[ti], layer.f_idt)
            saved.append((fx, np.array(dt, dtype=np.int64)))
            x = cnt.sat(y + _shortcut(layer.shortcut, x, fx - F_A), DATA_BITS, "x")
            fx = F_A
            if tr is not None:
                tr["z"].append(z)
                tr["x"].append(x)
                tr["dtanh"].append(saved[-1][1])
        fin = M.layers[-1]
        Wf, Ef = fin.w[ti][:, 0], int(fin.e[ti][0])
        acc = int(x @ Wf)
        atom_e[i] = rnd(acc, fx + Ef - F_E) + int(M.e_const[ti])
        # §7 backward: fitting net
        nl = len(M.layers) - 1
        g = cnt.sat(rnd(Wf, Ef - M.f_g[nl]), DATA_BITS, "g")
        for l in range(nl - 1, -1, -1):
            layer = M.layers[l]
            _, dt = saved[l]
            W, E = layer.w[ti], layer.e[ti]
            gth = rnd(g * layer.idt[ti], layer.f_idt) if layer.idt is not None else g
            gz = rnd(gth * dt, F_DT)
            emin = int(E.min())
            gh = rnd(gz, E - emin)
            acc = W @ gh
            back = _shortcut_grad(layer.shortcut, g, W.shape[0], M.f_g[l + 1] - M.f_g[l])
            g = cnt.sat(rnd(acc, M.f_g[l + 1] + emin - M.f_g[l]) + back, DATA_BITS, "g")
        # §7.2 descriptor: gT, then per pair gR̃, gG, gs̃, gh̃, gu, pair force
        gD = g.reshape(m1, m2)
        if tr is not None:
            tr.update(energy=int(atom_e[i]), gD=g)
        gT_acc = np.zeros((4, m1), dtype=np.int64)
        for aa in range(4):
            for m in range(m1):
                v = sum(int(gD[m, a2]) * int(T[aa, a2]) for a2 in range(m2))
                if m < m2:
                    v += sum(int(gD[mm, m]) * int(T[aa, mm]) for mm in range(m1))
                gT_acc[aa, m] = v
        gT = cnt.sat(rnd(gT_acc, M.f_g[0] + F_T - fr["gT"]), DATA_BITS, "gT")
        gTs = cnt.sat(rnd(gT, SHORT_SHIFT), W_BITS, "gT18")
        vir_i = [[0] * 3 for _ in range(3)]
        if tr is not None:
            tr.update(gT=gT, gTs=gTs)
            trace.append(tr)
        for k, j, r, h, qs, qh, R, G, Gq in pairs:
            gR = [cnt.sat(rnd(int(np.dot(gT[aa], G)), fr["gT"] + F_G - fr["gR"]), DATA_BITS, "gR") for aa in range(4)]
            gG = cnt.sat(rnd(sum(gTs[aa] * R[aa] for aa in range(4)), fr["gT"] - SHORT_SHIFT + F_S - fr["gG"]),
                         DATA_BITS, "gG")
            gs = rnd(int(np.dot(gG, Gq)), fr["gG"] + F_Gt - fr["Gq"] - LS - fr["gs"]) + rnd(gR[0], fr["gR"] - fr["gs"])
            gs = cnt.sat(gs, DATA_BITS, "gs")
            gh = cnt.sat(rnd(sum(gR[1 + dd] * r[dd] for dd in range(3)), fr["gR"] + F_COORD - fr["gh"]), DATA_BITS, "gh")
            gu = rnd(gs * qs, fr["gs"] + F_S - LU - fr["gu"]) + rnd(gh * qh, fr["gh"] + F_h - LU - fr["gu"])
            gu = cnt.sat(gu, DATA_BITS, "gu")
            f = [cnt.sat(rnd(2 * gu * r[dd], fr["gu"] + F_COORD - fr["p"]) + rnd(gR[1 + dd] * h, fr["gR"] + F_h - fr["p"]),
                         DATA_BITS, "pair_force") for dd in range(3)]
            if tr is not None:
                tr["pair_grads"][k] = dict(gR=gR, gG=gG, gs=gs, gh=gh, gu=gu, f=f)
            r18 = [rnd(v, F_COORD - F_R18) for v in r]
            for d0 in range(3):
                force_acc[i][d0] += f[d0]
                force_acc[j][d0] -= f[d0]
                for d1 in range(3):
                    vir_i[d0][d1] += f[d0] * r18[d1]
        for d0 in range(3):
            for d1 in range(3):
                vir_acc[d0][d1] -= rnd(vir_i[d1][d0], fr["p"] + F_R18 - F_V)
    forces = cnt.sat(rnd(np.array(force_acc, dtype=np.int64), fr["p"] - F_F), 32, "force")
    virial = np.array(vir_acc, dtype=np.int64)
    return atom_e, forces, virial, cnt.sites, overflow


def _shortcut(kind: str, x, shift: int):
    if kind == "identity":
        return rnd(x, shift)
    if kind == "concat":
        return rnd(np.concatenate([x, x]), shift)
    return 0


def _shortcut_grad(kind: str, g, nin: int, shift: int):
    if kind == "identity":
        return rnd(g, shift)
    if kind == "concat":
        return rnd(g[:nin] + g[nin:], shift)
    return 0
