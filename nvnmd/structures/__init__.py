"""nvnmd.structures: supercells of sulfide electrolytes from published crystallography.

    build("lgps", m="Ge:0.5,Si:0.5", supercell=(2, 2, 1), seed=1)    Li10MP2S12, P4_2/nmc
    build("argyrodite", halide="Cl", site_disorder=0.25, seed=1)     Li6PS5X, F-43m
    build("li7p3s11", cif="Li7P3S11.cif", supercell=(1, 2, 1))       Li7P3S11, P-1 (from a CIF)
Every built cell passes the minimum-distance and charge-neutrality checks before it is
returned; one file per family says where each number comes from.
"""

from __future__ import annotations

from nvnmd.errors import StructureError
from nvnmd.structures.common import check_charge, check_min_distance, write_extxyz

FAMILIES = ("lgps", "argyrodite", "li7p3s11")


def build(family: str, **kwargs):
    if family == "lgps":
        from nvnmd.structures.lgps import build as make
    elif family == "argyrodite":
        from nvnmd.structures.argyrodite import build as make
    elif family == "li7p3s11":
        from nvnmd.structures.li7p3s11 import build as make
    else:
        raise StructureError(f"unknown structure family '{family}' (choose {', '.join(FAMILIES)})")
    atoms = make(**kwargs)
    check_charge(atoms)
    atoms.info["min_distance_A"] = round(check_min_distance(atoms), 4)
    return atoms


__all__ = ["FAMILIES", "build", "check_charge", "check_min_distance", "write_extxyz"]
