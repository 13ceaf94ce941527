"""Student -> nvq1 model: limits, tables, integer weights and calibrated fractions (SPEC.md §3).

`quantize(student, frames)` refuses what the board cannot hold (UnsupportedModelError) or
what would saturate (FixedPointOverflowError), builds every table and weight, runs the fast
kernel in probe mode over the calibration frames to size the calibrated fractions, and
returns the `Nvq1Model` plus a dict of what it chose and measured.
"""

from __future__ import annotations

import math

import numpy as np

from nvnmd.errors import FixedPointOverflowError, UnsupportedModelError
from nvnmd.sim.nvq1 import model as S
from nvnmd.sim.nvq1.model import Layer, Nvq1Model
from nvnmd.quantize.tables import net_with_derivative, radial, sample

FWD_MARGIN = 2.0  # headroom over the calibration maxima: one spare bit
BWD_MARGIN = 4.0  # gradients vary more between structures: two spare bits
CLOSE_FACTOR = 0.8  # u grid reaches down to 0.8 x the closest pair seen in training/calibration
PROBE_FRAC = 30


def check_limits(student) -> None:
    def refuse(msg):
        raise UnsupportedModelError(f"cannot map onto the nvq1 board: {msg}")

    if student.ntypes > S.MAX_TYPES:
        refuse(f"{student.ntypes} species, the board holds at most {S.MAX_TYPES}")
    if student.nnei > S.MAX_SEL_TOTAL:
        refuse(f"sel {student.sel} sums to {student.nnei}, above the board's {S.MAX_SEL_TOTAL} neighbours")
    if student.rcut > S.MAX_RCUT:
        refuse(f"rcut {student.rcut} Å is above the board's {S.MAX_RCUT} Å")
    if student.m1 > S.MAX_M1 or student.axis_neuron > S.MAX_M2 or student.axis_neuron > student.m1:
        refuse(f"embedding width {student.m1} / axis_neuron {student.axis_neuron} above {S.MAX_M1}/{S.MAX_M2}")
    for net in student.fitting:
        for k, layer in enumerate(net.layers):
            last = k == len(net.layers) - 1
            if layer.w.shape[1] > S.MAX_WIDTH:
                refuse(f"fitting width {layer.w.shape[1]} above {S.MAX_WIDTH}")
            if last and (layer.activation != "linear" or layer.w.shape[1] != 1):
                refuse("the final fitting layer must be linear with one output")
            if not last and layer.activation != "tanh":
                refuse(f"fitting activation '{layer.activation}' (tanh only)")
            nin, nout = layer.w.shape
            if k == 0 and layer.resnet and nout in (nin, 2 * nin):
                # the board's D carries deepmd's 1/nnei² in the first layer's weights, so a
                # shortcut from D would add the unnormalised descriptor
                refuse("a residual connection on the first fitting layer (from the descriptor)")


