#!/usr/bin/env bash
# A temperature sweep through dask on the local cluster, interrupted with kill -9 and resumed
# (issue 20): the shipped LGPS student, quantized, on the sim backend, a 100-atom cell
# (the shipped 50-atom cell x 1,1,2) at 700, 900 and 1100 K, STEPS steps of 2 fs each.
#   1. the sweep uninterrupted (the reference), timed;
#   2. the same sweep in another -o, killed with SIGKILL (the command and its cluster: one
#      process group) once one run is finished and another is between 10 % and half-way;
#   3. the same command again: finished runs kept, the others continue from their checkpoints;
#      the resumed sweep's table and trajectories are compared byte for byte with the reference.
# Usage: benchmarks/sweep_resume.sh [OUTDIR] [STEPS]   (default /tmp/nvnmd-sweep-resume, 2500)
# Prints timings and the results; benchmarks/sweep_resume_results.txt is one such output.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/nvnmd-sweep-resume}
STEPS=${2:-2500}
NVNMD=${NVNMD:-.venv/bin/nvnmd}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=3 MPLBACKEND=Agg
rm -rf "$OUT" && mkdir -p "$OUT"
$NVNMD quantize "$($PY -c 'from nvnmd.student import default_student_path as p; print(p())')" -o "$OUT/lgps.nvq" > /dev/null
ARGS=(conductivity --backend sim --image "$OUT/lgps.nvq" --supercell 1,1,2 -T 700,900,1100 --steps "$STEPS"
      --checkpoint-every 250 --traj-every 10 --quiet)

now() { date +%s.%N; }
steps_of() {  # the checkpoint step of each run in $1
    $PY - "$1" <<'EOF'
import sys
from pathlib import Path
from nvnmd.md.workflow import steps_done
for d in sorted(Path(sys.argv[1]).glob("T*K")):
    try:
        print(f"{d.name}:{steps_done(d)}", end=" ")
    except Exception:
        print(f"{d.name}:-1", end=" ")
print()
EOF
}

echo "== 1. uninterrupted sweep ($STEPS steps x 3 temperatures, 100 atoms, local cluster)"
t0=$(now)
nice -n 10 $NVNMD "${ARGS[@]}" -o "$OUT/ref" | grep -v ": warning: run too short" | tee "$OUT/ref.log"
t1=$(now)
printf 'uninterrupted: %.1f s\n' "$(echo "$t1 - $t0" | bc)"

echo "== 2. the same sweep, killed with SIGKILL part-way"
t2=$(now)
setsid nice -n 10 $NVNMD "${ARGS[@]}" -o "$OUT/killed" > "$OUT/killed.log" 2>&1 &
PID=$!
while :; do
    s=$(steps_of "$OUT/killed")
    done_runs=$(echo "$s" | tr ' ' '\n' | awk -F: -v n="$STEPS" '$2 >= n' | wc -l)
    part_runs=$(echo "$s" | tr ' ' '\n' | awk -F: -v n="$STEPS" '$2 >= n / 10 && $2 <= n / 2' | wc -l)
    if [ "$done_runs" -ge 1 ] && [ "$part_runs" -ge 1 ]; then break; fi
    kill -0 "$PID" 2> /dev/null || { echo "the sweep ended before it was interrupted"; exit 1; }
    sleep 0.2
done
kill -9 -- -"$PID"
wait "$PID" 2> /dev/null || true
t3=$(now)
printf 'killed after %.1f s; checkpoints then: %s\n' "$(echo "$t3 - $t2" | bc)" "$(steps_of "$OUT/killed")"
ls "$OUT/killed"

echo "== 3. resumed (the same command)"
t4=$(now)
nice -n 10 $NVNMD "${ARGS[@]}" -o "$OUT/killed" | grep -v ": warning: run too short" | tee "$OUT/resumed.log"
t5=$(now)
printf 'resumed: %.1f s (interrupted + resumed %.1f s, uninterrupted %.1f s)\n' "$(echo "$t5 - $t4" | bc)" \
    "$(echo "$t3 - $t2 + $t5 - $t4" | bc)" "$(echo "$t1 - $t0" | bc)"

echo "== resumed against uninterrupted, byte for byte"
for f in conductivity.csv compositions.csv conductivity.json T700K/traj.extxyz T900K/traj.extxyz T1100K/traj.extxyz; do
    if cmp -s "$OUT/ref/$f" "$OUT/killed/$f"; then echo "identical: $f"; else echo "DIFFERENT: $f"; exit 1; fi
done
cat "$OUT/ref/conductivity.csv" "$OUT/ref/compositions.csv"
