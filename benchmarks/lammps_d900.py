"""D(Li) at 900 K from our engine (deepmd backend) next to LAMMPS + deepmd-kit's pair_style deepmd.

Same model (nvnmd/data/lgps_student.pb), same LGPS supercell, same Langevin thermostat
(friction 0.01/fs = LAMMPS damp 0.1 ps), same time step and length; both trajectories are
analysed by the same code (nvnmd.analysis.conductivity.diffusion: FFT MSD with COM drift
removed, first 10 % dropped as equilibration, block-average error).

Usage: OMP_NUM_THREADS=1 python benchmarks/lammps_d900.py [--ps 20] [--dt 2] [--supercell 2,2,1]
           [--which ours|lammps|both] [--outdir runs/d900] [--json OUT]
Runs already finished in --outdir are not redone, so `--which ours` and `--which lammps` can
run in parallel and a final `--which both` only analyses and writes the comparison.
"""
import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

# one core per engine: the machine is shared and the comparison is not a speed test
for _var in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS",
             "TF_INTRA_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS"):
    os.environ.setdefault(_var, "1")

from ase.data import atomic_masses, atomic_numbers  # noqa: E402

from nvnmd.analysis.conductivity import diffusion, nernst_einstein  # noqa: E402
from nvnmd.md.engine import MDConfig, read_trajectory  # noqa: E402
from nvnmd.md.workflow import lgps_supercell  # noqa: E402
from nvnmd.student import default_student_path  # noqa: E402

MODEL = default_student_path()
FRICTION_PER_FS = 0.01


def analyse(times, pos, symbols, volume, T) -> dict:
    """Same analysis as nvnmd.md.workflow.conductivity_workflow, for either trajectory."""
    mask = np.array([s == "Li" for s in symbols])
    masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
    start = len(times) // 10
    d = diffusion(times[start:] - times[start], pos[start:], mask, masses=masses)
    return {"D_cm2_s": d["D_cm2_s"], "D_err_cm2_s": d["D_err_cm2_s"], "blocks_D_cm2_s": d["blocks_D_cm2_s"],
            "sigma_mS_cm": nernst_einstein(d["D_cm2_s"], int(mask.sum()), volume, T),
            "length_ps": float(times[-1] - times[start]), "frames": int(len(times) - start),
            "fit_window_ps": d["fit_window_ps"]}


def run_ours(atoms, args, outdir: Path) -> dict:
    from nvnmd.backends.deepmd import DeepmdBackend
    from nvnmd.md.workflow import conductivity_workflow

    backend = DeepmdBackend(MODEL)
    cfg = MDConfig(ensemble="langevin", temperature=args.temperature, dt_fs=args.dt, steps=int(round(args.ps * 1000 / args.dt)),
                   friction_per_fs=FRICTION_PER_FS, traj_every=args.every, thermo_every=args.every,
                   checkpoint_every=max(args.every, 1000), seed=args.seed)
    conductivity_workflow(atoms, backend, [args.temperature], cfg, outdir, progress=False)
    times, pos, symbols, cell = read_trajectory(outdir / f"T{int(round(args.temperature))}K" / "traj.extxyz")
    return analyse(times, pos, symbols, abs(float(np.linalg.det(cell))), args.temperature)


def read_lammps_dump(path: Path, natoms: int) -> np.ndarray:
    """Frames [F, N, 3] from a `dump custom ... id type xu yu zu` file sorted by id."""
    frames = []
    with open(path) as fh:
        lines = fh.readlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("ITEM: ATOMS"):
            block = np.loadtxt(lines[i + 1:i + 1 + natoms])
            frames.append(block[np.argsort(block[:, 0]), 2:5])
            i += 1 + natoms
        else:
            i += 1
    return np.array(frames)


