"""The table of published experiments (nvnmd.analysis.experiments): every entry cited and in
range, and each composition nvnmd builds finding the right one (formula, argyrodite S/X site
disorder from the builder's metadata or from the geometry), an unknown one finding none."""

import re

import numpy as np
import pytest

from nvnmd.analysis.experiments import (BY_KEY, DISORDER_TOLERANCE, EXPERIMENTS, candidates, composition,
                                        lgps_reference, match, match_atoms, same_composition, site_disorder)
from nvnmd.structures import build

DOI = re.compile(r"^10\.\d{4,9}/[-._;()/:A-Za-z0-9]+$")


@pytest.mark.parametrize("e", EXPERIMENTS, ids=lambda e: e.key)
def test_every_entry_is_cited_and_in_a_sane_range(e):
    assert DOI.match(e.doi), e.doi
    assert e.authors and e.journal and e.volume and e.pages and 1990 < e.year < 2030
    assert e.method and len(e.verified) > 40  # says what was checked, and how
    assert composition(e.formula)["Li"] > 0.2  # a Li conductor, readable formula
    assert e.sigma_mS_cm is not None or e.Ea_eV is not None
    if e.sigma_mS_cm is not None:
        assert 1e-6 < e.sigma_mS_cm < 100 and 250 < e.T_K < 320  # room temperature
    if e.Ea_eV is not None:
        assert 0.1 < e.Ea_eV < 0.7
    if e.T_range_K is not None:
        assert e.T_range_K[0] < e.T_K < e.T_range_K[1]
    if e.site_disorder is not None:
        assert 0.0 <= e.site_disorder <= 1.0 and e.formula.startswith("Li6PS5")
    assert e.cite.endswith(f"doi:{e.doi}") and e.short.endswith(str(e.year))


def test_keys_are_unique_and_each_doi_is_one_paper():
    assert len(BY_KEY) == len(EXPERIMENTS)
    papers = {}
    for e in EXPERIMENTS:
        papers.setdefault(e.doi, set()).add((e.authors, e.journal, e.volume, e.pages, e.year))
    assert all(len(v) == 1 for v in papers.values())


def test_formulas_compare_as_element_fractions():
    assert composition("Li10(Si0.5Ge0.5)P2S12") == pytest.approx({"Li": 0.4, "Si": 0.02, "Ge": 0.02, "P": 0.08,
                                                                   "S": 0.48})
    assert same_composition("Ge2Li20P4S24", "Li10GeP2S12")  # ASE's formula of two formula units
    assert not same_composition("GeLi20P4S24Si", "Li10GeP2S12")
    assert same_composition("GeLi20P4S24Si", "Li10(Si0.5Ge0.5)P2S12")
    assert not same_composition("Li6PS5Cl", "Li6PS5Br")
    for bad in ("Li10GeP2S12)", "(Li", "li6ps5cl", ""):
        with pytest.raises(ValueError):
            composition(bad)


@pytest.mark.parametrize("formula, key", [
    ("Ge2Li20P4S24", "kamaya2011"), ("Li20P4S24Si2", "whiteley2014"), ("Li20P4S24Sn2", "bron2013"),
    ("Li14P6S22", "seino2014"), ("Li9.54Si1.74P1.44S11.7Cl0.3", "kato2016"),
    ("Cl4Li24P4S20", "kraft2017_cl"),  # no disorder given: the first Li6PS5Cl entry
])
def test_a_formula_finds_its_entry(formula, key):
    assert match(formula)["ref"] == key


@pytest.mark.parametrize("formula", ["GeLi20P4S24Si", "Li10GeP2S11", "Li3PS4", "Na3PS4"])
def test_a_composition_the_table_lacks_finds_none(formula):
    assert match(formula) is None and candidates(formula) == []


