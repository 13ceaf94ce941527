"""cocotb benches of the link front end (fpga/rtl/link/), driven by host/protocol.py's encoder.

Run by tests/rtl/test_link.py (cocotb runner, Icarus). Every bench compares the RTL with the
executable protocol: frames the RTL hands on must be exactly the frames `protocol.Decoder`
returns for the same byte stream, with the same bad-frame and dropped-byte counts, under
random input gaps and output back-pressure.
"""

from __future__ import annotations

import os
import random
import struct

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from nvnmd.compute import ComputeResult
from nvnmd.host import protocol as P

SEED = int(os.environ.get("NVNMD_TB_SEED", "1"))


async def start(dut):
    cocotb.start_soon(Clock(dut.clk, 10, units="ns").start())
    dut.rst.value = 1
    for name in ("s_tvalid", "s_tdata", "m_hdr_ready", "m_tready"):
        if hasattr(dut, name):
            getattr(dut, name).value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


def real_messages(rng: random.Random) -> list[tuple[int, bytes]]:
    """(type, payload) of every kind the host and board exchange, from the real encoders."""
    n, k = 5, 7
    coords = np.array([[rng.randrange(-2**31, 2**31) for _ in range(3)] for _ in range(n)])
    types = np.array([rng.randrange(4) for _ in range(n)])
    nlist = np.array([[rng.randrange(-1, n) for _ in range(k)] for _ in range(n)])
    shifts = np.array([[[rng.randrange(-1, 2) for _ in range(3)] for _ in range(k)] for _ in range(n)])
    cell = np.array([rng.randrange(-2**31, 2**31) for _ in range(9)])
    res = ComputeResult(energy=np.int64(-123456789012), atom_energy=np.arange(n, dtype=np.int64) - 7,
                        forces=np.arange(3 * n).reshape(n, 3) - 20, virial=np.arange(9).reshape(3, 3) * -3,
                        saturations=3, overflow_atoms=1)
    return [
        (P.IDENTIFY, b""),
        (P.CELL, P.encode_cell(cell, True)),
        (P.COMPUTE, P.encode_compute(coords, types, nlist, shifts)),
        (P.COMPUTE, P.encode_compute(coords, types)),
        (P.IMAGE_BEGIN, P.encode_image_begin(4096, bytes(range(32)))),
        (P.IMAGE_CHUNK, P.encode_image_chunk(64, bytes(rng.randrange(256) for _ in range(300)))),
        (P.RESULT, P.encode_result(res)),
        (P.ERROR, P.encode_error(P.E_NO_LIST, "no list")),
        (P.ACK, P.encode_ack(77)),
        (P.RESET, b""),
    ]


def raw_frame(version=1, mtype=1, flags=0, seq=0, payload=b"", length=None) -> bytes:
    """A frame with valid CRCs but any header fields (what encode_frame refuses to write)."""
    head = P.HEADER.pack(P.SYNC, version, mtype, flags, seq, len(payload) if length is None else length)
    body = head + P.CRC.pack(P.crc32c(head)) + payload
    return body + P.CRC.pack(P.crc32c(body))


async def run_rx(dut, stream: bytes, rng: random.Random, gap: float, stall: float, expect: int):
    """Feed `stream`; collect (type, flags, seq, payload) of every frame the RTL delivers,
    until `expect` frames came and 100 more clocks brought none (or a generous clock limit)."""
    i, frames, cur, idle = 0, [], None, 0
    for _ in range(40 * len(stream) + 1000):
        await FallingEdge(dut.clk)
        sv = i < len(stream) and rng.random() >= gap
        dut.s_tvalid.value = int(sv)
        dut.s_tdata.value = stream[i] if i < len(stream) else 0
        hr, tr = rng.random() >= stall, rng.random() >= stall
        dut.m_hdr_ready.value = int(hr)
        dut.m_tready.value = int(tr)
        await ReadOnly()
        if sv and dut.s_tready.value:
            i += 1
        if hr and dut.m_hdr_valid.value:
            assert cur is None, "descriptor while a payload is open"
            cur = [int(dut.m_type.value), int(dut.m_flags.value), int(dut.m_seq.value), int(dut.m_len.value), bytearray()]
            if cur[3] == 0:
                frames.append(cur)
                cur = None
        if tr and dut.m_tvalid.value:
            assert cur is not None, "payload byte without a descriptor"
            cur[4].append(int(dut.m_tdata.value))
            if dut.m_tlast.value:
                assert len(cur[4]) == cur[3], "tlast before the announced length"
                frames.append(cur)
                cur = None
        idle = idle + 1 if len(frames) >= expect and i == len(stream) else 0
        if idle > 100:
            break
    assert i == len(stream), f"RTL stopped accepting input at byte {i} of {len(stream)}"
    return [(t, f, s, bytes(p)) for t, f, s, _, p in frames]


