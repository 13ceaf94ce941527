"""Li7P3S11, P-1 (No. 2), Z = 2 (Yamane et al., Solid State Ionics 178, 1163 (2007), synchrotron
X-ray powder diffraction of the glass-ceramic's crystalline phase: P2S7 ditetrahedra, PS4
tetrahedra, 7 Li, 3 P and 11 S sites, all 2i, fully occupied).

The 21 atomic positions are not shipped: they could not be checked against the paper in
this session, and an unchecked triclinic structure would be worse than none. The builder
therefore takes the published structure as a CIF (ICSD 157654, from Yamane et al.; or any
file ASE reads), checks that it is that phase (composition Li7P3S11 per formula unit, space
group P-1, cell within 3 % of Yamane's lattice below) and makes the supercell. The lattice
values are as recalled from the paper (not re-read here): a = 12.5009, b = 6.03160,
c = 12.5303 Å, α = 102.845°, β = 113.2024°, γ = 74.4659°.

Checked in the file, beyond composition, space group and cell: the anion units Yamane et al.
report, one P2S7 ditetrahedron and one PS4 tetrahedron per formula unit (`EXPECTED_UNITS`, by
P–S connectivity, nvnmd.structures.verify.anion_units), every P with 4 S at 1.95–2.25 Å, and
Z = 2 (42 atoms per reduced cell). Whether the 21 positions of a given CIF are Yamane's
cannot be checked here; a wrong file of the right phase passes. Searched for a public copy of
the coordinates (GitHub code and stored web pages: ICSD-derived CIFs, pymatgen/ASE test
data, Materials Project mp-641703 descriptions) without finding one; nothing was recalled
from memory.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from nvnmd.errors import StructureError
from nvnmd.structures.common import supercell_tuple

SPACEGROUP = 2
YAMANE_CELLPAR = (12.5009, 6.03160, 12.5303, 102.845, 113.2024, 74.4659)
FORMULA_UNIT = {"Li": 7, "P": 3, "S": 11}
ATOMS_PER_CELL = 42  # Z = 2
EXPECTED_UNITS = {"P2S7": 1, "PS4": 1}  # per formula unit (Yamane et al. 2007)
PS_BOND_RANGE = (1.95, 2.25)  # Å: terminal P–S ≈ 2.0–2.05, bridging ≈ 2.1–2.15


def _niggli_lengths(cellpar) -> np.ndarray:
    from ase.cell import Cell

    return np.sort(Cell.fromcellpar(cellpar).niggli_reduce()[0].lengths())


def check_phase(atoms, symprec: float = 0.05) -> None:
    """StructureError (one line) unless `atoms` is Li7P3S11 in P-1 with Yamane's cell (±3 %)."""
    import spglib

    count = Counter(atoms.get_chemical_symbols())
    z = count.get("P", 0) / 3
    if z <= 0 or any(count.get(e, 0) != n * z for e, n in FORMULA_UNIT.items()) or set(count) - set(FORMULA_UNIT):
        raise StructureError(f"not Li7P3S11: the file holds {atoms.get_chemical_formula()}")
    numbers = np.unique(atoms.get_chemical_symbols(), return_inverse=True)[1]
    ds = spglib.get_symmetry_dataset((atoms.cell.array, atoms.get_scaled_positions(), numbers), symprec=symprec)
    if ds is None or ds.number != SPACEGROUP:
        raise StructureError(f"Li7P3S11 file is in space group {ds.number if ds else '?'}, expected P-1 (2)")
    n_primitive = len(ds.std_types) if getattr(ds, "std_types", None) is not None else len(atoms)
    if n_primitive % ATOMS_PER_CELL or n_primitive // ATOMS_PER_CELL != 1:
        raise StructureError(f"Li7P3S11's P-1 cell holds {ATOMS_PER_CELL} atoms (Z = 2); this file's "
                             f"standardised cell holds {n_primitive}")
    ours = _niggli_lengths(atoms.cell.cellpar())
    ref = _niggli_lengths(YAMANE_CELLPAR)
    n = round(len(atoms) / ATOMS_PER_CELL)
    if n == 1 and np.max(np.abs(ours / ref - 1)) > 0.03:
        raise StructureError(f"Li7P3S11 cell lengths {np.round(ours, 3)} Å differ by > 3 % from Yamane et al.'s {np.round(ref, 3)}")
    check_units(atoms, z)


def check_units(atoms, z: float) -> None:
    """StructureError unless the P–S network is z × (one P2S7 + one PS4), every P 4-coordinated
    by S at bonds within PS_BOND_RANGE."""
    from nvnmd.structures.verify import anion_units, coordination

    units = anion_units(atoms)
    units.pop("S", None)  # S bonded to no P: not in Li7P3S11, but a count mismatch says so below
    want = {k: int(round(v * z)) for k, v in EXPECTED_UNITS.items()}
    if dict(units) != want:
        raise StructureError(f"Li7P3S11 should hold {want} (P2S7 ditetrahedra and PS4 tetrahedra, Yamane et al.); "
                             f"this file's P–S network is {dict(units)}")
    cn = coordination(atoms, "P", "S", 2.4)
    lo, hi = PS_BOND_RANGE
    if set(cn["cn"]) != {4} or cn["bond_min"] < lo or cn["bond_max"] > hi:
        raise StructureError(f"Li7P3S11 P–S bonds {cn['bond_min']}–{cn['bond_max']} Å or P coordination "
                             f"{dict(cn['cn'])} are not those of PS4/P2S7 (4 S at {lo}–{hi} Å)")


def build(cif, supercell=(1, 1, 1), seed: int = 0):
    """Read the published Li7P3S11 structure from `cif`, check it, repeat it (`seed` unused:
    every site is fully occupied, nothing is random)."""
    from ase.io import read

    path = Path(cif)
    if not path.exists():
        raise StructureError(f"no such file: {path}")
    try:
        atoms = read(path)
    except Exception as exc:  # ASE raises many kinds on a bad file
        raise StructureError(f"cannot read {path} as a structure: {exc}") from None
    occupancy = atoms.info.get("occupancy") or {}  # ASE's CIF reader: {index: {symbol: occ}}
    if any(abs(o - 1.0) > 1e-6 for d in occupancy.values() for o in d.values()):
        raise StructureError(f"{path} has partial occupancies; Li7P3S11 is fully ordered")
    check_phase(atoms)
    out = atoms.repeat(supercell_tuple(supercell))
    out.info = {"family": "li7p3s11", "supercell": ",".join(map(str, supercell_tuple(supercell))), "seed": int(seed),
                "parent_spacegroup": "P-1 (2)", "source": f"Yamane et al., Solid State Ionics 178, 1163 (2007), via {path.name}"}
    return out
