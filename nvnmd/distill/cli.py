"""`nvnmd distill`: a teacher and one structure, or several compositions -> a validated, quantized
student in -o DIR."""

from __future__ import annotations

import argparse
from dataclasses import fields

from nvnmd.distill.config import DistillConfig
from nvnmd.errors import NvnmdError

# option -> (config field, type, help); every default comes from DistillConfig
OPTIONS = [
    ("--md-structures", "md_structures", int, "perturbed structures to start teacher MD from"),
    ("--cell-pert", "cell_pert_fraction", float, "cell perturbation fraction of the starting structures"),
    ("--atom-pert", "atom_pert_distance", float, "atom perturbation distance of the starting structures (Å)"),
    ("--md-steps", "md_steps", int, "teacher MD steps per trajectory"),
    ("--dt", "dt_fs", float, "MD time step (fs)"),
    ("--ensemble", "ensemble", str, "thermostat of the NVT runs (csvr, langevin, nose-hoover)"),
    ("--tau", "tau_fs", float, "thermostat time constant (fs)"),
    ("--holdout-steps", "holdout_steps", int, "steps of the held-out teacher trajectory"),
    ("--holdout-frames", "holdout_frames", int, "validation frames taken from it"),
    ("--frames", "frames_per_trajectory", int, "frames sampled from each teacher trajectory"),
    ("--frame-cell-pert", "frame_cell_pert_fraction", float, "cell perturbation fraction of the sampled frames"),
    ("--frame-atom-pert", "frame_atom_pert_distance", float, "atom perturbation distance of the sampled frames (Å)"),
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
    kw = {"teacher": args.teacher, **_structures(args), "progress": not args.quiet,
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
        if typ in (int, float) and kw[name] <= 0 and name != "seed":
            raise NvnmdError(f"{opt} must be > 0, got {value}")
    known = {f.name for f in fields(DistillConfig)}
    assert set(kw) <= known
    cfg = DistillConfig(**kw)
    if cfg.ensemble not in ("csvr", "langevin", "nose-hoover"):
        raise NvnmdError(f"--ensemble must be csvr, langevin or nose-hoover (NVT), got {cfg.ensemble}")
    return cfg


def cmd_distill(args) -> int:
    import logging

    from nvnmd.distill.pipeline import distill

    logging.basicConfig(level=logging.WARNING)
    report = distill(config_from_args(args), args.output)
    return 0 if report["status"] == "accepted" else 1
