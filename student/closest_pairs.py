"""Closest distance per element pair in a student's training data -> the sidecar JSON
`<model>.pairs.json` that nvnmd's short-range guard reads (nvnmd/backends/guard.py).

Below these distances the student has seen no data and its energy is extrapolation; the guard
switches a repulsive wall on there. Element pairs never seen within the cutoff get the cutoff.
Usage: python student/closest_pairs.py DATA_DIR MODEL.pb   (writes MODEL.pairs.json)
The logic lives in nvnmd.distill.data (nvnmd distill writes the same sidecar for its students).
"""
import json
import sys


def closest_pairs(data_dir: str, type_map: list[str], cutoff: float) -> tuple[dict, int]:
    from nvnmd.distill.data import closest_pairs as pairs_of, deepmd_systems

    return pairs_of(deepmd_systems(data_dir), type_map, cutoff)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[-1])
    from nvnmd.distill.data import write_pairs_sidecar
    from nvnmd.student import load_student

    data_dir, model = sys.argv[1:]
    student = load_student(model)
    path = write_pairs_sidecar(model, data_dir, student.type_map, student.rcut)
    print(json.dumps(json.loads(path.read_text())["pairs"]))


if __name__ == "__main__":
    main()
