"""A LAMMPS run of an nvnmd model: data file, input script, `mpirun -np N lmp`, trajectory back.

`pair="nvq1"`: the quantized image through `pair_style nvq1` (build.py's plugin, the model
exported by export.py); `pair="deepmd"`: a float student through deepmd-kit's `pair_style
deepmd` (its plugin found through the lammps.plugins entry point, as the `lmp` wrapper does).
Both write the same dump (id-sorted, %.17g, unwrapped through image flags) and log, which
`read_dump` and `loop_time` read for the shared analysis.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from nvnmd.errors import NvnmdError

ASE_TO_A_PER_PS = None  # set on first use (ase.units.fs * 1000)


@dataclass
class LammpsRun:
    ensemble: str = "nve"  # nve | nvt (Nosé–Hoover, damp 100 fs)
    temperature: float = 300.0  # K: velocities from the structure if it has them, else LAMMPS's create
    dt_fs: float = 1.0
    steps: int = 100
    dump_every: int = 10
    thermo_every: int = 10
    seed: int = 1
    skin: float = 1.0


def _v_scale() -> float:
    from ase import units

    return units.fs * 1000.0  # ASE velocity -> Å/ps


def write_data(path: Path, atoms, type_map: list[str]) -> None:
    """Box at the origin (LAMMPS's lower-triangular form when tilted), positions and velocities
    (Å/ps) at full precision. A diagonal cell is written as it is (no rotation), so positions,
    hence COORD codes, are the caller's bits."""
    from ase.data import atomic_masses, atomic_numbers

    cell = np.array(atoms.cell.array, dtype=np.float64)
    pos = np.array(atoms.positions, dtype=np.float64)
    v = atoms.get_velocities()
    v = None if v is None or not np.any(v) else np.asarray(v, dtype=np.float64) * _v_scale()
    tilted = bool(np.any(cell != np.diag(np.diag(cell))))
    if tilted:
        from nvnmd.lammps.box import lower_triangular

        cell, rot = lower_triangular(cell)
        pos = pos @ rot
        v = None if v is None else v @ rot
    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(type_map))
    if missing:
        raise NvnmdError(f"elements {' '.join(missing)} are not in the model's type map ({' '.join(type_map)})")
    c = [[float(x) for x in row] for row in cell]
    lines = [f"nvnmd structure\n\n{len(atoms)} atoms\n{len(type_map)} atom types\n\n"]
    lines += [f"0 {c[d][d]!r} {a}lo {a}hi\n" for d, a in enumerate("xyz")]
    if tilted:
        lines.append(f"{c[1][0]!r} {c[2][0]!r} {c[2][1]!r} xy xz yz\n")
    lines.append("\nMasses\n\n")
    lines += [f"{k + 1} {float(atomic_masses[atomic_numbers[s]])!r}\n" for k, s in enumerate(type_map)]
    lines.append("\nAtoms # atomic\n\n")
    lines += [f"{n + 1} {type_map.index(s) + 1} {p[0]!r} {p[1]!r} {p[2]!r}\n"
              for n, (s, p) in enumerate(zip(symbols, pos.tolist()))]
    if v is not None:
        lines.append("\nVelocities\n\n")
        lines += [f"{n + 1} {x[0]!r} {x[1]!r} {x[2]!r}\n" for n, x in enumerate(v.tolist())]
    path.write_text("".join(lines))


def input_script(pair_lines: str, run: LammpsRun, has_velocities: bool, plugin: str | None) -> str:
    ens = ("fix integ all nve" if run.ensemble == "nve" else
           f"fix integ all nvt temp {run.temperature!r} {run.temperature!r} 0.1")
    vel = ("" if has_velocities or run.temperature == 0 else
           f"velocity all create {run.temperature!r} {run.seed} dist gaussian mom yes\n")
    return (f"# written by nvnmd lammps\nunits metal\nboundary p p p\natom_style atomic\natom_modify map array\n"
            f"read_data data.lmp\n" + (f"plugin load {plugin}\n" if plugin else "") + pair_lines +
            f"neighbor {run.skin!r} bin\nneigh_modify every 1 delay 0 check yes\n" + vel +
            f"timestep {run.dt_fs / 1000.0!r}\n{ens}\n"
            f"thermo_style custom step time temp pe ke etotal press pxx pyy pzz pxy pxz pyz vol\nthermo_modify format float %.17g\n"
            f"thermo {run.thermo_every}\n"
            f"dump traj all custom {run.dump_every} traj.lammpstrj id type x y z ix iy iz vx vy vz fx fy fz\n"
            f"dump_modify traj sort id format float %.17g\n"
            f"run {run.steps}\n")


def _wheel(dist: str, needle: str) -> Path:
    from nvnmd.lammps.build import _wheel_file

    return _wheel_file(dist, needle)


