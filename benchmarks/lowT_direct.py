"""Analysis of benchmarks/lowT_direct.sh: direct D(Li), σ at T ≤ 500 K next to the 600–1000 K
Arrhenius extrapolation of the same student (benchmarks/lgps_arrhenius_results.json).

For every T{T}K run under --runs: the conductivity workflow's own analysis (first 10 % of
frames skipped, MSD over all origins after removing the centre-of-mass drift, D from the fit
over the block's 20–80 % lags but never before 2 ps, error = standard error of 4
non-overlapping blocks fitted over the same lags), σ by Nernst–Einstein, plus the D fitted
over twice longer lags (2 blocks) as a sub-diffusion check. The high-T points are refitted
(weighted Arrhenius, nvnmd.analysis.conductivity.arrhenius) and evaluated at each low T, with
the fit's error. Writes benchmarks/lowT_direct_results.json atomically; partial runs are
reported with their length (`run_ps`), so the JSON is valid after every chunk.
"""
import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def analyse(run_dir: Path, T: float, nblocks: int = 4) -> dict:
    from ase.data import atomic_masses, atomic_numbers

    from nvnmd.analysis.conductivity import diffusion, nernst_einstein
    from nvnmd.md.engine import read_trajectory

    times, pos, symbols, cell = read_trajectory(run_dir / "traj.extxyz")
    with np.load(run_dir / "checkpoint.npz", allow_pickle=False) as ck:
        steps = int(ck["step"])
        dt_fs = float(json.loads(str(ck["config"]))["dt_fs"])
    mask = np.array([s == "Li" for s in symbols])
    volume = abs(float(np.linalg.det(cell)))
    masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
    start = len(times) // 10
    t, x = times[start:] - times[start], pos[start:]
    d = diffusion(t, x, mask, masses=masses, nblocks=nblocks)
    long = diffusion(t, x, mask, masses=masses, nblocks=2)
    short = diffusion(t, x, mask, masses=masses, nblocks=2 * nblocks)  # more, shorter blocks: a second error estimate
    n = int(mask.sum())
    ne = nernst_einstein(1.0, n, volume, T)  # σ per unit D
    return {"T_K": T, "run_ps": steps * dt_fs / 1000.0, "analysed_ps": float(t[-1]), "frames_analysed": len(t),
            "D_cm2_s": d["D_cm2_s"], "D_err_cm2_s": d["D_err_cm2_s"],
            "sigma_mS_cm": d["D_cm2_s"] * ne, "sigma_err_mS_cm": d["D_err_cm2_s"] * ne,
            "blocks_D_cm2_s": d["blocks_D_cm2_s"], "fit_window_ps": d["fit_window_ps"], "warning": d["warning"],
            "msd_at_fit_end_A2": float(np.interp(d["fit_window_ps"][1], d["lag_ps"], d["msd_A2"])),
            "long_lag_check": {"D_cm2_s": long["D_cm2_s"], "D_err_cm2_s": long["D_err_cm2_s"],
                               "fit_window_ps": long["fit_window_ps"], "nblocks": 2},
            "more_blocks_check": {"D_cm2_s": short["D_cm2_s"], "D_err_cm2_s": short["D_err_cm2_s"],
                                  "blocks_mean_D_cm2_s": float(np.mean(short["blocks_D_cm2_s"])) if short["blocks_D_cm2_s"] else None,
                                  "fit_window_ps": short["fit_window_ps"], "nblocks": 2 * nblocks},
            "n_Li": n, "volume_A3": volume}


def extrapolate(high: dict, T: float, n: int, volume: float) -> dict:
    from nvnmd.analysis.conductivity import arrhenius, nernst_einstein

    runs = high["runs"]
    fit = arrhenius([r["T_K"] for r in runs], [r["sigma_mS_cm"] for r in runs], [r["sigma_err_mS_cm"] for r in runs],
                    t_eval=T)
    ne = nernst_einstein(1.0, n, volume, T)
    s, e = fit["sigma_300K_mS_cm"], fit["sigma_300K_err_mS_cm"]  # evaluated at t_eval = T
    return {"from_T_K": [r["T_K"] for r in runs], "Ea_eV": fit["Ea_eV"], "Ea_err_eV": fit["Ea_err_eV"],
            "sigma_mS_cm": s, "sigma_err_mS_cm": e, "D_cm2_s": s / ne, "D_err_cm2_s": e / ne}


