"""`Board`: the host driver (one code path for a real FPGA board and the virtual board).

Request/response over a transport, one outstanding request at a time. Every request carries
a fresh sequence number; a retry re-sends the same bytes with the same number, and the board
answers a repeated number from its cache, so a retried compute is never applied twice.
Replies are accepted only with a valid CRC (the decoder drops anything else), the expected
sequence number, the expected message type and the expected shape; stale or duplicated replies
are discarded. A board that answers "not loaded" has been reset: the driver re-uploads the
image, re-sends the cell and the full neighbour list, then the step.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from nvnmd.compute import ComputeResult
from nvnmd.errors import LinkError
from nvnmd.host import protocol as P
from nvnmd.host.transport import open_transport

CHUNK = 64 << 10


class Board:
    def __init__(self, url: str, timeout: float = 1.0, retries: int = 8):
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.per_byte = 2e-6  # reply allowance per request byte: a ~0.5 MB/s link + CRC in Python
        self.transport = open_transport(url)
        self.dec = P.Decoder()
        # Random start: sessions (and reconnecting hosts) do not reuse each other's numbers.
        self.seq = int.from_bytes(os.urandom(4), "little")
        self.stats = {"requests": 0, "retries": 0, "timeouts": 0, "stale": 0, "recoveries": 0, "reconnects": 0,
                      "bytes_out": 0, "bytes_in": 0}
        self._image_raw = None
        self._cell = None
        self._list = None  # (nlist, shifts) as last sent, for re-sending after a reset
        self.caps = None

    @classmethod
    def open(cls, url: str, timeout: float = 1.0, retries: int = 8) -> "Board":
        board = cls(url, timeout=timeout, retries=retries)
        board.caps = board.identify()
        if board.caps["protocol"] != P.PROTOCOL_VERSION:
            raise LinkError(f"board speaks protocol {board.caps['protocol']}, driver {P.PROTOCOL_VERSION}")
        return board

    def close(self):
        if self.transport is not None:
            self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- request/response core ----
    def _reconnect(self):
        self.stats["reconnects"] += 1
        if self.transport is not None:
            try:
                self.transport.close()
            except OSError as exc:
                self.last_close_error = exc
            self.transport = None
        self.transport = open_transport(self.url)
        self.dec = P.Decoder()

    def request(self, mtype: int, payload: bytes, expect: int) -> bytes:
        """Send one request, return the payload of the matching reply (retries, resync)."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        seq = self.seq
        frame = P.encode_frame(mtype, seq, payload)
        self.stats["requests"] += 1
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retries"] += 1
                # A partial frame still buffered belongs to an earlier attempt; start clean.
                self.dec.buf.clear()
            try:
                if self.transport is None:
                    self._reconnect()
                self.transport.write(frame)
                self.stats["bytes_out"] += len(frame)
                # Large frames (image chunks) also need time to cross the link and be checked.
                reply = self._await(seq, self.timeout + len(frame) * self.per_byte)
            except LinkError:
                if attempt == self.retries:
                    raise
                try:
                    self._reconnect()
                except LinkError:
                    # The board may be restarting; the next attempt reconnects again.
                    time.sleep(self.timeout)
                continue
            if reply is None:
                continue
            if reply.type == P.ERROR:
                code, text = P.decode_error(reply.payload)
                raise P.BoardError(code, text)
            if reply.type != expect:
                raise P.ProtocolError(f"expected {P.NAMES.get(expect)}, board sent {P.NAMES.get(reply.type)}")
            return reply.payload
        raise LinkError(f"{self.url}: no valid reply to {P.NAMES.get(mtype)} after {self.retries + 1} attempts "
                        f"({self.timeout:g} s timeout)")

    def _await(self, seq: int, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stats["timeouts"] += 1
                return None
            bad_before = self.dec.bad_frames
            data = self.transport.read_some(min(left, 0.05))
            if not data:
                continue
            self.stats["bytes_in"] += len(data)
            for f in self.dec.feed(data):
                if f.seq == seq:
                    # Drop whatever else is buffered: it can only be stale duplicates.
                    self.dec.buf.clear()
                    return f
                self.stats["stale"] += 1
            if self.dec.bad_frames > bad_before and len(self.dec.buf) < len(P.SYNC):
                # A reply arrived damaged and nothing more is pending: retry now rather
                # than waiting out the timeout.
                return None

    # ---- messages ----
    def identify(self) -> dict:
        return P.decode_caps(self.request(P.IDENTIFY, b"", P.CAPS))

    def reset(self):
        self.request(P.RESET, b"", P.ACK)

    def upload(self, image_or_raw) -> None:
        raw = image_or_raw if isinstance(image_or_raw, (bytes, bytearray)) else image_or_raw.to_bytes()
        raw = bytes(raw)
        digest = hashlib.sha256(raw).digest()
        self.request(P.IMAGE_BEGIN, P.encode_image_begin(len(raw), digest), P.ACK)
        for off in range(0, len(raw), CHUNK):
            got = P.decode_ack(self.request(P.IMAGE_CHUNK, P.encode_image_chunk(off, raw[off:off + CHUNK]), P.ACK))
            if got != off + len(raw[off:off + CHUNK]):
                raise P.ProtocolError(f"board acknowledged {got} bytes after chunk at {off}")
        self.request(P.IMAGE_COMMIT, digest, P.ACK)
        self._image_raw = raw
        self.caps = self.identify()

    def set_cell(self, cell_codes, pbc: bool = True) -> None:
        cell_codes = np.asarray(cell_codes, dtype=np.int64).reshape(3, 3)
        self.request(P.CELL, P.encode_cell(cell_codes, pbc), P.ACK)
        self._cell = (cell_codes.copy(), bool(pbc))

    def compute(self, coords, types, nlist=None, shifts=None) -> ComputeResult:
        """One step; nlist/shifts only when the list was rebuilt (else the board reuses its list)."""
        coords = np.asarray(coords)
        n = coords.shape[0]
        if nlist is not None:
            self._list = (np.asarray(nlist, dtype=np.int32), np.asarray(shifts, dtype=np.int8))
        payload = P.encode_compute(coords, types, nlist, shifts)
        for _ in range(3):
            try:
                raw = self.request(P.COMPUTE, payload, P.RESULT)
                return P.decode_result(raw, expect_atoms=n)
            except P.BoardError as exc:
                if exc.code not in (P.E_NOT_LOADED, P.E_NO_CELL, P.E_NO_LIST):
                    raise
                if (exc.code == P.E_NO_LIST and self._list is None) or self._image_raw is None:
                    raise  # nothing of ours was lost to a reset: a usage error, reported as is
                self._recover()
                # The board lost its list with its state: this step must carry it again.
                payload = P.encode_compute(coords, types, *self._list) if self._list else payload
        raise LinkError(f"{self.url}: board keeps losing its state (reset loop)")

    def _recover(self):
        """The board was reset: restore image, cell (and the list travels with the re-sent step)."""
        self.stats["recoveries"] += 1
        if self._image_raw is None:
            raise LinkError(f"{self.url}: board has no image loaded and none was uploaded by this driver")
        self.upload(self._image_raw)
        if self._cell is not None:
            self.set_cell(*self._cell)
