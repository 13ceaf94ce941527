#!/usr/bin/env bash
# Reproduce the NVNMD-v0 fixture models of tests/fixtures/nvnmd_v0/ with deepmd-kit's own
# `dp train-nvnmd` (stage s1: continuous CNN + mapping tables, stage s2: quantized QNN + wrap),
# then copy the small result files (and a few test frames) into the fixture folders.
# Usage: student/nvnmd_v0/train.sh [gete|lgps ...]   (default: both); work dirs under runs/,
# fixtures to $NVNMD_FIXTURES (default tests/fixtures/nvnmd_v0). About 5 min (LGPS) and 25 min
# (GeTe) on one core; the QNN stage is the slow one (deepmd-kit's emulation ops).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${NVNMD_SHARED:-$root/../shared}
dp=${DP:-$root/.venv/bin/dp}
py=${PY:-$root/.venv/bin/python}
dest=${NVNMD_FIXTURES:-$root/tests/fixtures/nvnmd_v0}
work_root=${NVNMD_WORK:-$root/runs/nvnmd_v0}
export OMP_NUM_THREADS=1 DP_INTRA_OP_PARALLELISM_THREADS=1 DP_INTER_OP_PARALLELISM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=3
for name in "${@:-gete lgps}"; do
  for n in $name; do
    work=$work_root/$n
    mkdir -p "$work"
    sed -e "s#DATA_GETE#$shared/data/gete-nvnmd#g" -e "s#DATA_LGPS#$shared/data/lgps-pbe#g" \
        "$here/$n.json" > "$work/input.json"
    (cd "$work" && "$dp" train-nvnmd input.json -s s1 && "$dp" train-nvnmd input.json -s s2)
    "$py" "$here/make_fixture.py" "$n" "$work" "$dest/$n" --shared "$shared"
  done
done
