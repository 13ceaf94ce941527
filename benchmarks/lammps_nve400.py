"""The quantized pair style in LAMMPS on 1 and 2 MPI ranks against the project's own engine: a
400-atom LGPS cell (2x2x2 of the shipped relaxed structure), NVE from the same 900 K velocities
(nvnmd.md.engine.maxwell_boltzmann, seeded), 1 fs, in one run:

* LAMMPS `pair_style nvq1`, 1 rank and 2 ranks: the dumps (positions, velocities, forces at
  17 digits, sorted by id) must be byte-identical;
* the same start in nvnmd's own engine on the sim backend, compared in LAMMPS's frame (LAMMPS
  rotates a tilted cell into its lower-triangular form, and the board then quantizes the rotated
  coordinates, so the integer forces differ in their last bits from step 0 and the two runs part
  as any two MD runs do); measured step by step;
* LAMMPS `pair_style deepmd` on the float student, 1 rank: µs/atom/step beside nvq1's.

    OMP_NUM_THREADS=1 python benchmarks/lammps_nve400.py [--steps 500] [--json benchmarks/results/lammps_nve400.json]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from ase.io import read

    from nvnmd.backends.sim import SimBackend
    from nvnmd.fpga.cli import load_image
    from nvnmd.lammps.run import LammpsRun, read_dump, run_lammps
    from nvnmd.md.engine import MDConfig, maxwell_boltzmann, run_md
    from nvnmd.md.workflow import lgps_supercell
    from nvnmd.student import default_student_path

    image = load_image(None)  # the embedded student, quantized now
    atoms = lgps_supercell((2, 2, 2))
    atoms.set_velocities(maxwell_boltzmann(np.array(atoms.get_masses()), 900.0, args.seed))
    n = len(atoms)
    run = LammpsRun(ensemble="nve", temperature=900.0, dt_fs=1.0, steps=args.steps, dump_every=args.every,
                    thermo_every=args.every, seed=args.seed)
    out = {"natoms": n, "steps": args.steps, "dt_fs": 1.0, "ensemble": "NVE", "start": "900 K Maxwell-Boltzmann, seed "
           f"{args.seed}", "image_sha256": image.digest()}
    with tempfile.TemporaryDirectory(prefix="nvnmd-nve400-") as tmp:
        tmp = Path(tmp)
        lmp = {}
        for ranks in (1, 2):
            l0 = list(os.getloadavg())
            res = run_lammps(tmp / f"nvq1_np{ranks}", atoms, run, ranks, image=image)
            lmp[ranks] = res
            out[f"lammps_nvq1_{ranks}rank"] = {"us_per_atom_step": res["us_per_atom_step"], "load": [l0, list(os.getloadavg())]}
        a, b = (tmp / "nvq1_np1" / "traj.lammpstrj").read_bytes(), (tmp / "nvq1_np2" / "traj.lammpstrj").read_bytes()
        out["dump_bytes_identical_1_vs_2_ranks"] = a == b
        out["dump_bytes"] = len(a)
        d1 = read_dump(tmp / "nvq1_np1" / "traj.lammpstrj")

        l0 = list(os.getloadavg())
        t0 = time.perf_counter()
        cfg = MDConfig(ensemble="nve", temperature=900.0, dt_fs=1.0, steps=args.steps, seed=args.seed,
                       traj_every=args.every, thermo_every=args.every, checkpoint_every=args.steps)
        res = run_md(atoms, SimBackend(image), cfg, tmp / "ours", progress=False, log=lambda *_: None)
        wall = time.perf_counter() - t0
        out["ours_sim_nve"] = {"us_per_atom_step": res.get("us_per_atom_step", 1e6 * wall / (n * args.steps)),
                               "load": [l0, list(os.getloadavg())]}
        frames = read(str(tmp / "ours" / "traj.extxyz"), index=":")
        # LAMMPS keeps the cell lower-triangular, so a tilted cell (the relaxed LGPS one is, by
        # ~0.3 Å) runs rotated: compare in its frame, rot = cell^-1 @ LAMMPS's cell (orthogonal)
        rot = np.linalg.solve(np.array(atoms.cell), d1["cell"][0])
        out["lammps_frame_rotation_max_offdiag"] = float(np.abs(rot - np.diag(np.diag(rot))).max())
        ours = np.array([f.positions for f in frames]) @ rot  # unwrapped by the engine (never re-wrapped)
        theirs = d1["positions"]
        m = min(len(ours), len(theirs))
        dev = np.abs(ours[:m] - theirs[:m]).max(axis=(1, 2))
        out["ours_vs_lammps_max_position_difference_A"] = {int(s): float(x) for s, x in zip(d1["steps"][:m], dev)}
        f_ours = (np.array([f.get_forces() for f in frames]) @ rot)[:m]
        out["ours_vs_lammps_max_force_difference_eV_A"] = {int(s): float(x) for s, x in
                                                           zip(d1["steps"][:m], np.abs(f_ours - d1["forces"][:m]).max(axis=(1, 2)))}

        l0 = list(os.getloadavg())
        res = run_lammps(tmp / "deepmd_np1", atoms, run, 1, student=default_student_path(), type_map=list(image.meta["type_map"]))
        out["lammps_deepmd_1rank"] = {"us_per_atom_step": res["us_per_atom_step"], "load": [l0, list(os.getloadavg())]}

    dev = out["ours_vs_lammps_max_position_difference_A"]
    fdev = out["ours_vs_lammps_max_force_difference_eV_A"]
    print(f"{n} atoms, NVE, {args.steps} steps of 1 fs from the same 900 K velocities")
    print(f"LAMMPS pair_style nvq1: 1 rank {out['lammps_nvq1_1rank']['us_per_atom_step']:.1f}, 2 ranks "
          f"{out['lammps_nvq1_2rank']['us_per_atom_step']:.1f} µs/atom/step; dumps byte-identical: "
          f"{out['dump_bytes_identical_1_vs_2_ranks']} ({out['dump_bytes']} bytes)")
    print(f"LAMMPS pair_style deepmd (float student), 1 rank: {out['lammps_deepmd_1rank']['us_per_atom_step']:.1f} µs/atom/step")
    print(f"nvnmd engine, sim backend: {out['ours_sim_nve']['us_per_atom_step']:.1f} µs/atom/step")
    print("nvnmd engine vs LAMMPS nvq1, max |Δx| (Å) / max |ΔF| (eV/Å) by step: "
          + ", ".join(f"{s}: {dev[s]:.1e} / {fdev[s]:.1e}" for s in list(dev)[:: max(1, len(dev) // 8)]))
    if args.json:
        from nvnmd.image import write_atomic

        write_atomic(Path(args.json), (json.dumps(out, indent=1) + "\n").encode())
    return 0 if out["dump_bytes_identical_1_vs_2_ranks"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
