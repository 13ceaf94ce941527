"""Driver + virtual board over real sockets, FIFOs and the CLI: socket:// and XDMA stand-in
round trips, image digest check, BoardBackend vs SimBackend, the long fault-injected run
(bit-identical, no lost or duplicated step), `nvnmd board selftest/info` via the CLI, the
demo's board (an MD run through it equals the in-process simulator's bit for bit) and the
C CRC-32C against the Python reference."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from nvnmd.compute import encode_request
from nvnmd.host import protocol as P
from nvnmd.host.driver import Board
from nvnmd.host.faults import Faults
from nvnmd.host.server import BoardCore, VirtualBoard
from nvnmd.neighbors import build_neighbor_list

NVNMD = [os.path.join(os.path.dirname(sys.executable), "nvnmd")]


@pytest.fixture(scope="session")
def image(student, frames_dir):
    from nvnmd.image import Image
    from nvnmd.quantize.build import quantize
    from nvnmd.quantize.data import load_frames

    model, _ = quantize(student, load_frames(frames_dir, student.type_map))
    return Image.from_bytes(model.to_image().to_bytes())


@pytest.fixture(scope="session")
def image_path(image, tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "lgps.nvq"
    image.write(p)
    return p


@pytest.fixture(scope="session")
def frame50(image, frames_dir):
    import nvnmd.sim
    from nvnmd.quantize.data import load_frames

    sim = nvnmd.sim.load(image)
    return sim, load_frames(frames_dir / "lgps50", sim.type_map)[0]


@pytest.fixture
def served():
    vb = VirtualBoard()
    url = vb.start_tcp()
    yield vb, url
    vb.stop()


def _same(a, b):
    assert a.energy == b.energy
    for name in ("atom_energy", "forces", "virial"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_socket_identify_upload_compute(served, image, frame50):
    vb, url = served
    sim, fr = frame50
    nl = build_neighbor_list(fr.coord, fr.cell, sim.rcut)
    req = encode_request(fr.coord, fr.types, fr.cell, nl.nlist, nl.shifts)
    with Board.open(url, timeout=2.0) as b:
        assert b.caps["loaded"] is False and b.caps["max_neighbors"] == P.MAX_NEIGHBORS
        with pytest.raises(P.BoardError) as e:
            b.compute(req.coords, req.types, req.nlist, req.shifts)
        assert "no image" in str(e.value)
        b.upload(image)
        assert b.caps["image_sha256"] == image.digest() and b.caps["type_map"] == sim.type_map
        b.set_cell(req.cell)
        _same(b.compute(req.coords, req.types, req.nlist, req.shifts), sim.compute(req))
        _same(b.compute(req.coords, req.types), sim.compute(req))


def test_digest_mismatch_refused(served, image):
    vb, url = served
    raw = image.to_bytes()
    with Board.open(url, timeout=2.0) as b:
        b.request(P.IMAGE_BEGIN, P.encode_image_begin(len(raw), bytes(32)), P.ACK)
        b.request(P.IMAGE_CHUNK, P.encode_image_chunk(0, raw[:1000]), P.ACK)
        with pytest.raises(P.BoardError) as e:
            b.request(P.IMAGE_COMMIT, bytes(32), P.ACK)
        assert e.value.code == P.E_DIGEST
        assert b.identify()["loaded"] is False


def test_xdma_fifo_standin(tmp_path, image, frame50):
    sim, fr = frame50
    h2c, c2h = tmp_path / "h2c", tmp_path / "c2h"
    os.mkfifo(h2c)
    os.mkfifo(c2h)
    vb = VirtualBoard()
    th = threading.Thread(target=vb.serve_fifos, args=(str(h2c), str(c2h)), daemon=True)
    th.start()
    nl = build_neighbor_list(fr.coord, fr.cell, sim.rcut)
    req = encode_request(fr.coord, fr.types, fr.cell, nl.nlist, nl.shifts)
    b = Board.open(f"xdma://{h2c},{c2h}", timeout=2.0)
    b.upload(image)
    b.set_cell(req.cell)
    _same(b.compute(req.coords, req.types, req.nlist, req.shifts), sim.compute(req))
    b.close()
    th.join(5)
    assert not th.is_alive()


def test_board_backend_matches_sim(served, image, frame50):
    from nvnmd.backends.board import BoardBackend
    from nvnmd.backends.sim import SimBackend

    vb, url = served
    sim, fr = frame50
    bb = BoardBackend(url, image, timeout=2.0)
    sb = SimBackend(image)
    nl = build_neighbor_list(fr.coord, fr.cell, sim.rcut + 1.0)
    sent = []
    for i in range(3):
        before = bb.board.stats["bytes_out"]
        pos = fr.coord + 0.001 * i
        a = bb.compute(pos, fr.types, fr.cell, neighbors=nl)
        b = sb.compute(pos, fr.types, fr.cell, neighbors=nl)
        assert a.energy == b.energy and np.array_equal(a.forces, b.forces)
        assert np.array_equal(a.info["raw"].forces, b.info["raw"].forces)
        sent.append(bb.board.stats["bytes_out"] - before)
    # the list travelled once: later steps carry only coordinates and types
    n, k = nl.nlist.shape
    assert sent[0] >= 7 * n * k and sent[1] == sent[2] == P.compute_bytes(n, k, False)[0]
    bb.close()


def test_long_faulty_run_bit_identical(image, frame50):
    """10 000 steps on the 50-atom LGPS frame, 1 % corrupt + 1 % drop (both directions) and
    resets, against a fault-free in-process simulator run."""
    sim, fr = frame50
    nsteps = int(os.environ.get("NVNMD_FAULT_STEPS", "10000"))
    old = sys.getswitchinterval()
    # Two threads share the GIL here; a short switch interval keeps round trips from
    # waiting out the default 5 ms hand-off.
    sys.setswitchinterval(5e-4)
    faults = Faults(drop=0.01, corrupt=0.01, duplicate=0.002, reset_every=nsteps // 3 + 1, seed=11)
    vb = VirtualBoard(faults=faults)
    url = vb.start_tcp()
    try:
        b = Board.open(url, timeout=0.03, retries=40)
        b.upload(image)
        rng = np.random.default_rng(2026)
        pos = fr.coord.copy()
        rebuilds = 0
        t0 = time.time()
        for step in range(nsteps):
            pos = pos + rng.normal(0.0, 0.003, pos.shape)
            rebuild = step % 50 == 0
            if rebuild:
                nl = build_neighbor_list(pos, fr.cell, sim.rcut + 1.0)
                rebuilds += 1
            req = encode_request(pos, fr.types, fr.cell, nl.nlist, nl.shifts)
            if step == 0:
                b.set_cell(req.cell)
            got = b.compute(req.coords, req.types, *((req.nlist, req.shifts) if rebuild else ()))
            ref = sim.compute(req)
            assert got.energy == ref.energy, step
            assert np.array_equal(got.forces, ref.forces) and np.array_equal(got.virial, ref.virial), step
            assert np.array_equal(got.atom_energy, ref.atom_energy), step
        elapsed = time.time() - t0
        b.close()
    finally:
        vb.stop()
        sys.setswitchinterval(old)
    applied = vb.core.applied
    print(f"\nfault run: {nsteps} steps in {elapsed:.1f} s, {rebuilds} list rebuilds, driver {b.stats}, "
          f"faults {faults.stats}, board resets {vb.core.resets}")
    assert len(applied) == nsteps and len(set(applied)) == nsteps  # no lost, no duplicated step
    assert faults.stats["reset"] >= 1 and b.stats["recoveries"] >= 1
    assert faults.stats["corrupt_in"] + faults.stats["corrupt_out"] > 0.005 * nsteps
    assert faults.stats["drop_in"] + faults.stats["drop_out"] > 0.005 * nsteps


def test_cli_serve_info_selftest(image_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    srv = subprocess.Popen(NVNMD + ["board", "serve", "--corrupt", "0.02", "--seed", "3"], stdout=subprocess.PIPE,
                           text=True, env=env)
    try:
        url = srv.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:")
        info = subprocess.run(NVNMD + ["board", "info", url], capture_output=True, text=True, env=env, timeout=60)
        assert info.returncode == 0 and '"protocol": 1' in info.stdout
        st = subprocess.run(NVNMD + ["board", "selftest", url, "--model", str(image_path), "--timeout", "1"],
                            capture_output=True, text=True, env=env, timeout=120)
        assert st.returncode == 0, st.stderr
        assert st.stdout.startswith("PASS")
    finally:
        srv.terminate()
        srv.wait(10)
    bad = subprocess.run(NVNMD + ["board", "info", "socket://127.0.0.1:1", "--timeout", "0.2"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_pty_serial_and_spy(tmp_path, image, frame50):
    """A pty stands in for a UART: a tty path with ?baud=, and the same port through spy://."""
    sim, fr = frame50
    vb = VirtualBoard()
    path = vb.open_pty()
    threading.Thread(target=vb.serve_pty_forever, daemon=True).start()
    with Board.open(f"{path}?baud=3000000", timeout=2.0) as b:
        assert b.caps["protocol"] == P.PROTOCOL_VERSION
        b.set_cell(np.eye(3, dtype=np.int64) << 24)
    log = tmp_path / "wire.txt"
    with Board.open(f"spy://{path}?file={log}", timeout=2.0) as b:
        assert b.identify()["loaded"] is False
    assert "NVQB" in log.read_text()
    vb.stop()


