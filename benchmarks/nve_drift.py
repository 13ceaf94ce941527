"""NVE energy drift of the host MD engine on the quantized LGPS student (sim backend).

Thermalises a supercell at T with Langevin (1 ps), then runs NVE with velocity Verlet and
fits the total energy against time: drift in meV/atom/ps, plus the RMS fluctuation. The
result JSON names the student and its SHA-256, so a retrained student is re-measured with
the same one command:

    OMP_NUM_THREADS=1 python benchmarks/nve_drift.py [--temperature 600] [--dt 1.0] [--ps 20]
        [--supercell 2,2,1] [--json benchmarks/nve_drift_results.json]
"""
import argparse
import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from nvnmd.backends.sim import SimBackend  # noqa: E402
from nvnmd.md.cli import ensure_image  # noqa: E402
from nvnmd.md.engine import MDConfig, run_md  # noqa: E402
from nvnmd.md.workflow import lgps_supercell  # noqa: E402
from nvnmd.student import default_student_path  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--temperature", type=float, default=600.0)
    ap.add_argument("--dt", type=float, default=1.0)
    ap.add_argument("--ps", type=float, default=20.0, help="NVE length in ps (default 20)")
    ap.add_argument("--supercell", default="2,2,1")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--model", default=str(default_student_path()), help="float student (default: embedded)")
    ap.add_argument("--json", default=str(HERE / "nve_drift_results.json"))
    args = ap.parse_args()
    model = Path(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image = ensure_image(str(model), None, tmp, log=lambda *a: None)
        backend = SimBackend(image)
        atoms = lgps_supercell([int(x) for x in args.supercell.split(",")])
        warm = MDConfig(ensemble="langevin", temperature=args.temperature, dt_fs=args.dt, steps=int(1000 / args.dt),
                        traj_every=100, thermo_every=100, checkpoint_every=10**9, seed=args.seed)
        run_md(atoms, backend, warm, tmp / "warm", progress=False)
        with np.load(tmp / "warm" / "checkpoint.npz") as ck:
            atoms.positions = ck["positions"]
            atoms.set_velocities(ck["velocities"])
        nve = replace(warm, ensemble="nve", steps=int(args.ps * 1000 / args.dt), thermo_every=10, traj_every=10**9)
        summary = run_md(atoms, backend, nve, tmp / "nve", progress=False)
        th = np.genfromtxt(tmp / "nve" / "thermo.csv", delimiter=",", names=True)
        image_sha = hashlib.sha256(Path(image).read_bytes()).hexdigest()
    n = len(atoms)
    slope, _ = np.polyfit(th["time_ps"], th["Etot_eV"], 1)
    half = len(th) // 2
    spec = importlib.util.spec_from_file_location("d900_backends", HERE / "d900_backends.py")
    d900 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(d900)
    out = {"natoms": n, "temperature_K": args.temperature, "dt_fs": args.dt, "length_ps": args.ps,
           "backend": "sim (quantized student, bit-accurate simulator)",
           "student": model.name, "student_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
           "image_sha256": image_sha, "simulator_sources_sha256": d900.simulator_digest(),
           "drift_meV_per_atom_per_ps": 1e3 * slope / n,
           "drift_first_half_meV_per_atom_per_ps": 1e3 * np.polyfit(th["time_ps"][:half], th["Etot_eV"][:half], 1)[0] / n,
           "drift_second_half_meV_per_atom_per_ps": 1e3 * np.polyfit(th["time_ps"][half:], th["Etot_eV"][half:], 1)[0] / n,
           "etot_rms_fluct_meV_per_atom": 1e3 * float(np.std(th["Etot_eV"])) / n,
           "epot_rms_fluct_meV_per_atom": 1e3 * float(np.std(th["Epot_eV"])) / n,
           "mean_T_K": float(np.mean(th["T_K"])), "us_per_atom_step": summary["us_per_atom_step"]}
    text = json.dumps(out, indent=2, default=float)
    print(text)
    Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