async def compare_rx(dut, stream: bytes, rng, gap=0.2, stall=0.2):
    max_payload = int(dut.MAX_PAYLOAD.value)
    dec = P.Decoder(max_payload=max_payload)
    want = [(f.type, f.flags, f.seq, f.payload) for f in dec.feed(stream)]
    assert not dec.buf, "a bench stream must end on a complete frame (both decoders then hold nothing)"
    got = await run_rx(dut, stream, rng, gap, stall, len(want))
    assert got == want, f"RTL frames {[(t, s, len(p)) for t, _, s, p in got]} != Decoder's {[(t, s, len(p)) for t, _, s, p in want]}"
    await RisingEdge(dut.clk)
    await ReadOnly()
    counts = (int(dut.frames_ok.value), int(dut.bad_frames.value), int(dut.dropped_bytes.value))
    assert counts == (len(want), dec.bad_frames, dec.dropped_bytes), f"RTL counters {counts}, Decoder {(len(want), dec.bad_frames, dec.dropped_bytes)}"
    return len(want), dec.bad_frames, dec.dropped_bytes


@cocotb.test()
async def rx_real_frames(dut):
    """Every message kind from the real encoders, garbage and partial sync words in between."""
    rng = random.Random(SEED)
    await start(dut)
    parts = []
    for seq, (mtype, payload) in enumerate(real_messages(rng)):
        parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(6))) + rng.choice([b"", b"N", b"NV", b"NVQ"]))
        parts.append(P.encode_frame(mtype, 1000 + seq, payload, flags=seq * 0x0101))
    stream = b"".join(parts)
    n, bad, dropped = await compare_rx(dut, stream, rng)
    assert n == 10
    dut._log.info("%d frames, %d bad, %d dropped bytes of %d", n, bad, dropped, len(stream))


@cocotb.test()
async def rx_corrupted(dut):
    """Flipped CRC and header bytes, truncated frames, oversize length, bad version and type."""
    rng = random.Random(SEED + 1)
    await start(dut)
    max_payload = int(dut.MAX_PAYLOAD.value)
    good = [P.encode_frame(m, 2000 + i, p) for i, (m, p) in enumerate(real_messages(rng))]
    parts = []
    for i, frame in enumerate(good):
        bad = bytearray(frame)
        kind = i % 5
        if kind == 0:  # payload or frame CRC byte flipped
            bad[rng.randrange(20, len(bad))] ^= 1 << rng.randrange(8)
        elif kind == 1:  # header byte flipped (length, seq, type ... or the header CRC)
            bad[rng.randrange(4, 20)] ^= 1 << rng.randrange(8)
        elif kind == 2:  # truncated: the sender lost its tail; the next frame follows at once
            bad = bad[:rng.randrange(5, len(bad))]
        elif kind == 3:
            bad = bytearray(raw_frame(version=2, mtype=1, seq=9))
        else:
            bad = bytearray(raw_frame(mtype=rng.choice([0, 12, 255]), seq=9))
        parts += [bytes(bad), frame]
    # a header announcing more than the ring holds (valid CRC): refused before any wait
    parts += [raw_frame(mtype=P.IMAGE_CHUNK, payload=b"", length=max_payload + 1)[:20], good[0]]
    stream = b"".join(parts)
    n, bad_frames, dropped = await compare_rx(dut, stream, rng)
    assert n == len(good) + 1 and bad_frames >= len(good)
    dut._log.info("%d frames, %d bad, %d dropped bytes of %d", n, bad_frames, dropped, len(stream))


@cocotb.test()
async def rx_back_to_back(dut):
    """Full rate: no gaps, no stalls; the RTL takes one byte per clock while it validates."""
    rng = random.Random(SEED + 2)
    await start(dut)
    stream = b"".join(P.encode_frame(m, i, p) for i, (m, p) in enumerate(real_messages(rng) * 2))
    await compare_rx(dut, stream, rng, gap=0.0, stall=0.0)