def quantize(student, frames, *, close_distance: float | None = None, progress=None):
    """Returns (Nvq1Model, info dict)."""
    from nvnmd.compute import frame_request
    from nvnmd.sim.nvq1.fast import FastKernel

    check_limits(student)
    nt = student.ntypes
    by_type = min_pair_distance_by_type(frames, student.rcut, nt)
    dmin_data = float(by_type.min()) if np.isfinite(by_type).any() else None
    candidates = [d for d in (student.min_nbor_dist, dmin_data) if d]
    dmin = min(candidates) if candidates else 1.0
    r_lo = CLOSE_FACTOR * dmin if close_distance is None else close_distance
    r_fit = _closest_mappable(student)
    clamped_type = np.zeros(nt, dtype=bool)
    if close_distance is None and r_lo < float(r_fit.max()):
        # the R̃ format (±16) cannot reach further in; accept a smaller margin below the data
        ordinary = r_fit <= 0.95 * dmin
        if ordinary.any():
            r_lo = max(r_lo, float(r_fit[ordinary].max()))
        clamped_type = ~ordinary
        for t in np.nonzero(clamped_type)[0]:
            # a centre type with narrow statistics (a scarce halide): its rows end further out, which
            # is sound only where the guard's wall already acts, inside that element's closest pair
            name = student.type_map[t]
            d_t = _closest_pair_of(student, name)
            d_t = None if d_t is None else min(d_t, by_type[t])
            if d_t is None or r_fit[t] > 0.95 * d_t:
                raise FixedPointOverflowError(
                    f"pairs as close as {dmin if d_t is None else d_t:.3f} Å give {name}-centred environments "
                    f"beyond the ±16 R̃ format (representable down to {r_fit[t]:.3f} Å with this model's davg/dstd)")
    r_type = np.where(clamped_type, r_fit, r_lo)  # where each centre type's rows end
    # §5.2 u tables
    du = 2.0**-S.LU
    n_u = math.ceil(student.rcut**2 / du)
    k_lo = int(math.ceil(r_lo**2 / du))
    if k_lo < 1 or k_lo >= n_u:
        raise FixedPointOverflowError(f"closest pair distance {dmin:.3f} Å gives no usable u grid")
    ug = np.arange(n_u + 1) * du
    k_type = np.maximum(k_lo, np.ceil(r_type**2 / du).astype(int))  # per centre type, >= k_lo
    ug_safe = np.maximum(ug[None, :], (k_type * du)[:, None])
    s, ds, h, dh = radial(ug_safe, student.rcut, student.rcut_smth)
    below = ug[None, :] < (k_type * du)[:, None]
    ds = np.where(below, 0.0, ds)
    dh = np.where(below, 0.0, dh)
    s_t = (s - student.davg[:, :1]) / student.dstd[:, :1]
    ds_t = ds / student.dstd[:, :1]
    h_t = h / student.dstd[:, 1:2]
    dh_t = dh / student.dstd[:, 1:2]
    s_max = float(s_t.max())
    rxyz_max = float((h_t * np.sqrt(ug_safe)).max())
    limit = 2.0 ** (S.DATA_BITS - 1 - S.F_S) * 0.95
    if s_max >= limit or rxyz_max >= limit:
        raise FixedPointOverflowError(
            f"normalised environment up to {max(s_max, rxyz_max):.2f} at r = {r_lo:.3f} Å exceeds the ±16 R̃ format; "
            f"the model's davg/dstd or the closest pair distance ({dmin:.3f} Å) cannot be mapped")
    f_h = int(math.floor(math.log2((2.0 ** (S.DATA_BITS - 1) * 0.95) / float(h_t.max()))))
    ys, ms = sample(s_t, ds_t, du, S.F_S)
    yh, mh = sample(h_t, dh_t, du, f_h)
    u_tab = np.stack([ys, ms, yh, mh], axis=1)
    s_pad = ys[:, -1]  # value beyond rcut: exactly -davg/dstd on the grid
    # §5.4 G tables over [s0, s_end]
    step = 2.0**-S.LS
    lo = float(min(s_t.min(), (-student.davg[:, 0] / student.dstd[:, 0]).min()))
    s0 = math.floor(lo / step) - 1
    n_s = math.ceil(s_max / step) + 1 - s0
    sg = (s0 + np.arange(n_s + 1)) * step
    ntab = nt if student.type_one_side else nt * nt
    nets = [student.embedding[0][tj] for tj in range(nt)] if student.type_one_side else \
        [student.embedding[ti][tj] for ti in range(nt) for tj in range(nt)]
    gv = [net_with_derivative(net, sg) for net in nets]
    gmax = max(float(np.abs(v).max()) for v, _ in gv)
    f_gt = int(math.floor(math.log2((2.0 ** (S.DATA_BITS - 1) * 0.98) / gmax)))
    g_tab = np.zeros((ntab, 2, n_s + 1, student.m1), dtype=np.int64)
    for k, (v, dv) in enumerate(gv):
        g_tab[k, 0], g_tab[k, 1] = sample(v, dv, step, f_gt)
    # the slope keeps 18 significant bits of its own range (a slope per 2^-5 step is small)
    qmax = float(np.abs(g_tab[:, 1]).max()) * 1.05 + 1.0
    f_gq = max(0, int(math.ceil(math.log2(qmax / (2.0 ** (S.W_BITS - 1) - 1)))))
    # §6.2 tanh table
    xt = np.arange((8 << S.LT) + 1) * 2.0**-S.LT
    th = np.tanh(xt)
    yt, mt = sample(th, 1 - th * th, 2.0**-S.LT, S.F_TANH)
    tanh_tab = np.stack([yt, mt])
    # §6 fitting weights (1/nnei² folded into layer 0; out_std and the biases into the final layer)
    layers = _fitting_layers(student)
    model = Nvq1Model(
        type_map=list(student.type_map), rcut=student.rcut, rcut_smth=student.rcut_smth, sel=list(student.sel),
        m1=student.m1, m2=student.axis_neuron, type_one_side=student.type_one_side,
        u_cut=int(math.floor(student.rcut**2 * 2.0**S.F_U)), k_lo=k_lo, s0=int(s0 * 2 ** (S.F_S - S.LS)),
        frac={"h": f_h, "Gt": f_gt, "Gq": f_gq, **{k: PROBE_FRAC for k in S.FRAC_KEYS if k not in ("h", "Gt", "Gq")}},
        f_g=[PROBE_FRAC] * len(layers), u_tab=u_tab, g_tab=g_tab, tanh_tab=tanh_tab,
        pad=np.zeros((nt, nt, student.m1), dtype=np.int64), layers=layers,
        e_const=_energy_constants(student),
    )
    model.pad = _padding_constants(model, s_pad)
    if student.closest_pairs:  # the short-range guard's radii travel with the image
        model.meta_extra["closest_pairs"] = dict(student.closest_pairs)
    _check_cubic_ranges(model)
    # §3 calibration: probe the datapath on the frames, then size every calibrated fraction
    probe = FastKernel(model, probe=True)
    for n, fr in enumerate(frames):
        probe.compute(*frame_request(fr.coord, fr.types, fr.cell, model.rcut))
        if progress:
            progress(n + 1, len(frames))
    mx = probe.maxima
    model.frac["T"] = _frac(mx["T"], FWD_MARGIN, S.W_BITS)
    model.frac["D"] = _frac(mx["D"], FWD_MARGIN, S.DATA_BITS)
    model.f_g = [_frac(mx[f"g{l}"], BWD_MARGIN, S.DATA_BITS) for l in range(len(layers))]
    for key in ("gT", "gR", "gG", "gs", "gh", "gu", "p"):
        model.frac[key] = _frac(mx[key], BWD_MARGIN, S.DATA_BITS)
    model.validate()
    clamped = {student.type_map[t]: float(r_type[t]) for t in range(nt) if k_type[t] > k_lo}
    info = {"closest_pair": dmin, "r_lo": r_lo, **({"clamped_types": clamped} if clamped else {}),
            "calibration_frames": len(frames), "maxima": mx,
            "s_range": [lo, s_max], "G_max": gmax}
    return model, info


