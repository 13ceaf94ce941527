"""Shared fixtures: the embedded student, the shipped LGPS frames and their quantized model."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "nvnmd" / "data"


@pytest.fixture(scope="session")
def student_path() -> Path:
    return DATA / "lgps_student.pb"


@pytest.fixture(scope="session")
def student(student_path):
    from nvnmd.student import load_student

    return load_student(student_path)


@pytest.fixture(scope="session")
def frames_dir() -> Path:
    return DATA / "frames"


@pytest.fixture(scope="session")
def quantized(student, frames_dir):
    """(nvq1 model, frames): the embedded student quantized on the shipped frames, once per
    session. Tests derive variants with dataclasses.replace / deepcopy, never in place."""
    from nvnmd.quantize.build import quantize
    from nvnmd.quantize.data import load_frames

    frames = load_frames(frames_dir, student.type_map)
    model, _ = quantize(student, frames)
    return model, frames
