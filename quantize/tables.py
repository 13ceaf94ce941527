"""Float functions the nvq1 tables sample, and their sampling into integer grids (SPEC.md §4–§5).

Owns: the switched radial functions s̃(u), h̃(u) of a centre type (davg/dstd and deepmd's
smooth switch folded in, constant beyond rcut), the embedding net G(s̃) with its exact
derivative, tanh, and `sample` which turns values/derivatives into the value+slope integer
grids the cubic unit interpolates (slopes are per grid step, so the unit never divides).
"""

from __future__ import annotations

import numpy as np

from nvnmd.student import Network


def radial(u: np.ndarray, rcut: float, rcut_smth: float):
    """sw(r)/r and sw(r)/r² with their u-derivatives (u = r²), deepmd-kit's switch; 0 beyond rcut."""
    u = np.asarray(u, dtype=np.float64)
    r = np.sqrt(np.maximum(u, 1e-300))
    x = np.clip((r - rcut_smth) / (rcut - rcut_smth), 0.0, 1.0)
    sw = x**3 * (-6 * x**2 + 15 * x - 10) + 1
    dsw = np.where((r > rcut_smth) & (r < rcut), -30 * x**2 * (x - 1) ** 2 / (rcut - rcut_smth), 0.0)
    inside = r < rcut
    s = np.where(inside, sw / r, 0.0)
    h = np.where(inside, sw / r**2, 0.0)
    ds = np.where(inside, (dsw / r - sw / r**2) / (2 * r), 0.0)
    dh = np.where(inside, (dsw / r**2 - 2 * sw / r**3) / (2 * r), 0.0)
    return s, ds, h, dh


def net_with_derivative(net: Network, x: np.ndarray):
    """Embedding net outputs G [n, M1] and dG/dx for scalar inputs x [n] (forward-mode)."""
    y = np.asarray(x, dtype=np.float64)[:, None]
    dy = np.ones_like(y)
    for layer in net.layers:
        z = y @ layer.w + layer.b
        dz = dy @ layer.w
        if layer.activation == "tanh":
            a = np.tanh(z)
            da = (1 - a * a) * dz
        else:
            a, da = z, dz
        if layer.idt is not None:
            a, da = a * layer.idt, da * layer.idt
        nin, nout = layer.w.shape
        if layer.resnet and nout == nin:
            a, da = a + y, da + dy
        elif layer.resnet and nout == 2 * nin:
            a, da = a + np.concatenate([y, y], 1), da + np.concatenate([dy, dy], 1)
        y, dy = a, da
    return y, dy


def sample(values: np.ndarray, derivs: np.ndarray, step: float, frac: int):
    """Grid values and per-step slopes as integers at `frac` fraction bits (round half up)."""
    scale = 2.0**frac
    return np.floor(values * scale + 0.5).astype(np.int64), np.floor(derivs * step * scale + 0.5).astype(np.int64)
