"""nvq1 simulator: reference vs fast kernel bit identity, permutation invariance, padding
equivalence of out-of-range neighbours, saturation and overflow reporting, table exactness,
and accuracy bounds against deepmd-kit's DeepPot on the shipped LGPS frames."""

import numpy as np
import pytest

from nvnmd.compute import encode_request
from nvnmd.errors import NeighborOverflowError
from nvnmd.neighbors import build_neighbor_list


@pytest.fixture(scope="module")
def backend(quantized):
    from nvnmd.backends.sim import SimBackend
    from nvnmd.image import Image

    return SimBackend(Image.from_bytes(quantized[0].to_image().to_bytes()))


def _request(frame, cutoff, pbc=True):
    nl = build_neighbor_list(frame.coord, frame.cell, cutoff)
    return encode_request(frame.coord, frame.types, frame.cell, nl.nlist, nl.shifts)


def _same(a, b):
    assert a.energy == b.energy
    np.testing.assert_array_equal(a.atom_energy, b.atom_energy)
    np.testing.assert_array_equal(a.forces, b.forces)
    np.testing.assert_array_equal(a.virial, b.virial)
    assert a.saturations == b.saturations and a.overflow_atoms == b.overflow_atoms
    assert a.counters == b.counters


def test_contract_attributes(backend):
    sim = backend.sim
    assert sim.type_map == ["Li", "Ge", "P", "S"] and sim.ntypes == 4
    assert sim.rcut == 6.0 and sim.sel == [32, 8, 8, 40]
    assert sim.max_neighbors >= 256


@pytest.mark.parametrize("which", [3, 4, 0])  # two 50-atom frames and a 400-atom frame
def test_reference_and_fast_bit_identical(backend, quantized, which):
    frame = quantized[1][which]
    req = _request(frame, backend.rcut + 1.0)  # with a skin: out-of-range slots included
    fast = backend.sim.compute(req)
    _same(fast, backend.sim.compute(req, kernel="reference"))
    # the numpy-only path of the fast kernel (used when no C compiler is available)
    from nvnmd.sim.nvq1.fast import FastKernel

    numpy_only = FastKernel(quantized[0], use_c=False).compute(req.coords, req.types, req.cell, req.nlist, req.shifts)
    for a, b in zip(numpy_only[:3], (fast.atom_energy, fast.forces, fast.virial)):
        np.testing.assert_array_equal(a, b)
    assert dict(sorted(numpy_only[3].items())) == fast.counters and numpy_only[4] == fast.overflow_atoms


def _kernels(model):
    """The fast kernel with its C pass (GEMMs in BLAS, and in plain C loops) and with numpy only
    (skips when no compiler is available)."""
    from nvnmd.sim.nvq1 import ckernel
    from nvnmd.sim.nvq1.fast import FastKernel

    if ckernel.get() is None:
        pytest.skip("no C compiler: the numpy path is the fast kernel")
    with_c, no_blas, numpy_only = FastKernel(model), FastKernel(model, use_blas=False), FastKernel(model, use_c=False)
    ffi = with_c.clib[0]
    assert with_c._fitp.dgemm != ffi.NULL and no_blas._fitp.dgemm == ffi.NULL  # scipy's BLAS found; loops
    assert numpy_only.clib is None
    return with_c, no_blas, numpy_only


def _same_raw(a, b):
    for x, y in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert dict(a[3]) == dict(b[3]) and a[4] == b[4]


@pytest.mark.parametrize("squeeze", [1.0, 0.62])
def test_c_passes_match_numpy_on_all_shipped_frames(backend, quantized, squeeze):
    """Every shipped frame (50- and 400-atom cells), with a Verlet skin, and compressed so that
    close contacts, T/D clips and neighbour overflow occur: C pass (BLAS or loop GEMMs) == numpy
    path, counters too. One kernel object runs all frames, so its scratch and atom blocks are
    rebuilt for every shape (400 atoms span several 32-atom blocks per type) and reused."""
    with_c, no_blas, numpy_only = _kernels(quantized[0])
    sizes = set()
    for frame in quantized[1]:
        coord, cell = frame.coord * squeeze, frame.cell * squeeze
        nl = build_neighbor_list(coord, cell, backend.rcut + (1.0 if squeeze == 1.0 else 0.0))
        req = encode_request(coord, frame.types, cell, nl.nlist, nl.shifts)
        args = (req.coords, req.types, req.cell, req.nlist, req.shifts)
        expected = numpy_only.compute(*args)
        _same_raw(with_c.compute(*args), expected)
        _same_raw(no_blas.compute(*args), expected)
        sizes.add(frame.natoms)
    assert {50, 400} <= sizes


