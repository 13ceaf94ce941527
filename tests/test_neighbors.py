"""build_neighbor_list (C cell list) against ASE's primitive_neighbor_list: same pairs, same layout.

Random orthorhombic and triclinic cells, boxes thinner than the cutoff (many images of one
atom), unwrapped positions far outside the cell, the shipped LGPS cell, and the
min_distance refusal. The reference is ASE packed with the documented row order.
"""

import os

import numpy as np
import pytest
from ase.geometry import cellpar_to_cell
from ase.neighborlist import primitive_neighbor_list

from nvnmd.errors import StructureError
from nvnmd.neighbors import build_neighbor_list, c_kernel


def ase_reference(positions, cell, cutoff):
    i, j, S = primitive_neighbor_list("ijS", [True] * 3, cell, positions, cutoff, self_interaction=False)
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    i, j, S = i[order], j[order], S[order]
    n = len(positions)
    counts = np.bincount(i, minlength=n)
    width = int(counts.max()) if counts.size else 0
    col = np.arange(len(i)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[i]
    nlist = np.full((n, width), -1, dtype=np.int32)
    shifts = np.zeros((n, width, 3), dtype=np.int8)
    nlist[i, col] = j
    shifts[i, col] = S
    return nlist, shifts


def assert_same(positions, cell, cutoff):
    nl = build_neighbor_list(positions, cell, cutoff)
    ref_nlist, ref_shifts = ase_reference(positions, cell, cutoff)
    assert nl.nlist.dtype == np.int32 and nl.shifts.dtype == np.int8
    np.testing.assert_array_equal(nl.nlist, ref_nlist)
    np.testing.assert_array_equal(nl.shifts, ref_shifts)
    # the convention itself: r_ij = x_j + shift @ cell - x_i is within the cutoff
    valid = nl.nlist >= 0
    rij = positions[np.where(valid, nl.nlist, 0)] + nl.shifts @ cell - positions[:, None, :]
    assert np.all(np.linalg.norm(rij, axis=-1)[valid] < cutoff)


@pytest.mark.skipif(os.environ.get("NVNMD_NO_C") == "1", reason="C kernel disabled: the ASE path is under test")
def test_c_kernel_compiles():
    assert c_kernel() is not None


@pytest.mark.parametrize("seed", range(24))
def test_random_cells_match_ase(seed):
    rng = np.random.default_rng(seed)
    angles = rng.uniform(65, 115, 3) if seed % 2 else [90.0] * 3
    cell = cellpar_to_cell(list(rng.uniform(3.0, 12.0, 3)) + list(angles))
    if seed % 3 == 0:  # a general orientation, not ASE's standard upper/lower form
        cell = cell @ np.linalg.qr(rng.normal(size=(3, 3)))[0]
    n = int(rng.integers(1, 60))
    # unwrapped: up to a few cells outside the box in any direction
    positions = rng.uniform(-0.5, 1.5, (n, 3)) @ cell + rng.normal(0.0, 4.0, (n, 3))
    cutoff = float(rng.uniform(2.0, 9.0))  # often larger than the cell heights
    assert_same(positions, cell, cutoff)


def test_tiny_box_many_images():
    cell = np.diag([2.5, 3.0, 2.0])
    positions = np.array([[0.1, 0.2, 0.3], [1.3, 1.9, 1.1]])
    assert_same(positions, cell, 6.5)


def test_lgps_cell_and_supercell():
    from nvnmd.md.workflow import lgps_supercell

    for reps, cutoff in (((1, 1, 1), 7.0), ((2, 2, 1), 7.0), ((3, 3, 2), 6.0)):
        atoms = lgps_supercell(reps)
        rng = np.random.default_rng(len(atoms))
        positions = atoms.positions + rng.normal(0.0, 0.3, atoms.positions.shape)
        positions[::7] += atoms.cell.array[0] * 3 - atoms.cell.array[2]  # some atoms far outside
        assert_same(positions, np.array(atoms.cell.array), cutoff)


def test_min_distance_refused():
    cell = np.eye(3) * 10.0
    positions = np.array([[1.0, 1.0, 1.0], [5.0, 5.0, 5.0], [9.7, 1.0, 1.0]])
    with pytest.raises(StructureError, match=r"^atoms 0 and 2 are 1\.300 Å apart, closer than the minimum 1\.500 Å$"):
        build_neighbor_list(positions, cell, 4.0, min_distance=1.5)
    build_neighbor_list(positions, cell, 4.0, min_distance=1.0)


def test_no_neighbours():
    nl = build_neighbor_list(np.zeros((1, 3)), np.eye(3) * 20.0, 5.0)
    assert nl.nlist.shape == (1, 0) and nl.shifts.shape == (1, 0, 3)


def test_repeated_builds_with_a_stale_width_hint():
    # an MD run's builds guess the row width from the previous one; a denser structure with
    # the same atom count must still come out complete (the kernel retries wider)
    rng = np.random.default_rng(5)
    cell = np.diag([14.0, 15.0, 16.0])
    sparse = rng.uniform(0.0, 1.0, (120, 3)) @ cell
    dense = rng.uniform(0.0, 0.4, (120, 3)) @ cell
    for positions in (sparse, dense, sparse):
        assert_same(positions, cell, 5.0)


def test_moved_beyond_is_the_displacement_rule():
    from nvnmd.neighbors import moved_beyond

    rng = np.random.default_rng(11)
    ref = rng.uniform(0.0, 20.0, (500, 3))
    for scale in (0.05, 0.2, 0.4):
        pos = ref + rng.normal(0.0, scale, ref.shape)
        d = pos - ref
        expect = bool(np.max(np.sum(d * d, axis=1)) > 0.5**2)
        assert moved_beyond(pos, ref, 0.5) is expect
    # exactly half a skin is not beyond it; the next float up is
    pos = ref.copy()
    pos[7, 0] = ref[7, 0] + 0.5
    exact = (pos[7, 0] - ref[7, 0]) ** 2
    assert moved_beyond(pos, ref, float(np.sqrt(exact))) is False
    assert moved_beyond(pos, ref, 0.25) is True
    assert moved_beyond(ref[:0], ref[:0], 0.5) is False
