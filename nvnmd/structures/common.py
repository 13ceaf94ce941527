"""What every structure family shares: seeded site ordering, the checks, the extxyz writer.

* `order_sites(frac, n, cell, rng)`: pick `n` of the partially occupied candidate sites so
  that the chosen ones stay apart (seeded swap Monte Carlo on a soft repulsion), the
  stoichiometric approximant of a site that crystallography reports as fractionally filled.
* `check_min_distance(atoms)` / `check_charge(atoms)`: raise a one-line StructureError.
* `write_extxyz(atoms, path)`: atomic write (readers never see half a file).
The oxidation states used for neutrality are the formal ones of the sulfide electrolytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from nvnmd.errors import StructureError

OXIDATION = {"Li": 1, "Ge": 4, "Si": 4, "Sn": 4, "P": 5, "S": -2, "Cl": -1, "Br": -1, "I": -1}

# Closest approach accepted in a built cell (Å). Real bonds in these sulfides: P–S 2.0–2.1,
# Ge/Si/Sn–S 2.1–2.4, Li–S ≥ 2.3, Li–Li ≥ 2.3 in ordered cells; two atoms placed on
# neighbouring partial sites (Li1–Li3 in LGPS are ~1.6 Å apart) fall below these.
MIN_DISTANCE = {("Li", "Li"): 2.0}
MIN_DISTANCE_DEFAULT = 1.9


def pair_min_distance(a: str, b: str) -> float:
    return MIN_DISTANCE.get((a, b), MIN_DISTANCE.get((b, a), MIN_DISTANCE_DEFAULT))


def _pair_vectors(frac: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Minimum-image distances between all fractional positions, [n, n] (diagonal = inf).
    Exact for the cells built here (every supercell edge > 2x the largest distance that matters)."""
    d = frac[:, None, :] - frac[None, :, :]
    d -= np.round(d)
    r = np.linalg.norm(d @ cell, axis=2)
    np.fill_diagonal(r, np.inf)
    return r


def order_sites(frac: np.ndarray, n: int, cell: np.ndarray, rng: np.random.Generator,
                sweeps: int = 200, preferred: np.ndarray | None = None) -> np.ndarray:
    """Indices of `n` sites out of the candidates `frac` [m, 3] that keep the chosen atoms apart.

    A seeded swap Monte Carlo (zero temperature after a short anneal) on the energy
    sum over chosen pairs of (r0/r)^12 with r0 = 2.5 Å: pairs closer than typical Li–Li
    contacts cost much, distant ones nothing. `preferred` (weights per site, e.g. the
    reported occupancies) biases the random start so the chosen mix of sites follows them.
    Same rng state -> same choice."""
    m = len(frac)
    if not 0 <= n <= m:
        raise StructureError(f"cannot place {n} atoms on {m} sites")
    r = _pair_vectors(np.asarray(frac, dtype=float), np.asarray(cell, dtype=float))
    pair = (2.5 / r) ** 12
    p = None if preferred is None else np.asarray(preferred, dtype=float) / np.sum(preferred)
    chosen = np.zeros(m, dtype=bool)
    chosen[rng.choice(m, size=n, replace=False, p=p)] = True
    if n in (0, m):
        return np.flatnonzero(chosen)
    field = pair[:, chosen].sum(axis=1)  # repulsion each site feels from the chosen ones
    temps = np.concatenate([np.geomspace(1.0, 1e-3, sweeps // 2), np.zeros(sweeps - sweeps // 2)])
    for t in temps:
        for _ in range(n):
            i = rng.choice(np.flatnonzero(chosen))
            j = rng.choice(np.flatnonzero(~chosen))
            delta = field[j] - pair[j, i] - field[i]
            if delta < 0 or (t > 0 and rng.random() < np.exp(-delta / t)):
                chosen[i], chosen[j] = False, True
                field += pair[:, j] - pair[:, i]
    return np.flatnonzero(chosen)


def check_min_distance(atoms, table=pair_min_distance) -> float:
    """Closest pair in the periodic cell; StructureError (one line) below the pair's limit."""
    frac = atoms.get_scaled_positions()
    r = _pair_vectors(frac, atoms.cell.array)
    symbols = atoms.get_chemical_symbols()
    worst, worst_ratio = None, np.inf
    for i, j in zip(*np.triu_indices(len(atoms), k=1)):
        ratio = r[i, j] / table(symbols[i], symbols[j])
        if ratio < worst_ratio:
            worst, worst_ratio = (i, j), ratio
    i, j = worst
    if worst_ratio < 1.0:
        raise StructureError(f"atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are {r[i, j]:.2f} Å apart, "
                             f"below the {table(symbols[i], symbols[j]):.2f} Å accepted for {symbols[i]}–{symbols[j]}")
    return float(r.min())


def total_charge(atoms) -> int:
    symbols = atoms.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(OXIDATION))
    if unknown:
        raise StructureError(f"no formal oxidation state for {', '.join(unknown)} (known: {', '.join(OXIDATION)})")
    return int(sum(OXIDATION[s] for s in symbols))


def check_charge(atoms) -> None:
    q = total_charge(atoms)
    if q != 0:
        raise StructureError(f"cell {atoms.get_chemical_formula()} is not charge neutral: formal charge {q:+d}")


def supercell_tuple(text) -> tuple[int, int, int]:
    """'2,2,1' or (2, 2, 1) -> (2, 2, 1), every entry ≥ 1."""
    try:
        rep = tuple(int(v) for v in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise StructureError(f"supercell '{text}' is not three integers a,b,c") from None
    if len(rep) != 3 or min(rep) < 1:
        raise StructureError(f"supercell '{text}' is not three positive integers a,b,c")
    return rep


def write_extxyz(atoms, path) -> Path:
    """Write `atoms` (its info dict included) as extxyz, atomically."""
    from ase.io import write

    from nvnmd.image import write_atomic

    buf = io.StringIO()
    write(buf, atoms, format="extxyz")
    path = Path(path)
    write_atomic(path, buf.getvalue().encode())
    return path
