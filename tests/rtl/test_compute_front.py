"""CELL and COMPUTE bytes -> RTL -> RESULT bytes: nvq_link_rx -> nvq_compute_front -> nvq1_core
-> nvq_compute_front -> nvq_link_tx (fpga/rtl/front/tb/nvq_front_tb.v) in Verilator, through
cocotb, against the board's executable protocol.

The frames come from host/protocol.py's encoders; the same frames go to host/server.py's
BoardCore with the simulator, and the RTL's replies must be BoardCore's: RESULT and ACK frames
byte for byte (so energies, atom energies, forces, virial, saturations and overflow atoms are
the simulator's bit for bit, and the CRCs and sequence numbers are right), ERROR frames with
BoardCore's code (the texts are the RTL's own). Covered: every refusal of BoardCore._compute
in its order (no image, no cell, no list to reuse, held list of other rows, payload size,
limits, a type or a neighbour index out of range, and the bad list staying bad on reuse), a
bad CELL, two lists, list reuse, garbage and a corrupted frame before a good one, the message
layer's `clear`, and an IDENTIFY and an IMAGE_CHUNK handed on unchanged to the message layer;
the link input has random gaps, the link output and the message layer random back-pressure.
Small frames (4-6
atoms of the LGPS cell with their periodic images) keep it to seconds of simulated work.
This file is both the pytest module and the cocotb test module."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

try:
    import cocotb
    from cocotb.triggers import FallingEdge, ReadOnly, Timer
except ImportError:
    cocotb = None

LANES, MAX_ATOMS, MAX_K, RING_AW = 16, 16, 48, 12
POLL_US = 20  # while the core computes, Python looks every 2000 clocks, not every clock
GAP, STALL = 0.2, 0.3  # input gaps on the link, back-pressure from the link and the message layer

# ----------------------------------------------------------------------------- cocotb side
if cocotb is not None:

    async def _send(dut, data: bytes, collect_pass: bool, passed: list, rng):
        """Bytes into nvq_link_rx with random gaps; frames handed to the message layer collected
        under random back-pressure."""
        i, cur, quiet = 0, None, 0
        while i < len(data) or (collect_pass and quiet < 200):
            await FallingEdge(dut.clk)
            sv = i < len(data) and rng.random() >= GAP
            dut.s_tvalid.value = int(sv)
            dut.s_tdata.value = data[i] if sv else 0
            hr, tr = collect_pass and rng.random() >= STALL, collect_pass and rng.random() >= STALL
            dut.o_hdr_ready.value = int(hr)
            dut.o_tready.value = int(tr)
            await ReadOnly()
            if sv and dut.s_tready.value:
                i += 1
            quiet = quiet + 1 if i == len(data) else 0  # the framer hands a frame on once it is all in
            if hr and dut.o_hdr_valid.value:
                cur = [int(dut.o_type.value), int(dut.o_seq.value), int(dut.o_len.value), bytearray()]
                quiet = 0
                if cur[2] == 0:
                    passed.append([cur[0], cur[1], ""])
                    cur = None
            if tr and dut.o_tvalid.value:
                cur[3].append(int(dut.o_tdata.value))
                quiet = 0
                if dut.o_tlast.value:
                    passed.append([cur[0], cur[1], bytes(cur[3]).hex()])
                    cur = None
        await FallingEdge(dut.clk)
        dut.s_tvalid.value = 0
        dut.o_hdr_ready.value = 0
        dut.o_tready.value = 0

    async def _reply(dut, max_us: int, rng) -> bytes | None:
        """The next frame nvq_link_tx sends, taken under random back-pressure (None if none
        starts within max_us of simulated time)."""
        from nvnmd.host import protocol as P

        waited = 0
        while True:
            await ReadOnly()
            if dut.m_tvalid.value:
                break
            if waited >= max_us:
                return None
            await Timer(POLL_US, "us")
            waited += POLL_US
        dec, raw = P.Decoder(), bytearray()
        while True:
            await FallingEdge(dut.clk)
            ready = rng.random() >= STALL
            dut.m_tready.value = int(ready)
            await ReadOnly()
            if ready and dut.m_tvalid.value:
                raw.append(int(dut.m_tdata.value))
                if dec.feed(bytes([raw[-1]])):
                    break
        await FallingEdge(dut.clk)
        dut.m_tready.value = 0
        return bytes(raw)

    @cocotb.test()
    async def run_steps(dut):
        import random

        with open(os.environ["NVQ_STEPS"]) as fh:
            steps = json.load(fh)
        rng = random.Random(11)
        for name in ("s_tvalid", "s_tdata", "m_tready", "o_hdr_ready", "o_tready", "loaded", "clear"):
            getattr(dut, name).value = 0
        await Timer(100, "ns")
        while int(dut.rst.value):
            await Timer(10, "ns")
        out = []
        for s in steps:
            await FallingEdge(dut.clk)
            dut.loaded.value = s["loaded"]
            if s["clear"]:
                dut.clear.value = 1
                await FallingEdge(dut.clk)
                dut.clear.value = 0
            passed, replies = [], []
            await _send(dut, bytes.fromhex(s["send"]), s["want"] == "pass", passed, rng)
            if s["want"] == "reply":
                r = await _reply(dut, max_us=200_000, rng=rng)
                assert r is not None, f"step {s['name']}: no reply"
                replies.append(r.hex())
            extra = await _reply(dut, max_us=2 * POLL_US, rng=rng)  # and nothing more
            if extra is not None:
                replies.append(extra.hex())
            out.append({"name": s["name"], "replies": replies, "passed": passed,
                        "cell_valid": int(dut.cell_valid.value), "list_valid": int(dut.list_valid.value)})
        await ReadOnly()
        with open(os.environ["NVQ_OUT"], "w") as fh:
            json.dump({"steps": out, "frames_ok": int(dut.frames_ok.value), "bad_frames": int(dut.bad_frames.value)}, fh)


# ----------------------------------------------------------------------------- pytest side
def _subset(frame, model, idx, skin=0.5):
    """(coords, types, cell codes, nlist, shifts) of atoms `idx` of a frame, in its cell (the
    other atoms gone, the periodic images of the kept ones in the list)."""
    from nvnmd.compute import encode_request
    from nvnmd.neighbors import build_neighbor_list

    coord = frame.coord[idx]
    nl = build_neighbor_list(coord, frame.cell, model.rcut + skin)
    req = encode_request(coord, frame.types[idx], frame.cell, nl.nlist, nl.shifts)
    return req


def build_steps(model, frames):
    """(steps for the bench, what BoardCore answers to each)."""
    import dataclasses

    from nvnmd.host import protocol as P
    from nvnmd.host.server import BoardCore

    a = _subset(frames[3], model, np.arange(0, 50, 10))  # 5 atoms
    b = _subset(frames[3], model, np.arange(3, 50, 8))   # 6 atoms, another list
    small = _subset(frames[3], model, np.arange(0, 48, 12))  # 4 atoms
    for r in (a, b, small):
        assert r.natoms <= MAX_ATOMS and 0 < r.nlist.shape[1] <= MAX_K
    moved = dataclasses.replace(a, coords=a.coords + np.array([[1 << 14, -(1 << 13), 1 << 12]]))
    moved2 = dataclasses.replace(a, coords=a.coords - np.array([[1 << 15, 0, 1 << 13]]))
    bad_type = np.asarray(b.types).copy()
    bad_type[2] = 5  # no such type in the 4-species image
    bad_index = np.asarray(b.nlist).copy()
    bad_index[1, 0] = b.natoms  # one past the last atom

    def compute(r, with_list=True, types=None, nlist=None):
        return P.encode_compute(r.coords, r.types if types is None else types,
                                (r.nlist if nlist is None else nlist) if with_list else None,
                                r.shifts if with_list else None)

    cell = P.encode_cell(a.cell, True)
    seq = iter(range(7000, 8000))
    rng = np.random.default_rng(3)
    garbage = bytes(rng.integers(0, 256, 40, dtype=np.uint8)) + b"NVQ"
    good = P.encode_frame(P.COMPUTE, next(seq), compute(moved2, with_list=False))
    corrupt = bytearray(good)
    corrupt[30] ^= 0x40  # a payload byte: the frame CRC fails, nothing of it reaches the core
    plan = [  # name, loaded, clear, want, frame(s)
        ("not_loaded", 0, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(a))),
        ("no_cell", 1, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(a))),
        ("cell_bad_size", 1, False, "reply", P.encode_frame(P.CELL, next(seq), cell[:-1])),
        ("cell", 1, False, "reply", P.encode_frame(P.CELL, next(seq), cell)),
        ("no_list", 1, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(a, with_list=False))),
        ("compute_a", 1, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(a))),
        ("identify", 1, False, "pass", P.encode_frame(P.IDENTIFY, next(seq))),
        ("image_chunk", 1, False, "pass", P.encode_frame(P.IMAGE_CHUNK, next(seq), P.encode_image_chunk(
            4096, bytes(rng.integers(0, 256, 300, dtype=np.uint8))))),
        ("reuse_moved", 1, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(moved, with_list=False))),
        ("garbage_corrupt_good", 1, False, "reply", garbage + bytes(corrupt) + good),
        ("reuse_other_rows", 1, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(small, with_list=False))),
        ("bad_size", 1, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(a) + b"\0")),
        ("too_many_atoms", 1, False, "reply", P.encode_frame(
            P.COMPUTE, next(seq), P.encode_compute(np.zeros((MAX_ATOMS + 1, 3), int), np.zeros(MAX_ATOMS + 1, int)))),
        ("bad_type", 1, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(b, types=bad_type))),
        ("bad_index", 1, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(b, nlist=bad_index))),
        ("reuse_bad_list", 1, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(b, with_list=False))),
        ("compute_b", 1, False, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(b))),
        ("cleared", 1, True, "reply", P.encode_frame(P.COMPUTE, next(seq), compute(b, with_list=False))),
    ]
    board = BoardCore(max_atoms=MAX_ATOMS, max_neighbors=MAX_K)
    steps, want = [], []
    for name, loaded, clear, kind, data in plan:
        if loaded and board.sim is None:
            board.load_image_bytes(model.to_image().to_bytes())
        if clear:
            board.default.wipe()  # the message layer forgets cell and list (image kept)
        frames_in = P.Decoder().feed(data)
        replies = [] if kind == "pass" else [board.handle(f) for f in frames_in]
        steps.append({"name": name, "loaded": loaded, "clear": clear, "want": kind, "send": data.hex()})
        want.append({"replies": replies, "frames": frames_in})
    return steps, want


@pytest.fixture(scope="module")
def front_run(quantized, tmp_path_factory):
    from conftest import need

    need("verilator", "cocotb")
    from cocotb.runner import get_results, get_runner

    from nvnmd.fpga.rtl.core import coreconfig as cc
    from nvnmd.fpga.sources import link_sources, rtl_dir
    from nvnmd.quantize.mem import emit_mem

    model, frames = quantized
    root = tmp_path_factory.mktemp("compute_front")
    mem = root / "mem"
    emit_mem(model.to_image(), mem)
    cc.write_banks(mem, model, LANES)
    params = cc.core_params(model, mem, LANES, MAX_ATOMS, MAX_K)
    params["RING_AW"] = RING_AW
    steps, want = build_steps(model, frames)
    (root / "steps.json").write_text(json.dumps(steps))
    runner = get_runner("verilator")
    build = root / "build"
    sources = [*link_sources(), rtl_dir("front", "nvq_compute_front.v"), *cc.SOURCES,
               rtl_dir("front", "tb", "nvq_front_tb.v")]
    runner.build(verilog_sources=sources, includes=[cc.CORE_DIR], hdl_toplevel="nvq_front_tb", parameters=params,
                 build_dir=build, build_args=["--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O2"],
                 timescale=("1ns", "1ps"))
    env = {"NVQ_STEPS": str(root / "steps.json"), "NVQ_OUT": str(root / "out.json"),
           "PYTHONPATH": os.path.dirname(__file__) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    results = runner.test(hdl_toplevel="nvq_front_tb", test_module="test_compute_front", testcase="run_steps",
                          build_dir=build, test_dir=root, extra_env=env)
    total, failed = get_results(results)
    assert total == 1 and failed == 0, f"cocotb run failed ({results})"
    got = json.loads((root / "out.json").read_text())
    return steps, want, got, model


def test_replies_equal_boardcore(front_run):
    from nvnmd.host import protocol as P

    steps, want, got, _ = front_run
    assert [s["name"] for s in got["steps"]] == [s["name"] for s in steps]
    results = 0
    for s, w, g in zip(steps, want, got["steps"]):
        name = s["name"]
        if s["want"] == "pass":
            continue
        assert len(g["replies"]) == len(w["replies"]) == 1, (name, g["replies"])
        mine, ref = bytes.fromhex(g["replies"][0]), w["replies"][0]
        (fm,), (fr,) = P.Decoder().feed(mine), P.Decoder().feed(ref)
        assert (fm.type, fm.seq) == (fr.type, fr.seq), (name, P.NAMES.get(fm.type), P.NAMES.get(fr.type))
        if fr.type == P.ERROR:
            assert P.decode_error(fm.payload)[0] == P.decode_error(fr.payload)[0], (name, P.decode_error(fm.payload))
        else:
            assert mine == ref, name  # RESULT / ACK: the whole frame, CRCs included
            results += fr.type == P.RESULT
    assert results == 4


def test_results_are_the_simulators(front_run):
    """The RESULT payloads decode to the simulator's numbers for the very requests sent."""
    from nvnmd.host import protocol as P
    from nvnmd.sim.nvq1.simulator import Nvq1Simulator

    steps, want, got, model = front_run
    sim = Nvq1Simulator(model)
    byname = {g["name"]: g for g in got["steps"]}
    for name in ("compute_a", "compute_b"):
        (frame,) = P.Decoder().feed(bytes.fromhex(byname[name]["replies"][0]))
        res = P.decode_result(frame.payload)
        (req_frame,) = P.Decoder().feed(bytes.fromhex(next(s["send"] for s in steps if s["name"] == name)))
        coords, types, nlist, shifts = P.decode_compute(req_frame.payload)
        cell_frame = next(s for s in steps if s["name"] == "cell")
        cell, _ = P.decode_cell(P.Decoder().feed(bytes.fromhex(cell_frame["send"]))[0].payload)
        from nvnmd.compute import ComputeRequest

        ref = sim.compute(ComputeRequest(coords=coords, types=types, cell=cell, nlist=nlist, shifts=shifts))
        assert int(res.energy) == int(ref.energy)
        np.testing.assert_array_equal(res.atom_energy, ref.atom_energy)
        np.testing.assert_array_equal(res.forces, ref.forces)
        np.testing.assert_array_equal(res.virial, ref.virial)
        assert res.saturations == ref.saturations and res.overflow_atoms == ref.overflow_atoms


