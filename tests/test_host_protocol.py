"""Wire protocol: CRC-32C vectors, framing round trips, message codecs, decoder resync, and a
hypothesis property test feeding the decoder arbitrary bytes (only protocol errors, bounded
buffering); loop:// transport round trip."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nvnmd.compute import ComputeResult
from nvnmd.host import protocol as P


def test_crc32c_known_vectors():
    assert P.crc32c(b"123456789") == 0xE3069283
    assert P.crc32c(b"") == 0
    assert P.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert P.crc32c(b"\xff" * 32) == 0x62A8AB43  # RFC 3720 B.4: 32 bytes of 0xff
    assert P.crc32c(b"6789", P.crc32c(b"12345")) == 0xE3069283


def test_frame_round_trip_and_resync():
    frames = [P.encode_frame(P.COMPUTE, i, bytes([i]) * i) for i in range(1, 6)]
    garbage = b"NVQB\x01\x99junk" + bytes(range(256))
    stream = garbage + frames[0] + garbage + b"".join(frames[1:])
    dec = P.Decoder()
    got = []
    for i in range(0, len(stream), 7):  # arbitrary split points
        got += dec.feed(stream[i:i + 7])
    assert [(f.seq, f.payload) for f in got] == [(i, bytes([i]) * i) for i in range(1, 6)]
    assert dec.dropped_bytes > 0
    bad = bytearray(frames[2])
    bad[20] ^= 0x10
    assert P.Decoder().feed(bytes(bad)) == []


def test_compute_and_result_codecs():
    rng = np.random.default_rng(0)
    coords = rng.integers(-2**31, 2**31, (7, 3))
    types = rng.integers(0, 3, 7)
    nlist = rng.integers(-1, 7, (7, 5)).astype(np.int32)
    shifts = rng.integers(-1, 2, (7, 5, 3)).astype(np.int8)
    c, t, nl, sh = P.decode_compute(P.encode_compute(coords, types, nlist, shifts))
    assert np.array_equal(c, coords) and np.array_equal(t, types)
    assert np.array_equal(nl, nlist) and np.array_equal(sh, shifts)
    c, t, nl, sh = P.decode_compute(P.encode_compute(coords, types))
    assert nl is None and sh is None
    res = ComputeResult(energy=np.int64(-12345678901), atom_energy=rng.integers(-2**40, 2**40, 7),
                        forces=rng.integers(-2**31, 2**31, (7, 3)), virial=rng.integers(-2**50, 2**50, (3, 3)),
                        saturations=3, overflow_atoms=1)
    back = P.decode_result(P.encode_result(res), expect_atoms=7)
    assert back.energy == res.energy and back.saturations == 3 and back.overflow_atoms == 1
    for a in ("atom_energy", "forces", "virial"):
        assert np.array_equal(getattr(back, a), getattr(res, a))
    fres = ComputeResult(energy=np.float64(1.5), atom_energy=np.ones(2), forces=np.zeros((2, 3)),
                         virial=np.eye(3), encoding="float64")
    assert P.decode_result(P.encode_result(fres)).encoding == "float64"
    with pytest.raises(P.ProtocolError):
        P.decode_result(P.encode_result(res), expect_atoms=8)
    cell = np.arange(9).reshape(3, 3) - 4
    assert np.array_equal(P.decode_cell(P.encode_cell(cell, True))[0], cell)
    assert P.decode_error(P.encode_error(P.E_DIGEST, "bad")) == (P.E_DIGEST, "bad")
    caps = {"protocol": 1, "max_atoms": 10, "max_neighbors": 256, "loaded": False, "formats": {}}
    assert P.decode_caps(P.encode_caps(caps))["max_atoms"] == 10


def test_limits_checked_before_allocation():
    import struct

    huge = P.COMPUTE_HEAD.pack(P.MAX_ATOMS + 1, 4, 0)
    with pytest.raises(P.ProtocolError):
        P.decode_compute(huge)
    # a header claiming a 4 GiB payload is skipped, not buffered
    dec = P.Decoder()
    head = P.HEADER.pack(P.SYNC, 1, P.COMPUTE, 0, 1, 0xFFFFFFF0)
    head += P.CRC.pack(P.crc32c(head))  # a well-formed header, only the length is absurd
    dec.feed(head + b"x" * 100)
    assert len(dec.buf) < 200
    with pytest.raises(P.ProtocolError):
        P.decode_image_begin(struct.pack("<Q32s", P.MAX_IMAGE + 1, bytes(32)))


DECODERS = [P.decode_caps, P.decode_image_begin, P.decode_image_chunk, P.decode_cell, P.decode_compute,
            P.decode_result, P.decode_error, P.decode_ack]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=4096), st.integers(1, 64))
def test_decoder_arbitrary_bytes(data, step):
    dec = P.Decoder()
    for i in range(0, len(data), step):
        for f in dec.feed(data[i:i + step]):
            assert len(f.payload) <= P.MAX_PAYLOAD
        # bounded: at most one partial frame of what was fed is held
        assert len(dec.buf) <= len(data)
    for fn in DECODERS:
        try:
            fn(data)
        except P.ProtocolError:
            continue


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(range(1, 12)), st.binary(max_size=512), st.integers(0, 2**32 - 1))
def test_valid_frames_with_arbitrary_payloads(mtype, payload, seq):
    f, = P.Decoder().feed(P.encode_frame(mtype, seq, payload))
    assert (f.type, f.seq, f.payload) == (mtype, seq, payload)
    for fn in DECODERS:
        try:
            fn(f.payload)
        except P.ProtocolError:
            continue


def test_loop_transport_round_trip():
    from nvnmd.host.transport import open_transport

    t = open_transport("loop://")
    frame = P.encode_frame(P.IDENTIFY, 42, b"hello")
    t.write(frame)
    got = []
    dec = P.Decoder()
    for _ in range(20):
        got += dec.feed(t.read_some(0.05))
        if got:
            break
    t.close()
    assert got[0].seq == 42 and got[0].payload == b"hello"
