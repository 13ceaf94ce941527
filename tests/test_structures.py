"""nvnmd.structures and `nvnmd structure`: stoichiometry, neutrality, distances, seeds, symmetry."""

from collections import Counter
from importlib import resources

import numpy as np
import pytest
import spglib
from ase.io import read

from nvnmd.cli import main
from nvnmd.errors import StructureError
from nvnmd.structures import build
from nvnmd.structures import argyrodite, lgps
from nvnmd.structures.common import check_charge, check_min_distance, total_charge


def spacegroup_of_parent(atoms):
    """Space group with every site label its own species (the parent before ordering)."""
    labels = np.unique(atoms.arrays["site"], return_inverse=True)[1]
    return spglib.get_symmetry_dataset((atoms.cell.array, atoms.get_scaled_positions(), labels), symprec=1e-4).number


def test_parents_have_the_published_space_groups():
    assert spacegroup_of_parent(lgps.parent()) == 137
    for x in ("Cl", "Br", "I"):
        assert spacegroup_of_parent(argyrodite.parent(x)) == 216
    # site multiplicities: 4d, 2b, 3 x 8g, 16h, 4d, 8f, 4c and 4b, 16e, 4d, 4a, 48h
    assert Counter(lgps.parent().arrays["site"]) == {"M/P1": 4, "P2": 2, "S1": 8, "S2": 8, "S3": 8,
                                                    "Li1": 16, "Li2": 4, "Li3": 8, "Li4": 4}
    assert Counter(argyrodite.parent().arrays["site"]) == {"P4b": 4, "S16e": 16, "S4d": 4, "X4a": 4, "Li48h": 48}


@pytest.mark.parametrize("m, rep, expect", [
    ("Ge", (1, 1, 1), {"Li": 20, "Ge": 2, "P": 4, "S": 24}),
    ("Sn", (1, 1, 2), {"Li": 40, "Sn": 4, "P": 8, "S": 48}),
    ("Ge:0.5,Si:0.5", (2, 2, 1), {"Li": 80, "Ge": 4, "Si": 4, "P": 16, "S": 96}),
])
def test_lgps_stoichiometry_neutral_and_apart(m, rep, expect):
    atoms = build("lgps", m=m, supercell=rep, seed=3)
    assert Counter(atoms.get_chemical_symbols()) == expect
    assert total_charge(atoms) == 0
    assert atoms.info["min_distance_A"] >= 1.9
    li = atoms[[s == "Li" for s in atoms.get_chemical_symbols()]]
    assert check_min_distance(li) >= 2.3  # no two Li on neighbouring partial sites (Li1-Li1 is 1.48 Å)


def test_lgps_mixed_sites_are_the_4d_sites_and_half_filled():
    atoms = lgps.build("Ge:0.5,Si:0.5", (2, 2, 1), seed=5)
    ref = lgps.parent("Ge:0.5,Si:0.5").repeat((2, 2, 1))
    on_4d = ref.arrays["site"] == "M/P1"
    # each M atom sits on a 4d site of the parent, never on 2b
    for pos in atoms.positions[[s in ("Ge", "Si") for s in atoms.get_chemical_symbols()]]:
        d = np.linalg.norm(ref.positions - pos, axis=1)
        assert on_4d[np.argmin(d)] and d.min() < 1e-6


def test_argyrodite_site_disorder_counts():
    atoms = build("argyrodite", halide="Br", site_disorder=0.25, supercell=(2, 1, 1), seed=1)
    assert Counter(atoms.get_chemical_symbols()) == {"Li": 48, "P": 8, "S": 40, "Br": 8}
    assert total_charge(atoms) == 0
    ref = argyrodite.parent("Br").repeat((2, 1, 1))
    site = ref.arrays["site"]
    halide_sites = [site[np.argmin(np.linalg.norm(ref.positions - p, axis=1))]
                    for p, s in zip(atoms.positions, atoms.get_chemical_symbols()) if s == "Br"]
    assert Counter(halide_sites) == {"X4a": 6, "S4d": 2}  # 0.25 of 8 halides moved to the S2- sites