def test_saturating_model_counts_identical(backend, quantized):
    """A model whose fractions are pushed up (and one layer's biases scaled) so that many sites
    clip, forward and backward: reference, C passes and numpy path agree bit for bit, every
    counter included (the final-layer gradient clip is charged once per atom, as on the board)."""
    import dataclasses

    from nvnmd.sim.nvq1.ref import compute_reference

    model = quantized[0]
    up = 7
    frac = {k: v + (up if k in ("D", "gT", "gR", "gG", "gs", "gh", "gu", "p") else 0) for k, v in model.frac.items()}
    layers = [dataclasses.replace(layer, b=layer.b * 64) if k == 1 else layer for k, layer in enumerate(model.layers)]
    hot = dataclasses.replace(model, frac=frac, f_g=[v + up for v in model.f_g], layers=layers)
    frame = quantized[1][3]
    req = _request(frame, backend.rcut + 1.0)
    args = (req.coords, req.types, req.cell, req.nlist, req.shifts)
    ref = compute_reference(hot, *args)
    for kernel in _kernels(hot):
        _same_raw(kernel.compute(*args), ref)
    assert {"D", "z", "g"} <= set(ref[3]) and len(ref[3]) >= 5, ref[3]


def test_g_grid_clamp_and_slope_clip_counted_as_reference(backend, quantized):
    """SPEC §5.4 order when a slot leaves the G grid and G' clips in the same step: G' is
    saturated (and counted in G_slope) first, then zeroed. A model whose G-table origin is
    shifted 3 segments up (s̃ of close neighbours falls below the grid) and whose G' is read
    3 bits coarser (G' clips): reference, C passes and numpy path give the same counters."""
    import dataclasses

    from nvnmd.sim.nvq1.ref import compute_reference

    model = quantized[0]
    frac = dict(model.frac, Gq=model.frac["Gq"] - 3)
    shifted = dataclasses.replace(model, frac=frac, s0=model.s0 + (3 << 17))
    req = _request(quantized[1][3], backend.rcut)
    args = (req.coords, req.types, req.cell, req.nlist, req.shifts)
    ref = compute_reference(shifted, *args)
    assert ref[3].get("g_range", 0) > 0 and ref[3].get("G_slope", 0) > 0, ref[3]
    for kernel in _kernels(shifted):
        _same_raw(kernel.compute(*args), ref)


def test_bit_identical_with_close_contacts_and_overflow(backend, quantized):
    frame = quantized[1][3]
    squeeze = 0.62  # compressed cell: close pairs below the u grid, sel overflow, saturations
    coord, cell = frame.coord * squeeze, frame.cell * squeeze
    nl = build_neighbor_list(coord, cell, backend.rcut)
    req = encode_request(coord, frame.types, cell, nl.nlist, nl.shifts)
    fast, ref = backend.sim.compute(req), backend.sim.compute(req, kernel="reference")
    _same(fast, ref)
    assert fast.overflow_atoms > 0 and fast.saturations > 0 and "close_contact" in fast.counters
    with pytest.raises(NeighborOverflowError):
        backend.compute(coord, frame.types, cell)


def test_permutation_invariance(backend, quantized):
    frame = quantized[1][0]
    req = _request(frame, backend.rcut)
    base = backend.sim.compute(req)
    rng = np.random.default_rng(7)
    perm = rng.permutation(frame.natoms)
    inv = np.argsort(perm)
    nl = build_neighbor_list(frame.coord[perm], frame.cell, backend.rcut)
    # also shuffle the slots within every row
    cols = np.argsort(rng.random(nl.nlist.shape), axis=1)
    nlist = np.take_along_axis(nl.nlist, cols, axis=1)
    shifts = np.take_along_axis(nl.shifts, cols[..., None], axis=1)
    req2 = encode_request(frame.coord[perm], frame.types[perm], frame.cell, nlist, shifts)
    res = backend.sim.compute(req2)
    assert res.energy == base.energy
    np.testing.assert_array_equal(res.atom_energy, base.atom_energy[perm])
    np.testing.assert_array_equal(res.forces, base.forces[perm])
    np.testing.assert_array_equal(res.virial, base.virial)
    assert inv.shape == perm.shape


