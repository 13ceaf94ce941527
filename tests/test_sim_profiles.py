"""What a numeric profile tells the rest of nvnmd (nvnmd.sim.profile, sim/board.py): limits,
kernels, the radial-table floor the guard starts at, and loading with a named kernel."""

import math

import numpy as np
import pytest

import nvnmd.sim
from nvnmd.errors import UnsupportedModelError
from nvnmd.sim.board import Profile


@pytest.fixture(scope="module")
def image(quantized):
    return quantized[0].to_image()


@pytest.mark.parametrize("name", sorted(nvnmd.sim.PROFILES))
def test_every_registered_profile_describes_itself(name):
    board = nvnmd.sim.profile(name)
    assert isinstance(board, Profile) and board.name == name
    assert board.max_types > 0 and board.max_neighbors > 0 and board.kernels


def test_unknown_profile_refused_in_one_line():
    with pytest.raises(UnsupportedModelError, match=r"^image profile 'nope' is not supported \(known: nvnmd-v0, nvq1\)$"):
        nvnmd.sim.profile("nope")


def test_nvq1_table_floor_is_the_first_valid_u_segment(image, quantized):
    from nvnmd.backends.guard import table_floor

    board = nvnmd.sim.profile("nvq1")
    r_lo = board.table_floor(image)
    assert r_lo == math.sqrt(quantized[0].k_lo / 8) == quantized[0].table_floor == table_floor(image)
    assert 1.0 < r_lo < 2.0  # below every pair of the LGPS data (SPEC §5.2: 0.8x the closest one, or raised to fit R̃)
    assert nvnmd.sim.profile("nvnmd-v0").table_floor(image) is None


def test_kernels_by_name(image, quantized):
    board = nvnmd.sim.profile("nvq1")
    assert board.kernels[0] == "fast" and {"numpy", "reference", "tf64"} <= set(board.kernels)
    assert "tf64" not in nvnmd.sim.profile("nvnmd-v0").kernels  # the tf64 backend refuses such images
    fast, numpy_only = nvnmd.sim.load(image), nvnmd.sim.load(image, kernel="numpy")
    assert fast.max_neighbors == board.max_neighbors and fast.device == "CPU"
    assert numpy_only.engine.clib is None
    from nvnmd.compute import encode_request
    from nvnmd.neighbors import build_neighbor_list

    frame = quantized[1][3]
    nl = build_neighbor_list(frame.coord, frame.cell, fast.rcut)
    req = encode_request(frame.coord, frame.types, frame.cell, nl.nlist, nl.shifts)
    a, b = fast.compute(req), numpy_only.compute(req)
    np.testing.assert_array_equal(a.forces, b.forces)
    assert a.energy == b.energy and a.counters == b.counters


def test_unknown_kernel_refused_in_one_line(image):
    with pytest.raises(UnsupportedModelError, match=r"^profile 'nvq1' has no 'gpu' kernel \(it offers fast, numpy, "):
        nvnmd.sim.load(image, kernel="gpu")