def test_same_seed_same_cell_other_seed_other_cell():
    a = build("argyrodite", site_disorder=0.5, seed=7)
    b = build("argyrodite", site_disorder=0.5, seed=7)
    c = build("argyrodite", site_disorder=0.5, seed=8)
    assert a.get_chemical_symbols() == b.get_chemical_symbols() and np.array_equal(a.positions, b.positions)
    assert not (a.get_chemical_symbols() == c.get_chemical_symbols() and np.array_equal(a.positions, c.positions))
    x = lgps.build("Ge:0.5,Sn:0.5", (2, 1, 1), seed=2)
    y = lgps.build("Ge:0.5,Sn:0.5", (2, 1, 1), seed=2)
    assert x.get_chemical_symbols() == y.get_chemical_symbols() and np.array_equal(x.positions, y.positions)


def test_checks_raise_one_line():
    atoms = build("lgps")
    del atoms[0]  # one Li less
    with pytest.raises(StructureError, match=r"not charge neutral: formal charge -1$"):
        check_charge(atoms)
    atoms = build("lgps")
    atoms.positions[1] = atoms.positions[0] + [0.5, 0, 0]
    with pytest.raises(StructureError, match="0.50 Å apart"):
        check_min_distance(atoms)
    with pytest.raises(StructureError, match="steps of 1/2"):
        lgps.build("Ge:0.3,Si:0.7")
    with pytest.raises(StructureError, match="halide must be one of"):
        argyrodite.build("F")


def test_parent_matches_the_shipped_relaxed_cell():
    """The shipped DFT-relaxed ordered LGPS cell is the parent's framework to 0.3 Å rms."""
    relaxed = read(resources.files("nvnmd.data") / "lgps_relaxed.extxyz")
    _, _, rms = lgps.align_parent(relaxed)
    assert rms < 0.32


def test_li7p3s11_checks_the_phase(tmp_path):
    path = tmp_path / "lgps.cif"
    build("lgps").write(path)
    with pytest.raises(StructureError, match="not Li7P3S11"):
        build("li7p3s11", cif=path)


