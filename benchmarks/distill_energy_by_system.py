"""Where a distilled LGPS student's energy error against DFT sits: per DFT system of the validation split
(every `reference_every`-th frame of --reference-data, as `nvnmd distill`'s validate stage), the mean and
spread of (E_model − E_DFT)/atom for the teacher (its cached predictions, validate/reference_teacher),
each student given and the shipped DFT-trained baseline, and each student's E and F RMSE with and without
its mean offset over the whole split.

    OMP_NUM_THREADS=1 python benchmarks/distill_energy_by_system.py student/distill/lgps_gen [more runs ...]
        [--json benchmarks/distill_energy_by_system.json]

The teacher's predictions are read from the first run's cache (labelled there by the validate stage).
"""
import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402


def summary(pred, frames, name: str) -> dict:
    """The validate stage's own numbers (nvnmd.distill.validate.errors) in meV: E RMSE, mean offset and
    the RMSE with it removed (the spread), F RMSE."""
    from nvnmd.distill.validate import errors

    r = errors(pred, frames, name)
    e = r["energy_per_atom"]
    return {"frames": r["frames"], "E_rmse_meV_atom": e["rmse"] * 1e3, "E_mean_offset_meV_atom": e["mean_offset"] * 1e3,
            "E_rmse_offset_removed_meV_atom": e["rmse_offset_removed"] * 1e3, "F_rmse_meV_A": r["force"]["rmse"] * 1e3}


def main() -> None:
    from deepmd.infer import DeepPot

    from nvnmd.distill.config import DistillConfig
    from nvnmd.distill.pipeline import reference_frames, teacher_predictions
    from nvnmd.quantize.evaluate import run_deeppot

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="nvnmd distill output directories (single-composition LGPS runs)")
    ap.add_argument("--json", default="benchmarks/distill_energy_by_system.json")
    args = ap.parse_args()
    first = Path(args.runs[0])
    cfg = DistillConfig.from_dict(json.loads((first / "manifest.json").read_text())["parameters"])
    type_map = DeepPot(str(first / "student.pb")).get_type_map()
    frames = reference_frames(cfg, type_map)
    preds = {"teacher": teacher_predictions(cfg, frames, type_map, first / "validate" / "reference_teacher", None)}
    for run in args.runs:
        preds[Path(run).name] = run_deeppot(Path(run) / "student.pb", frames, type_map)
    if cfg.baseline:
        preds["baseline"] = run_deeppot(cfg.baseline, frames, type_map)
    systems = sorted({fr.system for fr in frames})
    out = {"reference_data": cfg.reference_data, "every": cfg.reference_every, "frames": len(frames),
           "type_map": type_map, "models": {}}
    for name, pred in preds.items():
        by = {}
        for sysname in systems:
            idx = [k for k, fr in enumerate(frames) if fr.system == sysname]
            r = summary([pred[k] for k in idx], [frames[k] for k in idx], name)
            by[Path(sysname).name] = {"frames": r["frames"], "mean_meV": r["E_mean_offset_meV_atom"],
                                      "std_meV": r["E_rmse_offset_removed_meV_atom"]}
        out["models"][name] = {**summary(pred, frames, name), "by_system": by}
    tmp = Path(args.json).with_name(f".{Path(args.json).name}.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(args.json)
    names = list(out["models"])
    print(f"{'system':22s}" + "".join(f"{n[:14]:>16s}" for n in names))
    for sysname in systems:
        k = Path(sysname).name
        print(f"{k:22s}" + "".join(f"{out['models'][n]['by_system'][k]['mean_meV']:+8.2f} ±{out['models'][n]['by_system'][k]['std_meV']:5.2f}"
                                   for n in names))
    for key in ("E_rmse_meV_atom", "E_mean_offset_meV_atom", "E_rmse_offset_removed_meV_atom", "F_rmse_meV_A"):
        print(f"{key[:22]:22s}" + "".join(f"{out['models'][n][key]:16.2f}" for n in names))


if __name__ == "__main__":
    main()
