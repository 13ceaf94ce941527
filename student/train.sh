#!/usr/bin/env bash
# Reproduce the embedded default LGPS student (nvnmd/data/lgps_student.pb) with deepmd-kit.
# Two stages: input.json trains from scratch (200 k steps), input_finetune.json then
# fine-tunes that model with a heavier energy weight (20 k steps, --init-frz-model).
# Needs ../shared/data/lgps-pbe (or LGPS_DATA=...). ~110 min on 1 CPU core (measured;
# the run that made the shipped model used OMP_NUM_THREADS=1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${LGPS_DATA:-$here/../../shared/data/lgps-pbe}
work=${WORK:-$here/../runs/student}
py=${PYTHON:-python}
mkdir -p "$work/run" "$work/finetune"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} DP_INTRA_OP_PARALLELISM_THREADS=${DP_INTRA_OP_PARALLELISM_THREADS:-1} DP_INTER_OP_PARALLELISM_THREADS=1
"$py" "$here/make_split.py" "$data" "$work/data"
cp "$here/input.json" "$work/run/input.json"
(cd "$work/run" && dp --tf train input.json && dp --tf freeze -o stage1.pb)
cp "$here/input_finetune.json" "$work/finetune/input.json"
cd "$work/finetune"
dp --tf train --init-frz-model ../run/stage1.pb input.json
dp --tf freeze -o lgps_student.pb
"$py" "$here/evaluate.py" lgps_student.pb ../data/valid --per-system --json validation.json
"$py" "$here/evaluate.py" lgps_student.pb ../data/train --per-system --json training_fit.json
"$py" - <<'PY'
stage1 = open("../run/lcurve.out").read().splitlines()
rows = stage1[:1] + [l for l in stage1[1:] if not l.startswith("#")]
offset = int(rows[-1].split()[0])  # stage 2 continues the step count where stage 1 ended
for line in open("lcurve.out"):
    if not line.startswith("#"):
        p = line.split(); p[0] = str(int(p[0]) + offset); rows.append("  ".join(p))
open("lcurve_all.out", "w").write("\n".join(rows) + "\n")
PY
"$py" "$here/plot_lcurve.py" lcurve_all.out lcurve.png
echo "model: $work/finetune/lgps_student.pb"
