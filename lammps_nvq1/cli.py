"""`nvnmd lammps`: the same MD run settings as `nvnmd md`, in LAMMPS over MPI ranks.

`--pair nvq1` runs the quantized image through pair_style nvq1 (the plugin built and cached on
first use; same bits on any rank count), `--pair deepmd` the float student through deepmd-kit's
pair_style deepmd. The trajectory goes to the same analysis as `nvnmd conductivity`
(nvnmd.analysis.conductivity: MSD -> D(Li), Nernst–Einstein σ) and lammps.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nvnmd.errors import NvnmdError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lammps", help="MD in LAMMPS over MPI: quantized pair_style nvq1 or float pair_style deepmd")
    p.add_argument("--pair", default="nvq1", choices=["nvq1", "deepmd"])
    p.add_argument("--model", help="float student (.pb); default: the embedded LGPS student")
    p.add_argument("--image", help="quantized image (.nvq); default: quantize --model into the output dir")
    p.add_argument("--structure", help="starting structure (anything ASE reads); default: shipped relaxed LGPS")
    p.add_argument("--supercell", default="2,2,1", help="repeat the structure a,b,c times (default 2,2,1)")
    p.add_argument("--ensemble", default="nve", choices=["nve", "nvt"], help="nve, or nvt (Nosé–Hoover, 100 fs)")
    p.add_argument("-T", "--temperature", type=float, default=900.0, help="initial velocities (and NVT) in K")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--dt", type=float, default=2.0, help="time step in fs")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--skin", type=float, default=1.0, help="neighbour skin in Å")
    p.add_argument("--traj-every", type=int, default=10)
    p.add_argument("--np", dest="ranks", type=int, default=1, help="MPI ranks (mpirun -np N)")
    p.add_argument("-o", "--output", default="runs/lammps", help="output directory")
    p.set_defaults(func=cmd_lammps)


def cmd_lammps(args) -> int:
    import numpy as np
    from ase.data import atomic_masses, atomic_numbers

    from nvnmd.analysis.conductivity import diffusion, nernst_einstein
    from nvnmd.image import Image, write_atomic
    from nvnmd.lammps.run import LammpsRun, read_dump, run_lammps
    from nvnmd.md.cli import _structure, ensure_image
    from nvnmd.student import default_student_path, load_student

    if args.steps < 1 or args.dt <= 0 or args.traj_every < 1 or args.ranks < 1 or args.temperature < 0:
        raise NvnmdError("--steps, --traj-every and --np must be ≥ 1, --dt > 0 and -T ≥ 0")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise NvnmdError(f"output {out} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    atoms = _structure(args)
    run = LammpsRun(ensemble=args.ensemble, temperature=args.temperature, dt_fs=args.dt, steps=args.steps,
                    dump_every=args.traj_every, thermo_every=args.traj_every, seed=args.seed, skin=args.skin)
    if args.pair == "nvq1":
        image = Image.read(ensure_image(args.model, args.image, out))
        type_map = list(image.meta["type_map"])
        res = run_lammps(out, atoms, run, args.ranks, image=image)
    else:
        student = Path(args.model or default_student_path())
        type_map = list(load_student(student).type_map)
        res = run_lammps(out, atoms, run, args.ranks, student=student, type_map=type_map)
    d = read_dump(out / "traj.lammpstrj")
    symbols = [type_map[t - 1] for t in d["types"]]
    times = d["steps"] * args.dt * 1e-3
    summary = {k: v for k, v in res.items() if k != "thermo"}
    summary.update(pair=args.pair, ensemble=args.ensemble, temperature=args.temperature, dt_fs=args.dt,
                   frames=int(len(times)))
    mask = np.array([s == "Li" for s in symbols])
    if len(times) >= 20 and mask.any():
        masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
        start = len(times) // 10
        D = diffusion(times[start:] - times[start], d["positions"][start:], mask, masses=masses)
        vol = abs(float(np.linalg.det(d["cell"][0])))
        summary.update(D_cm2_s=D["D_cm2_s"], D_err_cm2_s=D["D_err_cm2_s"],
                       sigma_mS_cm=nernst_einstein(D["D_cm2_s"], int(mask.sum()), vol, max(args.temperature, 1e-9)))
    write_atomic(out / "lammps.json", (json.dumps(summary, indent=2, default=float) + "\n").encode())
    line = (f"{args.steps} steps, {len(atoms)} atoms on {args.ranks} rank(s): {res.get('us_per_atom_step', 0):.1f} "
            f"µs/atom/step, {res.get('ns_per_day') or 0:.3f} ns/day")
    if "D_cm2_s" in summary:
        line += f"; D(Li) {summary['D_cm2_s']:.3g} cm²/s"
    print(line)
    for w in res["warnings"]:
        print(w)
    print(f"wrote {out}/traj.lammpstrj, log.lammps, lammps.json")
    return 0
