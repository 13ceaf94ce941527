"""nvnmd.distill: a pre-trained teacher -> a board-ready se_e2_a student (`nvnmd distill`).

The seed paper's scheme ("Model distillation"), each number a default in `config.py`:
perturbed copies of a structure -> short teacher MD -> frames sampled and perturbed again ->
teacher labels (both cores) -> |F| filter -> optionally (--ensemble-size) DP-GEN-style rounds:
an ensemble of students, MD with one, the frames they disagree on labelled too -> deepmd-kit student (`dp --tf train`, a shape the
board accepts) + closest-pairs sidecar -> quantized image + report -> validation (vs the
teacher on a held-out teacher trajectory, vs DFT labels if given, robustness MD of the
quantized student) -> accepted or rejected, with reasons.

    config.py    DistillConfig: every parameter and its default
    manifest.py  manifest.json: parameters, seeds, hashes, per-stage state and wall time
    data.py      perturbation, frame sampling, deepmd/npy sets, sel and closest pairs
    workers.py   teacher MD and labelling in worker processes
    explore.py   the explore stage: ensemble rounds, force deviation, candidates, their labels
    train.py     deepmd-kit training input, resumable `dp --tf train` + freeze
    validate.py  error tables, parity plots, robustness run, the accept/reject decision
    pipeline.py  the stages in order, each resumable and idempotent
    cli.py       `nvnmd distill`
"""
