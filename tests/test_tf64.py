"""tf64: the quantized model evaluated in TensorFlow float64 is bit-identical to the simulator.

Exact equality of every ComputeResult field (energy, atom energies, forces, virial, overflow,
every saturation counter) against the `sim` fast kernel on the shipped 50- and 400-atom LGPS
frames, a compressed cell and a model pushed into saturation, against the reference kernel on
a model that also leaves the G grid, and a short Langevin MD run whose trajectory must be
byte-identical to the same run on the `sim` backend. Runs on the CPU (where CI has no GPU).
"""

import argparse
import copy

import numpy as np
import pytest

from nvnmd.compute import encode_request
from nvnmd.errors import NvnmdError
from nvnmd.neighbors import build_neighbor_list


@pytest.fixture(scope="module")
def image(quantized):
    from nvnmd.image import Image

    return Image.from_bytes(quantized[0].to_image().to_bytes())


@pytest.fixture(scope="module")
def sims(quantized):
    from nvnmd.sim.nvq1 import Nvq1Simulator

    return Nvq1Simulator(quantized[0]), Nvq1Simulator(quantized[0], kernel="tf64")


def _frame_index(frames, natoms):
    return next(i for i, f in enumerate(frames) if f.natoms == natoms)


def _request(frame, cutoff, squeeze=1.0):
    coord, cell = frame.coord * squeeze, frame.cell * squeeze
    nl = build_neighbor_list(coord, cell, cutoff)
    return encode_request(coord, frame.types, cell, nl.nlist, nl.shifts)


def _same(a, b):
    assert a.energy == b.energy
    for x, y in ((a.atom_energy, b.atom_energy), (a.forces, b.forces), (a.virial, b.virial)):
        assert x.dtype == y.dtype == np.int64
        np.testing.assert_array_equal(x, y)
    assert (a.saturations, a.overflow_atoms, a.counters) == (b.saturations, b.overflow_atoms, b.counters)


def _stressed(model, leave_g_grid=False):
    """The same tables and weights read with fractions that overflow most datapath words."""
    m = copy.deepcopy(model)
    for key, shift in dict(T=1, D=2, gT=6, gR=6, gG=4, gs=4, gh=4, gu=4, p=8, h=-2, Gq=-3).items():
        m.frac[key] += shift
    m.f_g = [f + 3 for f in m.f_g]
    for layer in m.layers[:-1]:
        layer.b = layer.b * 4  # pre-activations beyond ±16
        if layer.idt is not None:
            layer.f_idt -= 6  # idt x 64: activations beyond ±8
    if leave_g_grid:
        m.s0 += 3 << 17  # s̃ below the G grid for some neighbours: clamps counted in g_range
    return m


@pytest.mark.parametrize("natoms", [50, 400])
def test_shipped_frames_bit_identical(sims, quantized, natoms):
    frame = quantized[1][_frame_index(quantized[1], natoms)]
    req = _request(frame, sims[0].rcut + 1.0)  # with a Verlet skin: out-of-range slots included
    fast, tf64 = sims[0].compute(req), sims[1].compute(req)
    _same(fast, tf64)
    assert tf64.saturations == 0 and np.any(tf64.forces != 0)
    kernel = sims[1]._fast
    default, kernel.chunk_atoms = kernel.chunk_atoms, 17  # blocks of centre atoms: same integers
    try:
        _same(fast, sims[1].compute(req))
    finally:
        kernel.chunk_atoms = default


def test_compressed_cell_bit_identical(sims, quantized):
    frame = quantized[1][_frame_index(quantized[1], 50)]
    req = _request(frame, sims[0].rcut, squeeze=0.62)  # close contacts, sel overflow, T/D clips
    fast, tf64 = sims[0].compute(req), sims[1].compute(req)
    _same(fast, tf64)
    assert tf64.overflow_atoms > 0 and "close_contact" in tf64.counters and tf64.saturations > 0


def test_empty_rows_and_absent_types(sims):
    from nvnmd.compute import ComputeRequest

    coords = np.array([[0, 0, 0], [7 << 20, 0, 0], [0, 3 << 20, 0]], dtype=np.int64)  # COORD codes
    cell = np.diag([30 << 20] * 3).astype(np.int64)
    cases = [(np.zeros((3, 0), np.int32), [0, 3, 3]),  # no neighbour slots at all
             (np.array([[1, 2], [0, 2], [0, 1]], np.int32), [0, 3, 0]),  # one pair in range, types 1, 2 absent
             (np.array([[1, -1], [0, -1], [-1, -1]], np.int32), [1, 1, 1])]  # one type only, beyond rcut
    for nlist, types in cases:
        req = ComputeRequest(coords=coords, types=np.array(types), cell=cell, nlist=nlist,
                             shifts=np.zeros(nlist.shape + (3,), np.int8))
        _same(sims[0].compute(req), sims[1].compute(req))


