"""The seed's benchmark: 1350-atom LGPS (3x3x3 cells) NVT at 900 K, ns/day on every CPU backend
here, side by side in one run: the sim backend (`nvnmd md --backend sim`, 1 and 2 kernel threads),
LAMMPS with the quantized pair style (`nvnmd lammps --pair nvq1`, 1 and 2 MPI ranks), the float
student in deepmd-kit through our engine (`nvnmd md --backend deepmd`) and in LAMMPS
(`nvnmd lammps --pair deepmd`, 1 rank).

Every contender is a child process timed by its own loop timer (the figure `nvnmd md` and
LAMMPS print, startup and quantization excluded); the machine's load average (uptime) is
recorded before and after each, and each child's CPU time and peak RSS (os.wait4, the largest
process of its tree). The machine is shared, so the load is part of every figure; LAMMPS's
own timing breakdown (Pair / Comm / Neigh, Nlocal / Nghost per rank) is kept for the scaling
model of benchmarks/SCALING.md.

    OMP_NUM_THREADS=1 python benchmarks/scale_1350.py [--steps 100] [--only sim1,lmp2,...]
        [--json benchmarks/results/scale_1350.json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NVNMD = [sys.executable, "-m", "nvnmd.cli"]
THREAD_ENV = {v: "1" for v in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS",
                                "DP_INTER_OP_PARALLELISM_THREADS", "OPENBLAS_NUM_THREADS")}
MD_LINE = re.compile(r"(\d+) steps, (\d+) atoms(?: on (\d+) rank\(s\))?: ([\d.]+) µs/atom/step, ([\d.]+) ns/day")


def load() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def run_child(argv: list[str], env_extra: dict | None = None) -> dict:
    """Run one contender; its printed µs/atom/step and ns/day, wall, CPU and peak RSS."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg", **THREAD_ENV, **(env_extra or {}))
    load0, t0 = load(), time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    m = None
    for m in MD_LINE.finditer(out):
        pass
    if os.waitstatus_to_exitcode(status) != 0 or m is None:
        raise RuntimeError(f"{' '.join(argv[:6])}... failed:\n{out[-2000:]}")
    return {"argv": argv[2:], "steps": int(m.group(1)), "natoms": int(m.group(2)),
            "us_per_atom_step": float(m.group(4)), "ns_per_day": float(m.group(5)),
            "process_wall_s": wall, "process_cpu_s": ru.ru_utime + ru.ru_stime,
            "peak_rss_mb": ru.ru_maxrss / 1024, "load_before": load0, "load_after": load()}


def lammps_breakdown(log: Path) -> dict:
    """Pair / Neigh / Comm / Modify seconds (avg over ranks) and Nlocal / Nghost (avg) of log.lammps."""
    text = log.read_text()
    res = {}
    for sec in ("Pair", "Neigh", "Comm", "Output", "Modify", "Other"):
        m = re.findall(rf"^{sec}\s+\|\s*([\d.e+-]*)\s*\|\s*([\d.e+-]+)", text, re.M)
        if m:
            res[f"{sec.lower()}_s"] = float(m[-1][1])
    for key in ("Nlocal", "Nghost"):
        m = re.findall(rf"^{key}:\s+([\d.e+]+) ave\s+([\d.e+]+) max\s+([\d.e+]+) min", text, re.M)
        if m:
            res[key.lower()] = {"ave": float(m[-1][0]), "max": float(m[-1][1]), "min": float(m[-1][2])}
    m = re.findall(r"Loop time of ([\d.e+-]+) on (\d+) procs", text)
    if m:
        res["loop_s"] = float(m[-1][0])
    m = re.findall(r"Per MPI rank memory allocation \(min/avg/max\) = [\d.]+ \| [\d.]+ \| ([\d.]+) Mbytes", text)
    if m:
        res["lammps_mem_max_mb"] = float(m[-1])
    return res


def contenders(supercell: str, steps: int, image: Path, work: Path, which: set[str] | None,
               extra_md: list[str] | None = None) -> dict:
    """name -> argv (and where LAMMPS leaves its log) of every contender, NVT 900 K, 2 fs."""
    md = [*NVNMD, "md", "--supercell", supercell, "--ensemble", "nose-hoover", "-T", "900", "--steps", str(steps),
          "--dt", "2", "--seed", "1", "--overwrite", *(extra_md or [])]
    lmp = [*NVNMD, "lammps", "--supercell", supercell, "--ensemble", "nvt", "-T", "900", "--steps", str(steps),
           "--dt", "2", "--seed", "1", "--traj-every", str(max(steps, 1))]
    all_ = {
        "sim1": md + ["--backend", "sim", "--image", str(image), "--threads", "1", "-o", str(work / "sim1")],
        "sim2": md + ["--backend", "sim", "--image", str(image), "--threads", "2", "-o", str(work / "sim2")],
        "lmp_nvq1_1": lmp + ["--pair", "nvq1", "--image", str(image), "--np", "1", "-o", str(work / "lmp_nvq1_1")],
        "lmp_nvq1_2": lmp + ["--pair", "nvq1", "--image", str(image), "--np", "2", "-o", str(work / "lmp_nvq1_2")],
        "deepmd": md + ["--backend", "deepmd", "-o", str(work / "deepmd")],
        "lmp_deepmd_1": lmp + ["--pair", "deepmd", "--np", "1", "-o", str(work / "lmp_deepmd_1")],
    }
    return {k: v for k, v in all_.items() if which is None or k in which}


def run_all(supercell: str, steps: int, which: set[str] | None, out_json: Path, title: str,
            extra_md: list[str] | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="nvnmd-scale-") as tmp:
        work = Path(tmp)
        image = work / "model.nvq"
        from nvnmd.student import default_student_path

        subprocess.run([*NVNMD, "quantize", str(default_student_path()), "-o", str(image)], check=True,
                       capture_output=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **THREAD_ENV))
        results = {"bench": title, "supercell": supercell, "steps": steps, "temperature_K": 900.0, "dt_fs": 2.0,
                   "thermostat": "Nose-Hoover (nvnmd md) / fix nvt (LAMMPS)", "cpus": os.cpu_count(),
                   "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": {}}
        for name, argv in contenders(supercell, steps, image, work, which, extra_md).items():
            print(f"{name}: {' '.join(argv[2:])}", flush=True)
            r = run_child(argv)
            if name.startswith("lmp"):
                r["lammps"] = lammps_breakdown(work / name / "log.lammps")
            results["runs"][name] = r
            print(f"  {r['us_per_atom_step']:.1f} µs/atom/step, {r['ns_per_day']:.4f} ns/day, peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB, load {r['load_before'][0]:.1f}->{r['load_after'][0]:.1f}", flush=True)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    tmpf = out_json.with_suffix(".json.tmp")
    tmpf.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmpf, out_json)  # atomic
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--only", help="comma-separated contenders (sim1,sim2,lmp_nvq1_1,lmp_nvq1_2,deepmd,lmp_deepmd_1)")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "scale_1350.json")
    a = ap.parse_args(argv)
    run_all("3,3,3", a.steps, set(a.only.split(",")) if a.only else None, a.json, "1350-atom LGPS NVT 900 K")


if __name__ == "__main__":
    main()
