"""Physical checks of a built structure that need no potential: what a wrongly recalled
lattice parameter or Wyckoff coordinate would break.

* `density(atoms)`: g/cm³ from the cell and the atoms in it.
* `shortest_contacts(atoms)`: the closest distance of every species pair (periodic).
* `coordination(atoms, centre, ligand, cutoff)`: how many `ligand` atoms each `centre` has
  within `cutoff` Å, with the bond lengths.
* `anion_units(atoms)`: the tetrahedral units (PS4 tetrahedra, P2S7 ditetrahedra sharing one
  bridging S, GeS4, ...) found by the bonds of their centres, as a Counter of unit names.
* `spacegroup(atoms, symprec, labels)`: spglib's number, optionally with site labels as species.
Used by tests/test_structures.py (fast) and benchmarks/verify_structures.py (with the teacher).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

AVOGADRO = 6.02214076e23
# Å: the bond cutoff of a tetrahedral centre. P–S bonds are 2.0–2.1 Å, Ge/Si–S 2.1–2.25,
# Sn–S ≈ 2.4; the next S around any of them is > 3 Å away, so the cutoffs are not critical.
TETRAHEDRAL_CUTOFF = {"P": 2.4, "Si": 2.6, "Ge": 2.6, "Sn": 2.7}


def _distances(atoms) -> np.ndarray:
    """All minimum-image distances [n, n] (diagonal inf), exact for cells whose perpendicular
    widths exceed twice the distances asked about (every cell checked here: ≥ 6 Å wide)."""
    from ase.geometry import get_distances

    _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    np.fill_diagonal(d, np.inf)
    return d


def density(atoms) -> float:
    return float(np.sum(atoms.get_masses()) / AVOGADRO / (atoms.get_volume() * 1e-24))


def shortest_contacts(atoms) -> dict[str, float]:
    """{'P-S': 2.05, ...}: the closest pair of each species combination (species sorted)."""
    d = _distances(atoms)
    sym = np.array(atoms.get_chemical_symbols())
    out = {}
    species = sorted(set(sym))
    for i, a in enumerate(species):
        for b in species[i:]:
            block = d[np.ix_(sym == a, sym == b)]
            if block.size and np.isfinite(block).any():
                out[f"{a}-{b}"] = round(float(block.min()), 3)
    return out


def coordination(atoms, centre: str, ligand, cutoff: float) -> dict:
    """Coordination numbers of every `centre` atom by `ligand` (a symbol or a set) within
    `cutoff`: {'cn': Counter({4: n, ...}), 'bond_min': Å, 'bond_max': Å}."""
    ligands = {ligand} if isinstance(ligand, str) else set(ligand)
    d = _distances(atoms)
    sym = np.array(atoms.get_chemical_symbols())
    block = d[np.ix_(sym == centre, np.isin(sym, list(ligands)))]
    bonds = block[block < cutoff]
    return {"cn": Counter(int(k) for k in (block < cutoff).sum(axis=1)),
            "bond_min": round(float(bonds.min()), 3) if bonds.size else None,
            "bond_max": round(float(bonds.max()), 3) if bonds.size else None}


def anion_units(atoms) -> Counter:
    """Tetrahedral units by connectivity: a P (or Ge, Si, Sn) with its S neighbours (P–S <
    2.4 Å, M–S < 2.7 Å); centres joined through a shared (bridging) S form one unit, named by
    its atoms: 'PS4' tetrahedra, 'P2S7' ditetrahedra, 'GeS4'. S bonded to no centre (the
    argyrodite cage centre, a free S2-) counts as 'S'."""
    d = _distances(atoms)
    sym = np.array(atoms.get_chemical_symbols())
    c_idx = np.flatnonzero(np.isin(sym, list(TETRAHEDRAL_CUTOFF)))
    s_idx = np.flatnonzero(sym == "S")
    cut = np.array([TETRAHEDRAL_CUTOFF[sym[i]] for i in c_idx])[:, None]
    bonded = d[np.ix_(c_idx, s_idx)] < cut  # [n centres, n S]
    parent = list(range(len(c_idx)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k in range(len(s_idx)):
        cs = np.flatnonzero(bonded[:, k])
        for j in cs[1:]:
            parent[root(j)] = root(cs[0])
    groups: dict[int, list[int]] = {}
    for i in range(len(c_idx)):
        groups.setdefault(root(i), []).append(i)
    units = Counter()
    for members in groups.values():
        centres = Counter(sym[c_idx[m]] for m in members)
        n_s = int(np.any(bonded[members], axis=0).sum())
        units["".join(f"{e}{n if n > 1 else ''}" for e, n in sorted(centres.items())) + f"S{n_s}"] += 1
    free = int((~bonded.any(axis=0)).sum()) if len(c_idx) else len(s_idx)
    if free:
        units["S"] = free
    return units


def spacegroup(atoms, symprec: float = 1e-4, labels=None) -> int:
    """spglib's space-group number; `labels` (one per atom) stand in for the species, so a
    parent with every site labelled keeps the symmetry of its sites."""
    import spglib

    kinds = np.unique(labels if labels is not None else atoms.get_chemical_symbols(), return_inverse=True)[1]
    ds = spglib.get_symmetry_dataset((atoms.cell.array, atoms.get_scaled_positions(), kinds), symprec=symprec)
    return int(ds.number) if ds is not None else 0
