"""A strong-scaling model of LAMMPS + pair_style nvq1 for more MPI ranks than this machine has,
from what benchmarks/scale_1350.py and benchmarks/scale_1e5.py measured on 1 and 2 ranks.

Per step on p ranks (LAMMPS's own timers, log.lammps of each run):

    T(p) = a * N / p * imb(p)            pair: the kernel on the rank's local atoms
         + b * ghosts(p)                 comm: positions out, forces back, per ghost atom
         + h * hops(p)                   comm: a fixed cost per exchange (latency), 6 swaps x 2
         + s                             the rest (integrator, thermo, output), not divided

* a, µs per atom and step of the pair style on one rank (Pair / (N * steps), 1-rank run);
* b, µs per ghost atom and step: Comm / (Nghost * steps) of the 2-rank run (shared memory,
  MPICH on one machine; across nodes b and h grow, see h);
* ghosts(p) = rho * [prod(L_d / p_d + 2 w) - prod(L_d / p_d)] for LAMMPS's p_x p_y p_z grid
  (the factorisation of p with the least surface), with the halo width w solved from the
  Nghost measured on 2 ranks (it is the cutoff plus skin);
* imb(p) the load imbalance (max / ave Nlocal), measured 1.015 on 2 ranks for 1350 atoms; the
  model takes the expected maximum of p Poisson counts, 1 + sqrt(2 ln p / (N / p)) (an
  assumption: LGPS is a crystal, so this is pessimistic);
* h, µs per exchange: Comm of the 2-rank run not explained by b, bounded below by 1 µs
  per message (a conservative shared-memory / InfiniBand latency; an assumption);
* s, µs per step that does not divide: Modify + Other of the 1-rank run. Output (the
  trajectory dump, gathered on rank 0) is left out: it is per frame, not per step, and these
  short runs dump a frame every few steps;
* n_b, µs per (local + ghost) atom and step of neighbour-list builds (Neigh); the 3-step
  10^5-atom runs build no list after setup, so they take the 1350-atom run's figure.

The 1-vs-2-rank Amdahl fraction is reported too, f = 2 / S2 - 1 from the measured speed-up
S2 = T(1) / T(2), with the plain Amdahl projection S(p) = 1 / (f + (1 - f) / p) beside the
model's. On this shared 2-core machine (load about 7) f is mostly the load: two ranks get at
most 2 x 2/8 of the cores where one gets 2/7, a speed-up of at most 1.75 from the scheduler's
fair share alone, so the Amdahl column is a pessimistic bound, not the code's serial part.

    python benchmarks/scaling_model.py [--json benchmarks/results/scaling_model.json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
RANKS = (1, 2, 4, 8, 16, 32, 64)
UNIT = (8.73074242, 8.85715416, 12.88329384)  # the shipped relaxed LGPS cell (lgps_supercell((1, 1, 1))), Å
RHO = 50 / math.prod(UNIT)  # Li10GeP2S12: 50 atoms per cell, atoms per Å^3
DT_FS = 2.0


def grid(p: int, box) -> tuple[int, int, int]:
    """LAMMPS's processor grid: the factorisation of p whose sub-domains have the least surface."""
    best, best_area = None, float("inf")
    for px in range(1, p + 1):
        if p % px:
            continue
        for py in range(1, p // px + 1):
            if (p // px) % py:
                continue
            pz = p // px // py
            lx, ly, lz = box[0] / px, box[1] / py, box[2] / pz
            area = lx * ly + ly * lz + lx * lz
            if area < best_area - 1e-9:
                best, best_area = (px, py, pz), area
    return best


def ghosts(p: int, box, w: float) -> float:
    px, py, pz = grid(p, box)
    sub = (box[0] / px, box[1] / py, box[2] / pz)
    return RHO * (math.prod(s + 2 * w for s in sub) - math.prod(sub))


def solve_halo(p: int, box, nghost: float) -> float:
    lo, hi = 0.0, 50.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ghosts(p, box, mid) < nghost else (lo, mid)
    return (lo + hi) / 2


def model(res: dict, pair_us: float | None = None, neigh_fallback: float = 0.0) -> dict:
    runs = res["runs"]
    r1, r2 = runs["lmp_nvq1_1"], runs["lmp_nvq1_2"]
    n, steps = r1["natoms"], r1["steps"]
    reps = [int(x) for x in res["supercell"].split(",")]
    box = tuple(u * k for u, k in zip(UNIT, reps))
    L1, L2 = r1["lammps"], r2["lammps"]
    a = L1["pair_s"] / (n * steps) * 1e6 if pair_us is None else pair_us
    s = sum(L1.get(k, 0.0) for k in ("modify_s", "other_s")) / steps * 1e6
    neigh_per_atom = L1.get("neigh_s", 0.0) / (n * steps) * 1e6 or neigh_fallback
    ng2 = L2["nghost"]["ave"]
    w = solve_halo(2, box, ng2)
    comm2 = L2["comm_s"] / steps * 1e6
    h = 1.0  # µs per message, assumed floor
    b = max(comm2 - 12 * h, 0.0) / ng2
    t1 = r1["us_per_atom_step"] * n
    t2 = r2["us_per_atom_step"] * n
    s2 = t1 / t2
    out = {"natoms": n, "box_A": box, "inputs": {
        "pair_us_per_atom_step_1rank": a, "serial_us_per_step": s, "neigh_us_per_atom_step": neigh_per_atom,
        "nghost_2ranks": ng2, "halo_width_A": w, "comm_us_per_step_2ranks": comm2,
        "comm_us_per_ghost_step": b, "latency_us_per_message": h,
        "imbalance_2ranks": L2["nlocal"]["max"] / L2["nlocal"]["ave"],
        "measured_speedup_1_to_2": s2, "amdahl_serial_fraction": 2 / s2 - 1,
        "load_1rank": r1["load_before"], "load_2ranks": r2["load_before"]}, "projection": []}
    for p in RANKS:
        npr = n / p
        imb = 1.0 if p == 1 else 1 + math.sqrt(2 * math.log(p) / npr)
        ng = 0.0 if p == 1 else ghosts(p, box, w)
        t = a * npr * imb + neigh_per_atom * (npr + ng) + (b * ng + 12 * h if p > 1 else 0.0) + s
        amdahl = 1 / (out["inputs"]["amdahl_serial_fraction"] + (1 - out["inputs"]["amdahl_serial_fraction"]) / p)
        out["projection"].append({"ranks": p, "amdahl_speedup": amdahl,
                                  "amdahl_ns_per_day": DT_FS * 1e-6 * 86400 / (t1 / amdahl * 1e-6), "grid": grid(p, box), "atoms_per_rank": npr, "ghosts_per_rank": ng,
                                  "us_per_step": t, "ns_per_day": DT_FS * 1e-6 * 86400 / (t * 1e-6),
                                  "speedup": (a * n + neigh_per_atom * n + s) / t,
                                  "efficiency": (a * n + neigh_per_atom * n + s) / t / p})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=HERE / "results" / "scaling_model.json")
    ap.add_argument("--pair-us", type=float, help="also project with this pair cost, µs/atom/step (e.g. the "
                    "kernel's CPU time from `nvnmd bench sim`: a core of its own instead of this shared one)")
    a = ap.parse_args(argv)
    out, neigh = {}, 0.0
    for name in ("scale_1350", "scale_1e5"):
        path = HERE / "results" / f"{name}.json"
        if path.exists():
            out[name] = model(json.loads(path.read_text()), None, neigh)
            neigh = neigh or out[name]["inputs"]["neigh_us_per_atom_step"]
            if a.pair_us:
                out[f"{name}, pair {a.pair_us:g} µs/atom/step"] = model(json.loads(path.read_text()), a.pair_us, neigh)
    for name, m in out.items():
        print(f"{name}: {m['natoms']} atoms; inputs " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else
                                                                   f"{k}={v}" for k, v in m["inputs"].items()))
        print("| ranks | grid | atoms/rank | ghosts/rank | µs/step | ns/day | speed-up | efficiency "
              "| Amdahl speed-up | Amdahl ns/day |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in m["projection"]:
            print(f"| {r['ranks']} | {'x'.join(map(str, r['grid']))} | {r['atoms_per_rank']:.0f} | "
                  f"{r['ghosts_per_rank']:.0f} | {r['us_per_step']:.0f} | {r['ns_per_day']:.3f} | "
                  f"{r['speedup']:.1f} | {r['efficiency']:.0%} | {r['amdahl_speedup']:.2f} | "
                  f"{r['amdahl_ns_per_day']:.3f} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
