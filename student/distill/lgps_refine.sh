#!/usr/bin/env bash
# A finished LGPS student trained on with the shipped DFT-trained student's later stages
# (`nvnmd distill --refine`, nvnmd/distill/train.py REFINE_PHASES). Why: the shipped student had
# ~500 k steps in seven stages with two learning-rate restarts and per-atom energy fine-tunes
# (student/train.sh); every distilled student so far had one 100-200 k-step schedule, so the
# comparison against it was not like for like.
# Argument 1: the source run, gen (lgps_gen), m32a16 (lgps_m32a16) or states (lgps_states); REFINE the
# phases (default restart:100000, the shipped student's stage 2; a finetune phase was tried and not
# adopted, see README.md). Everything up to and
# including the source's first training phase is the source's (copied: its data and train/, whose
# frozen model the first refinement phase starts from); quantize and validate are this run's.
# No DFT label is used in training. Resumable: rerun the same command.
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
    gen|m32a16|states) ;;
    *) echo "usage: $0 gen|m32a16|states" >&2; exit 2 ;;
esac
SRC=student/distill/lgps_$1
export OUT=${SRC}_refine REFINE=${REFINE:-restart:100000}
if [ ! -d "$OUT" ]; then
    mkdir -p "$OUT/validate"
    cp -a $SRC/{perturb,teacher_md,sample,label,explore,data,manifest.json} "$OUT/"
    cp -a $SRC/validate/reference_teacher "$OUT/validate/"
    mkdir -p "$OUT/train"
    cp -a $SRC/train/{DONE,model.pb,input.json,lcurve.out,train.log} "$OUT/train/"
    python3 -c 'import json, sys; p, src, refine = sys.argv[1:]; m = json.load(open(p))
for s in ("train", "quantize", "validate"): m["stages"].pop(s, None)
m["parameters"]["refine"] = refine.split(",")
m["copied_from"] = {"run": src, "stages": ["perturb", "teacher_md", "sample", "label", "explore"],
                    "train_phase_1": src + "/train"}
json.dump(m, open(p, "w"), indent=1)' "$OUT/manifest.json" "$SRC" "$REFINE"
fi
case "$1" in
    gen) exec student/distill/lgps_gen.sh ;;
    states) exec student/distill/lgps_states.sh ;;
    *) exec student/distill/lgps_desc.sh "$1" ;;
esac
