"""Relax the shipped LGPS starting structure (nvnmd/data/lgps_relaxed.extxyz) with the student.

Takes the first 50-atom validation frame shipped in nvnmd/data/frames/lgps50, relaxes atoms
and cell with ASE (BFGS on a FrechetCellFilter) using the deepmd backend on the embedded
student, and writes the result. Usage: python student/relax_structure.py [OUT]
"""
import sys
from pathlib import Path

import dpdata
from ase.filters import FrechetCellFilter
from ase.io import write
from ase.optimize import BFGS

from nvnmd.backends.deepmd import DeepmdBackend
from nvnmd.calculator import NvnmdCalculator
from nvnmd.student import default_student_path

data = Path(__file__).resolve().parents[1] / "nvnmd" / "data"
out = sys.argv[1] if len(sys.argv) > 1 else str(data / "lgps_relaxed.extxyz")
atoms = dpdata.System(str(data / "frames" / "lgps50"), fmt="deepmd/npy").to("ase/structure")[0]
atoms.calc = NvnmdCalculator(DeepmdBackend(default_student_path()))
opt = BFGS(FrechetCellFilter(atoms), logfile="-")
opt.run(fmax=0.01, steps=500)
atoms.calc = None
write(out, atoms, format="extxyz")
print(f"wrote {out}: cell {atoms.cell.cellpar().round(3)}")
