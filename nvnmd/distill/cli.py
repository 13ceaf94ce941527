"""`nvnmd distill`: a teacher and one structure, or several compositions -> a validated, quantized
student in -o DIR."""

from __future__ import annotations

import argparse
from dataclasses import fields

from nvnmd.distill.config import DistillConfig
from nvnmd.errors import NvnmdError

# every number of OPTIONS and EXPLORE_OPTIONS must be > 0 except these: a perturbation magnitude may be 0,
# which keeps that part as it is (the DFT set's cells, say, are never strained); a seed is any integer, and
# --ensemble-size is checked against its own set (0, 2-4) in _explore_options
NONNEGATIVE = {"cell_pert_fraction", "atom_pert_distance", "frame_cell_pert_fraction", "frame_atom_pert_distance"}
ANY_VALUE = {"seed", "ensemble_size"}

# option -> (config field, type, help); every default comes from DistillConfig
OPTIONS = [
    ("--md-structures", "md_structures", int, "perturbed structures to start teacher MD from"),
    ("--cell-pert", "cell_pert_fraction", float, "cell perturbation fraction of the starting structures (0: none)"),
    ("--atom-pert", "atom_pert_distance", float, "atom perturbation distance of the starting structures (Å; 0: none)"),
    ("--md-steps", "md_steps", int, "teacher MD steps per trajectory"),
    ("--dt", "dt_fs", float, "MD time step (fs)"),
    ("--ensemble", "ensemble", str, "thermostat of the NVT runs (csvr, langevin, nose-hoover)"),
    ("--tau", "tau_fs", float, "thermostat time constant (fs)"),
    ("--holdout-steps", "holdout_steps", int, "steps of the held-out teacher trajectory"),
    ("--holdout-frames", "holdout_frames", int, "validation frames taken from it"),
    ("--frames", "frames_per_trajectory", int, "frames sampled from each teacher trajectory"),
    ("--frame-cell-pert", "frame_cell_pert_fraction", float, "cell perturbation fraction of the sampled frames (0: none)"),
    ("--frame-atom-pert", "frame_atom_pert_distance", float, "atom perturbation distance of the sampled frames (Å; 0: none)"),
    ("--workers", "workers", int, "teacher processes (one core each)"),
    ("--max-force", "max_force", float, "drop frames with any |F| above this (eV/Å)"),
    ("--rcut", "rcut", float, "student cutoff (Å; the board allows ≤ 7.9)"),
    ("--embedding", "embedding", "ints", "student embedding widths (last ≤ 64)"),
    ("--axis-neuron", "axis_neuron", int, "student axis_neuron (≤ 16)"),
    ("--fitting", "fitting", "ints", "student fitting widths (≤ 256)"),
    ("--train-steps", "train_steps", int, "deepmd-kit training steps"),
    ("--calib-frames", "calib_frames", int, "quantization calibration frames"),
    ("--robust-ps", "robust_ps", float, "robustness MD length (ps)"),
    ("--robust-dT", "robust_dT", float, "robustness MD temperature above the highest --temperatures (K)"),
    ("--max-force-rmse", "max_force_rmse", float, "reject above this force RMSE vs the teacher (eV/Å)"),
    ("--max-energy-rmse", "max_energy_rmse", float, "reject above this energy RMSE vs the teacher (eV/atom)"),
    ("--max-drift", "max_drift", float, "reject above this conserved-energy drift (eV/atom/ps)"),
    ("--reference-data", "reference_data", str, "DFT-labelled frames to validate against (deepmd/npy or dpdata)"),
    ("--reference-every", "reference_every", int, "use every Nth frame of each reference system (index %% N == N-1)"),
    ("--baseline", "baseline", str, "another float model shown against the reference labels"),
    ("--seed", "seed", int, "seed of every random choice"),
]

# the explore stage (DP-GEN-style active learning, nvnmd/distill/explore.py); off unless --ensemble-size
EXPLORE_OPTIONS = [
    ("--ensemble-size", "ensemble_size", int, "students in the exploration ensemble, 2 to 4 (0: no explore stage; "
                                              "DP-GEN's numb_models; --ensemble is the thermostat)"),
    ("--explore-rounds", "explore_rounds", int, "at most this many exploration rounds"),
    ("--explore-train-steps", "explore_train_steps", int, "training steps of each ensemble student"),
    ("--explore-steps", "explore_steps", int, "MD steps of each exploration trajectory (student 0, deepmd backend)"),
    ("--explore-every", "explore_every", int, "judge a frame every this many steps (DP-GEN's trj_freq)"),
    ("--explore-temperatures", "explore_temperatures", "floats",
     "exploration MD temperatures, comma-separated (K; default: --temperatures and the robustness run's)"),
    ("--trust-lo", "trust_lo", float, "frames with max force deviation below this are accurate (eV/Å; "
                                      "DP-GEN's model_devi_f_trust_lo; set from two board-sized students' spread, see config.py)"),
    ("--trust-hi", "trust_hi", float, "frames at or above this failed, between lo and hi candidates (eV/Å; "
                                      "DP-GEN's model_devi_f_trust_hi)"),
    ("--max-candidates", "max_candidates", int, "candidates labelled per composition and round (seeded random "
                                                "subset; DP-GEN's fp_task_max)"),
    ("--accurate-fraction", "accurate_fraction", float, "converged when every composition has this share of "
                                                        "explored frames below --trust-lo"),
]


