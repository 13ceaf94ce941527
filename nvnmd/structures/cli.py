"""`nvnmd structure FAMILY ...`: build a checked supercell and write it as extxyz."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("structure", help="build LGPS-family, argyrodite or Li7P3S11 supercells (extxyz)",
                       description="Supercells from published crystallography, partial sites ordered into a "
                       "stoichiometric approximant (seeded), checked for minimum distances and charge neutrality.")
    fam = p.add_subparsers(dest="family", metavar="FAMILY", required=True)

    def common(q):
        q.add_argument("--supercell", default="1,1,1", help="repeat the unit cell a,b,c times (default 1,1,1)")
        q.add_argument("--seed", type=int, default=0, help="seed of the random occupations (default 0)")
        q.add_argument("-o", "--output", required=True, help="output .extxyz")
        q.set_defaults(func=cmd_structure)

    q = fam.add_parser("lgps", help="Li10MP2S12, P4_2/nmc (Kamaya et al. 2011)")
    q.add_argument("--m", default="Ge", help="M on the 4d sites: Ge, Si, Sn or fractions like Ge:0.5,Si:0.5")
    common(q)
    q = fam.add_parser("argyrodite", help="Li6PS5X, F-43m (Deiseroth et al. 2008)")
    q.add_argument("--halide", default="Cl", choices=["Cl", "Br", "I"])
    q.add_argument("--site-disorder", type=float, default=0.0,
                   help="fraction of X on the S2- (4d) sites, swapped with S (default 0: ordered)")
    common(q)
    q = fam.add_parser("li7p3s11", help="Li7P3S11, P-1 (Yamane et al. 2007), from its published CIF")
    q.add_argument("--cif", required=True, help="the published structure (e.g. ICSD 157654)")
    common(q)


def cmd_structure(args: argparse.Namespace) -> int:
    from nvnmd.structures import build, write_extxyz

    kwargs = {"supercell": args.supercell, "seed": args.seed}
    if args.family == "lgps":
        kwargs["m"] = args.m
    elif args.family == "argyrodite":
        kwargs.update(halide=args.halide, site_disorder=args.site_disorder)
    else:
        kwargs["cif"] = args.cif
    atoms = build(args.family, **kwargs)
    path = write_extxyz(atoms, args.output)
    print(f"{path}: {atoms.get_chemical_formula()} ({len(atoms)} atoms), {atoms.info['parent_spacegroup']} parent, "
          f"closest pair {atoms.info['min_distance_A']:.2f} Å, charge neutral")
    return 0
