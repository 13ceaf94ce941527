"""Profile "nvnmd-v0": deepmd-kit NVNMD-v0 models imported and run bit for bit.

Fixtures (tests/fixtures/nvnmd_v0/{gete,lgps}, made by student/nvnmd_v0/train.sh) are real
`dp train-nvnmd` results. The oracle is deepmd-kit itself: `DeepPot` on the QNN frozen graph,
run in a subprocess with one thread (its virial assembly uses OpenMP atomics, so only the
one-thread order is deterministic). Energies, forces and virials must agree exactly.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nvnmd.errors import CorruptFileError, NvnmdError
from nvnmd.formats import CELL, COORD
from nvnmd.image import Image

FIX = Path(__file__).resolve().parent / "fixtures" / "nvnmd_v0"
MODELS = ("gete", "lgps")
NVNMD = [os.path.join(os.path.dirname(sys.executable), "nvnmd")]

DEEPPOT = r"""
import json, sys
import numpy as np
from deepmd.infer import DeepPot
jobs = json.load(open(sys.argv[1]))
out = {}
for k, job in enumerate(jobs):
    dp = DeepPot(job["model"])
    data = np.load(job["frames"])
    for i in range(job["n"]):
        e, f, v, ae, _ = dp.eval(data[f"coord{i}"][None], data[f"box{i}"][None], data[f"types{i}"], atomic=True)
        out[f"{k}_{i}_e"], out[f"{k}_{i}_f"], out[f"{k}_{i}_v"], out[f"{k}_{i}_ae"] = e, f, v, ae
np.savez(sys.argv[2], **out)
"""


def _frames(name):
    data = np.load(FIX / name / "frames.npz")
    n = sum(1 for k in data.files if k.startswith("coord"))
    return [(data[f"coord{i}"].reshape(-1, 3), data[f"box{i}"].reshape(3, 3), data[f"types{i}"]) for i in range(n)]


def _squeezed(frames, scale=0.8):
    """A compressed cell: more neighbours than sel (deepmd-kit drops them silently) and s values
    beyond the G table's end (clamped lookups)."""
    return [(c * scale, b * scale, t) for c, b, t in frames[:1]]


def _lattice(name):
    """An ideal rocksalt GeTe crystal in its triclinic primitive cell: many exactly equal
    float32 distances, so deepmd-kit's neighbour order (its extended atom index) decides."""
    if name != "gete":
        return []
    from ase.build import bulk

    g = bulk("NaCl", "rocksalt", a=6.0).repeat((3, 3, 3))
    return [(g.positions, np.array(g.cell.array), (g.numbers != 11).astype(np.int64))]


def _on_board_grid(frames):
    """Frames with coordinates and cell on the board's input grid (what a request carries)."""
    return [(COORD.decode(COORD.encode(c)[0]), CELL.decode(CELL.encode(b)[0]), t) for c, b, t in frames]


@pytest.fixture(scope="module")
def images():
    from nvnmd.sim.nvnmd_v0.importer import import_nvnmd

    return {name: Image.from_bytes(import_nvnmd(FIX / name, trust_pickle=True).to_bytes()) for name in MODELS}


@pytest.fixture(scope="module")
def deeppot(tmp_path_factory):
    """deepmd-kit's results for every fixture frame, as given and on the board's input grid."""
    tmp = tmp_path_factory.mktemp("deeppot")
    jobs, keys = [], []
    for name in MODELS:
        for variant, frames in (("raw", _frames(name)), ("grid", _on_board_grid(_frames(name))),
                                ("squeezed", _squeezed(_frames(name))), ("lattice", _lattice(name))):
            if not frames:
                continue
            path = tmp / f"{name}_{variant}.npz"
            np.savez(path, **{f"{a}{i}": x for i, fr in enumerate(frames) for a, x in zip(("coord", "box", "types"), fr)})
            jobs.append({"model": str(FIX / name / "nvnmd_qnn" / "frozen_model.pb"), "frames": str(path),
                         "n": len(frames)})
            keys.append((name, variant, len(frames)))
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DP_INTRA_OP_PARALLELISM_THREADS": "1",
           "DP_INTER_OP_PARALLELISM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", DEEPPOT, str(tmp / "jobs.json"), str(tmp / "out.npz")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    raw = np.load(tmp / "out.npz")
    ref = {}
    for k, (name, variant, n) in enumerate(keys):
        ref[name, variant] = [tuple(raw[f"{k}_{i}_{q}"] for q in ("e", "f", "v", "ae")) for i in range(n)]
    return ref


