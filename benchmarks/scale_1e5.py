"""A 10^5-atom run for a few steps: 98,000-atom LGPS (14x14x10 cells, 122 x 124 x 129 Å) NVT at
900 K on the sim backend (`nvnmd md --backend sim`, 1 and 2 kernel threads) and on LAMMPS with
the quantized pair style (`nvnmd lammps --pair nvq1`, 1 and 2 MPI ranks): time per step,
µs/atom/step, peak RSS (os.wait4: the largest process of the child's tree; LAMMPS's own
per-rank allocation is kept too), the machine's load before and after each run, and LAMMPS's
Pair / Comm / Neigh breakdown and Nlocal / Nghost per rank (the halo) for the scaling model of
benchmarks/SCALING.md. Same machinery as benchmarks/scale_1350.py.

    OMP_NUM_THREADS=1 python benchmarks/scale_1e5.py [--steps 3] [--only sim1,lmp_nvq1_2,...]
        [--json benchmarks/results/scale_1e5.json]
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("scale_1350", HERE / "scale_1350.py")
scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale)

CONTENDERS = ("sim1", "sim2", "lmp_nvq1_1", "lmp_nvq1_2")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--only", help="comma-separated subset of " + ",".join(CONTENDERS))
    ap.add_argument("--json", type=Path, default=HERE / "results" / "scale_1e5.json")
    a = ap.parse_args(argv)
    which = set(a.only.split(",")) if a.only else set(CONTENDERS)
    # the trajectory is written once (traj-every = steps): the point is the force cost
    scale.run_all("14,14,10", a.steps, which, a.json, "98000-atom LGPS NVT 900 K, a few steps",
                  extra_md=["--traj-every", str(a.steps)])


if __name__ == "__main__":
    main()
