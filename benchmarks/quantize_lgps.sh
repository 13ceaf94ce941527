#!/usr/bin/env bash
# Issue 3 figures: the shipped LGPS student quantized with `nvnmd quantize` (calibrated on the
# training split), `nvnmd test` on the validation split against DFT and the float student,
# `nvnmd bench sim`; benchmarks/quantize_lgps_collect.py gathers them into
# benchmarks/quantize_lgps_results.json.
# The split (every 10th frame of each system -> valid) is made with student/make_split.py
# from LGPS_DATA (default ../shared/data/lgps-pbe) when $DATA does not hold it yet.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-runs/lgps_split}
OUT=${OUT:-runs/quantize_lgps}
STUDENT=${STUDENT:-nvnmd/data/lgps_student.pb}
export OMP_NUM_THREADS=1 DP_INTRA_OP_PARALLELISM_THREADS=1 DP_INTER_OP_PARALLELISM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=3
mkdir -p "$OUT"
if [ ! -d "$DATA/valid" ]; then
    .venv/bin/python student/make_split.py "${LGPS_DATA:-../shared/data/lgps-pbe}" "$DATA"
fi
.venv/bin/nvnmd quantize "$STUDENT" -o "$OUT/lgps.nvq" --calib "$DATA/train" \
    --emit-mem "$OUT/mem" --report "$OUT/report" | tee "$OUT/quantize.txt"
.venv/bin/nvnmd test "$OUT/lgps.nvq" -s "$DATA/valid" --reference "$STUDENT" \
    --json "$OUT/test_valid.json" | tee "$OUT/test_valid.txt"
.venv/bin/nvnmd bench sim --image "$OUT/lgps.nvq" --json "$OUT/bench_sim.json" | tee "$OUT/bench_sim.txt"
.venv/bin/python benchmarks/quantize_lgps_collect.py "$OUT" "$STUDENT" "$DATA" > benchmarks/quantize_lgps_results.json
