"""Closest distance per element pair in a student's training data -> the sidecar JSON
`<model>.pairs.json` that nvnmd's short-range guard reads (nvnmd/backends/guard.py).

Below these distances the student has seen no data and its energy is extrapolation; the guard
switches a repulsive wall on there. Element pairs never seen within the cutoff get the cutoff.
Usage: python student/closest_pairs.py DATA_DIR MODEL.pb   (writes MODEL.pairs.json)
"""
import json
import sys
from pathlib import Path

import numpy as np


def closest_pairs(data_dir: str, type_map: list[str], cutoff: float) -> tuple[dict, int]:
    import dpdata

    from nvnmd.neighbors import build_neighbor_list

    best = np.full((len(type_map), len(type_map)), cutoff)
    frames = 0
    for sysdir in sorted(p.parent for p in Path(data_dir).rglob("type.raw")):
        s = dpdata.LabeledSystem(str(sysdir), fmt="deepmd/npy")
        types = np.array([type_map.index(s["atom_names"][t]) for t in s["atom_types"]])
        for coord, cell in zip(s["coords"], s["cells"]):
            i, j, shift = build_neighbor_list(coord, cell, cutoff).slots(cell)
            r = np.linalg.norm(coord[j] + shift - coord[i], axis=1)
            np.minimum.at(best, (types[i], types[j]), r)
            frames += 1
    pairs = {f"{type_map[a]}-{type_map[b]}": round(float(best[a, b]), 4)
             for a in range(len(type_map)) for b in range(a, len(type_map))}
    return pairs, frames


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[-1])
    from nvnmd.image import write_atomic
    from nvnmd.student import load_student, pairs_sidecar

    data_dir, model = sys.argv[1:]
    student = load_student(model)
    pairs, frames = closest_pairs(data_dir, student.type_map, student.rcut)
    doc = {"what": "closest distance per element pair in the training data, Å (pairs never seen within rcut: rcut)",
           "data": Path(data_dir).name, "frames": frames, "rcut": student.rcut, "pairs": pairs}
    write_atomic(pairs_sidecar(model), (json.dumps(doc, indent=1) + "\n").encode())
    print(json.dumps(pairs))


if __name__ == "__main__":
    main()
