"""The image of a student quantized on the shipped calibration frames: one function for every
command that needs an image and was given only a model (md, conductivity, demo, board
selftest, the benchmarks).

`student_image(model)` quantizes `model` (default: the embedded student) once per process and
per model content: the cache key is `nvnmd.student.model_sha256`, the SHA-256 of the student file, which the
image also carries in its meta (`model_sha256`), so a cached image on disk can be checked
against the model it is meant to stand for (`image_model_sha256`).
"""

from __future__ import annotations

import os
from pathlib import Path

from nvnmd.image import Image
from nvnmd.student import model_sha256

_CACHE: dict[str, bytes] = {}


def image_model_sha256(image: Image) -> str | None:
    """The SHA-256 of the student an image was quantized from (None for images made before
    images carried it, or imported from deepmd-kit NVNMD models)."""
    return image.meta.get("model_sha256")


def student_image(model: str | os.PathLike | None = None) -> Image:
    """`model` (default: the embedded student) quantized on the shipped frames, as an Image."""
    from nvnmd.quantize.build import quantize
    from nvnmd.quantize.data import default_frames_path, load_frames
    from nvnmd.student import default_student_path, load_student

    path = Path(model) if model else default_student_path()
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    digest = model_sha256(path)
    if digest not in _CACHE:
        student = load_student(path)
        q, _ = quantize(student, load_frames(default_frames_path(), student.type_map))
        q.meta_extra["source"] = student.source
        q.meta_extra["model_sha256"] = digest
        _CACHE[digest] = q.to_image().to_bytes()
    return Image.from_bytes(_CACHE[digest], source=f"image of {path}")
