"""D(Li) at 900 K of a distilled LGPS student next to its teacher, the same runs for all three.

Teacher (`--backend teacher`, the distillation's own teacher), float student (deepmd backend,
student.pb) and quantized student (sim backend, student.nvq) run the same MD through the same
engine: the distillation's structure (50 atoms), NVT CSVR at 900 K, 2 fs, `--ps` long, seeds
`--seed + k`. The teacher gets `--teacher-runs` runs (its wall time is reported: it is part of the
figure), the students `--runs`. (The distillation's own 2 ps teacher trajectories are too short for a
D: Li rattles in its cage for 1–2 ps, see nvnmd.analysis.conductivity.diffusion.) Every trajectory
is analysed by `analyse` of benchmarks/lammps_d900.py (FFT MSD, COM drift removed, first 10 %
dropped, block-average error); per model D is the mean over the runs, its error the larger of the
propagated block errors and the run-to-run standard error.

    OMP_NUM_THREADS=1 python benchmarks/distill_d900.py [--distill student/distill/lgps] [--ps 12]
        [--runs 3] [--teacher-runs 1] [--which teacher,float,quantized] [--outdir runs/distill_d900]
        [--json benchmarks/distill_d900_results.json] [--student DIR] [--teacher-from JSON]

`--student DIR` runs another distillation's student.pb/student.nvq in `--distill`'s cell (e.g. the
multi-species student in the LGPS cell). `--teacher-from JSON` takes the teacher's D from an earlier
result of this script instead of rerunning it (its 12 ps cost 9 230 s here), only when the teacher's
SHA-256, the structure, temperature, time step, run length, runs and seed all match.

Finished runs are kept (per model SHA-256) and resumed from their checkpoints when killed; `--which`
lets the teacher run on one core while the students run on the other (the JSON is written from
whatever runs exist, so run once more without --which at the end).
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

HERE = Path(__file__).resolve().parent


def _analyse():
    spec = importlib.util.spec_from_file_location("lammps_d900", HERE / "lammps_d900.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.analyse


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def summarize(runs: list[dict]) -> dict:
    d = np.array([r["D_cm2_s"] for r in runs])
    block = float(np.sqrt(np.sum(np.array([r["D_err_cm2_s"] for r in runs]) ** 2)) / len(runs))
    spread = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None  # one run: no spread (JSON null)
    return {"D_cm2_s": float(d.mean()), "D_err_cm2_s": block if spread is None else max(block, spread),
            "D_err_blocks_cm2_s": block, "D_err_runs_cm2_s": spread,
            "sigma_mS_cm": float(np.mean([r["sigma_mS_cm"] for r in runs])), "runs": runs}


def analyse_traj(path: Path, temperature: float) -> dict:
    from nvnmd.md.engine import read_trajectory

    times, pos, symbols, cell = read_trajectory(path)
    return _analyse()(times, pos, symbols, abs(float(np.linalg.det(cell))), temperature)


def model_runs(which: str, model: Path, structure: Path, args, outdir: Path, nruns: int, run: bool) -> dict | None:
    from ase.io import read

    from nvnmd.backends import make_backend
    from nvnmd.md.engine import MDConfig, run_md

    steps = int(round(args.ps * 1000 / args.dt))
    backend, out, seconds = None, [], []
    for k in range(nruns):
        run_dir = outdir / f"run{k}"
        ck = run_dir / "checkpoint.npz"
        done = False
        if ck.exists():
            with np.load(ck, allow_pickle=False) as z:
                done = int(z["step"]) >= steps
        if not done:
            if not run:
                return None
            if backend is None:
                backend = (make_backend("sim", image=str(model))[0] if which == "quantized"
                           else make_backend("teacher", teacher=str(model))[0] if which == "teacher"
                           else make_backend("deepmd", model=str(model))[0])
            cfg = MDConfig(ensemble="csvr", temperature=args.temperature, dt_fs=args.dt, steps=steps, tau_fs=100.0,
                           traj_every=10, thermo_every=10, checkpoint_every=250, seed=args.seed + k)
            t0 = time.perf_counter()
            run_md(read(str(structure)), backend, cfg, run_dir, resume=ck.exists(), progress=True)
            seconds.append(time.perf_counter() - t0)
            (run_dir / "seconds.txt").write_text(f"{seconds[-1]:.1f}\n")
            print(f"{which} run {k}: {steps} steps in {seconds[-1]:.0f} s", flush=True)
        r = analyse_traj(run_dir / "traj.extxyz", args.temperature)
        sec = run_dir / "seconds.txt"
        r.update(run=k, seed=args.seed + k, seconds=float(sec.read_text()) if sec.exists() else None)
        out.append(r)
    return summarize(out)


def pooled_short(trajs: list[Path], temperature: float, window_ps=(0.4, 1.4)) -> dict:
    """D from several short runs: each run's Li MSD (COM drift removed, first 10 % dropped) fitted
    over `window_ps` (runs may have different frame intervals); D = the mean of the runs' slopes,
    error = their standard error."""
    from ase.data import atomic_masses, atomic_numbers

    from nvnmd.analysis.conductivity import A2PS_TO_CM2S, _fit_slope, msd_fft, remove_com_drift
    from nvnmd.md.engine import read_trajectory

    slopes = []
    for path in trajs:
        times, pos, symbols, _ = read_trajectory(path)
        start = len(times) // 10
        masses = np.array([atomic_masses[atomic_numbers[x] ] for x in symbols])
        pos = remove_com_drift(pos[start:], masses)[:, [x == "Li" for x in symbols], :]
        msd = msd_fft(pos)
        lags = (times[start:] - times[start])
        sel = (lags >= window_ps[0]) & (lags <= window_ps[1])
        slopes.append(_fit_slope(lags[sel], msd[sel]) / 6.0 * A2PS_TO_CM2S)
    return {"D_cm2_s": float(np.mean(slopes)),
            "D_err_cm2_s": float(np.std(slopes, ddof=1) / np.sqrt(len(slopes))), "runs_D_cm2_s": slopes,
            "fit_window_ps": list(window_ps), "runs": len(trajs)}


def reused_teacher(path: Path, out: dict, nruns: int) -> dict:
    """The teacher's entry of an earlier result, refused (SystemExit, one line) unless it ran the same protocol."""
    old = json.loads(path.read_text())
    keys = ("teacher_sha256", "structure", "natoms", "temperature_K", "dt_fs", "run_ps", "ensemble")
    differ = [k for k in keys if old.get(k) != out.get(k)]
    if "teacher" not in old or len(old["teacher"]["runs"]) != nruns \
            or [r["seed"] for r in old["teacher"]["runs"]] != [out["seed"] + k for k in range(nruns)]:
        differ.append("teacher runs/seeds")
    if differ:
        raise SystemExit(f"--teacher-from {path}: its teacher ran another protocol ({', '.join(differ)})")
    return {**old["teacher"], "reused_from": str(path)}


