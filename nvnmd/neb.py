"""`nvnmd neb`: the barrier of one Li hop along c in LGPS, ASE's climbing-image NEB over the
nvnmd ASE calculator, for any set of backends side by side (the seed's Figure 5 in miniature).

The path: the shipped relaxed LGPS cell, repeated (default 2,2,1); the LGPS parent's Li
sites are aligned onto it (`nvnmd.structures.lgps.align_parent`) and the hop is the
shortest one from an occupied Li site to an empty one whose displacement is mostly along c
(|Δz| ≥ 0.8 |Δr|, 1.8–3.2 Å; in LGPS that is Li1 16h ↔ Li3 8f in the c channel). For each
backend both end points are relaxed with that backend (FIRE), then NEB with IDPP
interpolation and a climbing image. Backends are named as for `nvnmd md` (`sim` and `tf64`
run the quantized image, `deepmd` the float student, `teacher` whatever the teacher
backend loads); a backend that cannot be made is recorded as unavailable, not fatal.
Writes neb.json (energies along the path, barriers, convergence) and neb.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from nvnmd.errors import NvnmdError, StructureError

IMAGE_BACKENDS = ("sim", "tf64", "board")
CHANNEL = ("Li1", "Li3")  # the sites of LGPS's c channel (Kamaya et al. 2011)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("neb", help="Li hop barrier along c in LGPS (ASE NEB) for several backends side by side")
    p.add_argument("--backends", default="deepmd,sim", help="comma-separated backends (default deepmd,sim; teacher too if installed)")
    p.add_argument("--model", help="float student (.pb); default: the embedded LGPS student")
    p.add_argument("--image", help="quantized image (.nvq); default: quantize --model into the output dir")
    p.add_argument("--teacher", help="teacher spec for the teacher backend (default: its own default)")
    p.add_argument("--url", help="board URL for the board backend")
    p.add_argument("--structure", help="one relaxed LGPS unit cell (default: the shipped one)")
    p.add_argument("--supercell", default="2,2,1")
    p.add_argument("--start", help="hop in this supercell instead (e.g. the last frame of an `nvnmd md` run: "
                   "its Li arrangement, quenched by each backend, is the initial state); FILE or FILE@INDEX")
    p.add_argument("--hop", help="FROM-TO site labels of the hop, e.g. Li3-Li1 (default: the shortest Li1/Li3 channel hop)")
    p.add_argument("--images", type=int, default=7, help="intermediate NEB images (default 7)")
    p.add_argument("--fmax", type=float, default=0.05, help="force convergence in eV/Å (default 0.05)")
    p.add_argument("--steps", type=int, default=400, help="most optimiser steps per stage (default 400)")
    p.add_argument("-o", "--output", default="runs/neb")
    p.set_defaults(func=cmd_neb)


def hop_endpoints(unit, supercell=(2, 2, 1), sites=None, start=None):
    """(initial Atoms, index of the hopping Li, destination position in Å, hop description);
    `sites` = (from, to) site labels, e.g. ("Li3", "Li1"), or None for any channel hop.
    `start`: the supercell to hop in (e.g. a frame of an MD run of `unit` repeated), same cell
    and atom count as unit.repeat(supercell); its Li decide which sites are occupied."""
    from nvnmd.structures.lgps import align_parent

    parent_sites, labels, rms = align_parent(unit)
    atoms = unit.repeat(supercell)
    if start is not None:
        if len(start) != len(atoms) or not np.allclose(start.cell.array, atoms.cell.array, atol=1e-3):
            raise StructureError(f"--start must be the {','.join(map(str, supercell))} supercell of the unit cell "
                                 f"({len(atoms)} atoms, the same cell)")
        atoms = start.copy()
        atoms.calc = None
        atoms.wrap()
    symbols = np.array(atoms.get_chemical_symbols())
    li = np.flatnonzero(symbols == "Li")
    rep = np.array(supercell)
    # the parent's sites in the supercell, fractional
    shifts = np.array([(i, j, k) for i in range(rep[0]) for j in range(rep[1]) for k in range(rep[2])])
    all_sites = ((parent_sites[None, :, :] + shifts[:, None, :]) / rep).reshape(-1, 3)
    all_labels = np.tile(labels, len(shifts))
    is_li = np.char.startswith(all_labels.astype(str), "Li")
    cell = atoms.cell.array
    frac = atoms.get_scaled_positions()

    def dist(a, b):
        d = a[:, None, :] - b[None, :, :]
        d -= np.round(d)
        return d @ cell

    li_sites = np.flatnonzero(is_li)
    d_sites = np.linalg.norm(dist(all_sites[li_sites], frac[li]), axis=2)  # [sites, Li]
    vacant = li_sites[d_sites.min(axis=1) > 1.2]
    home = all_labels[li_sites[d_sites.argmin(axis=0)]]  # the site each Li sits on
    best = None
    for v in vacant:
        label = str(all_labels[v])
        if label not in CHANNEL or (sites is not None and label != sites[1]):
            continue
        vec = -dist(frac[li], all_sites[v:v + 1])[:, 0, :]  # Li -> site
        r = np.linalg.norm(vec, axis=1)
        ok = (r > 1.8) & (r < 3.2) & (np.abs(vec[:, 2]) >= 0.8 * r) & np.isin(home, CHANNEL) & (home != all_labels[v])
        if sites is not None:
            ok &= home == sites[0]
        for k in np.flatnonzero(ok):
            others = np.delete(np.arange(len(li)), k)
            if np.linalg.norm(dist(all_sites[v:v + 1], frac[li[others]]), axis=2).min() < 1.8:
                continue
            if best is None or r[k] < best[0]:
                best = (r[k], li[k], atoms.positions[li[k]] + vec[k], f"{home[k]} -> {all_labels[v]}")
    if best is None:
        raise StructureError("no empty Li site 1.8–3.2 Å along c from an occupied one in this cell")
    r, index, dest, label = best
    return atoms, int(index), dest, {"hop_length_A": float(r), "sites": str(label), "align_rms_A": float(rms)}


def _relax(atoms, fmax, steps):
    """End points: BFGS to a tenth of the band's fmax (a 200-atom cell relaxed to only the band's
    0.05 eV/Å still has ~0.1 eV to give, which the band would find and call a negative barrier)."""
    from ase.optimize import BFGS

    opt = BFGS(atoms, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    return converged, int(opt.nsteps)


def barrier_for(make_calc, initial, index, dest, n_images=7, fmax=0.05, steps=400) -> dict:
    """Relax both ends with the calculator from `make_calc()` and run CI-NEB; energies in eV."""
    from ase.mep import NEB
    from ase.optimize import FIRE

    t0 = time.perf_counter()
    start = initial.copy()
    start.calc = make_calc()
    ok_a, n_a = _relax(start, fmax / 10, 3 * steps)
    end = start.copy()
    end.positions[index] = dest
    end.calc = make_calc()
    ok_b, n_b = _relax(end, fmax / 10, 3 * steps)
    moved_back = float(np.linalg.norm(end.positions[index] - start.positions[index]))
    if moved_back < 0.5:  # the empty site is no minimum here: the Li went home, there is no hop
        return {"no_hop": f"the destination is not a minimum for this backend: the relaxed Li ended "
                          f"{moved_back:.2f} Å from its start", "steps": {"initial": n_a, "final": n_b},
                "seconds": round(time.perf_counter() - t0, 1)}
    images = [start] + [start.copy() for _ in range(n_images)] + [end]
    for im in images[1:-1]:
        im.calc = make_calc()
    neb = NEB(images, climb=True, method="improvedtangent")
    neb.interpolate(method="idpp", mic=True)
    opt = FIRE(neb, logfile=None)
    ok_neb = bool(opt.run(fmax=fmax, steps=steps))
    energies = np.array([im.get_potential_energy() for im in images])
    e = energies - energies[0]
    path = np.concatenate([[0.0], np.cumsum([np.linalg.norm(images[i + 1].positions - images[i].positions)
                                              for i in range(len(images) - 1)])])
    return {"barrier_eV": float(e.max()), "reverse_barrier_eV": float(e.max() - e[-1]), "dE_end_eV": float(e[-1]),
            "energies_eV": e.tolist(), "path_A": path.tolist(), "hop_distance_relaxed_A": moved_back,
            "converged": {"initial": ok_a, "final": ok_b, "neb": ok_neb},
            "steps": {"initial": n_a, "final": n_b, "neb": int(opt.nsteps)},
            "max_force_eV_A": float(np.max(np.linalg.norm(neb.get_forces(), axis=1))),
            "seconds": round(time.perf_counter() - t0, 1)}


def _calculator_factory(name, args, outdir):
    """A function returning a fresh NvnmdCalculator on backend `name` (one backend shared, so
    models load once; ASE's NEB gets one calculator object per image)."""
    from nvnmd.backends import make_backend
    from nvnmd.calculator import NvnmdCalculator
    from nvnmd.md.cli import ensure_image
    from nvnmd.student import default_student_path

    kwargs = {}
    if name in IMAGE_BACKENDS:
        kwargs["image"] = ensure_image(args.model, args.image, outdir)
        if name == "board":
            kwargs["url"] = args.url
    elif name == "teacher":
        if args.teacher:
            kwargs["teacher"] = args.teacher
    else:
        kwargs["model"] = args.model or str(default_student_path())
    backend, why = make_backend(name, **kwargs)
    return (lambda: NvnmdCalculator(backend)), why


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, r in results.items():
        if "energies_eV" in r:
            ax.plot(r["path_A"], r["energies_eV"], "o-", label=f"{name}: {r['barrier_eV']:.3f} eV")
    ax.set_xlabel("path length (Å)")
    ax.set_ylabel("E − E(initial) (eV)")
    ax.set_title("LGPS Li hop along c (CI-NEB)")
    if ax.lines:
        ax.legend()
    else:  # every backend was refused (e.g. the destination is no minimum): say so, not an empty legend
        ax.text(0.5, 0.5, "no backend gave a path", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_neb(args: argparse.Namespace) -> int:
    from importlib import resources

    from ase.io import read

    from nvnmd.image import write_atomic
    from nvnmd.structures.common import supercell_tuple

    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    unit = read(args.structure) if args.structure else read(resources.files("nvnmd.data") / "lgps_relaxed.extxyz")
    sites = tuple(args.hop.split("-")) if args.hop else None
    if sites and (len(sites) != 2 or not set(sites) <= set(CHANNEL)):
        raise NvnmdError(f"--hop must be FROM-TO with sites among {', '.join(CHANNEL)} (got '{args.hop}')")
    start = None
    if args.start:
        path, _, index = args.start.partition("@")
        start = read(path, index=int(index) if index else -1)
    initial, index, dest, hop = hop_endpoints(unit, supercell_tuple(args.supercell), sites, start)
    print(f"hop: Li {index}, {hop['sites']} (empty), {hop['hop_length_A']:.2f} Å along c "
          f"({len(initial)} atoms; parent aligned to {hop['align_rms_A']:.2f} Å rms)")
    results = {}
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        try:
            make_calc, why = _calculator_factory(name, args, outdir)
        except (NvnmdError, ImportError) as exc:
            results[name] = {"unavailable": str(exc)}
            print(f"{name}: unavailable ({exc})")
            continue
        r = barrier_for(make_calc, initial, index, dest, args.images, args.fmax, args.steps)
        r["backend"] = why
        results[name] = r
        if "no_hop" in r:
            print(f"{name}: {r['no_hop']}")
            continue
        print(f"{name}: barrier {r['barrier_eV']:.3f} eV (reverse {r['reverse_barrier_eV']:.3f}), "
              f"NEB converged {r['converged']['neb']} in {r['steps']['neb']} steps, {r['seconds']:.0f} s")
    out = {"what": "Li hop along c in LGPS, CI-NEB over the nvnmd ASE calculator", "hop": hop, "start": args.start,
           "supercell": args.supercell, "natoms": len(initial), "hopping_atom": index, "n_images": args.images,
           "fmax_eV_A": args.fmax, "results": results}
    write_atomic(outdir / "neb.json", (json.dumps(out, indent=2) + "\n").encode())
    plot(results, outdir / "neb.png")
    print(f"wrote {outdir / 'neb.json'} and {outdir / 'neb.png'}")
    return 0
