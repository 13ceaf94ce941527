"""The host reaches the RTL through the unchanged board protocol (`nvnmd board serve --rtl`).

BoardCore keeps the protocol (upload, digest, cell, list reuse, retry cache); its compute
engine is nvq1_core in a Verilator native harness. Asserted bit for bit against the simulator:
the board selftest, MD steps through the driver (trajectory files byte-identical), and
`nvnmd rtl check` on the shipped frames. One core build (LANES=16) serves every test here and
is cached by content for later sessions.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import need

LANES, MAX_ATOMS, MAX_K = 16, 1024, 256
NVNMD = os.path.join(os.path.dirname(sys.executable), "nvnmd")
TIMEOUT = 120.0  # a 50-atom frame takes a few seconds in Verilator; the first upload also builds


@pytest.fixture(scope="module")
def image(quantized):
    from nvnmd.image import Image

    need("verilator", "g++", "make")
    model, _ = quantized
    return Image.from_bytes(model.to_image().to_bytes())


@pytest.fixture(scope="module")
def rtl_board(image):
    from nvnmd.fpga.board import RtlEngine
    from nvnmd.host.server import BoardCore, VirtualBoard

    engine = RtlEngine(lanes=LANES, max_atoms=MAX_ATOMS, max_k=MAX_K)
    core = BoardCore(max_atoms=MAX_ATOMS, max_neighbors=MAX_K, engine=engine)
    vb = VirtualBoard(core)
    url = vb.start_tcp()
    yield core, url
    vb.stop()
    core.reset()  # closes the simulator process


def test_selftest_runs_on_the_rtl(rtl_board, image):
    from nvnmd.host.cli import selftest
    from nvnmd.host.driver import Board

    core, url = rtl_board
    ok, msg = selftest(url, image, timeout=TIMEOUT)
    assert ok, msg
    with Board.open(url, timeout=TIMEOUT) as board:
        assert "RTL" in board.caps["board"] and board.caps["max_neighbors"] == MAX_K
    assert core.sim.core.last_cycles > 0  # the answer came from the core, which counted its cycles


def test_md_steps_through_the_driver_equal_sim(rtl_board, image, tmp_path):
    from nvnmd.backends.board import BoardBackend
    from nvnmd.backends.sim import SimBackend
    from nvnmd.md.engine import MDConfig, run_md
    from nvnmd.md.workflow import lgps_supercell

    _, url = rtl_board
    atoms = lgps_supercell((1, 1, 1))
    cfg = MDConfig(ensemble="langevin", temperature=900.0, dt_fs=2.0, steps=3, traj_every=1, thermo_every=1,
                   checkpoint_every=3, seed=5)
    ref = run_md(atoms, SimBackend(image), cfg, tmp_path / "sim", progress=False)
    backend = BoardBackend(url, image, timeout=TIMEOUT)
    try:
        got = run_md(atoms, backend, cfg, tmp_path / "rtl", progress=False)
    finally:
        backend.close()
    assert (tmp_path / "sim" / "traj.extxyz").read_bytes() == (tmp_path / "rtl" / "traj.extxyz").read_bytes()
    assert got["neighbor_builds"] == ref["neighbor_builds"]


def test_rtl_check_cli_reports_identical_frames(image, tmp_path):
    path = tmp_path / "lgps.nvq"
    image.write(path)
    out = subprocess.run([NVNMD, "rtl", "check", "--image", str(path), "--limit", "2", "--lanes", str(LANES),
                          "--json", str(tmp_path / "check.json")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "bit-identical: 2/2" in out.stdout and "first mismatch: none" in out.stdout
    assert "cycle model matches the core's count on 2/2 frames" in out.stdout
    import json

    rep = json.loads((tmp_path / "check.json").read_text())
    assert rep["identical"] == rep["frames"] == 2
    assert all(f["cycles"] == f["model_cycles"] > 0 for f in rep["per_frame"])


def test_rtl_check_bad_input_is_one_line(tmp_path):
    out = subprocess.run([NVNMD, "rtl", "check", "--image", str(tmp_path / "missing.nvq")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "image not found" in out.stderr


def test_cli_serve_rtl_selftest(image, tmp_path):
    """`nvnmd board serve --rtl` then `nvnmd board selftest`, both as a user types them."""
    path = tmp_path / "lgps.nvq"
    image.write(path)
    srv = subprocess.Popen([NVNMD, "board", "serve", "--rtl", "--lanes", str(LANES), "--model", str(path)],
                           stdout=subprocess.PIPE, text=True)
    try:
        url = srv.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:")
        info = subprocess.run([NVNMD, "board", "info", url, "--timeout", "30"], capture_output=True, text=True,
                              timeout=120)
        assert info.returncode == 0 and "RTL: nvq1_core in Verilator" in info.stdout
        st = subprocess.run([NVNMD, "board", "selftest", url, "--model", str(path), "--timeout", str(TIMEOUT)],
                            capture_output=True, text=True, timeout=600)
        assert st.returncode == 0, st.stderr[-2000:]
        assert st.stdout.startswith("PASS") and "bit-identical to the simulator" in st.stdout
    finally:
        srv.terminate()
        srv.wait(30)
