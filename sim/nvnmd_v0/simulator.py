"""Profile "nvnmd-v0" simulator: what deepmd-kit 3.2's NVNMD-v0 QNN model computes, bit for bit.

    sim = nvnmd.sim.load(image)               # image.profile == "nvnmd-v0"
    result = sim.compute(request)             # ComputeResult, encoding "float64"
    e, f, v, ae = sim.evaluate(positions, types, cell)   # float frames, same arithmetic

The reference is deepmd-kit's own emulation of the NVNMD hardware (`DeepPot` on
nvnmd_qnn/frozen_model.pb): its results are float64 values, so this profile returns float64
and the protocol carries their bit patterns unchanged. The datapath order is fpga/SPEC.md,
"Profile nvnmd-v0": deepmd-style coordinate wrap, ghost images and neighbour selection
(sorted by type, float32 distance, index; `sel` per type), environment in flt, s/h and G by
table lookup, block-float descriptor, fixed-point fitting net with tanh4, the registered
gradients in the graph's order, and deepmd-kit's sequential force/virial assembly.

The host's neighbour list (all pairs within rcut, any skin) only supplies candidates; the
profile recomputes every distance the way deepmd-kit does and selects from them.
"""

from __future__ import annotations

import numpy as np

from nvnmd.compute import ComputeRequest, ComputeResult
from nvnmd.errors import StructureError
from nvnmd.formats import CELL, COORD
from nvnmd.sim.board import BoardModel, Profile
from nvnmd.sim.nvnmd_v0 import ops as op
from nvnmd.sim.nvnmd_v0.model import (FIX_FRAC, GRAD_WX_FRAC, MAX_NEIGHBORS, MAX_TYPES, N_LAYERS,
                                      PROFILE, NvnmdV0Model)