def main() -> int:
    from nvnmd.image import write_atomic
    from nvnmd.student import default_student_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="the -o directory of lowT_direct.sh")
    ap.add_argument("--temperatures", default="500,400")
    ap.add_argument("--high", default=str(HERE / "lgps_arrhenius_results.json"))
    ap.add_argument("--json", default=str(HERE / "lowT_direct_results.json"))
    ap.add_argument("--target-ps", type=float, default=200.0, help="run length each temperature is heading for (lowT_direct.sh TARGET_PS)")
    args = ap.parse_args()
    runs_dir = Path(args.runs)
    high = json.loads(Path(args.high).read_text())
    student = default_student_path()
    sha = hashlib.sha256(student.read_bytes()).hexdigest()
    rows = []
    for T in (float(v) for v in args.temperatures.split(",")):
        run_dir = runs_dir / f"T{int(round(T))}K"
        if not (run_dir / "checkpoint.npz").exists() or not (run_dir / "traj.extxyz").exists():
            rows.append({"T_K": T, "run_ps": 0.0, "note": "not started"})
            continue
        r = analyse(run_dir, T)
        ex = extrapolate(high, T, r["n_Li"], r["volume_A3"])
        both = np.hypot(r["D_err_cm2_s"], ex["D_err_cm2_s"])
        r["arrhenius_600_1000K_extrapolation"] = ex
        r["direct_over_extrapolated"] = r["D_cm2_s"] / ex["D_cm2_s"]
        r["difference_in_sigma_units"] = (r["D_cm2_s"] - ex["D_cm2_s"]) / both if both > 0 else float("nan")
        rows.append(r)
    image = runs_dir / "model.nvq"
    done = [f"{r['T_K']:.0f} K {r['run_ps']:.0f} ps" for r in rows]
    complete = all(r["run_ps"] >= args.target_ps - 1e-9 for r in rows)
    result = {
        "status": ("complete" if complete else "partial") + f": {', '.join(done)} of {args.target_ps:g} ps each"
                  + ("" if complete else "; continue with `nohup nice -n 15 benchmarks/lowT_direct.sh` (resumes from the checkpoints)"),
        "what": "LGPS D(Li) and σ from direct runs at T ≤ 500 K, shipped quantized student on the sim backend, "
                "vs the 600–1000 K Arrhenius extrapolation of the same student and settings",
        "command": "nohup nice -n 15 benchmarks/lowT_direct.sh (analysis: benchmarks/lowT_direct.py)",
        "student": {"path": str(student.relative_to(REPO)), "sha256": sha},
        "image": {"sha256": hashlib.sha256(image.read_bytes()).hexdigest()} if image.exists() else None,
        "high_T_source": "benchmarks/lgps_arrhenius_results.json",
        "cell": {"structure": "nvnmd/data/lgps_relaxed.extxyz", "supercell": [2, 2, 1], "natoms": 200, "n_Li": 80},
        "md": {"backend": "sim", "ensemble": "nose-hoover", "tau_fs": 100.0, "timestep_fs": 2.0, "traj_every": 25,
               "seed": 2026, "equilibration_skipped": "first 10 % of frames"},
        "analysis": "as nvnmd conductivity: D from the MSD fit over the block's 20–80 % lags (≥ 2 ps), error = "
                    "standard error of 4 non-overlapping blocks (independent segments) fitted over the same lags; "
                    "more_blocks_check = the same with 8 blocks (half the lags), a second error estimate; "
                    "σ Nernst–Einstein (Haven ratio 1); long_lag_check = 2 blocks, twice longer lags. "
                    "difference_in_sigma_units = (D_direct − D_extrapolated) / sqrt(err_direct² + err_extrapolated²)",
        "runs": rows,
    }
    write_atomic(Path(args.json), (json.dumps(result, indent=2, ensure_ascii=False) + "\n").encode())
    for r in rows:
        if "D_cm2_s" not in r:
            print(f"T = {r['T_K']:.0f} K: not started")
            continue
        ex = r["arrhenius_600_1000K_extrapolation"]
        print(f"T = {r['T_K']:.0f} K, {r['run_ps']:.0f} ps: D = {r['D_cm2_s']:.3e} ± {r['D_err_cm2_s']:.1e} cm²/s, "
              f"σ = {r['sigma_mS_cm']:.0f} ± {r['sigma_err_mS_cm']:.0f} mS/cm; extrapolated D = {ex['D_cm2_s']:.3e} ± "
              f"{ex['D_err_cm2_s']:.1e} (direct/extrap. {r['direct_over_extrapolated']:.2f}, "
              f"{r['difference_in_sigma_units']:+.1f} σ)" + (f"  WARNING {r['warning']}" if r["warning"] else ""))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
