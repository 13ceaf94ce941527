"""Board wire protocol v1 (fpga/PROTOCOL.md): framing, CRC-32C, message encode/decode.

Everything here is pure bytes <-> objects; transports, retries and the virtual board live in
transport.py, driver.py and server.py. Every length read off the wire is checked against a
limit before anything is allocated, so a hostile or garbled stream costs bounded memory.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from nvnmd.cbuild import CLibrary
from nvnmd.compute import ComputeResult
from nvnmd.errors import LinkError

PROTOCOL_VERSION = 1
SYNC = b"NVQB"
HEADER = struct.Struct("<4sBBHII")  # sync, version, type, flags, seq, payload length
CRC = struct.Struct("<I")
# The header carries its own CRC-32C: a corrupted length must be rejected before the decoder
# waits for that many bytes, or one flipped bit would swallow the following good frames.
HEADER_SIZE = HEADER.size + CRC.size  # 20
OVERHEAD = HEADER_SIZE + CRC.size  # 24 bytes per frame

# Limits (checked before allocation). The payload cap covers a 64k-atom request with a
# full 256-wide list: 65536 * 256 * 7 bytes ≈ 117 MB; images are chunked well below it.
MAX_PAYLOAD = 128 << 20
MAX_ATOMS = 65536
MAX_NEIGHBORS = 256
MAX_CHUNK = 1 << 20
MAX_IMAGE = 256 << 20
MAX_TEXT = 4096

# Message types
IDENTIFY, CAPS, IMAGE_BEGIN, IMAGE_CHUNK, IMAGE_COMMIT, ACK, CELL, COMPUTE, RESULT, ERROR, RESET = range(1, 12)
NAMES = {v: k for k, v in dict(IDENTIFY=IDENTIFY, CAPS=CAPS, IMAGE_BEGIN=IMAGE_BEGIN, IMAGE_CHUNK=IMAGE_CHUNK,
                                IMAGE_COMMIT=IMAGE_COMMIT, ACK=ACK, CELL=CELL, COMPUTE=COMPUTE, RESULT=RESULT,
                                ERROR=ERROR, RESET=RESET).items()}

# Error codes
E_BAD_MESSAGE, E_NOT_LOADED, E_DIGEST, E_LIMIT, E_NO_CELL, E_NO_LIST, E_COMPUTE, E_UNSUPPORTED, E_BUSY = range(1, 10)
ERROR_NAMES = {E_BAD_MESSAGE: "bad message", E_NOT_LOADED: "no image loaded (board reset?)",
               E_DIGEST: "image digest mismatch", E_LIMIT: "limit exceeded", E_NO_CELL: "no cell sent",
               E_NO_LIST: "no neighbour list to reuse", E_COMPUTE: "compute failed",
               E_UNSUPPORTED: "unsupported message", E_BUSY: "board busy"}
ENC_FIXED, ENC_FLOAT64 = 0, 1


class ProtocolError(LinkError):
    """A frame or payload that does not follow PROTOCOL.md (the only error the decoder raises)."""


class BoardError(LinkError):
    """The board answered ERROR(code, text)."""

    def __init__(self, code: int, text: str):
        super().__init__(f"board error {code} ({ERROR_NAMES.get(code, 'unknown')}): {text}")
        self.code = code
        self.text = text


def _crc_table() -> list[int]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()

# Every frame is checked twice per hop (header, whole frame); in pure Python that cost ~10 ms
# per 140 kB neighbour-list step, more than the simulator's compute. The C version is the same
# table-driven algorithm, slicing-by-8 (tables derived from the same polynomial): host/csrc/crc32c.c.


def _slicing_tables() -> np.ndarray:
    t = np.zeros((8, 256), dtype=np.uint32)
    t[0] = _TABLE
    for k in range(1, 8):
        t[k] = t[0][t[k - 1] & 0xFF] ^ (t[k - 1] >> 8)
    return np.ascontiguousarray(t)


_CRC_LIB = CLibrary("nvnmd_crc32c", "nvnmd.host", ["crc32c.c"], "crc32c.h", ["-O2"], fallback="the Python CRC-32C")
_CRC_TABLES = _slicing_tables()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), table-driven; `crc` continues a previous value."""
    lib = _CRC_LIB.get()
    if lib is not None:
        ffi, c = lib
        buf = ffi.from_buffer("unsigned char[]", data)
        return int(c.crc32c_c(buf, len(buf), crc & 0xFFFFFFFF, ffi.cast("unsigned int *", _CRC_TABLES.ctypes.data)))
    return crc32c_py(data, crc)