class NvnmdV0Simulator(BoardModel):
    profile = PROFILE

    def __init__(self, model: NvnmdV0Model):
        super().__init__(model, MAX_NEIGHBORS)
        self._layers = [[model.layer_params(t, k) for k in range(N_LAYERS)] for t in range(self.ntypes)]

    # ---- entry points ----
    def compute(self, request: ComputeRequest) -> ComputeResult:
        nlist = self.checked_nlist(request)
        positions = COORD.decode(request.coords)
        cell = CELL.decode(request.cell).reshape(3, 3)
        ae, f, v, over = self._run(positions, np.asarray(request.types), cell, nlist,
                                   np.asarray(request.shifts, np.int64), request.pbc)
        return ComputeResult(energy=np.float64(op.eigen_sum(ae[self._order(request.types)])), atom_energy=ae,
                             forces=f, virial=v, overflow_atoms=over, encoding="float64")

    def evaluate(self, positions, types, cell, pbc: bool = True):
        """(energy, forces [N,3], virial [3,3], atom energies [N]) of a float frame, candidates
        from our own neighbour list at rcut."""
        from nvnmd.neighbors import build_neighbor_list

        positions = np.asarray(positions, np.float64).reshape(-1, 3)
        cell = np.asarray(cell, np.float64).reshape(3, 3)
        # a small margin: the list only supplies candidates, deepmd-kit's own tests select
        nl = build_neighbor_list(positions, cell, self.rcut + 0.01, pbc=pbc)
        ae, f, v, over = self._run(positions, np.asarray(types), cell, nl.nlist, nl.shifts.astype(np.int64), pbc)
        return op.eigen_sum(ae[self._order(types)]), f, v, ae

    @staticmethod
    def _order(types) -> np.ndarray:
        return np.argsort(np.asarray(types), kind="stable")  # deepmd-kit sorts atoms by type, stably

    # ---- the datapath ----
    def _run(self, positions, types, cell, nlist, shifts, pbc):
        positions = np.asarray(positions, np.float64).reshape(-1, 3)
        cell = np.asarray(cell, np.float64).reshape(3, 3)
        types = np.asarray(types, np.int64)
        if types.size and (types.min() < 0 or types.max() >= self.ntypes):
            raise StructureError(f"atom types must lie in 0..{self.ntypes - 1} ({' '.join(self.type_map)})")
        order = self._order(types)  # sorted position -> original index
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        typ = types[order]
        slots, rij, over = self._environment(positions[order], typ, cell, rank[np.asarray(nlist)[order]],
                                             np.where(nlist[order, :, None] >= 0, shifts[order], 0),
                                             np.asarray(nlist)[order] >= 0, pbc)
        ae_s, nd = self._atoms(typ, slots, rij)
        f_s, virial = _assemble(slots, rij, nd, typ.size)
        ae = np.empty_like(ae_s)
        ae[order] = ae_s
        forces = np.empty_like(f_s)
        forces[order] = f_s
        return ae, forces, virial.reshape(3, 3), over

    def _environment(self, pos, typ, cell, nbr, shifts, valid, pbc):
        """deepmd-kit's neighbour processing in sorted atom order -> (slot neighbour [n, NIDP]
        with -1 for empty, raw r_ij [n, NIDP, 3] in float64, atoms whose sel overflowed)."""
        n = pos.shape[0]
        if pbc:
            wrapped, image = _normalize(pos, cell)
        else:
            wrapped, image = pos.copy(), np.zeros((n, 3), np.int64)
        ci, kk = np.nonzero(valid)
        cj = nbr[ci, kk]
        mvec = shifts[ci, kk] - image[cj] + image[ci] if pbc else np.zeros((ci.size, 3), np.int64)
        # ghost = wrapped_j - inter2phys(pbc_shift) with pbc_shift = -m (deepmd-kit copy_coord)
        ps = -mvec.astype(np.float64)
        shift_v = ps[:, 0:1] * cell[0] + ps[:, 1:2] * cell[1] + ps[:, 2:3] * cell[2]
        ghost = wrapped[cj] - shift_v
        d = wrapped[ci] - ghost
        r2 = (d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) + d[:, 2] * d[:, 2]
        rc2_f32 = np.float32(self.rcut) * np.float32(self.rcut)
        dd = ghost.astype(np.float32) - wrapped[ci].astype(np.float32)
        r2f = (dd[:, 0] * dd[:, 0] + dd[:, 1] * dd[:, 1]) + dd[:, 2] * dd[:, 2]
        keep = (r2 < np.float64(rc2_f32)) & (r2f <= rc2_f32) & ~((cj == ci) & np.all(mvec == 0, axis=1))
        ci, cj, ghost, r2f, mvec = ci[keep], cj[keep], ghost[keep], r2f[keep], mvec[keep]
        # the same image listed twice would count as two neighbours: refuse such a list
        if ci.size and np.unique(np.column_stack([ci, cj, mvec]), axis=0).shape[0] != ci.size:
            raise StructureError("neighbour list holds the same periodic image of an atom twice")
        tj = typ[cj]
        srt = np.lexsort(_extended_index_key(wrapped, cell, self.rcut, cj, mvec, pbc)[::-1] + (r2f, tj, ci))
        ci, cj, ghost, tj = ci[srt], cj[srt], ghost[srt], tj[srt]
        key = ci * self.ntypes + tj
        start = np.searchsorted(key, key, side="left")
        rank_in = np.arange(key.size) - start
        sel = np.asarray(self.sel)
        offs = np.concatenate([[0], np.cumsum(sel)])
        ok = rank_in < sel[tj]
        over = int(np.unique(ci[~ok]).size)
        nidp = int(offs[-1])
        slots = np.full((n, nidp), -1, np.int64)
        rij = np.zeros((n, nidp, 3))
        col = offs[tj[ok]] + rank_in[ok]
        slots[ci[ok], col] = cj[ok]
        rij[ci[ok], col] = ghost[ok] - wrapped[ci[ok]]
        return slots, rij, over

    def _atoms(self, typ, slots, rij):
        """Descriptor, fitting net and their registered gradients -> (atom energies, net_deriv [n, NIDP, 4])."""
        m = self.model
        n, nidp = slots.shape
        sel = m.sel
        offs = np.concatenate([[0], np.cumsum(sel)]).astype(int)
        r = op.flt(rij)
        u = op.dotmul_flt(r, r)
        s = np.zeros((n, nidp))
        h = np.zeros((n, nidp))
        for t in range(self.ntypes):
            mt = typ == t
            if mt.any():
                sh = op.map_flt(u[mt], m.s_h[t], m.cfg_u2s)
                s[mt], h[mt] = op.flt(sh[..., 0]), op.flt(sh[..., 1])
        rxyz = op.flt(op.mul_flt(h[..., None], r))
        R = np.concatenate([s[..., None], rxyz], axis=-1)
        gr_sum = None
        secs = []
        for nt in range(self.ntypes):
            sec = slice(offs[nt], offs[nt + 1])
            rs = op.flt(R[:, sec])
            G = op.flt(op.map_flt(rs[..., 0], m.g[nt], m.cfg_s2g))
            part = op.matmul_flt2fix(np.swapaxes(rs, 1, 2), G, FIX_FRAC)
            gr_sum = part if gr_sum is None else gr_sum + part
            secs.append((sec, rs, G))
        T = op.flt(gr_sum * (1.0 / m.nix))
        d_full = op.matmul_flt(np.swapaxes(T, 1, 2), T, per_row=False)
        gi, gk = _gather_index(m.m1, m.m2)
        D = op.q_floor(op.flt(d_full[:, gi, gk]), FIX_FRAC)

        atom_e = np.zeros(n)
        gD = np.zeros((n, m.m1 * m.m2))
        for t in range(self.ntypes):
            mt = typ == t
            if mt.any():
                atom_e[mt], gD[mt] = self._fitting(t, D[mt])
        # descriptor backward
        gD = op.flt(op.q_floor(gD, FIX_FRAC))
        gfull = np.zeros((n, m.m1, m.m1))
        gfull[:, gi, gk] = gD
        gT = op.matmul_flt2fix(T, gfull, FIX_FRAC) + np.swapaxes(
            op.matmul_flt2fix(gfull, np.swapaxes(T, 1, 2), FIX_FRAC), 1, 2)
        gGR = op.flt(gT) * (1.0 / m.nix)
        gR = np.zeros((n, nidp, 4))
        for nt, (sec, rs, G) in enumerate(secs):
            g_rs_t = op.matmul_flt(gGR, np.swapaxes(G, 1, 2), per_row=True)  # [n, 4, sel]
            gG = op.flt(op.matmul_flt(rs, gGR, per_row=True))  # [n, sel, 32]
            gs = op.dotmul_flt(op.map_flt(rs[..., 0], m.g_grad[nt], m.cfg_s2g), gG)
            pad = np.zeros(rs.shape)
            pad[..., 0] = gs
            gR[:, sec] = op.flt(op.add_flt(pad, np.swapaxes(g_rs_t, 1, 2)))
        gs = op.flt(gR[..., 0])
        grxyz = op.flt(gR[..., 1:])
        gh = op.flt(op.dotmul_flt(r, grxyz))
        gr = op.flt(op.mul_flt(h[..., None], grxyz))
        gu = np.zeros((n, nidp))
        for t in range(self.ntypes):
            mt = typ == t
            if mt.any():
                dsh = op.map_flt(u[mt], m.s_h_grad[t], m.cfg_u2s)
                gu[mt] = op.flt(op.dotmul_flt(dsh, np.stack([gs[mt], gh[mt]], axis=-1)))
        nd = np.concatenate([gu[..., None], gr], axis=-1) + 0.0  # AddN turns -0 into +0
        return atom_e, nd

    def _fitting(self, t, D):
        """Fitting net of centre type t forward and backward -> (atom energies, dE/dD)."""
        q = op.q_round
        x = D
        saved = []
        for k in range(N_LAYERS):
            (fw, fscale), _, b = self._layers[t][k]
            wx = q(op.matmul_fitnet(q(x, FIX_FRAC), fw, fscale, FIX_FRAC), FIX_FRAC)
            wxb = q(wx + b, FIX_FRAC)
            if k < N_LAYERS - 1:
                y = q(op.tanh4(wxb), FIX_FRAC)
                x = y if k == 0 else x + y
            else:
                e = q(wxb, FIX_FRAC)
            saved.append(wxb)
        atom_e = e[:, 0] + self.model.e_shift[t]
        g = np.ones((D.shape[0], 1))
        for k in range(N_LAYERS - 1, -1, -1):
            _, (bw, bscale), _ = self._layers[t][k]
            g1 = q(g, FIX_FRAC)
            if k < N_LAYERS - 1:
                g1 = op.tanh4_grad(saved[k], g1)
            g1 = q(q(g1, FIX_FRAC), GRAD_WX_FRAC)
            gx = q(op.matmul_fitnet(g1, bw, bscale, FIX_FRAC), FIX_FRAC)
            g = g + gx if k in (1, 2) else gx
        return atom_e, g