def test_cli_writes_extxyz_and_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "lpscl.extxyz"
    assert main(["structure", "argyrodite", "--site-disorder", "0.25", "--seed", "4", "-o", str(out)]) == 0
    atoms = read(out)
    assert atoms.get_chemical_formula() == "Cl4Li24P4S20" and atoms.info["seed"] == 4
    assert main(["structure", "lgps", "--m", "Ge:0.5,Zr:0.5", "-o", str(tmp_path / "x.extxyz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nvnmd: error: M must be among") and "\n" not in err


# --- physical checks of the crystallographic numbers (nvnmd.structures.verify) -------------
from nvnmd.structures.verify import anion_units, coordination, density, shortest_contacts, spacegroup  # noqa: E402

LGPS_MEMBERS = ("Ge", "Si", "Sn")
M_S_BOND = {"Ge": 2.20, "Si": 2.12, "Sn": 2.39}  # the 4d tetrahedra, idealised (lgps.py)


@pytest.mark.parametrize("m", LGPS_MEMBERS)
def test_lgps_bonds_units_and_contacts_are_chemical(m):
    atoms = build("lgps", m=m)
    assert len(atoms) == 50 and spacegroup(lgps.parent(m), labels=lgps.parent(m).arrays["site"]) == 137
    assert anion_units(atoms) == {"PS4": 4, f"{m}S4": 2}  # 2b PS4 x2, 4d half PS4 half MS4
    ps = coordination(atoms, "P", "S", 2.4)
    assert ps["cn"] == {4: 4} and 1.98 <= ps["bond_min"] and ps["bond_max"] == pytest.approx(2.04, abs=1e-6)
    ms = coordination(atoms, m, "S", 2.7)
    assert ms["cn"] == {4: 2} and ms["bond_min"] == pytest.approx(M_S_BOND[m], abs=1e-6) == ms["bond_max"]
    contacts = shortest_contacts(atoms)
    assert contacts["Li-S"] >= 2.3 and contacts["Li-Li"] >= 2.3 and contacts["S-S"] >= 3.1
    assert contacts[f"{m}-S" if f"{m}-S" in contacts else f"S-{m}"] == pytest.approx(M_S_BOND[m], abs=1e-6)
    li = coordination(atoms, "Li", "S", 3.0)
    assert min(li["cn"]) >= 3 and li["bond_min"] >= 2.3


@pytest.mark.parametrize("halide", ["Cl", "Br", "I"])
def test_argyrodite_bonds_units_and_contacts_are_chemical(halide):
    atoms = build("argyrodite", halide=halide)
    assert len(atoms) == 52
    assert anion_units(atoms) == {"PS4": 4, "S": 4}  # 4 PS4 tetrahedra and the 4 free S2- (4d)
    ps = coordination(atoms, "P", "S", 2.4)
    assert ps["cn"] == {4: 4} and 2.02 <= ps["bond_min"] <= ps["bond_max"] <= 2.07  # PS4 keeps its size across X
    li = coordination(atoms, "Li", ["S", halide], 3.0)
    assert li["cn"] == {4: 24} and li["bond_min"] >= 2.4  # each 48h Li: 2 S(16e), S(4d), X(4a)
    assert shortest_contacts(atoms)["Li-Li"] >= 2.2


def test_densities_follow_the_lattices():
    """ρ from the cell: the verified 17 K Li10.35Si1.35P1.65S12 refinement (IUCr kc5021: a 8.64390,
    c 12.50773 Å, Z = 2, Mr 545.64, Dx 1.939 Mg/m³) checks the arithmetic; the end members then
    come out in the published order Si < Ge < Sn and Cl < Br < I."""
    from ase import Atoms

    cell = Atoms("Li", cell=[8.64390, 8.64390, 12.50773], pbc=True)
    cell.set_masses([2 * 545.64])
    assert density(cell) == pytest.approx(1.939, abs=0.001)
    rho = {m: density(build("lgps", m=m)) for m in LGPS_MEMBERS}
    assert rho["Si"] < rho["Ge"] < rho["Sn"] and rho["Ge"] == pytest.approx(2.036, abs=0.002)
    assert rho["Si"] == pytest.approx(1.939, rel=0.01)  # the Si member vs the Si-rich refinement
    rho = [density(build("argyrodite", halide=x)) for x in ("Cl", "Br", "I")]
    assert rho == sorted(rho) and rho[0] == pytest.approx(1.865, abs=0.002)


def _box_of_units(units):
    """Isolated PS4 / P2S7 units (ideal tetrahedra, P–S 2.04 Å, bridging 2.12 Å, P–S–P 110°)
    and Li far apart in a 30 Å box: a topology fixture for the unit checks, not a crystal."""
    from ase import Atoms

    tet = np.array([(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)]) / np.sqrt(3.0)
    symbols, pos = [], []
    for k, name in enumerate(units):
        origin = np.array([5.0 + 8.0 * (k % 3), 5.0 + 8.0 * (k // 3), 10.0])
        if name == "PS4":
            symbols += ["P"] + ["S"] * 4
            pos += [origin] + list(origin + 2.04 * tet)
        elif name == "P2S7":  # two tetrahedra mirrored through the bridging S in the plane x = 0
            half = np.array([np.sin(np.radians(55.0)), 0.0, -np.cos(np.radians(55.0))]) * 2.12
            p1, p2 = origin + half * [-1, 0, 1], origin + half
            symbols += ["S", "P", "P"] + ["S"] * 6
            pos += [origin, p1, p2]
            for p in (p1, p2):
                away = (p - origin) / np.linalg.norm(p - origin)
                for v in ((0, 1, 0), (0, -1, 0), (0, 0, 1)):
                    d = away + 0.9 * np.array(v, dtype=float)
                    pos.append(p + 2.04 * d / np.linalg.norm(d))
        elif name == "Li":
            symbols += ["Li"]
            pos += [origin]
    return Atoms(symbols, positions=pos, cell=[30, 30, 30], pbc=True)


def test_li7p3s11_unit_check_needs_one_p2s7_and_one_ps4_per_formula_unit():
    from nvnmd.structures.li7p3s11 import check_units

    good = _box_of_units(["P2S7", "PS4"])
    assert anion_units(good) == {"P2S7": 1, "PS4": 1}
    check_units(good, z=1)
    with pytest.raises(StructureError, match=r"P2S7 ditetrahedra and PS4 tetrahedra.*'PS4': 2"):
        check_units(_box_of_units(["PS4", "PS4"]), z=1)
    with pytest.raises(StructureError, match=r"should hold \{'P2S7': 2, 'PS4': 2\}"):
        check_units(good, z=2)
