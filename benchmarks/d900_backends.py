"""D(Li) at 900 K with the `sim` backend (quantized student, bit-accurate simulator) next to
the `deepmd` backend (the float student in deepmd-kit): does quantization change diffusion?

Both backends run the same LGPS supercell through the same engine (`run_md`), the same
Langevin thermostat (friction 0.01/fs), time step, length and seeds: run k of each backend
starts from Maxwell-Boltzmann velocities and a Langevin noise stream seeded `seed + k`. Each
trajectory is analysed by `analyse` of benchmarks/lammps_d900.py (FFT MSD, COM drift removed,
first 10 % dropped, block-average error). Per backend, D is the mean over the runs and its
uncertainty the larger of the propagated block errors and the run-to-run standard error.

One command re-runs everything for the student currently embedded (runs are kept per student
SHA-256 under --outdir, sim runs also per simulator source digest; finished runs are not
redone) and writes the comparison JSON:

    OMP_NUM_THREADS=1 python benchmarks/d900_backends.py [--ps 30] [--runs 3] [--which sim|deepmd|both]
        [--outdir runs/d900_backends] [--json benchmarks/d900_backends_results.json]

`--which sim` and `--which deepmd` can run in parallel (one core each); `--which both` then
only analyses (and runs whatever is missing).
"""
import argparse
import hashlib
import importlib.util
import json
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS",
             "TF_INTRA_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from nvnmd.md.engine import MDConfig, read_trajectory, run_md  # noqa: E402
from nvnmd.md.workflow import lgps_supercell  # noqa: E402
from nvnmd.student import default_student_path  # noqa: E402

HERE = Path(__file__).resolve().parent
FRICTION_PER_FS = 0.01


def _sibling():
    """benchmarks/lammps_d900.py: its `analyse` and run options serve every D(900 K) comparison."""
    spec = importlib.util.spec_from_file_location("lammps_d900", HERE / "lammps_d900.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_backend(which: str, model: Path, workdir: Path):
    from nvnmd.backends import make_backend as factory
    from nvnmd.md.cli import ensure_image

    if which == "sim":
        return factory("sim", image=ensure_image(str(model), None, workdir))[0]
    return factory("deepmd", model=str(model))[0]


def simulator_digest() -> str:
    """SHA-256 of the nvq1 simulator's sources: a changed simulator never reuses older sim runs."""
    import nvnmd.sim

    folder = Path(nvnmd.sim.__file__).parent
    h = hashlib.sha256()
    for path in [folder / "__init__.py", *sorted(folder.glob("nvq1*.py"))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def run_backend(which: str, atoms, args, model: Path, workdir: Path) -> dict:
    analyse = _sibling().analyse
    steps = int(round(args.ps * 1000 / args.dt))
    backend = None
    runs = []
    sub = f"sim-{simulator_digest()[:12]}" if which == "sim" else which
    for k in range(args.runs):
        run_dir = workdir / sub / f"run{k}"
        cfg = MDConfig(ensemble="langevin", temperature=args.temperature, dt_fs=args.dt, steps=steps,
                       friction_per_fs=FRICTION_PER_FS, traj_every=args.every, thermo_every=args.every,
                       checkpoint_every=1000, seed=args.seed + k)
        ck = run_dir / "checkpoint.npz"
        done = False
        if ck.exists():
            with np.load(ck, allow_pickle=False) as z:
                done = int(z["step"]) >= steps
        seconds = None
        if not done:
            backend = backend or make_backend(which, model, workdir)
            t0 = time.perf_counter()
            run_md(atoms, backend, cfg, run_dir, resume=ck.exists(), progress=False)
            seconds = time.perf_counter() - t0
            print(f"{which} run {k}: {steps} steps in {seconds:.0f} s", flush=True)
        times, pos, symbols, cell = read_trajectory(run_dir / "traj.extxyz")
        r = analyse(times, pos, symbols, abs(float(np.linalg.det(cell))), args.temperature)
        r.update(seed=cfg.seed, seconds=seconds)
        runs.append(r)
    d = np.array([r["D_cm2_s"] for r in runs])
    block = float(np.sqrt(np.sum(np.array([r["D_err_cm2_s"] for r in runs]) ** 2)) / len(runs))
    spread = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"D_cm2_s": float(d.mean()), "D_err_cm2_s": max(block, spread) if np.isfinite(spread) else block,
            "D_err_blocks_cm2_s": block, "D_err_runs_cm2_s": spread,
            "sigma_mS_cm": float(np.mean([r["sigma_mS_cm"] for r in runs])), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _sibling().add_run_args(ap, ps=30.0)
    ap.add_argument("--runs", type=int, default=3, help="independent runs (seeds) per backend (default 3)")
    ap.add_argument("--model", default=str(default_student_path()), help="float student (default: embedded)")
    ap.add_argument("--which", choices=["sim", "deepmd", "both"], default="both")
    ap.add_argument("--outdir", default="runs/d900_backends")
    ap.add_argument("--json", default=str(HERE / "d900_backends_results.json"))
    args = ap.parse_args()
    model = Path(args.model)
    digest = sha256(model)
    # runs are keyed by the student: a retrained model never reuses another model's trajectories
    workdir = Path(args.outdir) / digest[:12]
    workdir.mkdir(parents=True, exist_ok=True)
    atoms = lgps_supercell([int(x) for x in args.supercell.split(",")])
    out = {"natoms": len(atoms), "temperature_K": args.temperature, "dt_fs": args.dt, "run_ps": args.ps,
           "runs_per_backend": args.runs, "seeds": [args.seed + k for k in range(args.runs)],
           "thermostat": f"Langevin (BAOAB), friction {FRICTION_PER_FS}/fs",
           "student": model.name, "student_sha256": digest}
    whiches = ["sim", "deepmd"] if args.which == "both" else [args.which]
    for which in whiches:
        out[which] = run_backend(which, atoms, args, model, workdir)
    if args.which == "both":
        a, b = out["sim"], out["deepmd"]
        diff = a["D_cm2_s"] - b["D_cm2_s"]
        comb = float(np.hypot(a["D_err_cm2_s"], b["D_err_cm2_s"]))
        out.update(difference_cm2_s=diff, combined_err_cm2_s=comb,
                   difference_in_sigma=abs(diff) / comb if comb > 0 else float("inf"),
                   agree_within_2_sigma=bool(abs(diff) <= 2 * comb))
        image = workdir / "model.nvq"
        if image.exists():
            out["image_sha256"] = sha256(image)
        out["simulator_sources_sha256"] = simulator_digest()
    text = json.dumps(out, indent=2, default=float)
    print(text)
    path = Path(args.json) if args.which == "both" else workdir / f"d900_{args.which}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


if __name__ == "__main__":
    main()
