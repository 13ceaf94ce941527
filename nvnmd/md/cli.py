"""`nvnmd md`, `nvnmd conductivity` and `nvnmd demo`: the jobs users run.

Everything a command can check is checked before any work starts (options, structure,
output directory, a run already in -o, the settings of the run it would resume), so a bad
input costs a second, not a quantization or a trajectory. A directory holding a run is
continued with --resume (same settings) or replaced with --overwrite, never overwritten
silently. All MD commands share one set of defaults, MDConfig's (CSVR, 2 fs).
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from nvnmd.errors import LinkError, NvnmdError


def _backend_args(p: argparse.ArgumentParser) -> None:
    from nvnmd.backends import NAMES

    p.add_argument("--backend", default="auto", choices=NAMES,
                   help="evaluator; auto picks board (needs --url) > GPU (tf64 for the image) > sim > CPU deepmd")
    p.add_argument("--model", help="float student (.pb); default: the embedded LGPS student")
    p.add_argument("--image", help="quantized image (.nvq); default: quantize --model into the output dir")
    p.add_argument("--teacher", help="with --backend teacher: dpa4-neo-omat24 (default), a deepmd-kit model "
                                     "(.pb/.pth/.pt/.dp) or an ASE calculator as module:callable")
    p.add_argument("--url", help="board URL (socket://127.0.0.1:PORT, /dev/ttyUSB0?baud=..., xdma://...)")
    p.add_argument("--threads", type=int, default=1, help="sim backend: kernel threads (same trajectory for any count)")


DEFAULT_TEMPERATURES = "700,900,1100"
SHIPPED_SUPERCELL = "2,2,1"  # the shipped 50-atom cell x 4: 200 atoms, every cell height > rcut + skin


def _md_args(p: argparse.ArgumentParser, steps: int, many_structures: bool = False) -> None:
    from nvnmd.md.engine import MDConfig

    d = MDConfig()
    if many_structures:
        p.add_argument("--structure", action="append", metavar="[LABEL=]FILE",
                       help="a structure of the sweep (anything ASE reads, e.g. from `nvnmd structure`), labelled "
                            "LABEL or its file stem; repeat for several; default: shipped relaxed LGPS")
    else:
        p.add_argument("--structure", help="starting structure (anything ASE reads); default: shipped relaxed LGPS")
    p.add_argument("--supercell", help=f"repeat the structure a,b,c times (default {SHIPPED_SUPERCELL} for the "
                                       "shipped structure, 1,1,1 for --structure)")
    p.add_argument("--ensemble", default=d.ensemble, choices=["nve", "langevin", "csvr", "nose-hoover"],
                   help=f"integrator / thermostat (default {d.ensemble})")
    p.add_argument("--tau", type=float, default=d.tau_fs, help=f"csvr / nose-hoover time constant in fs (default {d.tau_fs:g})")
    p.add_argument("--friction", type=float, default=d.friction_per_fs,
                   help=f"langevin friction in 1/fs (default {d.friction_per_fs:g})")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--dt", type=float, default=d.dt_fs, help=f"time step in fs (default {d.dt_fs:g})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--skin", type=float, default=d.skin, help="Verlet skin in Å")
    p.add_argument("--no-guard", action="store_true",
                   help="the bare model: no short-range wall below the training data's closest pairs")
    p.add_argument("--traj-every", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("-o", "--output", default="runs/md", help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace the run(s) already in --output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("md", help="run MD on a structure with any backend (trajectory, thermo, checkpoints)")
    _backend_args(p)
    _md_args(p, steps=1000)
    p.add_argument("-T", "--temperature", type=float, default=900.0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="board backend: the driver's per-request timeout (default 1 s, 9 attempts); give more "
                        "than one frame's compute time when frames are slow (the RTL in simulation, big cells)")
    p.set_defaults(func=cmd_md)

    c = sub.add_parser("conductivity", help="NVT MD over temperatures and structures on dask -> D(Li), σ, "
                                            "Arrhenius Ea and σ(300 K) per composition",
                       description="One run per (structure, temperature), each a dask task: on a local cluster of "
                                   "worker processes (127.0.0.1, no dashboard) or on --scheduler. Rerun the same "
                                   "command after an interruption: finished runs are kept, the others continue "
                                   "from their checkpoints.")
    _backend_args(c)
    _md_args(c, steps=20000, many_structures=True)
    c.add_argument("-T", "--temperatures", default=None,
                   help=f"comma-separated temperatures in K (default {DEFAULT_TEMPERATURES}; a --grid may give its own)")
    c.add_argument("--grid", help="a TOML or JSON file listing structures (label, file, supercell, temperatures) "
                                  "and temperatures; see the README")
    c.add_argument("--compare-T", type=float, help="temperature of msd_energy.png (MSD and potential energy of every "
                                                   "structure; default: the highest all of them ran at)")
    c.add_argument("--workers", type=int, help="local cluster: worker processes (default min(2, cores))")
    c.add_argument("--scheduler", metavar="ADDRESS", help="an existing dask scheduler (tcp://host:port) instead of a "
                                                          "local cluster; its workers must see -o and the image")
    c.add_argument("--analyse-only", action="store_true", help="only analyse existing trajectories in --output")
    c.set_defaults(func=cmd_conductivity, output="runs/conductivity")

    d = sub.add_parser("demo", help="embedded LGPS student -> quantize -> virtual board -> conductivity (< 10 min)")
    d.add_argument("-o", "--output", default="runs/demo")
    d.add_argument("--steps", type=int, default=15000, help="steps per temperature (2 fs each; default 30 ps)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)


def _supercell(args) -> tuple[int, int, int]:
    text = args.supercell if args.supercell is not None else ("1,1,1" if args.structure else SHIPPED_SUPERCELL)
    try:
        reps = tuple(int(x) for x in str(text).split(","))
    except ValueError:
        reps = ()
    if len(reps) != 3 or min(reps) < 1:
        raise NvnmdError(f"--supercell must be three positive integers like 2,2,1, got {text}")
    return reps


def _structure(args):
    from nvnmd.md.workflow import lgps_supercell

    reps = _supercell(args)
    atoms = _read_structure(args.structure) if args.structure else lgps_supercell((1, 1, 1))
    return _repeat_checked(atoms, reps, getattr(args, "backend", "auto"))


def _read_structure(path):
    from ase.io import read

    if not Path(path).is_file():
        raise NvnmdError(f"cannot read structure {path}: no such file")
    try:
        return read(path)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise NvnmdError(f"cannot read structure {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _repeat_checked(atoms, reps, backend: str, what: str | None = None):
    from nvnmd.md.engine import check_memory, check_structure

    check_structure(atoms)
    check_memory(len(atoms) * reps[0] * reps[1] * reps[2], backend=backend,
                 what=what or f"--supercell {','.join(map(str, reps))}")
    return atoms.repeat(reps)


def ensure_image(model, image, outdir: Path, log=print):
    """The image to run: the given one, or the student quantized into outdir/model.nvq. A
    model.nvq already there is reused only if it was made from this model (its meta carries
    the model's SHA-256); otherwise it is made again, and that is said."""
    if image:
        return image
    from nvnmd.image import Image
    from nvnmd.quantize.student_image import image_model_sha256, student_image
    from nvnmd.student import model_sha256
    from nvnmd.student import default_student_path

    model = Path(model) if model else default_student_path()
    if not model.exists():
        raise FileNotFoundError(2, "No such file", str(model))
    path = outdir / "model.nvq"
    want = model_sha256(model)
    if path.exists():
        cached = Image.read(path)  # refuse a corrupted cache loudly rather than run it
        have = image_model_sha256(cached)
        if have == want:
            return path
        made_from = f"{cached.meta.get('source') or 'another model'} (sha256 {have[:12]})" if have else \
            "a model it does not record"
        log(f"{path} was quantized from {made_from}, not {model} (sha256 {want[:12]}): quantizing again")
    log(f"quantizing {model} -> {path}")
    student_image(model).write(path)
    return path


def _make(args, outdir: Path, with_spec: bool = False):
    """The backend of the command; with `with_spec` also what a dask worker needs to build
    the same one (the resolved backend name, absolute paths)."""
    from nvnmd.backends import make_backend
    from nvnmd.student import default_student_path

    model = args.model or str(default_student_path())
    image = None
    if args.backend in ("sim", "tf64", "board", "auto"):
        image = ensure_image(args.model, args.image, outdir)
    backend, why = make_backend(args.backend, image=image, model=model, url=args.url,
                                threads=getattr(args, "threads", 1), teacher=getattr(args, "teacher", None),
                                timeout=getattr(args, "timeout", None))
    if getattr(args, "no_guard", False):
        backend.guard = None
        why += "; short-range guard off"
    print(f"backend: {why}")
    if not with_spec:
        return backend
    spec = {"name": backend.name, "image": str(Path(image).resolve()) if image else None,
            "model": str(Path(model).resolve()), "url": args.url, "threads": getattr(args, "threads", 1),
            "teacher": getattr(args, "teacher", None), "no_guard": bool(getattr(args, "no_guard", False))}
    return backend, spec, why


def _config(args, temperature: float):
    from nvnmd.md.engine import MDConfig

    if args.steps < 1 or args.dt <= 0:
        raise NvnmdError("--steps must be ≥ 1 and --dt > 0")
    if args.tau <= 0 or args.friction <= 0:
        raise NvnmdError("--tau and --friction must be > 0")
    if args.traj_every < 1 or args.checkpoint_every < 1:
        raise NvnmdError(f"--traj-every and --checkpoint-every must be ≥ 1 step, got {args.traj_every} and "
                         f"{args.checkpoint_every}")
    if args.skin < 0:
        raise NvnmdError(f"--skin must be ≥ 0 Å, got {args.skin:g}")
    return MDConfig(ensemble=args.ensemble, temperature=temperature, dt_fs=args.dt, steps=args.steps, seed=args.seed,
                    skin=args.skin, traj_every=args.traj_every, thermo_every=args.traj_every,
                    checkpoint_every=args.checkpoint_every, tau_fs=args.tau, friction_per_fs=args.friction)


def _run_files(run_dir: Path) -> list[str]:
    from nvnmd.md.workflow import RUN_FILES

    return [name for name in RUN_FILES if (run_dir / name).exists()]


def _precheck_resume(run_dir: Path, config, atoms, args) -> None:
    """Refuse, before any work, a resume whose settings differ from the checkpoint's (what
    can be known without the backend: the MD settings, the atoms and, for an image quantized
    here, the model; run_md compares the rest before it writes anything)."""
    from nvnmd.md.engine import load_checkpoint, resume_mismatch

    ckpt = run_dir / "checkpoint.npz"
    if not ckpt.exists():
        raise NvnmdError(f"cannot resume: no checkpoint at {ckpt}")
    run = {"natoms": len(atoms), "formula": atoms.get_chemical_formula()}
    if getattr(args, "image", None) is None and args.backend != "deepmd":
        from nvnmd.student import model_sha256
        from nvnmd.student import default_student_path

        model = Path(args.model) if args.model else default_student_path()
        if model.exists():
            run["model_sha256"] = model_sha256(model)
    why = resume_mismatch(load_checkpoint(ckpt), config, run)
    if why:
        raise NvnmdError(f"cannot resume {ckpt}: {why} (continue with the checkpoint's settings, "
                         f"or start again with --overwrite or another -o)")


def _temperature(value: float, opt: str = "-T") -> float:
    if not value > 0 or value == float("inf"):
        raise NvnmdError(f"{opt} must be a temperature above 0 K, got {value:g}")
    return value


def _board_timeout(args) -> None:
    """--timeout is the board driver's: a positive number of seconds, and only with a board."""
    t = args.timeout
    if t is None:
        return
    if not 0 < t < float("inf"):
        raise NvnmdError(f"--timeout must be a positive number of seconds, got {t:g}")
    if not (args.backend == "board" or (args.backend == "auto" and args.url)):
        raise NvnmdError(f"--timeout is the board driver's per-request timeout: it needs --backend board "
                         f"(got --backend {args.backend})")


def cmd_md(args) -> int:
    from nvnmd.md.engine import run_md
    from nvnmd.outputs import check_output_dir

    if args.resume and args.overwrite:
        raise NvnmdError("--resume continues the run in --output, --overwrite replaces it: give one")
    config = _config(args, _temperature(args.temperature))
    _board_timeout(args)
    atoms = _structure(args)
    out = check_output_dir(args.output)
    existing = _run_files(out)
    if args.resume:
        _precheck_resume(out, config, atoms, args)
    elif existing and not args.overwrite:
        raise NvnmdError(f"-o {out} holds a run ({', '.join(existing)}): continue it with --resume, "
                         f"replace it with --overwrite, or choose another -o")
    try:
        backend = _make(args, out)
        summary = run_md(atoms, backend, config, out, resume=args.resume, progress=not args.quiet)
    except LinkError as exc:
        if type(exc) is not LinkError or "no valid reply" not in str(exc):
            raise
        hint = ("give a --timeout longer than one frame's compute on the board" if args.timeout is None
                else f"--timeout {args.timeout:g} s is shorter than one frame's compute on the board: give more")
        raise LinkError(f"{exc}; {hint}") from None
    print(f"{summary['steps']} steps, {summary['natoms']} atoms: {summary['us_per_atom_step']:.1f} µs/atom/step, "
          f"{summary['ns_per_day']:.3f} ns/day; outputs in {out}")
    if summary["guard_evaluations"]:
        print(f"short-range guard: {summary['guard_evaluations']} force evaluations had pairs closer than the "
              f"training data's closest (up to {summary['guard_max_pairs']} at once); its wall held them apart")
    return 0


def _temps(text: str) -> list[float]:
    try:
        temps = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise NvnmdError(f"--temperatures must be comma-separated numbers, got {text}") from None
    if not temps:
        raise NvnmdError("--temperatures must be comma-separated numbers, got nothing")
    for t in temps:
        _temperature(t, "--temperatures")
    if len(set(temps)) != len(temps):
        raise NvnmdError(f"--temperatures lists a temperature twice: {text}")
    return temps


def _structure_option(text: str) -> tuple[str | None, str]:
    """--structure [LABEL=]FILE -> (LABEL or None, FILE); a FILE whose name holds '=' is read
    as a file when it exists."""
    if "=" in text and not Path(text).exists():
        label, path = text.split("=", 1)
        if label and "/" not in label:
            return label, path
    return None, text


def _label_of(label: str | None, path: str, opt: str) -> str:
    from nvnmd.md.workflow import check_label

    if label is None:
        label = Path(path).stem
        try:
            return check_label(label)
        except NvnmdError:
            raise NvnmdError(f"{opt} {path}: its file stem '{label}' is not a usable label; give one as "
                             f"LABEL=FILE (letters, digits and ._+-)") from None
    return check_label(label)


GRID_KEYS = {"temperatures", "supercell", "structures"}
GRID_ENTRY_KEYS = {"label", "file", "supercell", "temperatures"}


def _grid_temperatures(value, where: str) -> list[float]:
    if isinstance(value, str):
        return _temps(value)
    if not isinstance(value, list) or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in value):
        raise NvnmdError(f"{where}: temperatures must be a list of numbers like [700, 900]")
    return _temps(",".join(repr(float(t)) for t in value))


