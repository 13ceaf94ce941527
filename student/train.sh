#!/usr/bin/env bash
# Reproduce the embedded default LGPS student (nvnmd/data/lgps_student.pb) with deepmd-kit.
# Needs ../shared/data/lgps-pbe (or LGPS_DATA=...). ~35 min on 2 CPU cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${LGPS_DATA:-$here/../../shared/data/lgps-pbe}
work=${WORK:-$here/../runs/student}
py=${PYTHON:-python}
mkdir -p "$work/run"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} DP_INTRA_OP_PARALLELISM_THREADS=${DP_INTRA_OP_PARALLELISM_THREADS:-2} DP_INTER_OP_PARALLELISM_THREADS=1
"$py" "$here/make_split.py" "$data" "$work/data"
cp "$here/input.json" "$work/run/input.json"
cd "$work/run"
dp --tf train input.json
dp --tf freeze -o lgps_student.pb
"$py" "$here/evaluate.py" lgps_student.pb ../data/valid --json validation.json
"$py" "$here/plot_lcurve.py" lcurve.out lcurve.png
echo "model: $work/run/lgps_student.pb"