def lammps_env() -> dict:
    env = dict(os.environ)
    libdirs = [str(_wheel("mpich", "libmpi.so.12").parent)]
    try:  # deepmd-kit's TensorFlow backend plugin needs the tensorflow wheel's libraries
        libdirs.append(str(_wheel("tensorflow-cpu", "tensorflow/libtensorflow_cc.so.2").parent))
    except NvnmdError:
        pass
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (env.get("LD_LIBRARY_PATH", ""), *libdirs) if p)
    plugins = [ep.load()() for ep in metadata.entry_points(group="lammps.plugins")]
    if plugins:
        env["LAMMPS_PLUGIN_PATH"] = ":".join(plugins)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_lammps(workdir: Path, atoms, run: LammpsRun, np_ranks: int = 1, *, image=None, student=None,
               type_map=None, timeout: float | None = None) -> dict:
    """Write and run the input in `workdir`; returns {"log", "dump", "us_per_atom_step", ...}."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if image is not None:
        from nvnmd.lammps import export
        from nvnmd.lammps.build import plugin_path

        type_map = list(image.meta.get("type_map") or type_map)
        model = workdir / "model.nvqlmp"
        if not model.exists() or _stamp(model) != image.digest():
            export.write(image, model)
            (workdir / "model.nvqlmp.sha256").write_text(image.digest())
        plugin = str(plugin_path())
        pair = f"pair_style nvq1 model.nvqlmp\npair_coeff * * {' '.join(type_map)}\n"
    elif student is not None:
        plugin = None
        pair = f"pair_style deepmd {Path(student).resolve()}\npair_coeff * * {' '.join(type_map)}\n"
    else:
        raise NvnmdError("run_lammps needs an nvq1 image or a float student")
    v = atoms.get_velocities()
    if (v is None or not np.any(v)) and run.temperature > 0:
        # the engine's own initial velocities: deterministic here, not LAMMPS's `velocity create`,
        # whose rescaling and momentum removal sum over ranks in a rank-dependent order
        from nvnmd.md.engine import maxwell_boltzmann

        atoms = atoms.copy()
        atoms.set_velocities(maxwell_boltzmann(np.array(atoms.get_masses()), run.temperature, run.seed))
        v = atoms.get_velocities()
    write_data(workdir / "data.lmp", atoms, type_map)
    (workdir / "in.lmp").write_text(input_script(pair, run, v is not None and bool(np.any(v)), plugin))
    for old in ("traj.lammpstrj", "log.lammps"):
        (workdir / old).unlink(missing_ok=True)
    lmp = str(_wheel("lammps", "lammps/lmp"))
    cmd = [str(_wheel("mpich", "bin/mpirun")), "-np", str(np_ranks), lmp, "-in", "in.lmp", "-log", "log.lammps",
           "-screen", "none", "-nocite"]
    r = subprocess.run(cmd, cwd=workdir, env=lammps_env(), capture_output=True, text=True, timeout=timeout)
    log = (workdir / "log.lammps").read_text() if (workdir / "log.lammps").exists() else ""
    if r.returncode or "ERROR" in log:
        err = [ln for ln in (log + r.stderr + r.stdout).splitlines() if "ERROR" in ln]
        raise NvnmdError(f"LAMMPS failed ({' '.join(cmd[:3])} ...): {(err or [r.stderr.strip() or 'no message'])[0]}")
    return {"workdir": str(workdir), "ranks": np_ranks, **loop_time(log), "warnings": _warnings(log),
            "thermo": read_thermo(log)}


def _stamp(model: Path) -> str | None:
    s = model.with_name(model.name + ".sha256")
    return s.read_text().strip() if s.exists() else None


def _warnings(log: str) -> list[str]:
    return sorted({ln.strip() for ln in log.splitlines() if ln.startswith("WARNING")})


def loop_time(log: str) -> dict:
    m = re.findall(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms", log)
    if not m:
        return {}
    sec, procs, steps, natoms = float(m[-1][0]), int(m[-1][1]), int(m[-1][2]), int(m[-1][3])
    perf = re.findall(r"Performance: ([0-9.eE+-]+) ns/day", log)
    return {"seconds": sec, "steps": steps, "natoms": natoms, "procs": procs,
            "us_per_atom_step": 1e6 * sec / max(steps * natoms, 1),
            "ns_per_day": float(perf[-1]) if perf else None}


def read_thermo(log: str) -> list[dict]:
    """The thermo rows of a LAMMPS log (every run's table), as dicts of floats."""
    rows, head = [], None
    for line in log.splitlines():
        words = line.split()
        if words[:2] == ["Step", "Time"]:
            head = words
            continue
        if head and len(words) == len(head):
            try:
                rows.append(dict(zip(head, map(float, words))))
                continue
            except ValueError:
                pass
        head = None if head and line.startswith("Loop time") else head
    return rows


def _dump_box(lines: list[str]) -> np.ndarray:
    """Rows a, b, c of a dump's BOX BOUNDS (orthogonal or with the xy xz yz tilts)."""
    v = [[float(x) for x in ln.split()] for ln in lines]
    xy, xz, yz = (v[0][2], v[1][2], v[2][2]) if len(v[0]) == 3 else (0.0, 0.0, 0.0)
    xlo = v[0][0] - min(0.0, xy, xz, xy + xz)
    xhi = v[0][1] - max(0.0, xy, xz, xy + xz)
    ylo, yhi = v[1][0] - min(0.0, yz), v[1][1] - max(0.0, yz)
    return np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, v[2][1] - v[2][0]]])


def read_dump(path) -> dict:
    """Frames of the id-sorted dump: steps, types, unwrapped positions, velocities, forces, cell."""
    steps, pos, vel, frc, boxes, types = [], [], [], [], [], None
    with open(path) as fh:
        while True:
            line = fh.readline()
            if not line:
                break
            if not line.startswith("ITEM: TIMESTEP"):
                continue
            steps.append(int(fh.readline()))
            fh.readline()
            n = int(fh.readline())
            fh.readline()
            cell = _dump_box([fh.readline() for _ in range(3)])
            fh.readline()
            a = np.loadtxt([fh.readline() for _ in range(n)], ndmin=2)
            types = a[:, 1].astype(int)
            pos.append(a[:, 2:5] + a[:, 5:8] @ cell)
            vel.append(a[:, 8:11])
            frc.append(a[:, 11:14])
            boxes.append(cell)
    return {"steps": np.array(steps), "types": types, "positions": np.array(pos), "velocities": np.array(vel),
            "forces": np.array(frc), "cell": np.array(boxes)}
