"""What the distillation's perturbations do to a DFT configuration, seen by the teacher and by students.

The scheme perturbs every sampled teacher-MD frame again (dpdata's perturb: by default a 3 % cell
strain and 0.1 Å atom shifts) before the teacher labels it. This script applies each perturbation,
and the 4.6 % compression of the earlier runs' perturbed start, to the 50-atom frames of the DFT
validation split (every 10th frame of each system, one in three of them), has the teacher label each
variant, and reports (a) how far each perturbation lifts the teacher's energy above its energy of the
unperturbed configuration and (b) each student's energy offset and spread against the teacher on
each variant. It says whether a student trained on perturbed frames learned a different population
from the one it is judged on (a), and whether students disagree with the teacher more on perturbed
configurations than on thermal ones (b).

    OMP_NUM_THREADS=1 python benchmarks/distill_perturbation.py [--data ../shared/data/lgps-pbe]
        [--out benchmarks/distill_perturbation] [--workers 2]

The teacher's labels are kept in OUT/labels (one file per variant, not redone); results:
benchmarks/distill_perturbation_results.json.
"""
import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TYPE_MAP = ["Li", "Ge", "P", "S"]
STUDENTS = {"bound": ROOT / "benchmarks/distill_bound/train/refine1_restart/model.pb",
            "shipped": ROOT / "nvnmd/data/lgps_student.pb",
            "lgps_gen_refine": ROOT / "student/distill/lgps_gen_refine/student.pb"}


def variants(coords, cells, symbols):
    """name -> (coords, cells, what): the configurations as they are and under each perturbation."""
    from nvnmd.distill.data import perturb

    out = {"as_is": (coords, cells, "the DFT configurations")}
    c, b = perturb(coords, cells, symbols, 1, 0.03, 0.0, 1)
    out["strain_3pct"] = (c, b, "cell strained by up to 3 % (dpdata cell_pert_fraction 0.03), atoms scaled")
    for d in (0.1, 0.02):
        c, b = perturb(coords, cells, symbols, 1, 0.0, d, 2)
        out[f"atoms_{d:g}A"] = (c, b, f"atoms shifted (dpdata atom_pert_distance {d:g} Å, normal)")
    for v in (0.954, 1.05):
        s = v ** (1 / 3)
        out[f"volume_{v:g}"] = (coords * s, cells * s, f"cell and atoms scaled isotropically to {v:g} of the volume")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/lgps-pbe"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks/distill_perturbation"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from nvnmd.distill.config import DistillConfig
    from nvnmd.distill.pipeline import reference_frames
    from nvnmd.distill.workers import label_chunks
    from nvnmd.quantize.evaluate import run_deeppot

    ref = [fr for fr in reference_frames(DistillConfig(reference_data=args.data, reference_every=10), TYPE_MAP)
           if fr.natoms == 50][::3]
    natoms = ref[0].natoms
    symbols = [TYPE_MAP[t] for t in ref[0].types]
    coords, cells = np.array([fr.coord for fr in ref]), np.array([fr.cell for fr in ref])
    configs = variants(coords, cells, symbols)
    labels = Path(args.out) / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    label_chunks("dpa4-neo-omat24", [(labels / f"{k}.npz", c, b, symbols) for k, (c, b, _) in configs.items()],
                 args.workers, desc="teacher on the variants")
    teacher = {k: np.load(labels / f"{k}.npz")["energies"] / natoms for k in configs}
    dft = np.array([fr.energy for fr in ref]) / natoms
    result = {"frames": len(ref), "natoms": natoms, "units": "meV/atom",
              "teacher_minus_dft_as_is": {"mean": 1e3 * float(np.mean(teacher["as_is"] - dft)),
                                          "sd": 1e3 * float(np.std(teacher["as_is"] - dft))},
              "variants": {}}
    for k, (c, b, what) in configs.items():
        frames = [replace(fr, coord=c[i], cell=b[i]) for i, fr in enumerate(ref)]
        row = {"what": what, "teacher_lift_mean": 1e3 * float(np.mean(teacher[k] - teacher["as_is"])), "students": {}}
        for name, path in STUDENTS.items():
            err = np.array([p[0] for p in run_deeppot(path, frames, TYPE_MAP)]) / natoms - teacher[k]
            row["students"][name] = {"offset_vs_teacher": 1e3 * float(err.mean()), "sd_vs_teacher": 1e3 * float(err.std())}
        result["variants"][k] = row
        print(f"{k:12s} teacher lift {row['teacher_lift_mean']:+7.2f} | " + " | ".join(
            f"{n} {s['offset_vs_teacher']:+.2f}/{s['sd_vs_teacher']:.2f}" for n, s in row["students"].items()), flush=True)
    from nvnmd.image import write_atomic

    write_atomic(ROOT / "benchmarks/distill_perturbation_results.json", (json.dumps(result, indent=1) + "\n").encode())


if __name__ == "__main__":
    main()