def short_protocol(distill: Path, student: Path, man: dict, outdir: Path, which_now: set) -> dict:
    """The distillation's own teacher runs (each perturbed start, its seed, 2 ps at 1 fs) and the
    students rerunning exactly those runs: one estimator for all three, same bias."""
    from ase.io import read

    from nvnmd.backends import make_backend
    from nvnmd.distill.config import DistillConfig
    from nvnmd.distill.pipeline import Composition, _trajectories
    from nvnmd.md.engine import MDConfig, run_md

    cfg = DistillConfig.from_dict(man["parameters"])
    T = max(cfg.temperatures)
    comp = Composition(cfg, 0, "", cfg.structure)
    runs = [r[:3] for r in _trajectories(cfg, distill, comp) if r[2]["temperature"] == T and r[4] == 1.0]
    res = {"protocol": f"{len(runs)} runs x {runs[0][2]['steps'] * cfg.dt_fs / 1000:g} ps, {cfg.ensemble} at {T:g} K, "
                       f"{cfg.dt_fs:g} fs, the distillation's perturbed starts and seeds",
           "teacher": pooled_short([d / "traj.extxyz" for _, d, _ in runs], T)}
    res["teacher"]["stage_wall_s"] = man["stages"]["teacher_md"]["wall_s"]
    for which, model in (("float", student / "student.pb"), ("quantized", student / "student.nvq")):
        base = outdir / f"short-{which}-{sha256(model)[:12]}"
        backend, t_md = None, 0.0
        for name, _, md in runs:
            run_dir = base / name
            ck = run_dir / "checkpoint.npz"
            if ck.exists():
                with np.load(ck, allow_pickle=False) as z:
                    if int(z["step"]) >= md["steps"]:
                        continue
            if which not in which_now:
                break
            backend = backend or (make_backend("sim", image=str(model))[0] if which == "quantized"
                                  else make_backend("deepmd", model=str(model))[0])
            start = distill / "perturb" / ("holdout.extxyz" if name == "holdout" else f"{name.split('_')[0]}.extxyz")
            t0 = time.perf_counter()
            run_md(read(str(start)), backend, MDConfig(**md), run_dir, resume=ck.exists(), progress=False)
            t_md += time.perf_counter() - t0
        else:
            res[which] = pooled_short([base / name / "traj.extxyz" for name, _, _ in runs], T)
            res[which]["seconds_this_invocation"] = round(t_md, 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--distill", default="student/distill/lgps", help="an `nvnmd distill` output directory")
    ap.add_argument("--ps", type=float, default=12.0, help="length of every run (ps)")
    ap.add_argument("--dt", type=float, default=2.0, help="time step (fs)")
    ap.add_argument("--temperature", type=float, default=900.0)
    ap.add_argument("--runs", type=int, default=3, help="runs per student")
    ap.add_argument("--teacher-runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--which", default="teacher,float,quantized", help="models to run now (the others are only read)")
    ap.add_argument("--outdir", default="runs/distill_d900")
    ap.add_argument("--json", default=str(HERE / "distill_d900_results.json"))
    ap.add_argument("--student", help="the distillation whose student runs (default: --distill)")
    ap.add_argument("--teacher-from", help="an earlier result JSON whose teacher D is reused when its protocol matches")
    args = ap.parse_args()
    distill = Path(args.distill)
    student = Path(args.student or args.distill)
    man = json.loads((distill / "manifest.json").read_text())
    structure = Path(man["structure"]["path"])
    models = {"teacher": (man["teacher"]["spec"], args.teacher_runs), "float": (student / "student.pb", args.runs),
              "quantized": (student / "student.nvq", args.runs)}
    now = set(args.which.split(","))
    out = {"temperature_K": args.temperature, "natoms": man["structure"]["natoms"], "structure": str(structure),
           "ensemble": "csvr (tau 100 fs)", "dt_fs": args.dt, "run_ps": args.ps, "distill": str(distill),
           "student": str(student), "seed": args.seed, "machine_load_at_start": os.getloadavg()[0]}
    for which, (model, nruns) in models.items():
        digest = man["teacher"]["sha256"] if which == "teacher" else sha256(model)
        out[f"{which}_sha256"] = digest
        if which == "teacher" and args.teacher_from:
            out["teacher"] = reused_teacher(Path(args.teacher_from), out, nruns)
            continue
        res = model_runs(which, model, structure, args, Path(args.outdir) / f"{which}-{digest[:12]}", nruns, which in now)
        if res is not None:
            out[which] = res
    out["short"] = short_protocol(distill, student, man, Path(args.outdir), now)
    for which in ("float", "quantized"):
        if which in out and "teacher" in out:
            a, b = out[which], out["teacher"]
            comb = float(np.hypot(a["D_err_cm2_s"], b["D_err_cm2_s"]))
            out[f"{which}_vs_teacher_sigma"] = abs(a["D_cm2_s"] - b["D_cm2_s"]) / comb if comb > 0 else float("inf")
    text = json.dumps(out, indent=1, default=float)
    path = Path(args.json)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)
    for key in models:
        if key in out["short"]:
            r = out["short"][key]
            print(f"{key:10s} D = {r['D_cm2_s'] * 1e5:.2f} ± {r['D_err_cm2_s'] * 1e5:.2f} e-5 cm²/s ({out['short']['protocol']})")
    for key in models:
        if key in out:
            r = out[key]
            secs = [x["seconds"] for x in r["runs"] if x.get("seconds")]
            print(f"{key:10s} D = {r['D_cm2_s'] * 1e5:.2f} ± {r['D_err_cm2_s'] * 1e5:.2f} e-5 cm²/s over {len(r['runs'])} "
                  f"x {args.ps:g} ps" + (f", {sum(secs):.0f} s of MD" if secs else ""))


if __name__ == "__main__":
    main()
