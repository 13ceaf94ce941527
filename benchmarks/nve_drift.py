"""NVE energy drift of the host MD engine on the quantized LGPS student (sim backend).

Thermalises a supercell at T with Langevin, then runs NVE with velocity Verlet and fits the
total energy against time: drift in meV/atom/ps, plus the RMS fluctuation.
Usage: python benchmarks/nve_drift.py [--temperature 600] [--dt 1.0] [--ps 10] [--supercell 2,2,1] [--json OUT]
"""
import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from nvnmd.backends.sim import SimBackend
from nvnmd.md.cli import ensure_image
from nvnmd.md.engine import MDConfig, run_md
from nvnmd.md.workflow import lgps_supercell


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--temperature", type=float, default=600.0)
    ap.add_argument("--dt", type=float, default=1.0)
    ap.add_argument("--ps", type=float, default=10.0)
    ap.add_argument("--supercell", default="2,2,1")
    ap.add_argument("--json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backend = SimBackend(ensure_image(None, None, tmp, log=lambda *a: None))
        atoms = lgps_supercell([int(x) for x in args.supercell.split(",")])
        warm = MDConfig(ensemble="langevin", temperature=args.temperature, dt_fs=args.dt, steps=int(1000 / args.dt),
                        traj_every=100, thermo_every=100, checkpoint_every=10**9)
        run_md(atoms, backend, warm, tmp / "warm", progress=False)
        ck = np.load(tmp / "warm" / "checkpoint.npz")
        atoms.positions = ck["positions"]
        atoms.set_velocities(ck["velocities"])
        nve = replace(warm, ensemble="nve", steps=int(args.ps * 1000 / args.dt), thermo_every=10, traj_every=10**9)
        summary = run_md(atoms, backend, nve, tmp / "nve", progress=True)
        th = np.genfromtxt(tmp / "nve" / "thermo.csv", delimiter=",", names=True)
    n = len(atoms)
    slope = np.polyfit(th["time_ps"], th["Etot_eV"], 1)[0]
    out = {"natoms": n, "temperature_K": args.temperature, "dt_fs": args.dt, "length_ps": args.ps,
           "drift_meV_per_atom_per_ps": 1e3 * slope / n,
           "etot_rms_fluct_meV_per_atom": 1e3 * float(np.std(th["Etot_eV"])) / n,
           "mean_T_K": float(np.mean(th["T_K"])), "us_per_atom_step": summary["us_per_atom_step"]}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
