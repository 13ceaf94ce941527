"""Gathers the outputs of benchmarks/quantize_lgps.sh into one JSON document on stdout:
accuracy of the quantized image on the validation split (vs DFT labels and vs the float
student), the growth of the error vs DFT, datapath saturation/overflow counts, the image's
size per board memory, and the `nvnmd bench sim` table.

Usage: python benchmarks/quantize_lgps_collect.py OUT_DIR STUDENT DATA_DIR
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

UNITS = {"energy_per_atom": "meV/atom", "force": "meV/Å", "virial_per_atom": "meV/atom"}


def milli(result: dict) -> dict:
    return {key: {stat: round(result[key][stat] * 1e3, 5) for stat in ("rmse", "mae")} for key in UNITS if key in result}


def main(out_dir: str, student: str, data: str) -> None:
    out = Path(out_dir)
    test = json.loads((out / "test_valid.json").read_text())
    report = json.loads((out / "report" / "report.json").read_text())
    bench = json.loads((out / "bench_sim.json").read_text())
    by = {r["against"]: r for r in test["results"]}
    q_dft, f_dft, q_f = by["labels"], by["student vs labels"], by["float student"]
    growth = {key: round(100.0 * (q_dft[key]["rmse"] / f_dft[key]["rmse"] - 1.0), 4) for key in UNITS}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    doc = {
        "command": "benchmarks/quantize_lgps.sh",
        "commit": commit,
        "student": {"path": student, "sha256": hashlib.sha256(Path(student).read_bytes()).hexdigest()},
        "image": {"sha256": report["digest"], "calibration": {"data": f"{data}/train",
                                                              "frames": report["calibration"].get("calibration_frames")}},
        "validation": {"data": f"{data}/valid", "frames": q_dft["frames"]},
        "units": UNITS,
        "quantized_vs_float_student": milli(q_f),
        "quantized_vs_dft": milli(q_dft),
        "float_student_vs_dft": milli(f_dft),
        "dft_rmse_growth_percent": growth,
        "targets": {"quantized_vs_float_rmse_max": {"energy_per_atom": 0.1, "force": 1.0, "virial_per_atom": 1.0},
                    "dft_rmse_growth_percent_max": 1.0},
        "training_split_report": {r["against"]: milli(r) for r in report["accuracy"]},
        "datapath_validation": test["datapath"],
        "datapath_calibration_report": report["datapath"],
        "formats": {"frac": report["formats"], "f_g": report["gradient_fracs"]},
        "memories": [{k: m[k] for k in ("memory", "shape", "bits_per_value", "bits", "bram36")}
                     for m in report["memories"]],
        "total_bits": report["total_bits"],
        "total_bram36": report["total_bram36"],
        "bench_sim": {"rows": bench["rows"], "notes": bench["notes"]},
        "machine": f"{os.cpu_count()} CPUs shared with other jobs; load average {os.getloadavg()}",
    }
    doc["targets_met"] = (all(doc["quantized_vs_float_student"][k]["rmse"] <= v
                              for k, v in doc["targets"]["quantized_vs_float_rmse_max"].items())
                          and all(g < 1.0 for g in growth.values()))
    json.dump(doc, sys.stdout, indent=1, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main(*sys.argv[1:4])