def test_reconnect_after_link_drop_and_latency(image, frame50):
    """The board side drops the TCP connection: the driver reconnects and re-sends the same
    sequence number, which the board answers from its cache (applied once)."""
    sim, fr = frame50
    vb = VirtualBoard(latency=0.02)
    url = vb.start_tcp()
    nl = build_neighbor_list(fr.coord, fr.cell, sim.rcut)
    req = encode_request(fr.coord, fr.types, fr.cell, nl.nlist, nl.shifts)
    try:
        b = Board.open(url, timeout=1.0)
        t0 = time.perf_counter()
        b.identify()
        assert time.perf_counter() - t0 >= 0.02  # emulated latency is on the path
        b.upload(image)
        b.set_cell(req.cell)
        first = b.compute(req.coords, req.types, req.nlist, req.shifts)
        vb.kick()
        _same(b.compute(req.coords, req.types), first)
        assert b.stats["reconnects"] >= 1
        assert len(vb.core.applied) == len(set(vb.core.applied)) == 2
        b.close()
    finally:
        vb.stop()


def test_board_cache_answers_only_true_retries():
    core = BoardCore()
    a = P.Frame(P.CELL, 7, P.encode_cell(np.eye(3, dtype=np.int64), True))
    b = P.Frame(P.CELL, 7, P.encode_cell(2 * np.eye(3, dtype=np.int64), True))
    core.handle(a)
    assert core.is_retry(a) and not core.is_retry(b)
    core.handle(b)  # same number, other content (another session): executed, not replayed
    assert np.array_equal(core.cell, 2 * np.eye(3))
    core.reset()
    assert not core.is_retry(b)  # a reset loses the cache with the rest of the state


