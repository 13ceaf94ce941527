"""Issue 5 figure: Ea and σ(300 K) of LGPS from the shipped (quantized) student vs experiment.

One command runs `nvnmd conductivity` with the `sim` backend (the bit-accurate board
simulator on the quantized embedded student) at several temperatures on the shipped LGPS
supercell, then collects the workflow's numbers, the run parameters and the student's
SHA-256 into one JSON and copies the workflow's msd.png / arrhenius.png next to it:

    OMP_NUM_THREADS=1 python benchmarks/lgps_arrhenius.py [--temperatures 600,700,800,900,1000]
        [--ps 100] [--dt 2] [--supercell 2,2,1] [--ensemble nose-hoover]

Trajectories live under runs/lgps_arrhenius/<student sha256[:12]>_<cell>_<ensemble>_<dt>fs/
(not committed); re-running resumes unfinished runs and skips finished ones (the workflow's
own resume), so the command can be interrupted and repeated. A retrained student gets a new
run directory and is re-measured from scratch.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from nvnmd.cli import main as nvnmd_main  # noqa: E402
from nvnmd.md.engine import MDConfig  # noqa: E402
from nvnmd.student import default_student_path  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# LGPS (Li10GeP2S12) experiment, Kamaya et al., Nat. Mater. 10, 682 (2011): 12 mS/cm at room
# temperature; reported activation energies 0.22-0.25 eV.
EXPERIMENT = {"sigma_300K_mS_cm": 12.0, "Ea_eV": [0.22, 0.25], "source": "Kamaya et al., Nat. Mater. 10, 682 (2011)"}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def long_lag_check(traj: Path) -> dict:
    """D refitted over twice longer lags (2 blocks instead of 4): if the MSD were still
    sub-diffusive in the main window, this D would come out clearly lower."""
    from ase.data import atomic_masses, atomic_numbers

    from nvnmd.analysis.conductivity import diffusion
    from nvnmd.md.engine import read_trajectory

    times, pos, symbols, _ = read_trajectory(traj)
    start = len(times) // 10  # the workflow's equilibration cut
    masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
    d = diffusion(times[start:] - times[start], pos[start:], np.array([s == "Li" for s in symbols]), nblocks=2, masses=masses)
    return {"D_cm2_s": d["D_cm2_s"], "D_err_cm2_s": d["D_err_cm2_s"], "fit_window_ps": d["fit_window_ps"], "nblocks": 2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--temperatures", default="600,700,800,900,1000", help="comma-separated K")
    ap.add_argument("--ps", type=float, default=100.0, help="run length per temperature in ps (default 100)")
    ap.add_argument("--dt", type=float, default=2.0, help="time step in fs (default 2)")
    ap.add_argument("--supercell", default="2,2,1", help="repeats of the shipped 50-atom cell (default 2,2,1 = 200 atoms)")
    ap.add_argument("--ensemble", default="nose-hoover", choices=["nose-hoover", "langevin"],
                    help="NVT thermostat (default nose-hoover: deterministic, leaves the Li dynamics least perturbed)")
    ap.add_argument("--traj-every", type=int, default=25, help="trajectory frame every N steps (default 25 = 50 fs)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--runs", default=str(REPO / "runs" / "lgps_arrhenius"), help="parent directory of the trajectories")
    ap.add_argument("--json", default=str(HERE / "lgps_arrhenius_results.json"))
    ap.add_argument("--figures", default=str(HERE / "lgps_arrhenius"), help="where msd.png and arrhenius.png are copied")
    ap.add_argument("--analyse-only", action="store_true", help="only re-analyse the existing trajectories")
    args = ap.parse_args()

    student = default_student_path()
    student_sha = sha256(student)
    steps = int(round(args.ps * 1000.0 / args.dt))
    cell_tag = args.supercell.replace(",", "x")
    out = Path(args.runs) / f"{student_sha[:12]}_{cell_tag}_{args.ensemble}_{args.dt:g}fs"
    out.mkdir(parents=True, exist_ok=True)

    argv = ["conductivity", "--backend", "sim", "-T", args.temperatures, "--steps", str(steps), "--dt", str(args.dt),
            "--supercell", args.supercell, "--ensemble", args.ensemble, "--traj-every", str(args.traj_every),
            "--seed", str(args.seed), "-o", str(out), "--quiet"]
    if args.analyse_only:
        argv.append("--analyse-only")
    print("nvnmd " + " ".join(argv), flush=True)
    rc = nvnmd_main(argv)
    if rc:
        return rc

    summary = json.loads((out / "conductivity.json").read_text())
    defaults = MDConfig()
    frame_ps = args.traj_every * args.dt / 1000.0
    runs = []
    for r in summary["runs"]:
        with np.load(out / f"T{int(round(r['T_K']))}K" / "checkpoint.npz", allow_pickle=False) as ck:
            done_steps = int(ck["step"])  # a run extended by an earlier, longer invocation keeps its length
        runs.append({**r, "run_ps": done_steps * args.dt / 1000.0, "analysed_ps": r["length_ps"],
                     "frames_analysed": int(round(r["length_ps"] / frame_ps)) + 1, "frame_ps": frame_ps,
                     "long_lag_check": long_lag_check(out / f"T{int(round(r['T_K']))}K" / "traj.extxyz")})
    fit = summary["arrhenius"]
    image = out / "model.nvq"
    result = {
        "what": "LGPS Li-ion conductivity from the shipped student, quantized, on the sim backend (bit-accurate board model)",
        "command": "OMP_NUM_THREADS=1 python benchmarks/lgps_arrhenius.py " + " ".join(sys.argv[1:]),
        "student": {"path": str(student.relative_to(REPO)), "sha256": student_sha},
        "image": {"sha256": sha256(image)} if image.exists() else None,
        "backend": "sim",
        "cell": {"structure": "nvnmd/data/lgps_relaxed.extxyz", "supercell": [int(x) for x in args.supercell.split(",")],
                 "natoms": summary["natoms"], "n_Li": runs[0]["n_ions"], "volume_A3": runs[0]["volume_A3"]},
        "md": {"ensemble": args.ensemble,
               "thermostat": ({"type": "nose-hoover", "tau_fs": defaults.tau_fs} if args.ensemble == "nose-hoover"
                              else {"type": "langevin", "friction_per_fs": defaults.friction_per_fs}),
               "timestep_fs": args.dt, "steps_per_T": steps, "run_ps_per_T": steps * args.dt / 1000.0,
               "traj_every": args.traj_every, "equilibration_skipped": "first 10 % of frames", "seed": args.seed},
        "analysis": "MSD of Li over all time origins (FFT) after removing the centre-of-mass drift; D from a linear fit "
                    "of MSD over the fit window; D error = standard error over non-overlapping blocks (4; fewer for short runs) fitted over the same lags; σ = N q² D / (V k_B T) "
                    "(tracer D, Haven ratio 1); Arrhenius: weighted fit of ln(σT) vs 1/T, errors widened by the reduced χ² "
                    "when it exceeds 1. long_lag_check: the same D fitted over twice longer lags (2 blocks)",
        "runs": runs,
        "arrhenius": fit,
        "experiment_LGPS": EXPERIMENT,
    }
    Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    figs = Path(args.figures)
    figs.mkdir(parents=True, exist_ok=True)
    for name in ("msd.png", "arrhenius.png"):
        shutil.copyfile(out / name, figs / name)

    print(f"{'T (K)':>6} {'run ps':>7} {'D (cm²/s)':>22} {'σ (mS/cm)':>18}")
    for r in runs:
        print(f"{r['T_K']:6.0f} {r['run_ps']:7.1f} {r['D_cm2_s']:11.3e} ± {r['D_err_cm2_s']:8.1e} "
              f"{r['sigma_mS_cm']:8.1f} ± {r['sigma_err_mS_cm']:6.1f}")
    print(f"Ea = {fit['Ea_eV']:.3f} ± {fit['Ea_err_eV']:.3f} eV (exp. 0.22–0.25), σ(300 K) = {fit['sigma_300K_mS_cm']:.3g} "
          f"± {fit['sigma_300K_err_mS_cm']:.2g} mS/cm (exp. 12)")
    print(f"wrote {args.json} and {figs}/msd.png, arrhenius.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