def _extended_index_key(wrapped, cell, rcut, cj, mvec, pbc):
    """Keys (most significant first) ordering candidates as deepmd-kit's extended atom index,
    which breaks exact float32 distance ties: local atoms first by index, then images in the
    order copy_coord generates them (ghost cell ii0, ii1, ii2 over the cell grid, then atom
    index). Cell assignment uses our fractional coordinates (only ties at cell faces differ)."""
    ghost = np.any(mvec != 0, axis=1).astype(np.int64)
    if not pbc:
        return ghost, cj
    b = cell
    vol = abs(np.linalg.det(b))
    faces = [np.cross(b[1], b[2]), np.cross(b[2], b[0]), np.cross(b[0], b[1])]
    ncell = np.array([max(int(vol / np.sqrt(np.dot(f, f)) / rcut), 1) for f in faces])
    frac = wrapped @ np.linalg.inv(b)
    home = np.minimum(np.maximum((frac * ncell).astype(np.int64), 0), ncell - 1)
    ii = (home[cj] + mvec * ncell) * ghost[:, None]
    return ghost, ii[:, 0], ii[:, 1], ii[:, 2], cj


def _gather_index(m1: int, m2: int):
    """deepmd-kit NVNMD's descriptor gather: D[m2*i + k] = D_full[i][(i + k) mod m1]."""
    i = np.repeat(np.arange(m1), m2)
    k = np.tile(np.arange(m2), m1)
    return i, (i + k) % m1


