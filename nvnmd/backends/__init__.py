"""nvnmd.backends: implementations of nvnmd.backend.Backend and the factory that picks one.

    make_backend("sim", image=...)        in-process bit-accurate simulator (quantized model)
    make_backend("board", url=..., image=...)  host driver on any link URL (FPGA or virtual board)
    make_backend("tf64", image=...)       the quantized model in TensorFlow float64 (GPU if seen), bit-identical to sim
    make_backend("deepmd", model=...)     deepmd-kit DeepPot on the float student (GPU if seen, else CPU)
    make_backend("teacher", teacher=SPEC)  a pre-trained teacher (embedded DPA4-Neo-OMat24, any DeepPot model,
                                          or an ASE calculator as module:callable); needs the distill extra
    make_backend("auto", ...)             board (if --url) > GPU (tf64 for an image, else deepmd) > sim
                                          > CPU deepmd, and says so
"""

from __future__ import annotations

import logging

from nvnmd.errors import NvnmdError

log = logging.getLogger("nvnmd")

NAMES = ("auto", "sim", "tf64", "board", "deepmd", "teacher")


def make_backend(name: str, *, image=None, model=None, url: str | None = None, threads: int = 1, teacher=None,
                 timeout: float | None = None):
    """Return (backend, reason) for backend `name`; `image` is an .nvq path or Image, `model` a student,
    `threads` the sim kernel's threads (the same bits for any count), `teacher` a --teacher spec
    (None: the embedded default teacher), `timeout` the board driver's per-request timeout in
    seconds (None: the driver's default)."""
    if name == "auto":
        if url:
            return make_backend("board", image=image, url=url, timeout=timeout)[0], "board: a board URL was given"
        from nvnmd.backends.deepmd import tensorflow_gpus

        gpus = tensorflow_gpus()
        if gpus and image is not None:
            backend = make_backend("tf64", image=image)[0]
            return backend, f"tf64 on {backend.device}: quantized model on the GPU, bit-identical to the board"
        if gpus and model is not None:
            return make_backend("deepmd", model=model)[0], "deepmd: TensorFlow sees a GPU"
        if image is not None:
            return (make_backend("sim", image=image, threads=threads)[0],
                    "sim: no board URL and no GPU; quantized model in the simulator")
        if model is not None:
            return make_backend("deepmd", model=model)[0], "deepmd on CPU: no board, GPU or quantized image"
        raise NvnmdError("backend auto: give a quantized image, a student model or a board URL")
    if name == "sim":
        if image is None:
            raise NvnmdError("backend sim needs a quantized image (.nvq); make one with `nvnmd quantize`")
        from nvnmd.backends.sim import SimBackend

        return SimBackend(image, threads=threads), "sim" + (f", {threads} threads" if threads > 1 else "")
    if name == "tf64":
        if image is None:
            raise NvnmdError("backend tf64 needs a quantized image (.nvq); make one with `nvnmd quantize`")
        from nvnmd.backends.tf64 import Tf64Backend

        backend = Tf64Backend(image)
        return backend, f"tf64 on {backend.device}"
    if name == "board":
        if image is None or not url:
            raise NvnmdError("backend board needs --url and a quantized image (.nvq)")
        from nvnmd.backends.board import BoardBackend

        if timeout is None:
            return BoardBackend(url, image), "board"
        return BoardBackend(url, image, timeout=timeout), f"board ({timeout:g} s per-request timeout)"
    if name == "deepmd":
        if model is None:
            raise NvnmdError("backend deepmd needs a student model (.pb)")
        from nvnmd.backends.deepmd import DeepmdBackend

        backend = DeepmdBackend(model)
        return backend, f"deepmd on {backend.device}"
    if name == "teacher":
        from nvnmd.backends.teacher import load_teacher

        backend = load_teacher(teacher)
        return backend, f"teacher {backend.spec.describe()} on {backend.device}"
    raise NvnmdError(f"unknown backend '{name}' (choose {', '.join(NAMES)})")