def register(sub: argparse._SubParsersAction) -> None:
    d = DistillConfig()
    p = sub.add_parser("distill", help="pre-trained teacher -> perturbed MD frames -> labels -> student -> quantized, "
                                       "validated (resumable)")
    p.add_argument("--teacher", default=d.teacher,
                   help="dpa4-neo-omat24 (embedded default), a deepmd-kit model (.pb/.pth/.pt/.dp) or module:callable")
    p.add_argument("--structure", action="append", default=[], metavar="[NAME=]FILE",
                   help="starting structure (anything ASE reads, periodic); repeat it for several compositions, "
                        "each its own system, one student for all (NAME: its folder, default the file's stem)")
    p.add_argument("--structure-list", metavar="FILE",
                   help="a file of structures, one [NAME=]FILE a line (# comments; paths relative to the list)")
    p.add_argument("--supercell", default="1,1,1", help="repeat the structure a,b,c times (default 1,1,1)")
    p.add_argument("-T", "--temperatures", default="900", help="teacher MD temperatures, comma-separated (K; default 900)")
    p.add_argument("--volume-scales", default="1", metavar="V1,V2,...",
                   help="teacher MD also in cells scaled isotropically to these volume ratios, each with every "
                        "structure and temperature (0.7-2; default 1: the structure's own volume)")
    for opt, name, typ, text in OPTIONS:
        default = getattr(d, name)
        shown = ",".join(str(x) for x in default) if isinstance(default, tuple) else default
        p.add_argument(opt, dest=name, default=None, help=f"{text} (default {shown if shown != '' else 'none'})")
    g = p.add_argument_group("exploration (DP-GEN-style ensemble, after label)",
                             "Each round trains the ensemble, runs MD with its first student, labels with the "
                             "teacher the frames where the students disagree (trust-lo <= max force deviation "
                             "< trust-hi) and adds them as data/iter.KKK, until converged or the rounds run out.")
    for opt, name, typ, text in EXPLORE_OPTIONS:
        default = getattr(d, name)
        metavar = {int: "N", float: "X", "floats": "T[,T...]"}[typ]
        if typ == "floats":
            g.add_argument(opt, dest=name, default=None, metavar=metavar, help=text)
        else:
            g.add_argument(opt, dest=name, default=None, metavar=metavar, help=f"{text} (default {default})")
    p.add_argument("--pair-embedding", dest="type_one_side", action="store_false", default=True,
                   help="one embedding net per (centre, neighbour) type pair instead of per neighbour type "
                        "(deepmd-kit type_one_side false; the image holds nt² embedding tables instead of nt)")
    p.add_argument("--refine", default=None, metavar="PHASE:STEPS[,...]",
                   help="train on after --train-steps, each phase from the previous one's model: restart:N "
                        "(learning rate restarted, energy weighted) and finetune:N (per-atom energy loss), the "
                        "shipped student's later stages (e.g. restart:100000,finetune:20000; default none)")
    p.add_argument("-o", "--output", required=True, help="output directory (rerun the same command to resume)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_distill)


def _ints(text: str, opt: str) -> tuple:
    try:
        vals = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise NvnmdError(f"{opt} must be comma-separated integers, got {text}") from None
    if not vals or min(vals) < 1:
        raise NvnmdError(f"{opt} must be positive integers, got {text}")
    return vals


def _structures(args) -> dict:
    """--structure (repeated) and --structure-list -> the config's `structure` (one) or
    `structures` ("NAME=PATH" entries, several)."""
    import re
    from pathlib import Path

    entries = [(e, None) for e in args.structure]
    if args.structure_list:
        lst = Path(args.structure_list)
        try:
            lines = lst.read_text().splitlines()
        except OSError as exc:
            raise NvnmdError(f"--structure-list {lst}: {exc.strerror or exc}") from None
        entries += [(ln.split("#", 1)[0].strip(), lst.parent) for ln in lines if ln.split("#", 1)[0].strip()]
    if not entries:
        raise NvnmdError("give a starting structure: --structure FILE (repeatable) or --structure-list FILE")
    named = []
    for text, base in entries:
        name, sep, path = text.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name.strip()):
            name, path = "", text  # no NAME= (or a path that merely contains '=')
        path = path.strip()
        if base is not None and not Path(path).is_absolute():
            path = str(base / path)
        named.append((name.strip(), path))
    if len(named) == 1:
        return {"structure": named[0][1]}
    names, out = set(), []
    for name, path in named:
        name = name or re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(path).stem) or "structure"
        if name in names:
            raise NvnmdError(f"two structures are named {name}: give them NAME=FILE")
        names.add(name)
        out.append(f"{name}={path}")
    return {"structures": tuple(out)}


