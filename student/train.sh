#!/usr/bin/env bash
# Reproduce the embedded default LGPS student (nvnmd/data/lgps_student.pb and its
# lgps_student.pairs.json, the closest pair per element pair in the training split) with deepmd-kit.
# Seven stages, each starting from the previous frozen model (--init-frz-model):
# input.json trains from scratch (200 k steps), input_restart.json continues it with the
# learning rate restarted (100 k steps), input_finetune.json fine-tunes with the per-atom
# energy loss and a heavy energy weight (20 k steps); then student/widen.py grows the network
# twice without changing its energies — axis_neuron 4 -> 8 (input_grow.json, 80 k steps, and
# its fine-tune, 20 k) and fitting 128 -> 256 wide (input_fit256.json, 60 k steps, and its
# fine-tune, 20 k).
# Interrupted? Run it again with the same WORK: finished stages are kept (their DONE file) and
# a stage cut short resumes from its last checkpoint (save_freq steps; the batch order after
# the resume differs from an uninterrupted run).
# Needs ../shared/data/lgps-pbe (or LGPS_DATA=...). ~5 h on 1 CPU core (measured per stage:
# 160 min for the first three, ~50 + 14 min for the axis growth, ~45 + 15 min for the
# fitting growth; the runs that made the shipped model used OMP_NUM_THREADS=1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${LGPS_DATA:-$here/../../shared/data/lgps-pbe}
work=${WORK:-$here/../runs/student}
py=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} DP_INTRA_OP_PARALLELISM_THREADS=${DP_INTRA_OP_PARALLELISM_THREADS:-1} DP_INTER_OP_PARALLELISM_THREADS=1
"$py" "$here/make_split.py" "$data" "$work/data"
# dir:input[:widen.py options], in order; a third field grows the previous stage's network first
stages=(run:input.json restart:input_restart.json finetune:input_finetune.json
        grow:input_grow.json:--axis-neuron=8 grow_finetune:input_grow_finetune.json
        fit256:input_fit256.json:--fitting-width=256 fit256_finetune:input_fit256_finetune.json)
init=()
for stage in "${stages[@]}"; do
    IFS=: read -r dir input grow <<< "$stage"
    src=$here/$input
    mkdir -p "$work/$dir"
    if [ -e "$work/$dir/DONE" ]; then
        echo "stage $dir: already finished, kept"
    elif [ -e "$work/$dir/checkpoint" ]; then
        cmp -s "$src" "$work/$dir/input.json" || { echo "train.sh: $work/$dir was started from another $input; remove it to start the stage over" >&2; exit 1; }
        echo "stage $dir: resuming from its last checkpoint"
        (cd "$work/$dir" && dp --tf train --restart model.ckpt input.json)
    else
        if [ -n "$grow" ]; then  # widen the previous stage's network first (same energies, more units)
            (cd "$work/$dir" && "$py" "$here/widen.py" "${init[1]}" grown.pb ${grow//=/ } --check ../data/valid)
            init=(--init-frz-model grown.pb)
        fi
        cp "$src" "$work/$dir/input.json"
        (cd "$work/$dir" && dp --tf train "${init[@]}" input.json)
    fi
    [ -e "$work/$dir/DONE" ] || (cd "$work/$dir" && dp --tf freeze -o model.pb && touch DONE)
    init=(--init-frz-model "../$dir/model.pb")
done
cd "$work/$dir"
cp model.pb lgps_student.pb
"$py" "$here/closest_pairs.py" ../data/train lgps_student.pb  # the short-range guard's radii
"$py" "$here/evaluate.py" lgps_student.pb ../data/valid --per-system --json validation.json
"$py" "$here/evaluate.py" lgps_student.pb ../data/train --per-system --json training_fit.json
(cd .. && "$py" "$here/join_lcurves.py" "$dir/lcurve_all.out" "${stages[@]%%:*}")
"$py" "$here/plot_lcurve.py" lcurve_all.out lcurve.png --summary validation.json
echo "model: $work/$dir/lgps_student.pb"
