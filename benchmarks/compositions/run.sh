#!/usr/bin/env bash
# Issue 17's composition sweep: σ(300 K) and Ea of Li10(SixGe1-x)P2S12 (x = 0, 0.5, 1) and of
# Li6PS5Cl ordered and S/Cl-disordered, from the 8-species quantized student of
# student/distill/sulfides (sim backend), one `nvnmd conductivity --grid` over compositions x
# temperatures on dask's local cluster. Step 1 writes the supercells with `nvnmd structure`
# (published crystallography, seeded occupations; 200-atom LGPS 2x2x1, 416-atom argyrodite 2x2x2);
# step 2 runs the sweep. Resumable: run it again after any interruption (finished runs are kept,
# cut ones continue from their checkpoints). Outputs under runs/compositions/ (not committed);
# the tables and figures are copied next to this script when the sweep ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=3 MPLBACKEND=Agg
NVNMD=${NVNMD:-.venv/bin/nvnmd}
STUDENT=${STUDENT:-student/distill/sulfides}
OUT=${OUT:-runs/compositions}
S=$OUT/structures
mkdir -p "$S"
[ -f "$S/lgps_ge.extxyz" ]   || $NVNMD structure lgps --m Ge --supercell 2,2,1 --seed 0 -o "$S/lgps_ge.extxyz"
[ -f "$S/lgps_si05.extxyz" ] || $NVNMD structure lgps --m Si:0.5,Ge:0.5 --supercell 2,2,1 --seed 0 -o "$S/lgps_si05.extxyz"
[ -f "$S/lgps_si.extxyz" ]   || $NVNMD structure lgps --m Si --supercell 2,2,1 --seed 0 -o "$S/lgps_si.extxyz"
[ -f "$S/lpscl_ordered.extxyz" ] || $NVNMD structure argyrodite --halide Cl --supercell 2,2,2 --seed 0 -o "$S/lpscl_ordered.extxyz"
[ -f "$S/lpscl_disordered.extxyz" ] || $NVNMD structure argyrodite --halide Cl --site-disorder 0.5 --supercell 2,2,2 --seed 0 -o "$S/lpscl_disordered.extxyz"
cp benchmarks/compositions/grid.toml "$S/grid.toml"
$NVNMD conductivity --grid "$S/grid.toml" --backend sim --model "$STUDENT/student.pb" --image "$STUDENT/student.nvq" \
    --steps "${STEPS:-15000}" --dt 2 --workers "${WORKERS:-2}" -o "$OUT/sweep"
for f in compositions.csv conductivity.json composition.png arrhenius.png msd_energy.png; do
    [ -f "$OUT/sweep/$f" ] && cp "$OUT/sweep/$f" benchmarks/compositions/
done