def config_from_args(args) -> DistillConfig:
    kw = {"teacher": args.teacher, **_structures(args), "progress": not args.quiet, "type_one_side": args.type_one_side,
          "supercell": _ints(args.supercell, "--supercell")}
    if len(kw["supercell"]) != 3:
        raise NvnmdError(f"--supercell must be three positive integers like 2,2,1, got {args.supercell}")
    try:
        kw["temperatures"] = tuple(float(t) for t in args.temperatures.split(",") if t.strip())
    except ValueError:
        raise NvnmdError(f"--temperatures must be comma-separated numbers, got {args.temperatures}") from None
    if not kw["temperatures"] or min(kw["temperatures"]) <= 0:
        raise NvnmdError("--temperatures must be positive")
    try:
        kw["volume_scales"] = tuple(float(v) for v in args.volume_scales.split(",") if v.strip())
    except ValueError:
        raise NvnmdError(f"--volume-scales must be comma-separated numbers, got {args.volume_scales}") from None
    if not kw["volume_scales"] or not all(0.7 <= v <= 2.0 for v in kw["volume_scales"]) \
            or len(set(kw["volume_scales"])) != len(kw["volume_scales"]):
        raise NvnmdError(f"--volume-scales must be distinct volume ratios between 0.7 and 2, got {args.volume_scales}")
    for opt, name, typ, _ in OPTIONS:
        value = getattr(args, name)
        if value is None:
            continue
        if typ == "ints":
            kw[name] = _ints(value, opt)
            continue
        try:
            kw[name] = typ(value)
        except ValueError:
            raise NvnmdError(f"{opt} must be a {typ.__name__}, got {value}") from None
        if name in ANY_VALUE or typ is str:
            continue
        if name in NONNEGATIVE and kw[name] < 0:
            raise NvnmdError(f"{opt} must be >= 0 (0: not perturbed), got {value}")
        if name not in NONNEGATIVE and kw[name] <= 0:
            raise NvnmdError(f"{opt} must be > 0, got {value}")
    kw.update(_explore_options(args))
    if args.refine is not None:
        from nvnmd.distill.train import parse_refine

        kw["refine"] = parse_refine(args.refine)
    known = {f.name for f in fields(DistillConfig)}
    assert set(kw) <= known
    cfg = DistillConfig(**kw)
    if cfg.ensemble.isdigit():  # DP-GEN users may reach for --ensemble N
        raise NvnmdError(f"--ensemble is the MD thermostat (csvr, langevin, nose-hoover); for an exploration "
                         f"ensemble of {cfg.ensemble} students give --ensemble-size {cfg.ensemble}")
    if cfg.ensemble not in ("csvr", "langevin", "nose-hoover"):
        raise NvnmdError(f"--ensemble must be csvr, langevin or nose-hoover (NVT), got {cfg.ensemble}")
    return cfg


def _explore_options(args) -> dict:
    """The exploration options, checked: each in range, and none without --ensemble-size."""
    kw = {}
    for opt, name, typ, _ in EXPLORE_OPTIONS:
        value = getattr(args, name)
        if value is None:
            continue
        try:
            kw[name] = tuple(float(x) for x in value.split(",") if x.strip()) if typ == "floats" else typ(value)
        except ValueError:
            what = "comma-separated numbers" if typ == "floats" else f"a {typ.__name__}"
            raise NvnmdError(f"{opt} must be {what}, got {value}") from None
        bad = (not kw[name] or min(kw[name]) <= 0) if typ == "floats" else (kw[name] <= 0 and name not in ANY_VALUE)
        if bad:
            raise NvnmdError(f"{opt} must be > 0, got {value}")
    n = kw.get("ensemble_size", 0)
    if n not in (0, 2, 3, 4):
        raise NvnmdError(f"--ensemble-size must be 0 (no exploration) or 2 to 4 students, got {n}")
    if not n and len(kw) > ("ensemble_size" in kw):
        opt = next(o for o, name, _, _ in EXPLORE_OPTIONS if name in kw and name != "ensemble_size")
        raise NvnmdError(f"{opt} is an exploration option: give --ensemble-size 2 to 4 with it")
    d = DistillConfig()
    lo, hi = kw.get("trust_lo", d.trust_lo), kw.get("trust_hi", d.trust_hi)
    if lo >= hi:
        raise NvnmdError(f"--trust-lo must be below --trust-hi, got {lo:g} >= {hi:g} eV/Å")
    if not kw.get("accurate_fraction", d.accurate_fraction) <= 1:
        raise NvnmdError(f"--accurate-fraction must be at most 1, got {kw['accurate_fraction']:g}")
    return kw


def cmd_distill(args) -> int:
    import logging

    from nvnmd.distill.pipeline import distill

    logging.basicConfig(level=logging.WARNING)
    report = distill(config_from_args(args), args.output)
    return 0 if report["status"] == "accepted" else 1
