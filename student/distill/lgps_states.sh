#!/usr/bin/env bash
# An LGPS distillation sampled at the states the DFT set holds (student/distill/README.md, "The bound").
# Why: the bound showed the board's default shape learns this teacher to 2.96 meV/atom vs DFT when it
# is trained on the DFT set's configurations, while every student distilled from the relaxed structure
# stopped at 3.4-4.3. The DFT set's hot configurations are MD frames at 20-32 Å³/atom (most 21-25) with
# teacher-force RMS 0.83-0.92 eV/Å (1000-1400 K in teacher MD). The earlier runs perturbed every sampled
# frame again by 0.1 Å, which alone lifts the teacher energy of a DFT configuration by 33 meV/atom (a 3 %
# strain: 6): their students learned a population ~250 K hotter in potential energy than the one they are
# judged on. So here: 0.02 Å of re-perturbation (the strain kept: the relaxed cell's a/c is 0.678, the DFT
# cells' 0.694), a finer volume grid over 20-30 Å³/atom (the perturbed start is at 18.99), two hot
# temperatures, and the DP-GEN ensemble exploring also at 300 K (the DFT set's perturbed cold frames);
# then the scheme's 200 k-step student of the board's default shape, fitting 256.
# No DFT label is used in training. Resumable: rerun the same command.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=3 MPLBACKEND=Agg DP_INTRA_OP_PARALLELISM_THREADS=1 DP_INTER_OP_PARALLELISM_THREADS=1
exec ${NVNMD:-.venv/bin/nvnmd} distill --structure nvnmd/data/lgps_relaxed.extxyz \
    -T 1000,1400 --volume-scales 1.05,1.15,1.25,1.4,1.6 --md-structures 1 \
    --md-steps 1000 --frames 150 --holdout-steps 1000 --frame-atom-pert 0.02 \
    --ensemble-size 2 --explore-rounds 2 --explore-train-steps 20000 --explore-steps 3000 --explore-every 10 \
    --explore-temperatures 300,1000,1400 --max-candidates 300 \
    --reference-data "${LGPS_DATA:-/work/shared/data/lgps-pbe}" --reference-every 10 \
    --fitting 256,256,256 --baseline nvnmd/data/lgps_student.pb --workers "${WORKERS:-2}" --train-steps "${TRAIN_STEPS:-200000}" \
    ${REFINE:+--refine "$REFINE"} -o "${OUT:-student/distill/lgps_states}"