def _maxdiff(ours, theirs):
    e, f, v, ae = ours
    re, rf, rv, rae = theirs
    return (abs(float(e) - float(re.ravel()[0])), float(np.max(np.abs(f - rf.reshape(f.shape)))),
            float(np.max(np.abs(v - rv.reshape(3, 3)))), float(np.max(np.abs(ae - rae.reshape(ae.shape)))))


@pytest.mark.parametrize("name", MODELS)
def test_simulator_equals_deepmd_qnn_bit_for_bit(name, images, deeppot):
    import nvnmd.sim

    sim = nvnmd.sim.load(images[name])
    assert sim.profile == "nvnmd-v0"
    for (coord, box, types), ref in zip(_frames(name), deeppot[name, "raw"]):
        assert _maxdiff(sim.evaluate(coord, types, box), ref) == (0.0, 0.0, 0.0, 0.0)
    # the board path: a request on the board's coordinate grid, candidates from our neighbour list
    from nvnmd.backends.sim import SimBackend

    backend = SimBackend(images[name])
    for (coord, box, types), ref in zip(_on_board_grid(_frames(name)), deeppot[name, "grid"]):
        r = backend.compute(coord, types, box)
        assert r.info["raw"].encoding == "float64"
        assert _maxdiff((r.energy, r.forces, r.virial, r.atom_energy), ref) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("name", MODELS)
def test_compressed_cell_still_bit_exact_and_overflow_reported(name, images, deeppot):
    import nvnmd.sim
    from nvnmd.backends.sim import SimBackend
    from nvnmd.errors import NeighborOverflowError
    from nvnmd.neighbors import build_neighbor_list

    sim = nvnmd.sim.load(images[name])
    (coord, box, types), ref = _squeezed(_frames(name))[0], deeppot[name, "squeezed"][0]
    assert _maxdiff(sim.evaluate(coord, types, box), ref) == (0.0, 0.0, 0.0, 0.0)
    counts = build_neighbor_list(coord, box, sim.rcut).nlist
    per_type = [np.count_nonzero((counts >= 0) & (types[np.maximum(counts, 0)] == t), axis=1).max()
                for t in range(sim.ntypes)]
    overflow = any(c > s for c, s in zip(per_type, sim.sel))
    assert overflow or name != "lgps"  # the LGPS cell at 0.8 exceeds sel [32, 8, 8, 40]
    if overflow:  # our backends never drop neighbours silently
        with pytest.raises(NeighborOverflowError):
            SimBackend(images[name]).compute(coord, types, box)


def test_exact_distance_ties_follow_deepmd_neighbour_order(images, deeppot):
    import nvnmd.sim

    sim = nvnmd.sim.load(images["gete"])
    (coord, box, types), ref = _lattice("gete")[0], deeppot["gete", "lattice"][0]
    assert _maxdiff(sim.evaluate(coord, types, box), ref) == (0.0, 0.0, 0.0, 0.0)


def test_results_are_not_trivially_equal(deeppot):
    # the oracle distinguishes models and frames: a wrong kernel cannot match by accident
    (e0, f0, *_), (e1, f1, *_) = deeppot["lgps", "raw"][:2]
    assert e0 != e1 and np.any(f0 != f1) and np.max(np.abs(f0)) > 1e-3