def test_saturating_model_bit_identical(quantized):
    from nvnmd.sim.nvq1 import Nvq1Simulator

    model = _stressed(quantized[0])
    fast, tf64 = Nvq1Simulator(model), Nvq1Simulator(model, kernel="tf64")
    frames = quantized[1]
    for frame, squeeze in ((frames[_frame_index(frames, 400)], 1.0), (frames[_frame_index(frames, 50)], 0.62)):
        req = _request(frame, model.rcut + 0.5, squeeze)
        a, b = fast.compute(req), tf64.compute(req)
        _same(a, b)
        # backward words read 6-8 bits above their calibrated fractions (2 spare bits) must clip
        clipped = {site for site, n in b.counters.items() if n}
        assert {"gT", "gR", "pair_force"} <= clipped and len(clipped) >= 6, clipped
    ref = fast.compute(req, kernel="reference")  # the 50-atom compressed frame, spec written as loops
    _same(ref, b)


def test_outside_g_grid_matches_reference(quantized):
    from nvnmd.sim.nvq1 import Nvq1Simulator

    model = _stressed(quantized[0], leave_g_grid=True)
    tf64 = Nvq1Simulator(model, kernel="tf64")
    frame = quantized[1][_frame_index(quantized[1], 50)]
    req = _request(frame, model.rcut)
    res = tf64.compute(req)
    _same(tf64.compute(req, kernel="reference"), res)
    assert res.counters.get("g_range", 0) > 0 and res.counters.get("G_slope", 0) > 0


def test_md_trajectory_bit_identical_to_sim(image, tmp_path):
    from nvnmd.backends import make_backend
    from nvnmd.md.engine import MDConfig, run_md
    from nvnmd.md.workflow import lgps_supercell

    atoms = lgps_supercell((1, 1, 1))
    cfg = MDConfig(ensemble="langevin", temperature=900.0, dt_fs=2.0, steps=20, traj_every=2, thermo_every=2, seed=11)
    sim, _ = make_backend("sim", image=image)
    tf64, why = make_backend("tf64", image=image)
    assert tf64.name == "tf64" and why.startswith("tf64 on ")
    run_md(atoms, sim, cfg, tmp_path / "sim", progress=False)
    run_md(atoms, tf64, cfg, tmp_path / "tf64", progress=False)
    for name in ("traj.extxyz", "thermo.csv"):
        ref = (tmp_path / "sim" / name).read_bytes()
        assert ref == (tmp_path / "tf64" / name).read_bytes()
    first, last = ref.split(b"\n")[1], ref.strip().split(b"\n")[-1]
    assert first != last  # the atoms moved: 10 thermo rows of a real trajectory


def test_backend_selection(image, student_path, monkeypatch):
    import nvnmd.backends.deepmd
    from nvnmd.backends import NAMES, make_backend
    from nvnmd.md.cli import register

    assert "tf64" in NAMES
    with pytest.raises(NvnmdError):
        make_backend("tf64")
    from nvnmd.image import Image

    with pytest.raises(NvnmdError, match="nvq1"):  # other profiles (deepmd-kit NVNMD-v0): sim only
        make_backend("tf64", image=Image(profile="nvnmd-v0", meta=dict(image.meta), sections=dict(image.sections)))
    gpus = nvnmd.backends.deepmd.tensorflow_gpus()
    backend, why = make_backend("auto", image=image, model=student_path)
    assert backend.name == ("tf64" if gpus else "sim") and why.startswith(backend.name)
    # the preference order when TensorFlow reports a GPU: the quantized image goes to tf64
    monkeypatch.setattr(nvnmd.backends.deepmd, "tensorflow_gpus", lambda: ["/physical_device:GPU:0"])
    backend, why = make_backend("auto", image=image, model=student_path)
    assert backend.name == "tf64" and why.startswith("tf64 on ")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert parser.parse_args(["md", "--backend", "tf64"]).backend == "tf64"
