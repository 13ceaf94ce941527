"""The student: a deepmd-kit se_e2_a input in the shipped student's shape, trained with
`dp --tf train` and frozen, resumable from deepmd-kit's own checkpoints.

The shape comes from student/input.json (the recipe of the shipped LGPS student) with the
widths, sel and steps of the DistillConfig; every choice stays inside the board's limits
(fpga/SPEC.md §1), which `nvnmd.quantize.build.check_limits` enforces after freezing.
The optional refinement phases (`DistillConfig.refine`) are that recipe's later stages, each
continuing from the previous phase's frozen model: REFINE_PHASES below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nvnmd.errors import NvnmdError
from nvnmd.image import write_atomic


def training_input(cfg, type_map: list[str], sel: list[int], train_dir, valid_dir: str, seed: int,
                   steps: int | None = None) -> dict:
    """`train_dir`: a folder (deepmd-kit takes every system under it) or a list of them; `steps`:
    the training steps (default cfg.train_steps; the explore stage's students train shorter)."""
    steps = cfg.train_steps if steps is None else int(steps)
    decay_steps = max(1, steps // 50)  # the shipped recipe: 200 k steps, 50 decays
    return {
        "_comment": "written by nvnmd distill (nvnmd/distill/train.py)",
        "model": {
            "type_map": list(type_map),
            "descriptor": {"type": "se_e2_a", "sel": list(sel), "rcut_smth": cfg.rcut_smth, "rcut": cfg.rcut,
                           "neuron": list(cfg.embedding), "resnet_dt": False, "axis_neuron": cfg.axis_neuron,
                           "type_one_side": cfg.type_one_side, "precision": "float64", "seed": seed},
            "fitting_net": {"neuron": list(cfg.fitting), "resnet_dt": True, "precision": "float64", "seed": seed},
        },
        "learning_rate": {"type": "exp", "decay_steps": decay_steps, "start_lr": cfg.start_lr, "stop_lr": cfg.stop_lr},
        "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 10, "start_pref_f": 1000, "limit_pref_f": 1,
                 "start_pref_v": 0.0, "limit_pref_v": 0.1},
        "training": {
            "training_data": {"systems": [train_dir] if isinstance(train_dir, str) else list(train_dir), "batch_size": cfg.batch_size, "auto_prob": "prob_sys_size"},
            "validation_data": {"systems": [valid_dir], "batch_size": 1, "numb_btch": 4},
            "numb_steps": steps, "seed": seed, "disp_file": "lcurve.out", **_cadence(steps),
        },
    }


def _cadence(steps: int) -> dict:
    """How often a run of `steps` steps reports and checkpoints."""
    return {"disp_freq": max(1, min(1000, steps // 20)), "save_freq": max(1, min(10000, steps // 10))}


# The shipped LGPS student's later stages (student/input_restart.json, student/input_finetune.json;
# tests/test_distill_parts.py holds them equal): "restart" continues with the learning rate restarted
# and energy weighted from the start; "finetune" weights the per-atom energy error squared
# (intensive_ener_virial, what the per-atom validation RMSE pools) 1000:1 against forces at a small
# learning rate. decay_steps scales with the phase's steps as in those files (100 k / 50, 20 k / 40).
REFINE_PHASES = {
    "restart": {"learning_rate": {"start_lr": 3e-4, "decays": 50},
                "loss": {"type": "ener", "start_pref_e": 1, "limit_pref_e": 10, "start_pref_f": 100,
                         "limit_pref_f": 1, "start_pref_v": 0.01, "limit_pref_v": 0.1}},
    "finetune": {"learning_rate": {"start_lr": 5e-5, "decays": 40},
                 "loss": {"type": "ener", "intensive_ener_virial": True, "start_pref_e": 1000, "limit_pref_e": 1000,
                          "start_pref_f": 1, "limit_pref_f": 1, "start_pref_v": 5, "limit_pref_v": 5}},
}


def parse_refine(text: str) -> tuple:
    """"restart:100000,finetune:20000" -> ("restart:100000", "finetune:20000"), checked."""
    phases = []
    for item in (x.strip() for x in str(text).split(",")):
        if not item:
            continue
        kind, _, steps = item.partition(":")
        if kind not in REFINE_PHASES or not steps.isdigit() or int(steps) < 1:
            raise NvnmdError(f"--refine takes PHASE:STEPS entries, PHASE one of {', '.join(REFINE_PHASES)}, "
                             f"comma-separated (e.g. restart:100000,finetune:20000); got {item}")
        phases.append(f"{kind}:{int(steps)}")
    return tuple(phases)


def refine_input(doc: dict, phase: str, cfg) -> dict:
    """The training input of one refinement phase ("KIND:STEPS"): `doc`'s model and data with the
    phase's learning rate and loss; trained with --init-frz-model on the previous phase's model."""
    kind, _, steps = phase.partition(":")
    steps = int(steps)
    recipe = REFINE_PHASES[kind]
    out = json.loads(json.dumps(doc))
    out["_comment"] = f"written by nvnmd distill (nvnmd/distill/train.py): refinement phase {phase}"
    lr = recipe["learning_rate"]
    out["learning_rate"] = {"type": "exp", "decay_steps": max(1, steps // lr["decays"]),
                            "start_lr": lr["start_lr"], "stop_lr": cfg.stop_lr}
    out["loss"] = dict(recipe["loss"])
    out["training"].update(numb_steps=steps, **_cadence(steps))
    return out


def train_phases(workdir: Path, doc: dict, refine: tuple, cfg, on_poll=None) -> tuple[Path, list[Path]]:
    """`doc` trained in `workdir`, then each refinement phase in workdir/refineK_KIND from the previous
    phase's model; `doc`'s data paths are relative to `workdir`. on_poll(steps done over all phases).
    Returns the last model and every phase's lcurve.out."""
    phases = [(workdir, doc)] + [(workdir / f"refine{i + 1}_{ph.split(':')[0]}", refine_input(doc, ph, cfg))
                                 for i, ph in enumerate(refine)]
    model, done, curves = None, 0, []
    for work, phase_doc in phases:
        if model is not None:  # the data paths, relative to the phase's own folder
            for data in (phase_doc["training"]["training_data"], phase_doc["training"]["validation_data"]):
                data["systems"] = [os.path.relpath(workdir / p, work) for p in data["systems"]]
        model = train_and_freeze(work, phase_doc, work / "train.log", init_model=model,
                                 on_poll=(lambda step, base=done: on_poll(base + step)) if on_poll else None)
        done += phase_doc["training"]["numb_steps"]
        curves.append(work / "lcurve.out")
    return model, curves


def total_steps(doc: dict, refine: tuple) -> int:
    return doc["training"]["numb_steps"] + sum(int(ph.split(":")[1]) for ph in refine)


def _dp() -> list[str]:
    exe = Path(sys.executable).with_name("dp")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "deepmd"]


def train_and_freeze(workdir: Path, doc: dict, log_path: Path, on_poll=None, init_model: Path | None = None) -> Path:
    """dp --tf train (or --restart from the last checkpoint) then dp --tf freeze -> workdir/model.pb;
    `init_model`: a frozen model the training starts from (--init-frz-model) instead of from scratch."""
    workdir.mkdir(parents=True, exist_ok=True)
    model = workdir / "model.pb"
    if (workdir / "DONE").exists() and model.exists():
        return model
    text = json.dumps(doc, indent=1) + "\n"
    inp = workdir / "input.json"
    if (workdir / "checkpoint").exists() and not _checkpoint_files_exist(workdir):
        # the index survived but its checkpoint files did not (a fresh checkout of a part-trained state)
        for stale in ("checkpoint", "lcurve.out"):
            (workdir / stale).unlink(missing_ok=True)
    if (workdir / "checkpoint").exists():
        if inp.read_text() != text:
            raise NvnmdError(f"{workdir} holds a training started from another input; remove it to train again")
        cmd = [*_dp(), "--tf", "train", "--restart", "model.ckpt", "input.json"]
    else:
        write_atomic(inp, text.encode())
        init = ["--init-frz-model", os.path.relpath(init_model, workdir)] if init_model else []
        cmd = [*_dp(), "--tf", "train", *init, "input.json"]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for cmd_ in (cmd, [*_dp(), "--tf", "freeze", "-o", "model.tmp.pb"]):
        with open(log_path, "a") as log:
            log.write(f"$ {' '.join(cmd_)}\n")
            log.flush()
            proc = subprocess.Popen(cmd_, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                while (rc := _wait(proc, 5.0)) is None:
                    if on_poll:
                        on_poll(lcurve_steps(workdir))
            except BaseException:
                proc.kill()
                raise
        if rc != 0:
            raise NvnmdError(f"{' '.join(cmd_[-3:])} failed (exit {rc}); see {log_path}")
    os.replace(workdir / "model.tmp.pb", model)
    (workdir / "DONE").touch()
    return model


def _checkpoint_files_exist(workdir: Path) -> bool:
    """Whether the checkpoint deepmd-kit's `checkpoint` index names as the latest is on disk."""
    for line in (workdir / "checkpoint").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model_checkpoint_path":
            return (workdir / (value.strip().strip('"') + ".index")).exists()
    return False


def _wait(proc, seconds: float):
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def lcurve_steps(workdir: Path) -> int:
    """The last step deepmd-kit wrote to lcurve.out (for progress)."""
    path = workdir / "lcurve.out"
    if not path.exists():
        return 0
    last = 0
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            try:
                last = int(line.split()[0])
            except ValueError:
                pass
    return last