def test_x_0_and_1_of_the_si_ge_series_have_experiments_x_half_has_none():
    got = {m: match_atoms(build("lgps", m=m)) for m in ("Ge", "Ge:0.5,Si:0.5", "Si", "Sn")}
    assert got["Ge"]["ref"] == "kamaya2011" and got["Ge"]["other_refs"] == ["kuhn2013"]
    assert got["Si"]["ref"] == "whiteley2014" and got["Sn"]["ref"] == "bron2013"
    assert got["Ge:0.5,Si:0.5"] is None
    assert "same_disorder" not in got["Ge"]  # no site disorder in the LGPS family
    # Kato's Li9.54Si1.74P1.44S11.7Cl0.3 is not Li10SiP2S12 and is never offered for it
    assert "kato2016" not in got["Si"]["other_refs"]


@pytest.mark.parametrize("halide, key_ordered", [("Cl", "kraft2017_cl"), ("Br", "kraft2017_br"),
                                                  ("I", "kraft2017_i")])
def test_argyrodites_pick_the_measurement_nearest_their_site_disorder(halide, key_ordered):
    ordered = match_atoms(build("argyrodite", halide=halide))
    disordered = match_atoms(build("argyrodite", halide=halide, site_disorder=0.5))
    assert ordered["model_site_disorder"] == 0.0 and disordered["model_site_disorder"] == 0.5
    assert ordered["ref"] == key_ordered == disordered["ref"]  # the one measured disorder per halide
    sample = BY_KEY[key_ordered].site_disorder
    assert ordered["sample_site_disorder"] == sample
    # the row says when the sample's disorder is far from the structure's
    for got, s in ((ordered, 0.0), (disordered, 0.5)):
        same = abs(sample - s) <= DISORDER_TOLERANCE
        assert got["same_disorder"] == same  # what composition.png greys out
        assert ("site disorder" in got.get("note", "")) == (not same)
    # Kraft's Cl sample (0.62) is anion-mixed: the disordered cell matches it, the ordered does not
    if halide == "Cl":
        assert disordered["same_disorder"] and not ordered["same_disorder"]


def test_the_disorder_of_a_cell_without_metadata_is_read_from_where_the_halides_sit():
    for s, rep in ((0.0, (1, 1, 1)), (0.25, (1, 1, 1)), (0.125, (2, 1, 1)), (0.5, (1, 1, 1)), (1.0, (1, 1, 1))):
        atoms = build("argyrodite", halide="Br", site_disorder=s, supercell=rep, seed=4)
        assert site_disorder(atoms) == s  # from the builder's metadata
        bare = atoms.copy()
        bare.info.clear()
        bare.rattle(0.15, seed=2)  # displacements the size of thermal motion
        assert site_disorder(bare) == pytest.approx(s)
    assert site_disorder(build("lgps")) is None


def test_a_disordered_argyrodite_picks_the_anion_mixed_entry_when_both_exist(monkeypatch):
    # Li6PS5I in the table: only Kraft's ordered (0.0) sample has a measured disorder; with a
    # second, disordered sample the disordered structure must switch to it and the ordered stay
    import dataclasses

    import nvnmd.analysis.experiments as ex

    mixed = dataclasses.replace(BY_KEY["kraft2017_i"], key="mixed_i", site_disorder=0.45)
    monkeypatch.setattr(ex, "EXPERIMENTS", ex.EXPERIMENTS + (mixed,))
    assert ex.match("Li6PS5I", 0.5)["ref"] == "mixed_i"
    assert ex.match("Li6PS5I", 0.0)["ref"] == "kraft2017_i"


def test_the_lgps_block_of_earlier_releases_comes_from_the_table():
    assert lgps_reference()["sigma_300K_mS_cm"] == 12.0
    assert lgps_reference()["Ea_eV"] == [0.22, 0.25]
    assert "10.1038/nmat3066" in lgps_reference()["source"]


def test_every_experiment_is_at_room_temperature_so_the_plots_place_it_there():
    T = np.array([e.T_K for e in EXPERIMENTS if e.sigma_mS_cm is not None])
    assert np.all(np.abs(T - 298.15) < 5)


def test_the_readme_shows_the_table_as_the_module_has_it():
    from pathlib import Path

    from nvnmd.analysis.experiments import table_markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- experiments table: generated by `python -m nvnmd.analysis.experiments` -->\n")
    end = readme.index("<!-- end of experiments table -->")
    assert readme[start:end].split("\n", 1)[1] == table_markdown()