def crc32c_py(data: bytes, crc: int = 0) -> int:
    """The reference byte-at-a-time CRC-32C (used when no C compiler is available)."""
    c = crc ^ 0xFFFFFFFF
    t = _TABLE
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


@dataclass
class Frame:
    type: int
    seq: int
    payload: bytes
    flags: int = 0


def encode_frame(mtype: int, seq: int, payload: bytes = b"", flags: int = 0) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    head = HEADER.pack(SYNC, PROTOCOL_VERSION, mtype, flags, seq & 0xFFFFFFFF, len(payload))
    body = head + CRC.pack(crc32c(head)) + payload
    return body + CRC.pack(crc32c(body))


class Decoder:
    """Incremental frame decoder: feed bytes, get whole valid frames; garbage is skipped.

    A bad header, oversize length or CRC mismatch drops one byte and rescans for SYNC, so the
    stream resynchronises after any corruption. Buffered bytes never exceed one max frame.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.buf = bytearray()
        self.max_payload = max_payload
        self.dropped_bytes = 0
        self.bad_frames = 0

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        out = []
        while True:
            i = self.buf.find(SYNC)
            if i < 0:
                keep = len(SYNC) - 1  # a sync word may straddle two reads
                if len(self.buf) > keep:
                    self.dropped_bytes += len(self.buf) - keep
                    del self.buf[:-keep]
                return out
            if i:
                self.dropped_bytes += i
                del self.buf[:i]
            if len(self.buf) < HEADER_SIZE:
                return out
            _, ver, mtype, flags, seq, length = HEADER.unpack_from(self.buf, 0)
            (hcrc,) = CRC.unpack_from(self.buf, HEADER.size)
            if (hcrc != crc32c(memoryview(self.buf)[:HEADER.size]) or ver != PROTOCOL_VERSION
                    or length > self.max_payload or mtype not in NAMES):
                self._skip()
                continue
            total = HEADER_SIZE + length + CRC.size
            if len(self.buf) < total:
                return out
            (crc,) = CRC.unpack_from(self.buf, HEADER_SIZE + length)
            if crc != crc32c(memoryview(self.buf)[:HEADER_SIZE + length]):
                self._skip()
                continue
            out.append(Frame(mtype, seq, bytes(self.buf[HEADER_SIZE:HEADER_SIZE + length]), flags))
            del self.buf[:total]

    def _skip(self):
        self.bad_frames += 1
        self.dropped_bytes += 1
        del self.buf[:1]


# ---- payloads -------------------------------------------------------------------------------

class _Reader:
    def __init__(self, payload: bytes, what: str):
        self.p = memoryview(payload)
        self.o = 0
        self.what = what

    def take(self, n: int) -> memoryview:
        if n < 0 or self.o + n > len(self.p):
            raise ProtocolError(f"{self.what}: payload truncated")
        v = self.p[self.o:self.o + n]
        self.o += n
        return v

    def unpack(self, fmt: str):
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size))

    def array(self, dtype, count: int) -> np.ndarray:
        dt = np.dtype(dtype).newbyteorder("<")
        return np.frombuffer(self.take(count * dt.itemsize), dtype=dt).astype(dt.newbyteorder("="))

    def end(self):
        if self.o != len(self.p):
            raise ProtocolError(f"{self.what}: {len(self.p) - self.o} trailing bytes")


def encode_caps(caps: dict) -> bytes:
    text = json.dumps(caps, sort_keys=True).encode()
    return struct.pack("<HIHB32sI", caps["protocol"], caps["max_atoms"], caps["max_neighbors"], int(caps["loaded"]),
                       bytes.fromhex(caps.get("image_sha256") or "00" * 32), len(text)) + text


def decode_caps(payload: bytes) -> dict:
    r = _Reader(payload, "CAPS")
    proto, max_atoms, max_nb, loaded, digest, n = r.unpack("HIHB32sI")
    if n > MAX_TEXT * 16:
        raise ProtocolError("CAPS: description too long")
    try:
        caps = json.loads(bytes(r.take(n)).decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"CAPS: bad description ({exc})") from None
    r.end()
    if not isinstance(caps, dict):
        raise ProtocolError("CAPS: description is not an object")
    caps.update(protocol=proto, max_atoms=max_atoms, max_neighbors=max_nb, loaded=bool(loaded),
                image_sha256=digest.hex() if loaded else None)
    return caps


def encode_image_begin(size: int, digest: bytes) -> bytes:
    return struct.pack("<Q32s", size, digest)


def decode_image_begin(payload: bytes) -> tuple[int, bytes]:
    r = _Reader(payload, "IMAGE_BEGIN")
    size, digest = r.unpack("Q32s")
    r.end()
    if size > MAX_IMAGE:
        raise ProtocolError(f"IMAGE_BEGIN: image of {size} bytes exceeds {MAX_IMAGE}")
    return size, digest


def encode_image_chunk(offset: int, data: bytes) -> bytes:
    return struct.pack("<Q", offset) + data


def decode_image_chunk(payload: bytes) -> tuple[int, bytes]:
    r = _Reader(payload, "IMAGE_CHUNK")
    (offset,) = r.unpack("Q")
    data = bytes(r.p[r.o:])
    if len(data) > MAX_CHUNK:
        raise ProtocolError(f"IMAGE_CHUNK: chunk of {len(data)} bytes exceeds {MAX_CHUNK}")
    return offset, data


def encode_cell(cell: np.ndarray, pbc: bool) -> bytes:
    return np.asarray(cell, dtype="<i4").reshape(9).tobytes() + struct.pack("<B", int(bool(pbc)))


def decode_cell(payload: bytes) -> tuple[np.ndarray, bool]:
    r = _Reader(payload, "CELL")
    cell = r.array("i4", 9).astype(np.int64).reshape(3, 3)
    (pbc,) = r.unpack("B")
    r.end()
    return cell, bool(pbc)


COMPUTE_HEAD = struct.Struct("<IHB")  # natoms, list width K (0 = reuse the board's list), flags


def encode_compute(coords, types, nlist=None, shifts=None) -> bytes:
    coords = np.asarray(coords)
    n = coords.shape[0]
    k = 0 if nlist is None else int(np.asarray(nlist).shape[1])
    if n > MAX_ATOMS or k > MAX_NEIGHBORS:
        raise ProtocolError(f"request of {n} atoms x {k} neighbours exceeds the protocol limits")
    parts = [COMPUTE_HEAD.pack(n, k, 0), coords.astype("<i4").tobytes(), np.asarray(types).astype("u1").tobytes()]
    if k:
        parts.append(np.asarray(nlist).astype("<i4").tobytes())
        parts.append(np.asarray(shifts).astype("i1").tobytes())
    return b"".join(parts)


def decode_compute(payload: bytes, max_atoms: int = MAX_ATOMS, max_neighbors: int = MAX_NEIGHBORS):
    """-> (coords int64 [N,3], types int64 [N], nlist int32 [N,K] | None, shifts int8 [N,K,3] | None)."""
    r = _Reader(payload, "COMPUTE")
    n, k, _flags = r.unpack("IHB")
    if n > max_atoms or k > max_neighbors:
        raise ProtocolError(f"COMPUTE: {n} atoms x {k} neighbours exceeds limits {max_atoms} x {max_neighbors}")
    # Size is known from the header: refuse a mismatch before decoding any array.
    need = 7 + n * 12 + n + (n * k * 4 + n * k * 3 if k else 0)
    if need != len(payload):
        raise ProtocolError(f"COMPUTE: payload is {len(payload)} bytes, header implies {need}")
    coords = r.array("i4", n * 3).astype(np.int64).reshape(n, 3)
    types = r.array("u1", n).astype(np.int64)
    nlist = shifts = None
    if k:
        nlist = r.array("i4", n * k).astype(np.int32).reshape(n, k)
        shifts = r.array("i1", n * k * 3).astype(np.int8).reshape(n, k, 3)
    r.end()
    return coords, types, nlist, shifts


RESULT_HEAD = struct.Struct("<BIII")  # encoding, natoms, saturations, overflow atoms


def encode_result(res: ComputeResult) -> bytes:
    n = int(np.asarray(res.atom_energy).shape[0])
    head = RESULT_HEAD.pack(ENC_FLOAT64 if res.encoding == "float64" else ENC_FIXED, n,
                            min(int(res.saturations), 0xFFFFFFFF), int(res.overflow_atoms))
    if res.encoding == "float64":
        arrs = [np.asarray(res.energy, "<f8").reshape(1), np.asarray(res.atom_energy, "<f8"),
                np.asarray(res.forces, "<f8"), np.asarray(res.virial, "<f8")]
    else:
        # FORCE codes are 32-bit by format (formats.FORCE), energies/virial 64-bit.
        arrs = [np.asarray(res.energy, "<i8").reshape(1), np.asarray(res.atom_energy, "<i8"),
                np.asarray(res.forces).astype("<i4"), np.asarray(res.virial, "<i8")]
    return head + b"".join(a.tobytes() for a in arrs)


def decode_result(payload: bytes, expect_atoms: int | None = None) -> ComputeResult:
    r = _Reader(payload, "RESULT")
    enc, n, sat, over = r.unpack("BIII")
    if enc not in (ENC_FIXED, ENC_FLOAT64):
        raise ProtocolError(f"RESULT: unknown encoding {enc}")
    if n > MAX_ATOMS or (expect_atoms is not None and n != expect_atoms):
        raise ProtocolError(f"RESULT: {n} atoms, expected {expect_atoms}")
    need = 13 + (8 + n * 8 + n * 24 + 72 if enc == ENC_FLOAT64 else 8 + n * 8 + n * 12 + 72)
    if need != len(payload):
        raise ProtocolError(f"RESULT: payload is {len(payload)} bytes, header implies {need}")
    if enc == ENC_FLOAT64:
        e = r.array("f8", 1)[0]
        ae = r.array("f8", n)
        f = r.array("f8", n * 3).reshape(n, 3)
        v = r.array("f8", 9).reshape(3, 3)
    else:
        e = np.int64(r.array("i8", 1)[0])
        ae = r.array("i8", n).astype(np.int64)
        f = r.array("i4", n * 3).astype(np.int64).reshape(n, 3)
        v = r.array("i8", 9).astype(np.int64).reshape(3, 3)
    r.end()
    return ComputeResult(energy=e, atom_energy=ae, forces=f, virial=v, saturations=sat, overflow_atoms=over,
                         encoding="float64" if enc == ENC_FLOAT64 else "fixed")


def encode_error(code: int, text: str) -> bytes:
    t = text.encode()[:MAX_TEXT]
    return struct.pack("<HH", code, len(t)) + t


def decode_error(payload: bytes) -> tuple[int, str]:
    r = _Reader(payload, "ERROR")
    code, n = r.unpack("HH")
    text = bytes(r.take(n)).decode("utf-8", "replace")
    r.end()
    return code, text


def encode_ack(value: int = 0) -> bytes:
    return struct.pack("<Q", value)


def decode_ack(payload: bytes) -> int:
    r = _Reader(payload, "ACK")
    (v,) = r.unpack("Q")
    r.end()
    return v


def compute_bytes(natoms: int, width: int, with_list: bool) -> tuple[int, int]:
    """(request bytes, result bytes) on the wire for one fixed-point step, framing included."""
    req = OVERHEAD + COMPUTE_HEAD.size + natoms * 13 + (natoms * width * 7 if with_list else 0)
    res = OVERHEAD + RESULT_HEAD.size + 8 + natoms * 8 + natoms * 12 + 72
    return req, res