def _normalize(pos, cell):
    """deepmd-kit normalize_coord: fractional round trip with fmod, term by term; returns the
    wrapped positions and the integer image each atom moved by."""
    b = cell.reshape(-1)
    vol = abs(b[0] * (b[4] * b[8] - b[7] * b[5]) - b[1] * (b[3] * b[8] - b[6] * b[5])
              + b[2] * (b[3] * b[7] - b[6] * b[4]))
    vi = 1.0 / vol
    rec = _rec_boxt(b, vi)
    x, y, z = pos[:, 0], pos[:, 1], pos[:, 2]
    f = np.stack([(x * rec[3 * d + 0] + y * rec[3 * d + 1]) + z * rec[3 * d + 2] for d in range(3)], axis=1)
    f = np.fmod(f, 1.0)
    f = np.where(f < 0, f + 1.0, f)
    wrapped = np.stack([(f[:, 0] * b[0 + d] + f[:, 1] * b[3 + d]) + f[:, 2] * b[6 + d] for d in range(3)], axis=1)
    image = np.rint((wrapped - pos) @ np.linalg.inv(cell)).astype(np.int64)
    return wrapped, image


def _rec_boxt(b, vi):
    rec = np.empty(9)
    rec[0] = (b[4] * b[8] - b[7] * b[5]) * vi
    rec[4] = (b[0] * b[8] - b[6] * b[2]) * vi
    rec[8] = (b[0] * b[4] - b[3] * b[1]) * vi
    rec[1] = (-b[3] * b[8] + b[6] * b[5]) * vi
    rec[2] = (b[3] * b[7] - b[6] * b[4]) * vi
    rec[3] = (-b[1] * b[8] + b[7] * b[2]) * vi
    rec[5] = (-b[0] * b[7] + b[6] * b[1]) * vi
    rec[6] = (b[1] * b[5] - b[4] * b[2]) * vi
    rec[7] = (-b[0] * b[5] + b[3] * b[2]) * vi
    return rec


def _assemble(slots, rij, nd, n):
    """deepmd-kit prod_force_a / prod_virial_a in their sequential order (one thread):
    atom i subtracts all its slot terms, then adds each term to its neighbour j; the virial
    subtracts (-nd * r_raw) * deriv over (i, slot, row). Only non-zero terms are replayed."""
    ci, kk = np.nonzero(slots >= 0)
    cj = slots[ci, kk]
    nslot = slots.shape[1]
    r = op.flt(rij[ci, kk])  # descrpt_deriv uses the masked r
    rraw = rij[ci, kk]
    ndu = nd[ci, kk, 0]
    forces = np.zeros((n, 3))
    virial = np.zeros(9)
    for d in range(3):
        tu = ndu * (-2.0 * r[:, d])  # row u: deriv (-2 r)
        tx = nd[ci, kk, 1 + d] * -1.0  # row x/y/z: deriv -1 on its own direction
        base = (ci * 2 * nslot + kk) * 2
        keys = np.concatenate([base, base + 1, base + 2 * nslot, base + 2 * nslot + 1])
        targets = np.concatenate([ci, ci, cj, cj])
        vals = np.concatenate([-tu, -tx, tu, tx])
        o = np.argsort(keys, kind="stable")
        np.add.at(forces[:, d], targets[o], vals[o])
    for d0 in range(3):
        for d1 in range(3):
            t0 = (-ndu * rraw[:, d1]) * (-2.0 * r[:, d0])
            t1 = (-nd[ci, kk, 1 + d0] * rraw[:, d1]) * -1.0
            seq = np.stack([-t0, -t1], axis=1).reshape(-1)  # order (i, slot, row)
            virial[3 * d0 + d1] = np.add.accumulate(seq)[-1] if seq.size else 0.0
    return forces, virial


def load(image) -> NvnmdV0Simulator:
    return NvnmdV0Simulator(NvnmdV0Model.from_image(image))


class NvnmdV0Profile(Profile):
    name = PROFILE
    max_types = MAX_TYPES
    max_neighbors = MAX_NEIGHBORS
    kernels = ("fast",)  # one float64 datapath; no table floor (its tables cover r = 0..rcut)

    def _load(self, image, kernel: str) -> NvnmdV0Simulator:
        return load(image)


BOARD = NvnmdV0Profile()
