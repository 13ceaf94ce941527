"""`nvnmd md`, `nvnmd conductivity` and `nvnmd demo`: the jobs users run."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nvnmd.errors import NvnmdError


def _backend_args(p: argparse.ArgumentParser) -> None:
    from nvnmd.backends import NAMES

    p.add_argument("--backend", default="auto", choices=NAMES,
                   help="evaluator; auto picks board (needs --url) > GPU (tf64 for the image) > sim > CPU deepmd")
    p.add_argument("--model", help="float student (.pb); default: the embedded LGPS student")
    p.add_argument("--image", help="quantized image (.nvq); default: quantize --model into the output dir")
    p.add_argument("--teacher", help="with --backend teacher: dpa4-neo-omat24 (default), a deepmd-kit model "
                                     "(.pb/.pth/.pt/.dp) or an ASE calculator as module:callable")
    p.add_argument("--url", help="board URL (socket://127.0.0.1:PORT, /dev/ttyUSB0?baud=..., xdma://...)")


def _md_args(p: argparse.ArgumentParser, steps: int, dt: float, ensemble: str = "langevin") -> None:
    p.add_argument("--structure", help="starting structure (anything ASE reads); default: shipped relaxed LGPS")
    p.add_argument("--supercell", default="2,2,1", help="repeat the structure a,b,c times (default 2,2,1)")
    p.add_argument("--ensemble", default=ensemble, choices=["nve", "langevin", "csvr", "nose-hoover"],
                   help=f"integrator / thermostat (default {ensemble})")
    p.add_argument("--tau", type=float, default=100.0, help="csvr / nose-hoover time constant in fs (default 100)")
    p.add_argument("--friction", type=float, default=0.01, help="langevin friction in 1/fs (default 0.01)")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--dt", type=float, default=dt, help="time step in fs")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--skin", type=float, default=1.0, help="Verlet skin in Å")
    p.add_argument("--no-guard", action="store_true",
                   help="the bare model: no short-range wall below the training data's closest pairs")
    p.add_argument("--traj-every", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("-o", "--output", default="runs/md", help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("md", help="run MD on a structure with any backend (trajectory, thermo, checkpoints)")
    _backend_args(p)
    _md_args(p, steps=1000, dt=1.0)
    p.add_argument("-T", "--temperature", type=float, default=900.0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output")
    p.set_defaults(func=cmd_md)

    c = sub.add_parser("conductivity", help="NVT MD at several temperatures -> D(Li), σ, Arrhenius Ea and σ(300 K)")
    _backend_args(c)
    _md_args(c, steps=20000, dt=2.0, ensemble="csvr")  # CSVR barely perturbs diffusion; Langevin slows it
    c.add_argument("-T", "--temperatures", default="700,900,1100", help="comma-separated temperatures in K")
    c.add_argument("--analyse-only", action="store_true", help="only analyse existing trajectories in --output")
    c.set_defaults(func=cmd_conductivity, output="runs/conductivity")

    d = sub.add_parser("demo", help="embedded LGPS student -> quantize -> virtual board -> conductivity (< 10 min)")
    d.add_argument("-o", "--output", default="runs/demo")
    d.add_argument("--steps", type=int, default=15000, help="steps per temperature (2 fs each; default 30 ps)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)


def _structure(args):
    from ase.io import read

    from nvnmd.md.workflow import lgps_supercell

    reps = [int(x) for x in str(args.supercell).split(",")]
    if len(reps) != 3 or min(reps) < 1:
        raise NvnmdError(f"--supercell must be three positive integers like 2,2,1, got {args.supercell}")
    if args.structure:
        try:
            atoms = read(args.structure)
        except Exception as exc:  # ASE raises many types for unreadable files
            raise NvnmdError(f"cannot read structure {args.structure}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        return atoms.repeat(reps)
    return lgps_supercell(reps)


def ensure_image(model, image, outdir: Path, log=print):
    """The image to run: the given one, or the student quantized once into outdir/model.nvq."""
    if image:
        return image
    from nvnmd.image import Image
    from nvnmd.quantize.build import quantize
    from nvnmd.quantize.data import default_frames_path, load_frames
    from nvnmd.student import default_student_path, load_student

    path = outdir / "model.nvq"
    if path.exists():
        Image.read(path)  # refuse a corrupted cache loudly rather than run it
        return path
    student = load_student(model or default_student_path())
    log(f"quantizing {student.source} -> {path}")
    q, _ = quantize(student, load_frames(default_frames_path(), student.type_map))
    q.meta_extra["source"] = student.source
    q.to_image().write(path)
    return path


def _make(args, outdir: Path):
    from nvnmd.backends import make_backend
    from nvnmd.student import default_student_path

    model = args.model or str(default_student_path())
    image = None
    if args.backend in ("sim", "tf64", "board", "auto"):
        image = ensure_image(args.model, args.image, outdir)
    backend, why = make_backend(args.backend, image=image, model=model, url=args.url,
                               teacher=getattr(args, "teacher", None))
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
    return MDConfig(ensemble=args.ensemble, temperature=temperature, dt_fs=args.dt, steps=args.steps, seed=args.seed,
                    skin=args.skin, traj_every=args.traj_every, thermo_every=args.traj_every,
                    checkpoint_every=args.checkpoint_every, tau_fs=args.tau, friction_per_fs=args.friction)


def cmd_md(args) -> int:
    from nvnmd.md.engine import run_md

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    atoms = _structure(args)
    backend = _make(args, out)
    summary = run_md(atoms, backend, _config(args, args.temperature), out, resume=args.resume, progress=not args.quiet)
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
    if not temps or min(temps) <= 0:
        raise NvnmdError("--temperatures must be positive")
    return temps


def cmd_conductivity(args) -> int:
    from nvnmd.md.workflow import conductivity_workflow

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    atoms = _structure(args)
    backend = None if args.analyse_only else _make(args, out)
    summary = conductivity_workflow(atoms, backend, _temps(args.temperatures), _config(args, 0.0), out,
                                    analyse_only=args.analyse_only, progress=not args.quiet)
    _print_summary(summary, out)
    return 0


def _print_summary(summary: dict, out: Path) -> None:
    fit = summary["arrhenius"]
    print(f"Ea = {fit['Ea_eV']:.3f} ± {fit['Ea_err_eV']:.3f} eV, σ(300 K) = {fit['sigma_300K_mS_cm']:.3g} "
          f"± {fit['sigma_300K_err_mS_cm']:.2g} mS/cm (LGPS experiment: 12 mS/cm, 0.22–0.25 eV)")
    print(f"wrote {out}/conductivity.json, conductivity.csv, msd.png, arrhenius.png")


def cmd_demo(args) -> int:
    """Embedded student -> quantize -> virtual board on loopback -> NVT at 3 temperatures -> σ, Ea."""
    from nvnmd.md.engine import MDConfig
    from nvnmd.md.workflow import conductivity_workflow, lgps_supercell

    logging.basicConfig(level=logging.WARNING)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    image = ensure_image(None, None, out)
    atoms = lgps_supercell((2, 2, 1))
    config = MDConfig(ensemble="csvr", dt_fs=2.0, steps=args.steps, traj_every=10, thermo_every=10,
                      checkpoint_every=1000, tau_fs=100.0)
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
