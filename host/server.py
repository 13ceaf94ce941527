"""The virtual board: the bit-accurate simulator behind the wire protocol.

`BoardCore` is the board's state machine (image upload + digest check, cell, neighbour list,
compute, per-sequence response cache, reset); what computes is its engine: the simulator
(`SimEngine`, the default) or anything with the same `load(image)` (`nvnmd.fpga.board.RtlEngine`:
the RTL core in Verilator). `VirtualBoard` serves it over TCP on 127.0.0.1
(never any other address), a pty, or a pair of FIFOs (the XDMA stand-in), with optional link
bandwidth/latency emulation and seeded fault injection (faults.py).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

from nvnmd.compute import ComputeRequest
from nvnmd.errors import NvnmdError
from nvnmd.formats import IO_FORMATS
from nvnmd.host import protocol as P
from nvnmd.host.faults import Faults
from nvnmd.image import Image


class SimEngine:
    """The default compute engine: `load(image)` -> the bit-accurate simulator of the image."""

    name = "nvnmd virtual board (simulator)"

    def load(self, image: Image):
        import nvnmd.sim

        return nvnmd.sim.load(image)


class BoardCore:
    def __init__(self, max_atoms: int = P.MAX_ATOMS, max_neighbors: int = P.MAX_NEIGHBORS, engine=None):
        self.max_atoms = max_atoms
        self.max_neighbors = max_neighbors
        self.engine = engine or SimEngine()
        # Instrumentation outside the board's reset domain (a test harness's counters).
        self.applied: list[int] = []
        self.resets = 0
        self._wipe()

    def _wipe(self):
        self._release()
        self.sim = None
        self.image_digest = None
        self._upload = None  # (size, digest, bytearray)
        self.cell = None
        self.pbc = True
        self.nlist = self.shifts = None
        self.last_seq = None
        self.last_request = None
        self.last_response = None

    def reset(self):
        self.resets += 1
        self._wipe()

    def _release(self):
        # an engine holding a process (the RTL simulator) gives it back when its image goes
        close = getattr(getattr(self, "sim", None), "close", None)
        if close is not None:
            close()

    def load_image_bytes(self, raw: bytes):
        image = Image.from_bytes(raw, source="uploaded image")
        self._release()
        self.sim = None
        self.sim = self.engine.load(image)
        self.image_digest = hashlib.sha256(raw).digest()

    def caps(self) -> dict:
        caps = {"protocol": P.PROTOCOL_VERSION, "max_atoms": self.max_atoms, "max_neighbors": self.max_neighbors,
                "loaded": self.sim is not None, "board": self.engine.name,
                "formats": {k: v.to_dict() for k, v in IO_FORMATS.items()},
                "image_sha256": self.image_digest.hex() if self.image_digest else None}
        if self.sim is not None:
            caps.update(profile=getattr(self.sim, "profile", "nvq1"), type_map=list(self.sim.type_map),
                        rcut=float(self.sim.rcut), sel=[int(s) for s in self.sim.sel])
        return caps

    def handle(self, frame: P.Frame) -> bytes:
        """One request frame -> one response frame (cached per sequence number for retries)."""
        if self.is_retry(frame):
            return self.last_response
        try:
            mtype, payload = self._dispatch(frame)
        except P.BoardError as exc:
            mtype, payload = P.ERROR, P.encode_error(exc.code, exc.text)
        except P.ProtocolError as exc:
            mtype, payload = P.ERROR, P.encode_error(P.E_BAD_MESSAGE, str(exc))
        except NvnmdError as exc:
            mtype, payload = P.ERROR, P.encode_error(P.E_COMPUTE, str(exc))
        resp = P.encode_frame(mtype, frame.seq, payload)
        self.last_seq, self.last_request, self.last_response = frame.seq, (frame.type, frame.payload), resp
        return resp

    def is_retry(self, frame: P.Frame) -> bool:
        # Same number *and* same content: a new host session whose counter happens to hit
        # the cached number must not be answered with another session's reply.
        return (self.last_response is not None and frame.seq == self.last_seq
                and self.last_request == (frame.type, frame.payload))

    def _dispatch(self, f: P.Frame):
        t = f.type
        if t == P.IDENTIFY:
            return P.CAPS, P.encode_caps(self.caps())
        if t == P.RESET:
            self._wipe()
            return P.ACK, P.encode_ack(0)
        if t == P.IMAGE_BEGIN:
            size, digest = P.decode_image_begin(f.payload)
            self.sim, self.image_digest = None, None
            self._upload = (size, digest, bytearray(size))  # size already checked against MAX_IMAGE
            return P.ACK, P.encode_ack(0)
        if t == P.IMAGE_CHUNK:
            offset, data = P.decode_image_chunk(f.payload)
            if self._upload is None:
                raise P.BoardError(P.E_NOT_LOADED, "IMAGE_CHUNK without IMAGE_BEGIN")
            size, _, buf = self._upload
            if offset + len(data) > size:
                raise P.BoardError(P.E_LIMIT, f"chunk at {offset}+{len(data)} beyond image size {size}")
            buf[offset:offset + len(data)] = data
            return P.ACK, P.encode_ack(offset + len(data))
        if t == P.IMAGE_COMMIT:
            if self._upload is None:
                raise P.BoardError(P.E_NOT_LOADED, "IMAGE_COMMIT without IMAGE_BEGIN")
            size, digest, buf = self._upload
            if len(f.payload) != 32 or f.payload != digest or hashlib.sha256(buf).digest() != digest:
                self._upload = None
                raise P.BoardError(P.E_DIGEST, "uploaded image does not match its SHA-256")
            self._upload = None
            self.load_image_bytes(bytes(buf))
            return P.ACK, P.encode_ack(size)
        if t == P.CELL:
            self.cell, self.pbc = P.decode_cell(f.payload)
            return P.ACK, P.encode_ack(0)
        if t == P.COMPUTE:
            return P.RESULT, self._compute(f)
        raise P.BoardError(P.E_UNSUPPORTED, f"message type {t} is not a request")

    def _compute(self, f: P.Frame) -> bytes:
        if self.sim is None:
            raise P.BoardError(P.E_NOT_LOADED, "no image loaded")
        coords, types, nlist, shifts = P.decode_compute(f.payload, self.max_atoms, self.max_neighbors)
        if self.cell is None:
            raise P.BoardError(P.E_NO_CELL, "no cell")
        if nlist is not None:
            self.nlist, self.shifts = nlist, shifts
        elif self.nlist is None:
            raise P.BoardError(P.E_NO_LIST, "request reuses a list the board does not hold")
        if self.nlist.shape[0] != coords.shape[0]:
            raise P.BoardError(P.E_LIMIT, f"held list has {self.nlist.shape[0]} rows for {coords.shape[0]} atoms")
        req = ComputeRequest(coords=coords, types=types, cell=self.cell, nlist=self.nlist, shifts=self.shifts,
                             pbc=self.pbc)
        res = self.sim.compute(req)
        self.applied.append(f.seq)
        return P.encode_result(res)


class VirtualBoard:
    """Serves a BoardCore over a byte stream, with link emulation and faults."""

    def __init__(self, core: BoardCore | None = None, faults: Faults | None = None, bandwidth: float = 0.0,
                 latency: float = 0.0):
        self.core = core or BoardCore()
        self.faults = faults or Faults()
        self.bandwidth = bandwidth
        self.latency = latency
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.sock = None
        self.frames_in = 0

    # ---- stream loop ----
    def _send(self, write, data: bytes, delay: float):
        if delay:
            threading.Timer(delay, self._send, (write, data, 0.0)).start()
            return
        if self.bandwidth:
            time.sleep(len(data) / self.bandwidth)
        with self._lock:
            try:
                write(data)
            except OSError as exc:
                # the host went away; the next connection starts clean
                self.last_write_error = exc

    def serve_stream(self, read, write):
        dec = P.Decoder()
        while not self._stop.is_set():
            try:
                data = read()
            except (OSError, ValueError):
                return
            if not data:
                return
            for frame in dec.feed(data):
                self.frames_in += 1
                frame = self._inbound(frame)
                if frame is None:
                    continue
                if not self.core.is_retry(frame) and frame.type == P.COMPUTE and self.faults.should_reset():
                    self.core.reset()
                if self.bandwidth:
                    time.sleep(len(frame.payload) / self.bandwidth)
                resp = self.core.handle(frame)
                if self.latency:
                    time.sleep(self.latency)
                for delay, chunk in self.faults.outbound(resp):
                    self._send(write, chunk, delay)

    def _inbound(self, frame: P.Frame):
        if not self.faults.active:
            return frame
        raw = self.faults.inbound(P.encode_frame(frame.type, frame.seq, frame.payload, frame.flags))
        if raw is None:
            return None
        got = P.Decoder().feed(raw)
        return got[0] if got else None

    # ---- listeners ----
    def listen_tcp(self, port: int = 0) -> str:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))  # loopback only, by design
        self.sock.listen(1)
        self.sock.settimeout(0.2)
        return f"socket://127.0.0.1:{self.sock.getsockname()[1]}"

    def serve_tcp_forever(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(0.2)
            self._conn = conn

            def read(c=conn):
                while not self._stop.is_set():
                    try:
                        return c.recv(1 << 20)
                    except socket.timeout:
                        continue
                return b""

            try:
                self.serve_stream(read, conn.sendall)
            finally:
                conn.close()

    def start_tcp(self, port: int = 0) -> str:
        url = self.listen_tcp(port)
        self.thread = threading.Thread(target=self.serve_tcp_forever, daemon=True)
        self.thread.start()
        return url

    def open_pty(self) -> str:
        import pty
        import tty

        master, slave = pty.openpty()
        tty.setraw(slave)
        self._pty = (master, slave)
        return os.ttyname(slave)

    def serve_pty_forever(self):
        master = self._pty[0]
        self.serve_stream(lambda: os.read(master, 1 << 20), lambda d: os.write(master, d))

    def serve_fifos(self, h2c: str, c2h: str):
        """XDMA stand-in: read requests from the h2c FIFO, answer on the c2h FIFO."""
        rfd = os.open(h2c, os.O_RDONLY)
        wfd = os.open(c2h, os.O_WRONLY)

        def write(d):
            view = memoryview(d)
            while view:
                view = view[os.write(wfd, view):]

        try:
            self.serve_stream(lambda: os.read(rfd, 1 << 20), write)
        finally:
            os.close(rfd)
            os.close(wfd)

    def kick(self):
        """Drop the current host connection (a cable pull / board-side link reset)."""
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.shutdown(socket.SHUT_RDWR)

    def stop(self):
        self._stop.set()
        if self.sock is not None:
            self.sock.close()


def preload(core: BoardCore, image_path) -> None:
    raw = Image.read(image_path).to_bytes()
    core.load_image_bytes(raw)

