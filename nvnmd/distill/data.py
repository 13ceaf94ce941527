"""Frames of a distillation: perturbation (dpdata), sampling, deepmd/npy sets, sel, closest pairs.

Frames of one composition (perturbed copies of one structure) are kept as plain arrays:
coords [F, N, 3], cells [F, 3, 3] and one list of symbols. A run over several compositions
keeps one such set, and one deepmd system, per composition, all in one type map (the union).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from nvnmd.errors import NvnmdError


def type_map_of(symbols: list[str]) -> list[str]:
    """Elements in order of first appearance (LGPS: Li Ge P S, the shipped student's order)."""
    return list(dict.fromkeys(symbols))


def union_type_map(symbol_lists) -> list[str]:
    """The elements of several compositions in periodic order (Li first for these sulfides): one
    order whatever order the structures are given in."""
    from ase.data import atomic_numbers

    return sorted({s for symbols in symbol_lists for s in symbols}, key=lambda s: atomic_numbers[s])


def _system(coords, cells, symbols, type_map=None):
    import dpdata

    tmap = list(type_map) if type_map else type_map_of(symbols)
    types = np.array([tmap.index(s) for s in symbols])
    return dpdata.System(data={
        "atom_names": tmap, "atom_numbs": [int(np.sum(types == t)) for t in range(len(tmap))],
        "atom_types": types, "orig": np.zeros(3), "cells": np.asarray(cells, float).reshape(-1, 3, 3),
        "coords": np.asarray(coords, float).reshape(len(cells), -1, 3)})


def perturb(coords, cells, symbols, copies: int, cell_fraction: float, atom_distance: float, seed: int):
    """`copies` perturbed copies of each frame (dpdata's System.perturb: a random cell strain of
    up to `cell_fraction` and atom shifts of about `atom_distance` Å). Seeded, so reproducible."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)  # dpdata draws from numpy's global generator
    try:
        out = _system(coords, cells, symbols).perturb(copies, cell_fraction, atom_distance, "normal")
    finally:
        np.random.set_state(state)
    symbols_out = [out["atom_names"][t] for t in out["atom_types"]]
    if symbols_out != list(symbols):
        raise AssertionError("dpdata reordered the atoms")
    return np.asarray(out["coords"]), np.asarray(out["cells"])


def save_frames(path: Path, coords, cells, symbols, **arrays) -> None:
    import io

    from nvnmd.image import write_atomic

    buf = io.BytesIO()
    np.savez(buf, coords=np.asarray(coords), cells=np.asarray(cells), symbols=np.array(symbols), **arrays)
    write_atomic(Path(path), buf.getvalue())


def load_frames_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    d["symbols"] = [str(s) for s in d["symbols"]]
    return d


def within_max_force(forces, max_force: float) -> np.ndarray:
    """The frames [F, N, 3] whose largest atomic force norm is at most max_force (eV/Å): the label
    filter of every labelled frame, those of the label stage and of each exploration round."""
    return np.max(np.linalg.norm(np.asarray(forces), axis=2), axis=1) <= max_force


def frame_sha256(coords, cell) -> str:
    """A frame's identity: sha256 of its float64 coordinates and cell, as the manifest records it."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(coords, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(cell, dtype=np.float64).tobytes())
    return h.hexdigest()


def write_deepmd(outdir: Path, coords, cells, symbols, energies, forces, virials, type_map=None) -> Path:
    """A labelled deepmd/npy system, written to a temporary folder and renamed into place; with
    `type_map`, every system of a run carries the same type_map.raw (absent elements count 0)."""
    import dpdata

    sysm = _system(coords, cells, symbols, type_map)
    labelled = dpdata.LabeledSystem(data={**sysm.data, "energies": np.asarray(energies, float),
                                          "forces": np.asarray(forces, float), "virials": np.asarray(virials, float)})
    outdir = Path(outdir)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = outdir.with_name(f".{outdir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    labelled.to("deepmd/npy", str(tmp), set_size=len(energies))
    shutil.rmtree(outdir, ignore_errors=True)
    tmp.rename(outdir)
    return outdir


def neighbour_counts(coords, cells, symbols, rcut: float, type_map=None) -> np.ndarray:
    """Most neighbours of each type (of `type_map`, default: the symbols' own) within rcut of any
    atom, over all frames."""
    from nvnmd.neighbors import build_neighbor_list

    tmap = list(type_map) if type_map else type_map_of(symbols)
    types = np.array([tmap.index(s) for s in symbols])
    most = np.zeros(len(tmap), dtype=int)
    for c, b in zip(coords, cells):
        i, j, _ = build_neighbor_list(c, b, rcut).slots(b)
        counts = np.zeros((len(symbols), len(tmap)), dtype=int)
        np.add.at(counts, (i, types[j]), 1)
        most = np.maximum(most, counts.max(axis=0))
    return most


def choose_sel(coords, cells, symbols, rcut: float, margin: float, limit: int = 128) -> list[int]:
    """deepmd-kit's sel: the most neighbours of each type seen, with a margin, rounded up to a
    multiple of 4; the board holds at most `limit` in all (fpga/SPEC.md §1)."""
    return choose_sel_systems([(coords, cells, symbols)], type_map_of(symbols), rcut, margin, limit)


def choose_sel_systems(systems, type_map: list[str], rcut: float, margin: float, limit: int = 128) -> list[int]:
    """choose_sel over several compositions [(coords, cells, symbols), ...]: the most neighbours of
    each type of `type_map` seen in any of them."""
    most = np.max([neighbour_counts(c, b, s, rcut, type_map) for c, b, s in systems], axis=0)
    sel = [int(4 * np.ceil(max(1, margin * m) / 4)) for m in most]
    if sum(sel) > limit:
        raise NvnmdError(f"sel {sel} (sum {sum(sel)}) exceeds the board's {limit} neighbours within rcut "
                         f"{rcut} Å; use a smaller --rcut")
    return sel


def closest_pairs(systems, type_map: list[str], cutoff: float) -> tuple[dict, int]:
    """Closest distance per element pair over frames [(coords, cells, symbols), ...]; element
    pairs never seen within the cutoff get the cutoff."""
    from nvnmd.neighbors import build_neighbor_list

    best = np.full((len(type_map), len(type_map)), cutoff)
    frames = 0
    for coords, cells, symbols in systems:
        types = np.array([type_map.index(s) for s in symbols])
        for coord, cell in zip(coords, cells):
            i, j, shift = build_neighbor_list(coord, cell, cutoff).slots(cell)
            r = np.linalg.norm(coord[j] + shift - coord[i], axis=1)
            np.minimum.at(best, (types[i], types[j]), r)
            np.minimum.at(best, (types[j], types[i]), r)
            frames += 1
    pairs = {f"{type_map[a]}-{type_map[b]}": round(float(best[a, b]), 4)
             for a in range(len(type_map)) for b in range(a, len(type_map))}
    return pairs, frames


def deepmd_systems(data_dir) -> list[tuple]:
    """(coords, cells, symbols) of every deepmd/npy system under data_dir (or under each of a list
    of folders, in that order)."""
    import dpdata

    dirs = [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)
    out = []
    for sysdir in [s for d in dirs for s in sorted(p.parent for p in Path(d).rglob("type.raw"))]:
        s = dpdata.LabeledSystem(str(sysdir), fmt="deepmd/npy")
        out.append((np.asarray(s["coords"]), np.asarray(s["cells"]), [s["atom_names"][t] for t in s["atom_types"]]))
    return out


def write_pairs_sidecar(model_path, data_dir, type_map: list[str], rcut: float) -> Path:
    """MODEL.pairs.json, the short-range guard's radii (nvnmd/backends/guard.py)."""
    from nvnmd.image import write_atomic
    from nvnmd.student import pairs_sidecar

    pairs, frames = closest_pairs(deepmd_systems(data_dir), type_map, rcut)
    names = [Path(data_dir).name] if isinstance(data_dir, (str, Path)) else [Path(d).name for d in data_dir]
    doc = {"what": "closest distance per element pair in the training data, Å (pairs never seen within rcut: rcut)",
           "data": ", ".join(names), "frames": frames, "rcut": rcut, "pairs": pairs}
    path = pairs_sidecar(model_path)
    write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())
    return path


def run_name(structure: int, temperature: float, volume_scale: float = 1.0) -> str:
    """The directory name of one MD run (teacher_md's and the explore stage's): scale 1 keeps the
    names of runs made before volume scales existed."""
    return f"s{structure}_T{int(round(temperature))}K" + ("" if volume_scale == 1.0 else f"_V{volume_scale:.3f}")


def scaled_to_volume(atoms, volume_scale: float):
    """The structure scaled isotropically to volume_scale times its volume (in place; returned)."""
    if volume_scale != 1.0:
        atoms.set_cell(atoms.cell.array * float(volume_scale) ** (1.0 / 3.0), scale_atoms=True)
    return atoms