def test_other_messages_reach_the_message_layer_and_state(front_run):
    from nvnmd.host import protocol as P

    steps, want, got, _ = front_run
    byname = {g["name"]: g for g in got["steps"]}
    for name in ("identify", "image_chunk"):
        step = byname[name]
        assert step["replies"] == [] and len(step["passed"]) == 1, name
        t, seq, payload = step["passed"][0]
        (sent,) = P.Decoder().feed(bytes.fromhex(next(s["send"] for s in steps if s["name"] == name)))
        assert (t, seq, bytes.fromhex(payload)) == (sent.type, sent.seq, sent.payload), name
    assert byname["cell"]["cell_valid"] == 1 and byname["no_cell"]["cell_valid"] == 0
    assert byname["cleared"]["cell_valid"] == 0 and byname["cleared"]["list_valid"] == 0
    # the corrupted frame was dropped by the framer, its good twin answered once
    assert got["bad_frames"] >= 1 and len(byname["garbage_corrupt_good"]["replies"]) == 1


def test_front_is_in_the_common_verilog_subset(tmp_path):
    """Verilator's lint (-Wall), Icarus 11 and yosys 0.23 all take nvq_compute_front.v."""
    import subprocess

    from conftest import need
    from nvnmd.fpga.sources import rtl_dir

    need("verilator", "iverilog", "yosys")
    src = str(rtl_dir("front", "nvq_compute_front.v"))
    for cmd in (["verilator", "--lint-only", "-Wall", "-Wno-DECLFILENAME", "-Wno-UNUSEDSIGNAL", src],
                ["iverilog", "-g2005", "-o", str(tmp_path / "front.vvp"), src],
                ["yosys", "-q", "-p", f"read_verilog {src}; hierarchy -top nvq_compute_front; proc; check -assert"]):
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0, f"{cmd[0]}: {(out.stdout + out.stderr)[-1500:]}"
