#!/usr/bin/env bash
# Direct LGPS runs at T ≤ 500 K with the shipped quantized student on the sim backend (issue 17:
# LGPS has a reported non-Arrhenius change near 400 K, so the 600–1000 K extrapolation is
# checked against a direct D here). Same cell and MD settings as benchmarks/lgps_arrhenius.py
# (200 atoms = shipped relaxed LGPS 2x2x1, Nosé–Hoover 100 fs, dt 2 fs, frame every 50 fs, seed
# 2026), so the two sets of D are comparable.
#
# Temperatures run one after the other (500 K first), each growing in chunks of CHUNK_PS up to
# TARGET_PS; after every chunk benchmarks/lowT_direct.py re-analyses the trajectories and
# rewrites benchmarks/lowT_direct_results.json (atomically), so the JSON is always the latest
# partial state. Interrupt at any time; running the script again resumes from the checkpoints
# (nvnmd conductivity resumes each temperature's `nvnmd md` run).
#
#   nohup nice -n 15 benchmarks/lowT_direct.sh > runs/lowT_direct.log 2>&1 &
#   TEMPS=500 TARGET_PS=400 benchmarks/lowT_direct.sh      # longer, one temperature
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=3 MPLBACKEND=Agg \
       DP_INTRA_OP_PARALLELISM_THREADS=1 DP_INTER_OP_PARALLELISM_THREADS=1
PY=${PY:-.venv/bin/python}
TEMPS=${TEMPS:-500,400}
TARGET_PS=${TARGET_PS:-200}
CHUNK_PS=${CHUNK_PS:-25}
DT=2
OUT=${OUT:-runs/lowT_direct/$("$PY" -c 'import hashlib; from nvnmd.student import default_student_path as p; print(hashlib.sha256(p().read_bytes()).hexdigest()[:12])')_2x2x1_nose-hoover_2fs}
mkdir -p "$OUT"
for T in ${TEMPS//,/ }; do  # one temperature after the other: the first (500 K) is the one required
  ps=$CHUNK_PS
  while :; do
    (( ps > TARGET_PS )) && ps=$TARGET_PS
    steps=$(( ps * 1000 / DT ))
    echo "$(date -u +%FT%TZ) extending T=$T K to $ps ps ($steps steps) in $OUT"
    "$PY" -m nvnmd.cli conductivity --backend sim -T "$T" --steps "$steps" --dt "$DT" --supercell 2,2,1 \
        --ensemble nose-hoover --traj-every 25 --seed 2026 -o "$OUT" --quiet
    "$PY" benchmarks/lowT_direct.py --runs "$OUT" --temperatures "$TEMPS"
    (( ps >= TARGET_PS )) && break
    ps=$(( ps + CHUNK_PS ))
  done
done
echo "$(date -u +%FT%TZ) done: $TEMPS to $TARGET_PS ps"
