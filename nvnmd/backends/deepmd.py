"""The `deepmd` backend: deepmd-kit DeepPot on the float student — the GPU/CPU fallback.

Runs on a GPU when TensorFlow sees one, otherwise on the CPU; the choice is logged once.
deepmd-kit builds its own neighbour list; a host Verlet list passed in only serves the
short-range guard (nvnmd/backends/guard.py), which the model's `.pairs.json` sidecar enables.
"""

from __future__ import annotations

import logging

import numpy as np

from nvnmd.backend import Result
from nvnmd.backends.guard import ShortRangeGuard
from nvnmd.quiet import quiet_native

log = logging.getLogger("nvnmd")


def tensorflow_gpus() -> list[str]:
    with quiet_native():
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]


class DeepmdBackend:
    name = "deepmd"

    def __init__(self, model_path):
        from nvnmd.student import load_student

        from nvnmd.student import model_sha256

        student = load_student(model_path)
        self.model_sha256 = model_sha256(model_path)  # what a run's checkpoint records it ran
        with quiet_native():
            from deepmd.infer import DeepPot

            self.dp = DeepPot(str(model_path))
        gpus = tensorflow_gpus()
        self.device = f"GPU ({', '.join(gpus)})" if gpus else "CPU"
        log.info("deepmd backend on %s", self.device)
        self.type_map = list(self.dp.get_type_map())
        self.rcut = float(self.dp.get_rcut())
        self.sel = list(student.sel)
        self.max_neighbors = None
        self.guard = ShortRangeGuard.from_pairs(student.closest_pairs, self.type_map)

    def compute(self, positions, types, cell, pbc=True, neighbors=None) -> Result:
        coord = np.asarray(positions, dtype=np.float64).reshape(1, -1)
        box = np.asarray(cell, dtype=np.float64).reshape(1, 9) if pbc else None
        e, f, v, ae, _ = self.dp.eval(coord, box, np.asarray(types), atomic=True)
        result = Result(energy=float(e.ravel()[0]), forces=f.reshape(-1, 3), virial=v.reshape(3, 3),
                        atom_energy=ae.reshape(-1), info={"device": self.device})
        return result if self.guard is None else self.guard.apply(result, positions, types, cell, pbc, neighbors)
