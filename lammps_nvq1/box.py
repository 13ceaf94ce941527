"""LAMMPS's box convention: a general cell rotated into LAMMPS's lower-triangular form."""

from __future__ import annotations

import numpy as np


def lower_triangular(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cell @ R, R): the rotation R that makes the cell LAMMPS-shaped, a = (lx,0,0), b = (xy,ly,0)."""
    q, r = np.linalg.qr(np.asarray(cell, dtype=np.float64).T)
    # positive diagonal: a proper rotation and lx, ly, lz > 0
    s = np.sign(np.diag(r))
    q, r = q * s, (r.T * s).T
    return r.T, q