def _read_grid(path: str) -> list[dict]:
    """--grid FILE (.toml or .json): [{label, file, supercell, temperatures}], paths relative
    to the grid file, every key checked (a typo is an error, not a silent default)."""
    import json
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise NvnmdError(f"--grid {p}: no such file")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text())
        elif p.suffix.lower() == ".toml":
            data = tomllib.loads(p.read_text())
        else:
            raise NvnmdError(f"--grid {p}: give a .toml or .json file")
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise NvnmdError(f"--grid {p}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("structures"), list) or not data["structures"]:
        raise NvnmdError(f"--grid {p}: needs a list 'structures' of tables with 'file' (and label, supercell, "
                         f"temperatures)")
    unknown = sorted(set(data) - GRID_KEYS)
    if unknown:
        raise NvnmdError(f"--grid {p}: unknown key {unknown[0]} (known: {', '.join(sorted(GRID_KEYS))})")
    temps = _grid_temperatures(data["temperatures"], f"--grid {p}") if "temperatures" in data else None
    entries = []
    for i, e in enumerate(data["structures"]):
        where = f"--grid {p}: structure {i + 1}"
        if not isinstance(e, dict) or not isinstance(e.get("file"), str):
            raise NvnmdError(f"{where} needs a 'file'")
        unknown = sorted(set(e) - GRID_ENTRY_KEYS)
        if unknown:
            raise NvnmdError(f"{where}: unknown key {unknown[0]} (known: {', '.join(sorted(GRID_ENTRY_KEYS))})")
        file = e["file"] if Path(e["file"]).is_absolute() else str(p.parent / e["file"])
        entries.append({"label": e.get("label"), "file": file, "supercell": e.get("supercell", data.get("supercell")),
                        "temperatures": _grid_temperatures(e["temperatures"], where) if "temperatures" in e else temps,
                        "opt": "--grid"})
    return entries


def _compositions(args) -> list:
    """The structures of the sweep with their labels, supercells and temperatures, read and
    checked (finite, memory) before anything else happens."""
    from nvnmd.md.workflow import Composition, lgps_supercell

    temps = _temps(args.temperatures or DEFAULT_TEMPERATURES)
    entries = _read_grid(args.grid) if args.grid else []
    for text in args.structure or []:
        label, path = _structure_option(text)
        entries.append({"label": label, "file": path, "supercell": None, "temperatures": None, "opt": "--structure"})
    comps = []
    if not entries:
        reps = _supercell(args)
        atoms = _repeat_checked(lgps_supercell((1, 1, 1)), reps, args.backend)
        return [Composition("lgps", atoms, temps, f"shipped lgps_relaxed.extxyz x {','.join(map(str, reps))}")]
    for e in entries:
        label = _label_of(e["label"], e["file"], e["opt"])
        text = e["supercell"] if e["supercell"] is not None else (args.supercell or "1,1,1")
        try:
            reps = tuple(int(x) for x in str(text).split(","))
        except ValueError:
            reps = ()
        if len(reps) != 3 or min(reps) < 1:
            raise NvnmdError(f"structure {label}: supercell must be three positive integers like 2,2,1, got {text}")
        atoms = _repeat_checked(_read_structure(e["file"]), reps, args.backend,
                                what=f"structure {label} repeated {','.join(map(str, reps))}")
        source = f"{e['file']}" + (f" x {','.join(map(str, reps))}" if reps != (1, 1, 1) else "")
        comps.append(Composition(label, atoms, e["temperatures"] or temps, source))
    return comps


def _check_elements(compositions, type_map, what: str) -> None:
    for c in compositions:
        missing = sorted(set(c.atoms.get_chemical_symbols()) - set(type_map), key=c.atoms.get_chemical_symbols().index)
        if missing:
            raise NvnmdError(f"structure {c.label} ({c.formula}) has {', '.join(missing)}, which {what} lacks "
                             f"(its type map: {' '.join(type_map)}); no run was started")


def cmd_conductivity(args) -> int:
    from nvnmd.md.engine import run_identity
    from nvnmd.md.results import compare_temperature, write_results
    from nvnmd.md.workflow import (analyse_run, check_runs, clear_run, plan_runs, report_run, steps_done,
                                   stored_config)
    from nvnmd.outputs import check_output_dir

    if args.analyse_only and args.overwrite:
        raise NvnmdError("--analyse-only reads the runs in --output, --overwrite replaces them: give one")
    if args.scheduler and args.workers is not None:
        raise NvnmdError("--workers sizes the local cluster; with --scheduler the scheduler's workers run the sweep")
    if args.workers is not None and args.workers < 1:
        raise NvnmdError(f"--workers must be ≥ 1, got {args.workers}")
    if args.scheduler and not args.analyse_only:
        from nvnmd.md.sweep import check_address

        check_address(args.scheduler)
    config = _config(args, 0.0)
    comps = _compositions(args)
    if args.compare_T is not None and compare_temperature(comps, args.compare_T) is None:
        raise NvnmdError(f"--compare-T {args.compare_T:g}: not a temperature every structure runs at")
    out = check_output_dir(args.output)
    runs = plan_runs(comps, config, out)
    log = print
    if args.analyse_only:
        config = stored_config(out, runs, config)
        runs = plan_runs(comps, config, out)
        check_runs(runs, analyse_only=True)
        results = [analyse_run(r.run_dir, r.T) for r in runs]
        for r, res in zip(runs, results):
            report_run(r, res, "Li", log)
        summary = write_results(out, comps, runs, results, config, compare_T=args.compare_T, log=log)
        _print_summary(summary, out)
        return 0
    check_runs(runs, overwrite=args.overwrite)
    backend, spec, why = _make(args, out, with_spec=True)
    try:
        what = f"the image {spec['image']}" if spec["image"] else f"the {spec['name']} model"
        _check_elements(comps, backend.type_map, what)
        check_runs(runs, backend, overwrite=args.overwrite)
        identity = run_identity(comps[0].atoms, backend)
    finally:
        if hasattr(backend, "close"):  # the workers build their own; a board link is not held meanwhile
            backend.close()
    for r in runs:
        if args.overwrite:
            clear_run(r.run_dir)
        done = steps_done(r.run_dir)
        state = "complete, kept" if done >= r.config.steps else (f"resumes at step {done}" if done >= 0 else "new")
        log(f"{r.rel}: {state} ({r.config.steps} steps)")
    from nvnmd.backends import make_backend
    from nvnmd.md.sweep import connect, run_sweep

    with connect(args.scheduler, args.workers, tasks=len(runs), log=log) as client:
        results = run_sweep(client, runs, make_backend, spec, identity, progress=not args.quiet, log=log)
    for r, res in zip(runs, results):
        report_run(r, res, "Li", log)
    summary = write_results(out, comps, runs, results, config, backend_note=why, compare_T=args.compare_T, log=log)
    _print_summary(summary, out)
    return 0


def _print_summary(summary: dict, out: Path) -> None:
    comps = summary["compositions"]
    if len(comps) == 1 and len(summary["runs"]) < 2:
        r = summary["runs"][0]
        print(f"T = {r['T_K']:g} K: D = {r['D_cm2_s']:.3e} cm²/s, σ = {r['sigma_mS_cm']:.3g} mS/cm; "
              f"Ea and σ(300 K) need runs at two temperatures or more (-T 700,900,1100)")
    for c in comps:
        fit = c["arrhenius"]
        name = f"{c['label']} ({c['formula']}): " if len(comps) > 1 else ""
        if math.isfinite(fit["Ea_eV"]):
            print(f"{name}Ea = {fit['Ea_eV']:.3f} ± {fit['Ea_err_eV']:.3f} eV, σ(300 K) = {fit['sigma_300K_mS_cm']:.3g} "
                  f"± {fit['sigma_300K_err_mS_cm']:.2g} mS/cm; {_versus(c.get('experiment'))}")
        elif len(comps) > 1 or len(summary["runs"]) > 1:
            print(f"{name}no Arrhenius fit: {fit.get('note', '')}; {_versus(c.get('experiment'))}")
    names = ["conductivity.json", "conductivity.csv", "compositions.csv", "msd.png", "arrhenius.png"]
    names += ["composition.png"] if len(comps) > 1 else []
    names += ["msd_energy.png"] if (out / "msd_energy.png").exists() else []
    print(f"wrote {out}/{', '.join(names)}")


def _versus(exp: dict | None) -> str:
    """What a composition's numbers are compared with, in the summary line."""
    if not exp:
        return "no published experiment for this composition in nvnmd.analysis.experiments"
    parts = [f"{exp['sigma_mS_cm']:.3g} mS/cm at {exp['T_K']:.0f} K"] if exp["sigma_mS_cm"] is not None else []
    parts += [f"Ea {exp['Ea_eV']:.2f} eV"] if exp["Ea_eV"] is not None else []
    extra = f"; {exp['note']}" if exp.get("note") else ""
    return f"experiment {exp['short']} (doi:{exp['doi']}): {', '.join(parts)}{extra}"


def cmd_demo(args) -> int:
    """Embedded student -> quantize -> virtual board on loopback -> NVT at 3 temperatures -> σ, Ea."""
    from nvnmd.md.engine import MDConfig
    from nvnmd.md.workflow import conductivity_workflow, lgps_supercell

    from nvnmd.outputs import check_output_dir

    logging.basicConfig(level=logging.WARNING)
    if args.steps < 1:
        raise NvnmdError(f"--steps must be ≥ 1, got {args.steps}")
    out = check_output_dir(args.output)
    image = ensure_image(None, None, out)
    atoms = lgps_supercell(tuple(int(r) for r in SHIPPED_SUPERCELL.split(",")))
    config = MDConfig(steps=args.steps, traj_every=10, thermo_every=10, checkpoint_every=1000)
    with DemoBoard(image) as board:
        print(f"backend: {board.description}")
        summary = conductivity_workflow(atoms, board.backend, [700.0, 900.0, 1100.0], config, out,
                                        progress=not args.quiet, backend_note=board.description)
        stats = board.backend.board.stats
        print(f"link: {stats['requests']} requests, {stats['bytes_out'] / 1e6:.1f} MB out, "
              f"{stats['bytes_in'] / 1e6:.1f} MB back, {stats['retries']} retries")
    _print_summary(summary, out)
    return 0


class DemoBoard:
    """The virtual board served on 127.0.0.1 by a thread of this process, and a `board` backend on it.

    The host side is exactly what drives an FPGA: `BoardBackend` -> `Board` driver -> protocol
    v1 frames (CRC-32C, sequence numbers) -> a TCP socket; the board side decodes the frames and
    runs the simulator on the uploaded image. A thread rather than a child process: the
    protocol is strictly request/response, so the two sides never compete for the interpreter,
    and no server process can outlive the demo."""

    def __init__(self, image):
        from nvnmd.backends import make_backend
        from nvnmd.host.server import VirtualBoard

        self.server = VirtualBoard()
        self.url = self.server.start_tcp()
        try:
            self.backend = make_backend("board", image=image, url=self.url)[0]
        except BaseException:
            self.server.stop()
            raise
        self.description = (f"board over {self.url} (virtual board: the bit-accurate simulator behind the "
                            f"board protocol, served by this process)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.backend.close()
        finally:
            self.server.stop()