def test_import_refuses_pickles_without_trust(tmp_path):
    from nvnmd.sim.nvnmd_v0.importer import import_nvnmd

    with pytest.raises(NvnmdError, match="--trust-pickle"):
        import_nvnmd(FIX / "lgps")
    out = tmp_path / "m.nvq"
    p = subprocess.run(NVNMD + ["quantize", "--from-nvnmd", str(FIX / "lgps"), "-o", str(out)],
                       capture_output=True, text=True)
    assert p.returncode != 0 and not out.exists()
    assert "pickled" in p.stderr and "--trust-pickle" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run(NVNMD + ["quantize", "--from-nvnmd", str(FIX / "lgps"), "--trust-pickle", "-o", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    img = Image.read(out)
    assert img.profile == "nvnmd-v0" and img.meta["type_map"] == ["Li", "Ge", "P", "S"]


def test_import_rejects_damaged_directory(tmp_path):
    from nvnmd.sim.nvnmd_v0.importer import import_nvnmd

    with pytest.raises(NvnmdError, match="not found"):
        import_nvnmd(tmp_path, trust_pickle=True)


@pytest.mark.parametrize("name", MODELS)
def test_wrapped_board_image_agrees_with_import(name, images):
    from nvnmd.sim.nvnmd_v0.wrap import check_wrapped, read_wrapped
    from nvnmd.sim.nvnmd_v0.model import NvnmdV0Model

    model = NvnmdV0Model.from_image(images[name])
    wrapped = read_wrapped(FIX / name / "nvnmd_qnn" / "model.pb")
    assert wrapped.ntype == model.ntypes and wrapped.sel == model.sel and wrapped.rcut == model.rcut
    assert check_wrapped(wrapped, model) == {}


def test_wrapped_image_reader_detects_a_corrupted_row(images, tmp_path):
    from nvnmd.sim.nvnmd_v0.wrap import SECTIONS, read_wrapped, verify_wrapped
    from nvnmd.sim.nvnmd_v0.model import NvnmdV0Model

    src = FIX / "lgps" / "nvnmd_qnn" / "model.pb"
    model = NvnmdV0Model.from_image(images["lgps"])
    w = read_wrapped(src)
    raw = bytearray(src.read_bytes())
    # flip one bit of fea row 1234 (a G-table coefficient) and one of fps row 77 (a weight)
    offsets, pos = {}, 512
    for name, h, wd in zip(SECTIONS, w.heights, w.widths):
        offsets[name] = (pos, -(-wd * 4 // 32) * 4)
        pos += h * offsets[name][1]
    for sec, row in (("fea", 1234), ("fps", 77)):
        start, nbytes = offsets[sec]
        raw[start + row * nbytes + 1] ^= 0x10
    bad = tmp_path / "model.pb"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=r"fps \(1 rows\).*fea \(1 rows\)"):
        verify_wrapped(bad, model)
    from nvnmd.sim.nvnmd_v0.wrap import check_wrapped

    assert check_wrapped(read_wrapped(bad), model) == {"fps": [77], "fea": [1234]}
    # the import checks the directory's wrapped image too
    from nvnmd.sim.nvnmd_v0.importer import FILES, import_nvnmd

    for rel in FILES.values():
        (tmp_path / "run" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "run" / rel).symlink_to(FIX / "lgps" / rel)
    bad.rename(tmp_path / "run" / "nvnmd_qnn" / "model.pb")
    with pytest.raises(CorruptFileError, match="wrapped image disagrees"):
        import_nvnmd(tmp_path / "run", trust_pickle=True)


def test_virtual_board_and_md_run_the_v0_image(images, deeppot, tmp_path):
    from ase import Atoms

    from nvnmd.backends.board import BoardBackend
    from nvnmd.backends.sim import SimBackend
    from nvnmd.host.server import VirtualBoard
    from nvnmd.md.engine import MDConfig, run_md

    image = images["lgps"]
    vb = VirtualBoard()
    url = vb.start_tcp()
    try:
        board = BoardBackend(url, image, timeout=5.0)
        assert board.board.caps["profile"] == "nvnmd-v0"
        (coord, box, types), ref = _on_board_grid(_frames("lgps"))[0], deeppot["lgps", "grid"][0]
        r = board.compute(coord, types, box)
        assert _maxdiff((r.energy, r.forces, r.virial, r.atom_energy), ref) == (0.0, 0.0, 0.0, 0.0)
        tm = image.meta["type_map"]
        atoms = Atoms([tm[t] for t in types], positions=coord, cell=box, pbc=True)
        cfg = MDConfig(ensemble="nve", temperature=600.0, dt_fs=1.0, steps=4, traj_every=2, thermo_every=2)
        run_md(atoms, SimBackend(image), cfg, tmp_path / "sim", progress=False)
        run_md(atoms, board, cfg, tmp_path / "board", progress=False)
    finally:
        vb.stop()
    a, b = np.load(tmp_path / "sim" / "checkpoint.npz"), np.load(tmp_path / "board" / "checkpoint.npz")
    assert int(a["step"]) == 4
    for key in ("positions", "velocities", "forces", "energy", "virial"):
        assert np.array_equal(a[key], b[key]), key
    assert np.all(np.isfinite(a["forces"])) and np.any(a["positions"] != coord)
