"""Labelled frames for calibration, `nvnmd test` and benchmarks, read through dpdata.

`load_frames(path, type_map)` accepts a deepmd/npy system directory, a directory of such
systems (searched recursively, like the shipped nvnmd/data/frames), any single file dpdata
recognises by its extension (every frame of multi-frame files such as extxyz), or a file or
directory in a dpdata format named by `fmt`; elements are mapped onto the model's type map
by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvnmd.errors import CorruptFileError, StructureError
from nvnmd.neighbors import check_cell


@dataclass
class Frame:
    system: str
    coord: np.ndarray  # [N, 3] Å
    cell: np.ndarray  # [3, 3]
    types: np.ndarray  # [N], model type indices
    energy: float | None = None
    forces: np.ndarray | None = None
    virial: np.ndarray | None = None

    @property
    def natoms(self) -> int:
        return len(self.types)


def default_frames_path() -> Path:
    """The shipped LGPS frames (deepmd/npy systems lgps50, lgps400): the default calibration set."""
    from nvnmd.resources import shipped

    return shipped("frames")


def load_frames(path, type_map: list[str], fmt: str | None = None) -> list[Frame]:
    import dpdata

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    if path.is_dir() and fmt and not fmt.lower().startswith("deepmd"):
        systems = [(str(path), sysm) for sysm in _read(dpdata, path, fmt)]  # a directory format (abacus/scf, ...)
    elif path.is_dir():
        roots = sorted({p.parent for p in path.rglob("type.raw")})
        if not roots:
            raise CorruptFileError(f"{path}: no deepmd/npy system (type.raw) found in this directory")
        systems = [(str(r), sysm) for r in roots for sysm in _read(dpdata, r, fmt or "deepmd/npy")]
    else:
        systems = [(str(path), sysm) for sysm in _read(dpdata, path, fmt or "auto")]
    frames: list[Frame] = []
    for name, sysm in systems:
        names = list(sysm["atom_names"])
        missing = [e for e in names if e not in type_map]
        counts = sysm["atom_numbs"]
        if any(e in missing and c > 0 for e, c in zip(names, counts)):
            raise StructureError(f"{name}: elements {missing} are not in the model's type map {type_map}")
        remap = np.array([type_map.index(e) if e in type_map else -1 for e in names])
        types = remap[np.asarray(sysm["atom_types"])]
        labelled = "energies" in sysm.data
        try:
            for cell in sysm["cells"]:
                check_cell(cell)
        except StructureError as exc:
            raise StructureError(f"{name}: {exc}") from None
        for f in range(sysm.get_nframes()):
            frames.append(Frame(
                system=name, coord=np.asarray(sysm["coords"][f], float), cell=np.asarray(sysm["cells"][f], float),
                types=types.astype(np.int64),
                energy=float(sysm["energies"][f]) if labelled else None,
                forces=np.asarray(sysm["forces"][f], float) if labelled and "forces" in sysm.data else None,
                virial=np.asarray(sysm["virials"][f], float) if labelled and "virials" in sysm.data else None,
            ))
    if not frames:
        raise CorruptFileError(f"{path}: no frames")
    return frames


def _read(dpdata, path: Path, fmt: str) -> list:
    """The systems in `path`: one for most formats; several for multi-frame files such as
    extxyz, whose single-system reader would keep only the first frame."""
    guessed = fmt.lower() == "auto"
    if guessed:  # dpdata's own rule: the file name's extension
        fmt = path.name.split(".")[-1].lower()
    try:
        try:
            single = dpdata.LabeledSystem(str(path), fmt=fmt)
        except (KeyError, AssertionError, ValueError, IndexError, NotImplementedError):
            single = dpdata.System(str(path), fmt=fmt)
    except Exception as exc:  # dpdata's readers raise many unrelated types for foreign files
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        hint = "; give its dpdata format explicitly" if guessed else ""
        raise CorruptFileError(f"{path}: dpdata cannot read it as {fmt} ({msg}){hint}") from None
    if path.is_file():
        try:
            multi = dpdata.MultiSystems.from_file(str(path), fmt=fmt)
        except Exception:  # a format without a multi-system reader: the single system is all
            multi = None
        if multi is not None and multi.get_nframes() > single.get_nframes():
            return list(multi.systems.values())
    return [single]