def test_crc32c_c_kernel_matches_reference():
    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 8, 9, 63, 64, 65, 1000, 70001):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        start = int(rng.integers(0, 2**32))
        assert P.crc32c(data) == P.crc32c_py(data)
        assert P.crc32c(data, start) == P.crc32c_py(data, start)
        assert P.crc32c(memoryview(bytearray(data))[1:]) == P.crc32c_py(data[1:])


def test_demo_board_md_equals_sim(image_path, tmp_path):
    """MD through the demo's virtual board (socket, protocol, driver) = MD on the in-process sim."""
    from nvnmd.backends.sim import SimBackend
    from nvnmd.md.cli import DemoBoard
    from nvnmd.md.engine import MDConfig, run_md
    from nvnmd.md.workflow import lgps_supercell

    atoms = lgps_supercell((1, 1, 1))
    cfg = MDConfig(ensemble="langevin", temperature=1100.0, dt_fs=2.0, steps=40, traj_every=5, thermo_every=5,
                   checkpoint_every=40, seed=3)
    ref = run_md(atoms, SimBackend(image_path), cfg, tmp_path / "sim", progress=False)
    with DemoBoard(image_path) as demo:
        board = demo.backend.board
        sent_list = []
        compute = board.compute

        def spy(coords, types, nlist=None, shifts=None):
            sent_list.append(nlist is not None)
            return compute(coords, types, nlist, shifts)

        board.compute = spy
        got = run_md(atoms, demo.backend, cfg, tmp_path / "board", progress=False)
        retries = board.stats["retries"]
    assert (tmp_path / "sim" / "traj.extxyz").read_bytes() == (tmp_path / "board" / "traj.extxyz").read_bytes()
    assert got["neighbor_builds"] == ref["neighbor_builds"] >= 2
    # the list crossed the link once per build; every other step carried coordinates only
    assert len(sent_list) == cfg.steps + 1 and sum(sent_list) == got["neighbor_builds"] and sent_list[0]
    assert retries == 0


