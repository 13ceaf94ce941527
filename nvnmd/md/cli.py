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


RUN_FILES = ("checkpoint.npz", "traj.extxyz", "thermo.csv")
SHIPPED_SUPERCELL = "2,2,1"  # the shipped 50-atom cell x 4: 200 atoms, every cell height > rcut + skin


def _md_args(p: argparse.ArgumentParser, steps: int) -> None:
    from nvnmd.md.engine import MDConfig

    d = MDConfig()
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

    c = sub.add_parser("conductivity", help="NVT MD at several temperatures -> D(Li), σ, Arrhenius Ea and σ(300 K)")
    _backend_args(c)
    _md_args(c, steps=20000)
    c.add_argument("-T", "--temperatures", default="700,900,1100", help="comma-separated temperatures in K")
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
    from ase.io import read

    from nvnmd.md.engine import check_memory, check_structure
    from nvnmd.md.workflow import lgps_supercell

    reps = _supercell(args)
    if args.structure:
        try:
            atoms = read(args.structure)
        except Exception as exc:  # ASE raises many types for unreadable files
            raise NvnmdError(f"cannot read structure {args.structure}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    else:
        atoms = lgps_supercell((1, 1, 1))
    check_structure(atoms)
    check_memory(len(atoms) * reps[0] * reps[1] * reps[2], backend=getattr(args, "backend", "auto"),
                 what=f"--supercell {','.join(map(str, reps))}")
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


def _make(args, outdir: Path):
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
    return backend


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


def cmd_conductivity(args) -> int:
    from nvnmd.md.workflow import check_runs, conductivity_workflow
    from nvnmd.outputs import check_output_dir

    if args.analyse_only and args.overwrite:
        raise NvnmdError("--analyse-only reads the runs in --output, --overwrite replaces them: give one")
    temps = _temps(args.temperatures)
    config = _config(args, 0.0)
    atoms = _structure(args)
    out = check_output_dir(args.output)
    check_runs(out, temps, config, atoms, analyse_only=args.analyse_only, overwrite=args.overwrite)
    backend = None if args.analyse_only else _make(args, out)
    summary = conductivity_workflow(atoms, backend, temps, config, out, analyse_only=args.analyse_only,
                                    progress=not args.quiet, overwrite=args.overwrite)
    _print_summary(summary, out)
    return 0


def _print_summary(summary: dict, out: Path) -> None:
    fit = summary["arrhenius"]
    if len(summary["runs"]) < 2:
        r = summary["runs"][0]
        print(f"T = {r['T_K']:g} K: D = {r['D_cm2_s']:.3e} cm²/s, σ = {r['sigma_mS_cm']:.3g} mS/cm; "
              f"Ea and σ(300 K) need runs at two temperatures or more (-T 700,900,1100)")
    else:
        print(f"Ea = {fit['Ea_eV']:.3f} ± {fit['Ea_err_eV']:.3f} eV, σ(300 K) = {fit['sigma_300K_mS_cm']:.3g} "
              f"± {fit['sigma_300K_err_mS_cm']:.2g} mS/cm (LGPS experiment: 12 mS/cm, 0.22–0.25 eV)")
    print(f"wrote {out}/conductivity.json, conductivity.csv, msd.png, arrhenius.png")


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