@cocotb.test()
async def tx_frames(dut):
    """Descriptor + payload in; the bytes out are exactly protocol.encode_frame's."""
    rng = random.Random(SEED + 3)
    await start(dut)
    msgs = [(m, rng.randrange(2**32), rng.randrange(2**16), p) for m, p in real_messages(rng)]
    out = bytearray()
    expect = b"".join(P.encode_frame(m, s, p, flags=f) for m, s, f, p in msgs)
    queue = list(msgs)
    cur, pos = None, 0
    for _ in range(20 * len(expect) + 100):
        await FallingEdge(dut.clk)
        if cur is None and queue:
            cur, pos = queue.pop(0), 0
            hdr_pending = True
        m, s, f, p = cur if cur else (0, 0, 0, b"")
        dut.s_hdr_valid.value = int(cur is not None and hdr_pending)
        dut.s_type.value, dut.s_seq.value, dut.s_flags.value, dut.s_len.value = m, s, f, len(p)
        sv = cur is not None and not hdr_pending and pos < len(p) and rng.random() >= 0.2
        dut.s_tvalid.value = int(sv)
        dut.s_tdata.value = p[pos] if sv else 0
        mr = rng.random() >= 0.2
        dut.m_tready.value = int(mr)
        await ReadOnly()
        if cur is not None and hdr_pending and dut.s_hdr_ready.value:
            hdr_pending = False
        elif sv and dut.s_tready.value:
            pos += 1
        if mr and dut.m_tvalid.value:
            out.append(int(dut.m_tdata.value))
        if cur is not None and not hdr_pending and pos == len(p):
            cur = None
        if len(out) == len(expect):
            break
    assert bytes(out) == expect, f"first difference at byte {next(i for i, (a, b) in enumerate(zip(out, expect)) if a != b) if out else 0}"


CLKS = 4  # CLKS_PER_BIT of the UART benches (a fast line keeps Icarus quick)


async def serial_drive(dut, stream: bytes, gap_rng: random.Random):
    """Drive `stream` on rxd as 8N1 at CLKS clocks per bit, with random idle between bytes."""
    dut.rxd.value = 1
    for byte in stream:
        for _ in range(gap_rng.randrange(3)):
            await FallingEdge(dut.clk)
        for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
            dut.rxd.value = bit
            for _ in range(CLKS):
                await FallingEdge(dut.clk)


@cocotb.test()
async def uart_rx_frames(dut):
    """Frames over a serial line into the framer: what Decoder returns for the same bytes."""
    rng = random.Random(SEED + 4)
    dut.rxd.value = 1
    await start(dut)
    good = [P.encode_frame(m, 3000 + i, p) for i, (m, p) in enumerate(real_messages(rng)[:4])]
    bad = bytearray(good[1])
    bad[30] ^= 0x10
    stream = good[0] + bytes(bad) + good[1] + b"\x00\xffN" + good[2] + good[3]
    dec = P.Decoder(max_payload=int(dut.u_link.MAX_PAYLOAD.value))
    want = [(f.type, f.flags, f.seq, f.payload) for f in dec.feed(stream)]
    dut.m_hdr_ready.value = 1
    dut.m_tready.value = 1
    cocotb.start_soon(serial_drive(dut, stream, rng))
    frames, cur = [], None
    for _ in range(len(stream) * (10 * CLKS + 3) + 40 * len(stream) + 2000):
        await FallingEdge(dut.clk)
        await ReadOnly()
        if dut.m_hdr_valid.value:
            cur = [int(dut.m_type.value), int(dut.m_flags.value), int(dut.m_seq.value), bytearray(),
                   int(dut.m_len.value)]
            if cur[4] == 0:
                frames.append(cur)
                cur = None
        if dut.m_tvalid.value:
            cur[3].append(int(dut.m_tdata.value))
            if dut.m_tlast.value:
                frames.append(cur)
                cur = None
        if len(frames) == len(want):
            break
    got = [(t, f, s, bytes(p)) for t, f, s, p, _ in frames]
    assert got == want
    assert int(dut.bad_frames.value) == dec.bad_frames and int(dut.uart_frame_error.value) == 0


@cocotb.test()
async def uart_tx_bytes(dut):
    """The transmitter's line, sampled mid-bit, carries exactly the bytes handed to it, 8N1."""
    rng = random.Random(SEED + 5)
    await start(dut)
    data = P.encode_frame(P.ACK, 7, P.encode_ack(12345))
    out, i = [], 0

    async def feed():
        nonlocal i
        while i < len(data):
            await FallingEdge(dut.clk)
            dut.s_tvalid.value = 1
            dut.s_tdata.value = data[i]
            await ReadOnly()
            if dut.s_tready.value:
                i += 1
        await FallingEdge(dut.clk)
        dut.s_tvalid.value = 0

    cocotb.start_soon(feed())
    while len(out) < len(data):
        await FallingEdge(dut.clk)
        if int(dut.txd.value) == 0:  # start bit: sample each bit in its middle
            for _ in range(CLKS // 2):
                await FallingEdge(dut.clk)
            bits = []
            for _ in range(9):
                for _ in range(CLKS):
                    await FallingEdge(dut.clk)
                bits.append(int(dut.txd.value))
            assert bits[8] == 1, "stop bit"
            out.append(sum(b << k for k, b in enumerate(bits[:8])))
    assert bytes(out) == data