def _closest_mappable(student) -> np.ndarray:
    """Per centre type, the smallest r whose s̃ and |R̃xyz| stay below 15 (of the ±16 format)."""
    r = np.linspace(0.3, student.rcut, 20000)
    s, _, h, _ = radial(r * r, student.rcut, student.rcut_smth)
    worst = np.maximum((s[None] - student.davg[:, :1]) / student.dstd[:, :1],
                       h[None] * r[None] / student.dstd[:, 1:2])
    out = np.full(student.ntypes, float(student.rcut))
    for t in range(student.ntypes):
        ok = np.nonzero(worst[t] < 15.0)[0]
        if ok.size:
            out[t] = r[ok[0]]
    return out


def _closest_pair_of(student, name: str) -> float | None:
    """The closest pair with an atom of element `name` in the training data (the sidecar), or None."""
    pairs = student.closest_pairs or {}
    d = [v for k, v in pairs.items() if name in k.split("-")]
    return min(d) if d else None


def _frac(maximum: float, margin: float, bits: int) -> int:
    if not np.isfinite(maximum) or maximum <= 0:
        return bits - 2
    return int(math.floor(math.log2((2.0 ** (bits - 1) - 1) / (maximum * margin))))


def _fitting_layers(student) -> list[Layer]:
    nt, nnei = student.ntypes, student.nnei
    out = []
    nlayers = len(student.fitting[0].layers)
    for k in range(nlayers):
        per = [student.fitting[t].layers[k] for t in range(nt)]
        final = k == nlayers - 1
        w = np.stack([p.w for p in per])
        if k == 0:
            w = w / float(nnei) ** 2  # D on the board is (R̃ᵀG)ᵀ(R̃ᵀG) without deepmd's 1/nnei per factor
        if final:
            w = w * student.out_std[:, None, None]
        colmax = np.abs(w).max(axis=1)
        colmax = np.where(colmax > 0, colmax, 1.0)
        e = np.floor(np.log2((2.0 ** (S.W_BITS - 1) - 1) / colmax)).astype(np.int64)
        if np.any(np.abs(e) > 127):
            raise FixedPointOverflowError(f"fitting layer {k}: weights span more than the int8 exponent range")
        wq = np.floor(w * np.exp2(e)[:, None, :] + 0.5).astype(np.int64)
        b = np.zeros((nt, w.shape[2]), dtype=np.int64) if final else \
            np.floor(np.stack([p.b for p in per]) * 2.0**S.F_Z + 0.5).astype(np.int64)
        idt, f_idt = None, 0
        if per[0].idt is not None and not final:
            iv = np.stack([p.idt for p in per])
            f_idt = int(math.floor(math.log2((2.0 ** (S.W_BITS - 1) - 1) / max(float(np.abs(iv).max()), 1e-30))))
            idt = np.floor(iv * 2.0**f_idt + 0.5).astype(np.int64)
        nin, nout = per[0].w.shape
        shortcut = "none"
        if per[0].resnet and nout == nin:
            shortcut = "identity"
        elif per[0].resnet and nout == 2 * nin:
            shortcut = "concat"
        out.append(Layer(w=wq, e=e, b=b, idt=idt, f_idt=f_idt, shortcut=shortcut, final=final))
    return out


