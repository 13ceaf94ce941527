#!/usr/bin/env bash
# Reproduce the embedded default LGPS student (nvnmd/data/lgps_student.pb) with deepmd-kit.
# Three stages, each starting from the previous frozen model (--init-frz-model):
# input.json trains from scratch (200 k steps), input_restart.json continues it with the
# learning rate restarted (100 k steps), input_finetune.json fine-tunes with the per-atom
# energy loss and a heavy energy weight (20 k steps).
# Needs ../shared/data/lgps-pbe (or LGPS_DATA=...). ~160 min on 1 CPU core (measured;
# the runs that made the shipped model used OMP_NUM_THREADS=1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${LGPS_DATA:-$here/../../shared/data/lgps-pbe}
work=${WORK:-$here/../runs/student}
py=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} DP_INTRA_OP_PARALLELISM_THREADS=${DP_INTRA_OP_PARALLELISM_THREADS:-1} DP_INTER_OP_PARALLELISM_THREADS=1
"$py" "$here/make_split.py" "$data" "$work/data"
stages=(run:input.json restart:input_restart.json finetune:input_finetune.json)  # dir:input, in order
init=()
for stage in "${stages[@]}"; do
    dir=${stage%%:*}
    mkdir -p "$work/$dir"
    cp "$here/${stage#*:}" "$work/$dir/input.json"
    (cd "$work/$dir" && dp --tf train "${init[@]}" input.json && dp --tf freeze -o model.pb)
    init=(--init-frz-model "../$dir/model.pb")
done
cd "$work/$dir"
cp model.pb lgps_student.pb
"$py" "$here/evaluate.py" lgps_student.pb ../data/valid --per-system --json validation.json
"$py" "$here/evaluate.py" lgps_student.pb ../data/train --per-system --json training_fit.json
"$py" - "${stages[@]%%:*}" <<'PY'
import sys
dirs = sys.argv[1:]
rows = open(f"../{dirs[0]}/lcurve.out").read().splitlines()[:1]
offset = 0
for d in dirs:
    last = offset  # each stage continues the step count where the previous one ended
    for line in open(f"../{d}/lcurve.out"):
        if not line.startswith("#"):
            p = line.split(); last = int(p[0]) + offset; p[0] = str(last); rows.append("  ".join(p))
    offset = last
open("lcurve_all.out", "w").write("\n".join(rows) + "\n")
PY
"$py" "$here/plot_lcurve.py" lcurve_all.out lcurve.png
echo "model: $work/$dir/lgps_student.pb"
