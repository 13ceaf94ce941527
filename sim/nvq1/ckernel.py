"""The C pass of the nvq1 fast kernel (csrc/nvq1_kernel.c): its build, and its counter slots.

The kernel itself is plain C in csrc/ (nvq1_kernel.h declares its parameter blocks and
`nvq1_compute`; fast.py fills them from an image). Its counter array has one slot per SPEC
§2.2 site of sites.py, in that order, and one more for the atoms with more neighbours than
`sel` (`OVERFLOW`); the C enum is generated from that list into the build folder
(`nvq1_sites.h`), so the two can never disagree. Built through nvnmd.cbuild on first use; if
no compiler is available, or NVNMD_NO_C=1, `get()` returns None and the numpy path runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from nvnmd.cbuild import CLibrary
from nvnmd.sim.nvq1.sites import SITES

OVERFLOW = len(SITES)  # counter slot: atoms whose neighbours of some type exceed sel (§5.1)
NSLOTS = OVERFLOW + 1
SOURCE, HEADER, SITES_HEADER = "nvq1_kernel.c", "nvq1_kernel.h", "nvq1_sites.h"


def sites_header() -> str:
    """nvq1_sites.h: the counter slots as a C enum, NVQ1_SITE_<name> (names as in sites.py)."""
    lines = ["/* Generated from sim/nvq1/sites.py by nvnmd.sim.nvq1.ckernel.sites_header(): do not edit. */",
             "#ifndef NVQ1_SITES_H", "#define NVQ1_SITES_H", "enum {"]
    lines += [f"    NVQ1_SITE_{name} = {k}," for k, name in enumerate(SITES)]
    lines += [f"    NVQ1_SITE_overflow = {OVERFLOW},  /* atoms over sel */", f"    NVQ1_NSLOTS = {NSLOTS}", "};",
              "#endif", ""]
    return "\n".join(lines)


def write_sites_header(directory) -> Path:
    """Write nvq1_sites.h into DIRECTORY (for builds of nvq1_kernel.c outside Python)."""
    path = Path(directory) / SITES_HEADER
    path.write_text(sites_header(), encoding="utf-8")
    return path


# exact integer arithmetic in float64: reassociation cannot change a sum of integers below 2^53
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros",
         "-fopenmp"]

_LIBRARY = CLibrary("nvq1_c", "nvnmd.sim.nvq1", [SOURCE], HEADER, FLAGS, fallback="numpy",
                    generated={SITES_HEADER: sites_header()}, link=["-fopenmp"])


def library() -> CLibrary:
    return _LIBRARY


def get():
    """The compiled library (ffi, lib) or None.

    The OpenMP threads wait passively (OMP_WAIT_POLICY=PASSIVE unless the user set a policy;
    libgomp reads it once, when this library first loads it): the kernel opens one parallel
    region per call, so a sleeping team costs one wake-up per step, while libgomp's default
    spinning keeps the team's threads burning a core between steps, stealing it from the
    Python side of the step, from a 1-thread kernel in the same process and, on a shared
    machine, from everyone (measured: a 1-thread kernel beside an idle 2-thread team 66 µs/atom
    of CPU per step with spinning, 37 without)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return _LIBRARY.get()


if __name__ == "__main__":  # python -m nvnmd.sim.nvq1.ckernel DIR: nvq1_sites.h for an outside build
    import sys

    print(write_sites_header(sys.argv[1] if len(sys.argv) > 1 else "."))