def _energy_constants(student) -> np.ndarray:
    b = np.array([student.fitting[t].layers[-1].b[0] for t in range(student.ntypes)])
    const = (b + student.bias_atom_e) * student.out_std + student.out_bias
    return np.floor(const * 2.0**S.F_E + 0.5).astype(np.int64)


def _padding_constants(model: Nvq1Model, s_pad: np.ndarray) -> np.ndarray:
    """s̃_pad · G(s̃_pad) per (centre, neighbour) type, G from the same cubic unit a slot uses."""
    from nvnmd.sim.nvq1.ref import coeffs, cubic, rnd

    nt = model.ntypes
    pad = np.zeros((nt, nt, model.m1), dtype=np.int64)
    mask = (1 << S.TBITS) - 1
    for ti in range(nt):
        x = int(s_pad[ti]) - model.s0
        seg, t = x >> (S.F_S - S.LS), x & mask
        for tj in range(nt):
            tab = model.g_tab[model.gtab_index(ti, tj)]
            a, b, c, d = coeffs(tab[0], tab[1], seg)
            pad[ti, tj] = int(s_pad[ti]) * rnd(cubic(a, b, c, d, t), S.SHORT_SHIFT)
    return pad


def _check_cubic_ranges(model: Nvq1Model) -> None:
    """The cubic unit's coefficients and Horner partials are 27-bit operands (SPEC §4)."""
    from nvnmd.sim.nvq1.model import hermite_coefficients

    lim = 1 << (S.DATA_BITS - 1)
    for name, (y, m, axis) in {"u": (model.u_tab[:, 0::2], model.u_tab[:, 1::2], 2),
                               "G": (model.g_tab[:, 0], model.g_tab[:, 1], 1),
                               "tanh": (model.tanh_tab[0], model.tanh_tab[1], 0)}.items():
        a, b, c, d = hermite_coefficients(y, m, axis=axis)
        worst = max(int(np.abs(v).max()) for v in (3 * a, 2 * b + 3 * a, c, d))
        if worst >= lim:
            raise FixedPointOverflowError(f"{name} table: cubic coefficients need more than {S.DATA_BITS} bits")


def min_pair_distance_by_type(frames, rcut: float, ntypes: int) -> np.ndarray:
    """Per type, the closest pair with an atom of that type in the frames (inf where none within 3 Å);
    their minimum is the frames' closest pair."""
    from nvnmd.neighbors import build_neighbor_list

    best = np.full(ntypes, np.inf)
    for fr in frames:
        i, j, shift = build_neighbor_list(fr.coord, fr.cell, min(rcut, 3.0)).slots(fr.cell)
        if not len(i):
            continue
        d = np.linalg.norm(fr.coord[j] + shift - fr.coord[i], axis=1)
        types = np.asarray(fr.types)
        for side in (types[i], types[j]):
            np.minimum.at(best, side, d)
    return best
