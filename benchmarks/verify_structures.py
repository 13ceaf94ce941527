"""Verify the crystallographic numbers behind `nvnmd structure` physically (issue 17).

For every family member (one conventional cell each, ≤ 62 atoms) this prints and writes:
space group of the labelled parent (spglib, symprec 1e-4) and of the built framework,
a/b/c, density, the closest contact of every species pair, P–S / M–S / Li–anion
coordination, the thiophosphate units, the formal charge; then, with the DPA4 teacher (ASE
calculator over `nvnmd.backends` "teacher"), max |F| per species group and the pressure at
the published cell, and after a fixed-cell relaxation of the positions (BFGS, fmax 0.05 eV/Å,
≤ --steps steps): how far the framework atoms (P, M, S, X) moved (rms / max Å), the relaxed
bonds and the pressure. A wrongly recalled coordinate shows as a framework atom that moves by
tenths of an Å and a bond far from its chemistry; the Li of an ordered approximant of partial
sites are expected to move more (their sites are averages).

    OMP_NUM_THREADS=1 python benchmarks/verify_structures.py [--steps 40] [--cif Li7P3S11.cif]
        [--no-teacher] [--json benchmarks/verify_structures_results.json]

Results: benchmarks/verify_structures_results.json and a Markdown table on stdout (the one
in nvnmd/structures/README.md is pasted from it).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
EV_A3_TO_GPA = 160.21766208
FRAMEWORK = {"P", "Ge", "Si", "Sn", "S", "Cl", "Br", "I"}

CASES = [  # (name, family, kwargs)
    ("LGPS Ge", "lgps", {"m": "Ge"}),
    ("LGPS Si", "lgps", {"m": "Si"}),
    ("LGPS Sn", "lgps", {"m": "Sn"}),
    ("LGPS Ge/Si", "lgps", {"m": "Ge:0.5,Si:0.5"}),
    ("Li6PS5Cl", "argyrodite", {"halide": "Cl"}),
    ("Li6PS5Cl s=0.5", "argyrodite", {"halide": "Cl", "site_disorder": 0.5}),
    ("Li6PS5Br", "argyrodite", {"halide": "Br"}),
    ("Li6PS5I", "argyrodite", {"halide": "I"}),
]
# The shipped DFT-relaxed ordered LGPS cell: what "near equilibrium" means for the teacher
# (its forces and pressure on a structure relaxed by another functional).
REFERENCE = ("LGPS DFT-relaxed (shipped)", "nvnmd.data", "lgps_relaxed.extxyz")


def static_checks(atoms, parent=None) -> dict:
    from nvnmd.structures.common import total_charge
    from nvnmd.structures.verify import anion_units, coordination, density, shortest_contacts, spacegroup

    sym = set(atoms.get_chemical_symbols())
    anions = sorted(sym & {"S", "Cl", "Br", "I"})
    out = {"formula": atoms.get_chemical_formula(), "natoms": len(atoms),
           "cellpar": [round(float(v), 4) for v in atoms.cell.cellpar()],
           "density_g_cm3": round(density(atoms), 4), "charge": total_charge(atoms),
           "spacegroup_built": spacegroup(atoms, symprec=1e-3),
           "contacts_A": shortest_contacts(atoms), "units": dict(anion_units(atoms)),
           "P-S": coordination(atoms, "P", "S", 2.4)}
    if parent is not None:
        out["spacegroup_parent"] = spacegroup(parent, symprec=1e-4, labels=parent.arrays["site"])
    for m in sorted(sym & {"Ge", "Si", "Sn"}):
        out[f"{m}-S"] = coordination(atoms, m, "S", 2.7)
    out["Li-anion"] = coordination(atoms, "Li", anions, 3.0)
    for k in ("P-S", "Li-anion") + tuple(f"{m}-S" for m in sorted(sym & {"Ge", "Si", "Sn"})):
        out[k]["cn"] = {str(n): c for n, c in sorted(out[k]["cn"].items())}
    return out


def teacher_checks(atoms, calc_factory, steps: int) -> dict:
    from ase.optimize import BFGS

    from nvnmd.structures.verify import coordination, shortest_contacts

    a = atoms.copy()
    a.calc = calc_factory()
    t0 = time.perf_counter()
    f = a.get_forces()
    p0 = -float(np.mean(a.get_stress()[:3])) * EV_A3_TO_GPA
    stress0 = [round(float(v) * EV_A3_TO_GPA, 3) for v in a.get_stress()]  # ASE sign: negative = compressed
    sym = np.array(a.get_chemical_symbols())
    fw = np.isin(sym, list(FRAMEWORK))
    fn = np.linalg.norm(f, axis=1)
    start = a.positions.copy()
    opt = BFGS(a, logfile=None, maxstep=0.1)
    converged = bool(opt.run(fmax=0.05, steps=steps))
    disp = np.linalg.norm(a.positions - start, axis=1)  # no wrapping: the optimiser moves atoms without wrapping them
    p1 = -float(np.mean(a.get_stress()[:3])) * EV_A3_TO_GPA
    anions = sorted(set(sym) & {"S", "Cl", "Br", "I"})
    relaxed = {"contacts_A": shortest_contacts(a), "P-S": coordination(a, "P", "S", 2.4),
               "Li-anion": coordination(a, "Li", anions, 3.0)}
    for m in sorted(set(sym) & {"Ge", "Si", "Sn"}):
        relaxed[f"{m}-S"] = coordination(a, m, "S", 2.7)
    for v in relaxed.values():
        if isinstance(v, dict) and "cn" in v:
            v["cn"] = {str(n): c for n, c in sorted(v["cn"].items())}
    worst = int(np.argmax(np.where(fw, disp, -1)))
    return {"max_F_framework_eV_A": round(float(fn[fw].max()), 3), "max_F_Li_eV_A": round(float(fn[~fw].max()), 3),
            "pressure_GPa": round(p0, 3), "stress_voigt_GPa": stress0,
            "relax": {"steps": opt.nsteps, "converged": converged, "pressure_GPa": round(p1, 3),
                      "framework_disp_rms_A": round(float(np.sqrt(np.mean(disp[fw] ** 2))), 3),
                      "framework_disp_max_A": round(float(disp[fw].max()), 3),
                      "framework_worst_atom": f"{sym[worst]}{worst}",
                      "Li_disp_rms_A": round(float(np.sqrt(np.mean(disp[~fw] ** 2))), 3),
                      "Li_disp_max_A": round(float(disp[~fw].max()), 3), **relaxed},
            "seconds": round(time.perf_counter() - t0, 1)}


def markdown(rows) -> str:
    lines = ["| structure | SG parent / built | a, b, c (Å) | ρ (g/cm³) | P–S (Å) | M–S (Å) | Li–anion min (Å) | Li–Li min (Å) "
             "| units | max F fw / Li (eV/Å) | P (GPa) | relaxed: fw moved rms / max (Å), P–S, P (GPa) |",
             "|---|---|---|---:|---|---|---:|---:|---|---|---:|---|"]
    for r in rows:
        s = r["static"]
        msl = [f"{k.split('-')[0]} {s[k]['bond_min']}–{s[k]['bond_max']}" for k in s if k in ("Ge-S", "Si-S", "Sn-S")]
        t = r.get("teacher")
        rel = (f"{t['relax']['framework_disp_rms_A']} / {t['relax']['framework_disp_max_A']} ({t['relax']['framework_worst_atom']}), "
               f"{t['relax']['P-S']['bond_min']}–{t['relax']['P-S']['bond_max']}, {t['relax']['pressure_GPa']:+.2f}"
               f"{'' if t['relax']['converged'] else ' (not converged, ' + str(t['relax']['steps']) + ' steps)'}") if t else "–"
        li_min = min((v for k, v in s["contacts_A"].items() if k.startswith("Li-") and k != "Li-Li" and k.split("-")[1] in ("S", "Cl", "Br", "I")),
                     default=float("nan"))
        lines.append(
            f"| {r['name']} | {s.get('spacegroup_parent', '–')} / {s['spacegroup_built']} | "
            f"{', '.join(f'{v:.4f}' for v in s['cellpar'][:3])} | {s['density_g_cm3']:.3f} | "
            f"{s['P-S']['bond_min']}–{s['P-S']['bond_max']} | {'; '.join(msl) or '–'} | {li_min:.3f} | "
            f"{s['contacts_A'].get('Li-Li', float('nan')):.3f} | {', '.join(f'{k}×{v}' for k, v in s['units'].items())} | "
            + (f"{t['max_F_framework_eV_A']} / {t['max_F_Li_eV_A']} | {t['pressure_GPa']:+.2f} | {rel} |" if t else "– | – | – |"))
    return "\n".join(lines)


def main() -> int:
    from nvnmd.structures import argyrodite, build, lgps

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="BFGS steps of the fixed-cell relaxation (default 40)")
    ap.add_argument("--cif", help="a Li7P3S11 CIF to check as well")
    ap.add_argument("--no-teacher", action="store_true", help="only the checks that need no potential")
    ap.add_argument("--only", help="comma-separated case names (default all)")
    ap.add_argument("--json", default=str(HERE / "verify_structures_results.json"))
    args = ap.parse_args()

    calc_factory, teacher_desc = None, None
    if not args.no_teacher:
        from nvnmd.backends import make_backend
        from nvnmd.calculator import NvnmdCalculator

        backend, teacher_desc = make_backend("teacher")
        calc_factory = lambda: NvnmdCalculator(backend)  # noqa: E731
    cases = list(CASES) + ([("Li7P3S11", "li7p3s11", {"cif": args.cif})] if args.cif else [])
    if args.only:
        keep = set(args.only.split(","))
        cases = [c for c in cases if c[0] in keep]
    rows = []
    if not args.only or REFERENCE[0] in args.only.split(","):
        from importlib import resources

        from ase.io import read

        ref = read(resources.files(REFERENCE[1]) / REFERENCE[2])
        row = {"name": REFERENCE[0], "family": "reference", "source": f"{REFERENCE[1]}/{REFERENCE[2]}",
               "static": static_checks(ref)}
        if calc_factory:
            row["teacher"] = teacher_checks(ref, calc_factory, args.steps)
        rows.append(row)
    for name, family, kwargs in cases:
        atoms = build(family, **kwargs)
        parent = {"lgps": lambda: lgps.parent(kwargs["m"]),
                  "argyrodite": lambda: argyrodite.parent(kwargs["halide"])}.get(family, lambda: None)()
        row = {"name": name, "family": family, "kwargs": {k: str(v) for k, v in kwargs.items()},
               "source": atoms.info.get("source"), "static": static_checks(atoms, parent)}
        if calc_factory:
            row["teacher"] = teacher_checks(atoms, calc_factory, args.steps)
        rows.append(row)
        print(f"{name}: done" + (f" ({row['teacher']['seconds']} s teacher)" if calc_factory else ""), file=sys.stderr, flush=True)
    result = {"what": "physical checks of the structures nvnmd.structures builds (issue 17)",
              "command": "python benchmarks/verify_structures.py " + " ".join(sys.argv[1:]),
              "teacher": teacher_desc, "relaxation": f"positions only, fixed published cell, BFGS (maxstep 0.1 Å) fmax 0.05 eV/Å, ≤ {args.steps} steps",
              "rows": rows}
    from nvnmd.image import write_atomic

    write_atomic(Path(args.json), (json.dumps(result, indent=2, ensure_ascii=False) + "\n").encode())
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
