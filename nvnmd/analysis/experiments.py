"""Published room-temperature Li conductivities and activation energies: the one table
(`EXPERIMENTS`) and how a composition finds its entry (`match`).

Every entry is one paper's measurement of one composition: σ at about room temperature
(mS/cm) and the temperature it was measured at, Ea (eV) with the range of its Arrhenius fit
where known, the method (sample and what the impedance resolves), the citation with DOI, and
`verified`: what of it was checked in the session that wrote it and how (the `search` tool's
stored public pages, third-party notes, and two published data sets of measured
conductivities with DOIs: OBELiX (Therrien et al., arXiv:2502.14234, repository NRC-Mila/OBELiX,
data/downloads/all.csv, hand-checked entries) and the Liverpool Li-ion database it ships as
data/misc/LiIonDatabase.csv (Hargreaves et al., npj Comput. Mater. 9, 9 (2023),
doi:10.1038/s41524-022-00951-z), which gives σ with its measuring temperature). No paper
was re-read in full. A value not checkable there is said to be recalled; a value read off a
figure is marked "≈".

Matching (`match(formula, disorder)`, `match_atoms(atoms)`): the composition as element fractions (any
multiple of the formula unit, fractional subscripts as published) must equal the entry's;
for Li6PS5X argyrodites, which the literature measures at a known S2−/X− site disorder, the
entry whose measured disorder is closest to the structure's wins, and the row says when the
two differ. The structure's disorder comes from what `nvnmd structure` recorded
(atoms.info["site_disorder"]) or, for any other Li6PS5X cell, from where the halides sit
(`site_disorder(atoms)`). Entries are in preference order within a composition.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

RT_K = 298.15  # "room temperature" where a paper gives no number


@dataclass(frozen=True)
class Experiment:
    key: str
    formula: str                  # as published
    sigma_mS_cm: float | None     # at T_K
    T_K: float | None
    Ea_eV: float | None
    T_range_K: tuple | None       # of the Arrhenius fit giving Ea
    method: str                   # sample, measurement, what the number is (total = bulk + grain boundary)
    authors: str
    journal: str
    volume: str
    pages: str
    year: int
    doi: str
    verified: str                 # what was checked and how
    site_disorder: float | None = None   # argyrodites: measured fraction of X− on the S2− (cage-centre) site
    note: str = ""

    @property
    def cite(self) -> str:
        return f"{self.authors}, {self.journal} {self.volume}, {self.pages} ({self.year}), doi:{self.doi}"

    @property
    def short(self) -> str:
        return f"{self.authors.split(',')[0].split()[-1]} {self.year}"


_KRAFT = dict(authors="M. A. Kraft, S. P. Culver, M. Calderon, F. Böcher, T. Krauskopf, A. Senyshyn, C. Dietrich, "
                      "A. Zevalkink, J. Janek, W. G. Zeier",
              journal="J. Am. Chem. Soc.", volume="139", pages="10909–10918", year=2017, doi="10.1021/jacs.7b06327",
              T_K=RT_K, T_range_K=(263.0, 333.0),
              method="solid-state synthesis (550 °C, 2 weeks); impedance of isostatically pressed pellets, −10 to 60 °C; "
                     "total (bulk and grain boundary not separated); site disorder from neutron Rietveld refinement",
              verified="σ(RT): OBELiX's hand-checked entries for this DOI (Cl 2.05, Br 1.15, I 1.3e-3 mS/cm; the "
                       "same series gives Cl0.5Br0.5 3.33, the maximum, as the paper says); a third-party digest's "
                       "reading of Fig. 6 (Cl ≈1.3, Br ≈1.0, I ≈1e-3 mS/cm) agrees within a factor 1.6. Ea: that "
                       "digest's reading of Fig. 6 only (≈). Site disorder: the paper's SI tables as quoted by the "
                       "digest. Citation and DOI: two independent third-party notes and OBELiX agree. The paper "
                       "itself was not read here.")
_RAO = dict(authors="R. P. Rao, S. Adams", journal="Phys. Status Solidi A", volume="208", pages="1804–1807", year=2011,
            doi="10.1002/pssa.201001117", T_K=RT_K, Ea_eV=None, T_range_K=None,
            method="ball-milled, then annealed 550 °C / 5 h; impedance (stainless-steel electrodes), total; "
                   "Ea given only for the ball-milled (not annealed) samples, so none is recorded",
            verified="σ of the annealed samples: a third-party digest of the paper's table (code corpus) only. The "
                     "same digest's ball-milled values (Cl 3.3e-5, Br 3.2e-5, I 2.2e-4 S/cm) are exactly what OBELiX "
                     "lists for this DOI, which supports the digest's reading of the table. Citation and DOI: two "
                     "third-party notes and OBELiX agree. The paper itself was not read here.")

EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        key="kamaya2011", formula="Li10GeP2S12", sigma_mS_cm=12.0, T_K=298.15, Ea_eV=0.25, T_range_K=None,
        method="impedance, polycrystalline pellet; total conductivity at room temperature",
        authors="N. Kamaya, K. Homma, Y. Yamakawa, M. Hirayama, R. Kanno, M. Yonemura, T. Kamiyama, Y. Kato, S. Hama, "
                "K. Kawamoto, A. Mitsui",
        journal="Nat. Mater.", volume="10", pages="682–686", year=2011, doi="10.1038/nmat3066",
        verified="authors, DOI and 12 mS/cm at room temperature: the paper's first page and abstract (stored copies, "
                 "pages corpus: doi.org/10.1038/NMAT3066 and a scribd copy); the Li-ion database lists it at 25 °C "
                 "and 6.31 mS/cm at 5 °C for this DOI. Ea = 0.25 eV (24 kJ/mol) is recalled; the database's two "
                 "points give 0.254 eV, which agrees.",
        note="other measurements of Li10GeP2S12 in OBELiX span 1.4–25 mS/cm (synthesis, density)"),
    Experiment(
        key="kuhn2013", formula="Li10GeP2S12", sigma_mS_cm=10.0, T_K=RT_K, Ea_eV=0.22, T_range_K=None,
        method="impedance and 7Li PFG NMR / relaxometry; Ea of the bulk Li hopping; σ given as ~10⁻² S/cm (order)",
        authors="A. Kuhn, V. Duppel, B. V. Lotsch", journal="Energy Environ. Sci.", volume="6", pages="3548–3552",
        year=2013, doi="10.1039/c3ee41728j",
        verified="authors, journal, volume, pages, year, σ ~10⁻² S/cm and Ea ≈ 0.22 eV: the abstract (stored LMU "
                 "repository record epub.ub.uni-muenchen.de/22657 and MPI-FKF page). The DOI is recalled, not checked."),
    Experiment(
        key="whiteley2014", formula="Li10SiP2S12", sigma_mS_cm=2.3, T_K=300.15, Ea_eV=None, T_range_K=None,
        method="mechanochemical synthesis and annealing; impedance of a cold-pressed pellet, total (recalled)",
        authors="J. M. Whiteley, J. H. Woo, E. Hu, K.-W. Nam, S.-H. Lee", journal="J. Electrochem. Soc.", volume="161",
        pages="A1812–A1817", year=2014, doi="10.1149/2.0501412jes",
        verified="DOI and 2.3 mS/cm at 27 °C: OBELiX (hand-checked) and the Li-ion database list exactly this for "
                 "Li10SiP2S12. Authors, journal pages and method are recalled, not checked."),
    Experiment(
        key="bron2013", formula="Li10SnP2S12", sigma_mS_cm=4.0, T_K=298.15, Ea_eV=None, T_range_K=None,
        method="impedance of a pressed pellet; total conductivity (bulk ≈ 7 mS/cm; the grain boundaries limit it)",
        authors="P. Bron, S. Johansson, K. Zick, J. Schmedt auf der Günne, S. Dehnen, B. Roling",
        journal="J. Am. Chem. Soc.", volume="135", pages="15694–15697", year=2013, doi="10.1021/ja407393y",
        verified="DOI and 4 mS/cm at 25 °C: the Li-ion database (and a third-party table); OBELiX lists 7 mS/cm for "
                 "the same DOI, the bulk value as recalled (total 4, bulk 7). The database also gives 11.2 mS/cm at "
                 "60 °C. Authors and pages are recalled, not checked."),
    Experiment(
        key="kato2016", formula="Li9.54Si1.74P1.44S11.7Cl0.3", sigma_mS_cm=25.0, T_K=RT_K, Ea_eV=None, T_range_K=None,
        method="impedance, sintered pellet; total conductivity at room temperature",
        authors="Y. Kato, S. Hori, T. Saito, K. Suzuki, M. Hirayama, A. Mitsui, M. Yonemura, H. Iba, R. Kanno",
        journal="Nat. Energy", volume="1", pages="16030", year=2016, doi="10.1038/nenergy.2016.30",
        verified="25 mS/cm for Li9.54Si1.74P1.44S11.7Cl0.3 and the title: the abstract (stored nature.com page "
                 "nenergy201630). Authors and article number recalled.",
        note="Si-rich, Cl-doped and Li-poor: NOT Li10SiP2S12 nor any composition nvnmd builds; it matches only its "
             "own formula and is listed as the record of the LGPS family"),
    Experiment(
        key="seino2014", formula="Li7P3S11", sigma_mS_cm=17.0, T_K=RT_K, Ea_eV=0.176, T_range_K=None,
        method="heat-treated 70Li2S–30P2S5 glass-ceramic (Li7P3S11 crystals in glass), pellet; total conductivity",
        authors="Y. Seino, T. Ota, K. Takada, A. Hayashi, M. Tatsumisago", journal="Energy Environ. Sci.", volume="7",
        pages="627–631", year=2014, doi="10.1039/c3ee41655k",
        verified="1.7 × 10⁻² S/cm and Ea = 17 kJ/mol (0.176 eV) at room temperature: the abstract (stored scilit "
                 "record). DOI: agrees with a third-party table that checked it against Crossref. Authors recalled.",
        note="a glass-ceramic, not the single-phase crystal the builder makes; the data sets list 3.2 mS/cm under "
             "this DOI together with earlier Li7P3S11 papers"),
    Experiment(key="kraft2017_cl", formula="Li6PS5Cl", sigma_mS_cm=2.05, Ea_eV=0.45, site_disorder=0.62, **_KRAFT),
    Experiment(key="rao2011_cl", formula="Li6PS5Cl", sigma_mS_cm=1.9, **_RAO),
    Experiment(key="kraft2017_br", formula="Li6PS5Br", sigma_mS_cm=1.15, Ea_eV=0.35, site_disorder=0.22, **_KRAFT),
    Experiment(key="rao2011_br", formula="Li6PS5Br", sigma_mS_cm=6.8, **_RAO),
    Experiment(key="kraft2017_i", formula="Li6PS5I", sigma_mS_cm=1.3e-3, Ea_eV=0.38, site_disorder=0.0, **_KRAFT),
    Experiment(key="rao2011_i", formula="Li6PS5I", sigma_mS_cm=4.6e-4, **_RAO),
)
BY_KEY = {e.key: e for e in EXPERIMENTS}
# |structure − sample| site disorder up to which they count as the same: half the step of a
# conventional cell (one halide of four moved = 0.25), so a one-cell model can match any sample
DISORDER_TOLERANCE = 0.125

_TOKEN = re.compile(r"([A-Z][a-z]?|\(|\))(\d+(?:\.\d*)?|\.\d+)?")


def composition(formula: str) -> dict[str, float]:
    """Element -> fraction of atoms, from a formula with fractional subscripts and brackets
    ("Li10(Si0.5Ge0.5)P2S12", "Li9.54Si1.74P1.44S11.7Cl0.3", ASE's "Ge2Li20P4S24")."""
    stack: list[dict[str, float]] = [{}]
    pos = 0
    for m in _TOKEN.finditer(formula):
        if m.start() != pos:
            break
        pos = m.end()
        sym, num = m.group(1), m.group(2)
        mult = float(num) if num else 1.0
        if sym == "(":
            stack.append({})
        elif sym == ")":
            if len(stack) == 1:
                raise ValueError(f"unbalanced ')' in formula {formula!r}")
            group = stack.pop()
            for el, n in group.items():
                stack[-1][el] = stack[-1].get(el, 0.0) + n * mult
        else:
            stack[-1][sym] = stack[-1].get(sym, 0.0) + mult
    if pos != len(formula) or len(stack) != 1 or not stack[0]:
        raise ValueError(f"cannot read formula {formula!r}")
    total = sum(stack[0].values())
    return {el: n / total for el, n in stack[0].items()}


def same_composition(a: str, b: str, tol: float = 1e-3) -> bool:
    ca, cb = composition(a), composition(b)
    return ca.keys() == cb.keys() and all(abs(ca[k] - cb[k]) <= tol for k in ca)


def candidates(formula: str) -> list[Experiment]:
    """Every entry for this composition, in preference order."""
    return [e for e in EXPERIMENTS if same_composition(e.formula, formula)]


def _argyrodite_halide(formula: str) -> str | None:
    for x in ("Cl", "Br", "I"):
        if same_composition(formula, f"Li6PS5{x}"):
            return x
    return None


def site_disorder(atoms) -> float | None:
    """Fraction of the halides on the S2− cage-centre sites of a Li6PS5X cell, or None for
    other compositions. From atoms.info["site_disorder"] when `nvnmd structure` wrote it; else
    from the geometry: a cage-centre anion (4d) has its four nearest P at √3/4 a = 0.433 a, an
    X site (4a) at a/2 (a the cubic lattice constant of 4 formula units), so each free anion
    (no P within 2.6 Å) is assigned by the mean distance to its four nearest P — 0.33 Å of
    margin either side, more than thermal or relaxation displacements."""
    halide = _argyrodite_halide(atoms.get_chemical_formula())
    if halide is None:
        return None
    if "site_disorder" in atoms.info:
        return float(atoms.info["site_disorder"])
    symbols = np.array(atoms.get_chemical_symbols())
    p = np.flatnonzero(symbols == "P")
    a = (atoms.get_volume() * 4.0 / len(p)) ** (1.0 / 3.0)
    cut = 0.5 * (np.sqrt(3.0) / 4.0 + 0.5) * a
    on_cage = 0
    n_x = 0
    for i in np.flatnonzero((symbols == "S") | (symbols == halide)):
        d = np.sort(atoms.get_distances(i, p, mic=True))
        if d[0] < 2.6:  # a PS4 sulfur, not a free anion
            continue
        if symbols[i] == halide:
            n_x += 1
            on_cage += int(d[:4].mean() < cut)
    return on_cage / n_x if n_x else None


def match(formula: str, disorder: float | None = None) -> dict | None:
    """The experiment a composition is compared with, as a flat record (None if the table has
    none): the entry's values and citation, the other entries for the same composition, and,
    for argyrodites, the structure's and the sample's site disorder."""
    cands = candidates(formula)
    if not cands:
        return None
    known = [e for e in cands if e.site_disorder is not None]
    if disorder is not None and known:
        best = min(known, key=lambda e: abs(e.site_disorder - disorder))
    else:
        best = cands[0]
    out = {"ref": best.key, "short": best.short, "sigma_mS_cm": best.sigma_mS_cm, "T_K": best.T_K,
           "Ea_eV": best.Ea_eV, "T_range_K": list(best.T_range_K) if best.T_range_K else None,
           "method": best.method, "doi": best.doi, "citation": best.cite,
           "other_refs": [e.key for e in cands if e is not best]}
    if best.site_disorder is not None or disorder is not None:
        out["sample_site_disorder"] = best.site_disorder
        out["model_site_disorder"] = disorder
        out["same_disorder"] = None if disorder is None or best.site_disorder is None else \
            bool(abs(best.site_disorder - disorder) <= DISORDER_TOLERANCE)
        if out["same_disorder"] is False:
            out["note"] = (f"measured on a sample with S/X site disorder {best.site_disorder:.2f}, this structure "
                           f"has {disorder:.2f}")
    if best.note:
        out["note"] = "; ".join(filter(None, [out.get("note"), best.note]))
    return out


def match_atoms(atoms) -> dict | None:
    return match(atoms.get_chemical_formula(), site_disorder(atoms))


def lgps_reference() -> dict:
    """The `experiment_LGPS` block of conductivity.json (kept for readers of earlier releases):
    σ of the preferred Li10GeP2S12 entry and the range of the table's Li10GeP2S12 Ea values."""
    lgps = candidates("Li10GeP2S12")
    eas = [e.Ea_eV for e in lgps if e.Ea_eV is not None]
    return {"sigma_300K_mS_cm": lgps[0].sigma_mS_cm, "Ea_eV": [min(eas), max(eas)],
            "source": "; ".join(f"{e.short} ({e.doi})" for e in lgps)}


def table_rows() -> list[dict]:
    """The table as plain dicts (README, JSON)."""
    return [{**asdict(e), "cite": e.cite} for e in EXPERIMENTS]


def _num(x, unit="") -> str:
    return "–" if x is None else f"{x:.3g}{unit}"


def table_markdown() -> str:
    """The table as the README shows it (tests/test_experiments.py keeps the README equal to this;
    `python -m nvnmd.analysis.experiments` prints it)."""
    lines = ["| composition | σ(RT) (mS/cm) at T | Ea (eV) | sample S/X disorder | method | reference | what was checked |",
             "|---|---|---|---|---|---|---|"]
    for e in EXPERIMENTS:
        sigma = f"{_num(e.sigma_mS_cm)} at {e.T_K:.0f} K" if e.sigma_mS_cm is not None else "–"
        ea = _num(e.Ea_eV) + (f" ({e.T_range_K[0]:.0f}–{e.T_range_K[1]:.0f} K)" if e.T_range_K else "")
        ref = f"`{e.key}`: {e.short}, {e.journal} {e.volume}, {e.pages}, doi:{e.doi}"
        method = e.method + (f". Note: {e.note}" if e.note else "")
        lines.append(f"| {e.formula} | {sigma} | {ea} | {_num(e.site_disorder)} | {method} | {ref} | {e.verified} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table_markdown(), end="")