def test_neighbours_beyond_rcut_are_padding(backend, quantized):
    frame = quantized[1][0]
    exact = backend.sim.compute(_request(frame, backend.rcut))
    skin = _request(frame, backend.rcut + 2.0)
    assert skin.nlist.shape[1] > 0
    _same(exact, backend.sim.compute(skin))
    # far-away listed neighbours (beyond the 8 Å relative-coordinate window) too
    wide = np.concatenate([skin.nlist, np.zeros((frame.natoms, 3), np.int32)], axis=1)
    far = np.concatenate([skin.shifts, np.full((frame.natoms, 3, 3), 3, np.int8)], axis=1)
    skin.nlist, skin.shifts = wide, far
    _same(exact, backend.sim.compute(skin))


def test_backend_with_verlet_list(backend, quantized):
    """The backend accepts a caller's list built with a skin and gives the same floats."""
    frame = quantized[1][4]
    plain = backend.compute(frame.coord, frame.types, frame.cell)
    nl = build_neighbor_list(frame.coord, frame.cell, backend.rcut + 1.5)
    skin = backend.compute(frame.coord, frame.types, frame.cell, neighbors=nl)
    assert plain.energy == skin.energy
    np.testing.assert_array_equal(plain.forces, skin.forces)
    np.testing.assert_array_equal(plain.virial, skin.virial)
    assert skin.info["saturations"] == 0 and skin.info["overflow_atoms"] == 0


def test_row_wider_than_board_refused(backend, quantized):
    frame = quantized[1][3]
    req = _request(frame, backend.rcut)
    pad = np.full((frame.natoms, 300 - req.nlist.shape[1]), -1, np.int32)
    req.nlist = np.concatenate([req.nlist, pad], axis=1)
    req.shifts = np.zeros(req.nlist.shape + (3,), np.int8)
    with pytest.raises(NeighborOverflowError):
        backend.sim.compute(req)


def test_tables_exact_at_grid_points(quantized):
    from nvnmd.sim.nvq1.ref import coeffs, cubic, cubic_slope

    model = quantized[0]
    tables = [(model.u_tab[t, 0], model.u_tab[t, 1]) for t in range(model.ntypes)]
    tables += [(model.u_tab[t, 2], model.u_tab[t, 3]) for t in range(model.ntypes)]
    tables += [(model.g_tab[k, 0, :, m], model.g_tab[k, 1, :, m]) for k in range(model.g_tab.shape[0]) for m in (0, 7)]
    tables.append((model.tanh_tab[0], model.tanh_tab[1]))
    for y, m in tables:
        for k in range(len(y) - 1):
            a, b, c, d = (int(v) for v in coeffs(y, m, k))
            assert cubic(a, b, c, d, 0) == y[k]
            assert a + b + c + d == y[k + 1]  # the polynomial meets the next grid value exactly
            assert cubic_slope(a, b, c, 0) == m[k]


def test_padding_constant_matches_empty_slot(quantized):
    """An atom whose neighbours all sit beyond rcut equals the all-padding constant."""
    from nvnmd.sim.nvq1.fast import FastKernel

    model = quantized[0]
    coords = np.array([[0, 0, 0], [7 << 20, 0, 0]], dtype=np.int64)
    cell = np.diag([30 << 20] * 3).astype(np.int64)
    nlist = np.array([[1], [0]], dtype=np.int32)
    shifts = np.zeros((2, 1, 3), np.int8)
    k = FastKernel(model)
    with_far = k.compute(coords, np.array([0, 3]), cell, nlist, shifts)
    empty = k.compute(coords, np.array([0, 3]), cell, np.full((2, 1), -1, np.int32), shifts)
    for a, b in zip(with_far[:3], empty[:3]):
        np.testing.assert_array_equal(a, b)


def test_accuracy_against_deeppot(backend, quantized, student_path):
    from nvnmd.quantize.evaluate import compare, run_deeppot, run_image

    frames = quantized[1]
    pred, stats = run_image(backend, frames)
    ref = run_deeppot(student_path, frames)
    res = compare(pred, ref, frames, "float")
    assert stats["saturations"] == 0 and stats["overflow_atoms"] == 0
    # issue targets: 0.1 meV/atom, 1 meV/Å, 1 meV/atom; asserted with a factor 2 to spare
    # (measured on the interim student: 0.011, 0.17, 0.016)
    assert res["energy_per_atom"]["rmse"] <= 0.5e-4  # eV/atom
    assert res["force"]["rmse"] <= 0.5e-3  # eV/Å
    assert res["virial_per_atom"]["rmse"] <= 0.5e-3  # eV/atom
    labels_q = compare(pred, "labels", frames, "labels")
    labels_f = compare(ref, "labels", frames, "labels")
    assert labels_q["force"]["rmse"] <= labels_f["force"]["rmse"] * 1.01
    assert labels_q["energy_per_atom"]["rmse"] <= labels_f["energy_per_atom"]["rmse"] * 1.01 + 1e-4