def test_idle_connection_does_not_block_a_second_host(served, image, frame50):
    """An idle local connection (a host that connected and went quiet) must not make every
    other host time out: a second host identifies at once, shares the loaded image, and a
    third host that wants another image gets "board busy" in one fast round trip; only the
    image's holder unloads it, and once it disconnects the board is free again."""
    import socket as socketlib

    vb, url = served
    sim, fr = frame50
    host, port = url[len("socket://"):].split(":")
    idle = socketlib.create_connection((host, int(port)))  # connects and never speaks
    nl = build_neighbor_list(fr.coord, fr.cell, sim.rcut)
    req = encode_request(fr.coord, fr.types, fr.cell, nl.nlist, nl.shifts)
    try:
        t0 = time.perf_counter()
        first = Board.open(url, timeout=0.5, retries=1)
        assert time.perf_counter() - t0 < 2.0
        first.upload(image)
        first.set_cell(req.cell)
        _same(first.compute(req.coords, req.types, req.nlist, req.shifts), sim.compute(req))
        # a second host with the same image shares the board; its cell and list are its own
        with Board.open(url, timeout=0.5, retries=1) as second:
            second.upload(image)
            second.set_cell(req.cell)
            _same(second.compute(req.coords, req.types, req.nlist, req.shifts), sim.compute(req))
            # a host that wants another image is refused at once, in one line
            t0 = time.perf_counter()
            with pytest.raises(P.BoardError) as e:
                second.request(P.IMAGE_BEGIN, P.encode_image_begin(64, bytes(32)), P.ACK)
            assert time.perf_counter() - t0 < 0.5
            assert e.value.code == P.E_BUSY and "busy" in str(e.value) and "\n" not in str(e.value)
            second.reset()  # not the only holder: wipes its own session, not the image
        # the first host's image, cell and list survived the other hosts
        _same(first.compute(req.coords, req.types), sim.compute(req))
        assert first.stats["recoveries"] == 0 and first.identify()["loaded"]
        first.close()
        # the holder is gone: a new host may load another image
        with Board.open(url, timeout=0.5, retries=1) as third:
            third.request(P.IMAGE_BEGIN, P.encode_image_begin(64, bytes(32)), P.ACK)
    finally:
        idle.close()


def test_board_times_its_own_compute(image, frame50):
    """The board side measures what it spends computing, so `bench link` subtracts the time of
    the very requests it timed (not a separate in-process loop, clamped at zero)."""
    import nvnmd.bench.link as hb

    sim, fr = frame50
    core = BoardCore()
    core.load_image_bytes(image.to_bytes())
    nl = build_neighbor_list(fr.coord, fr.cell, sim.rcut)
    req = encode_request(fr.coord, fr.types, fr.cell, nl.nlist, nl.shifts)
    core.handle(P.Frame(P.CELL, 1, P.encode_cell(req.cell, True)))
    assert core.compute_stats == {"computes": 0, "seconds": 0.0}
    for seq in (2, 3):
        core.handle(P.Frame(P.COMPUTE, seq, P.encode_compute(req.coords, req.types, req.nlist, req.shifts)))
    core.handle(P.Frame(P.COMPUTE, 3, P.encode_compute(req.coords, req.types, req.nlist, req.shifts)))  # a retry
    assert core.compute_stats["computes"] == 2 and core.compute_stats["seconds"] > 0

    class Args:
        image = None
        repeat = 1

    out = hb.run(Args(), image=image)
    s = out["socket"]
    for case in ("reuse", "list"):
        # link = round trip - board compute of the same requests: positive, never clamped
        assert s[f"link_{case}_us"] > 0
        assert abs(s[f"step_{case}_us"] - s[f"board_{case}_us"] - s[f"link_{case}_us"]) < 1e-6


def test_socket_url_with_bad_port_names_the_port():
    from nvnmd.errors import LinkError
    from nvnmd.host.transport import open_transport

    for url, word in (("socket://127.0.0.1:notaport", "notaport"), ("socket://127.0.0.1:99999", "99999"),
                      ("socket://127.0.0.1", "port"), ("socket://127.0.0.1:5000?bogus=1", "bogus")):
        with pytest.raises(LinkError) as e:
            open_transport(url)
        msg = str(e.value)
        assert word in msg and "debug|info" not in msg and "\n" not in msg, msg
