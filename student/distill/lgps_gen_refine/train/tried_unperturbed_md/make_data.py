"""The unperturbed teacher MD frames of lgps_gen (teacher energies and forces, no virial) as one deepmd system."""
import glob, numpy as np, dpdata
from ase.io import read
TM = ["Li", "Ge", "P", "S"]
coords, cells, E, F = [], [], [], []
for d in sorted(glob.glob("/work/main/student/distill/lgps_gen/teacher_md/s0_*/traj.extxyz")):
    fr = read(d, index=":")[1:]  # step 0 is the perturbed start
    for a in fr:
        coords.append(a.positions); cells.append(a.cell.array); E.append(a.get_potential_energy()); F.append(a.get_forces())
    sym = fr[0].get_chemical_symbols()
types = np.array([TM.index(s) for s in sym])
data = {"atom_names": TM, "atom_numbs": [int((types == k).sum()) for k in range(4)], "atom_types": types,
        "orig": np.zeros(3), "cells": np.array(cells), "coords": np.array(coords), "energies": np.array(E), "forces": np.array(F),
        "nopbc": False}
dpdata.LabeledSystem(data=data).to("deepmd/npy", "data/md", set_size=len(E))
print(len(E), "frames")