def run_lammps(atoms, args, outdir: Path) -> dict:
    from nvnmd.bench.host import import_lammps, lammps_session, lower_triangular
    from nvnmd.student import load_student

    type_map = list(load_student(MODEL).type_map)
    outdir.mkdir(parents=True, exist_ok=True)
    dump, done = outdir / "traj.lammpstrj", outdir / "done.json"
    steps = int(round(args.ps * 1000 / args.dt))
    symbols = atoms.get_chemical_symbols()
    data = outdir / "lgps.data"
    lammps = import_lammps()
    if not (done.exists() and json.loads(done.read_text()).get("steps") == steps):
        lmp = lammps_session(lammps, atoms, type_map, data, outdir / "log.lammps",
                             f"pair_style deepmd {MODEL}\npair_coeff * * {' '.join(type_map)}", 1.0, args.dt)
        lmp.commands_string(f"""
velocity all create {args.temperature} {args.seed} dist gaussian mom yes
fix nve all nve
fix lang all langevin {args.temperature} {args.temperature} {1e-3 / FRICTION_PER_FS!r} {args.seed + 1} zero yes
dump traj all custom {args.every} {dump} id type xu yu zu
dump_modify traj sort id
thermo {max(args.every, 100)}
run {steps}
""")
        lmp.close()
        done.write_text(json.dumps({"steps": steps}))
    pos = read_lammps_dump(dump, len(atoms))
    times = np.arange(len(pos)) * args.every * args.dt * 1e-3
    return analyse(times, pos, symbols, abs(float(np.linalg.det(lower_triangular(np.array(atoms.cell.array))[0]))), args.temperature)


def add_run_args(ap: argparse.ArgumentParser, ps: float) -> None:
    """The run options every D(900 K) comparison shares (length, step, T, cell, frames, seed)."""
    ap.add_argument("--ps", type=float, default=ps, help=f"length of each run in ps (default {ps:g})")
    ap.add_argument("--dt", type=float, default=2.0, help="time step in fs (default 2)")
    ap.add_argument("--temperature", type=float, default=900.0)
    ap.add_argument("--supercell", default="2,2,1")
    ap.add_argument("--every", type=int, default=10, help="trajectory frame every N steps (default 10)")
    ap.add_argument("--seed", type=int, default=2026)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_args(ap, ps=20.0)
    ap.add_argument("--which", choices=["ours", "lammps", "both"], default="both")
    ap.add_argument("--outdir", default="runs/lammps_d900")
    ap.add_argument("--json", help="write the comparison here (default OUTDIR/d900.json)")
    args = ap.parse_args()
    outdir = Path(args.outdir)
    atoms = lgps_supercell([int(x) for x in args.supercell.split(",")])
    out = {"natoms": len(atoms), "temperature_K": args.temperature, "dt_fs": args.dt, "run_ps": args.ps,
           "thermostat": f"Langevin, friction {FRICTION_PER_FS}/fs (damp {1e-3 / FRICTION_PER_FS:g} ps)",
           "model": MODEL.name, "student_sha256": hashlib.sha256(MODEL.read_bytes()).hexdigest()}
    if args.which in ("ours", "both"):
        out["ours_deepmd"] = run_ours(atoms, args, outdir / "ours")
    if args.which in ("lammps", "both"):
        try:
            out["lammps_deepmd"] = run_lammps(atoms, args, outdir / "lammps")
        except (ImportError, OSError) as exc:
            out["lammps_deepmd"] = {"error": f"lammps Python module not importable: {exc}"}
    a, b = out.get("ours_deepmd", {}), out.get("lammps_deepmd", {})
    if "D_cm2_s" in a and "D_cm2_s" in b:
        diff = a["D_cm2_s"] - b["D_cm2_s"]
        comb = float(np.hypot(a["D_err_cm2_s"], b["D_err_cm2_s"]))
        out["difference_cm2_s"] = diff
        out["combined_err_cm2_s"] = comb
        out["difference_in_sigma"] = abs(diff) / comb if comb > 0 else float("inf")
    text = json.dumps(out, indent=2, default=float)
    print(text)
    path = Path(args.json) if args.json else outdir / f"d900_{args.which}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


if __name__ == "__main__":
    main()
