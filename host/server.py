"""The virtual board: the bit-accurate simulator (or the RTL) behind the wire protocol.

`BoardCore` is the board's state machine: one image slot (upload + digest check) and one
datapath shared by host connections; what computes is its engine, the simulator (`SimEngine`,
the default) or anything with the same `load(image)` (`nvnmd.fpga.board.RtlEngine`: the RTL
core in Verilator). Host connections are each a `Session` with its own cell, neighbour list and
per-sequence response cache; reset. `VirtualBoard` serves it over TCP on 127.0.0.1 (never any
other address; one thread and session per connection), a pty, or a pair of FIFOs (the XDMA
stand-in), with optional link bandwidth/latency emulation and seeded fault injection (faults.py).
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

MAX_CONNECTIONS = 16  # host connections served at once; more get E_BUSY


class Session:
    """What one host connection owns on the board: its cell, neighbour list, reply cache and
    image upload in progress. Sessions share the loaded image and the datapath (BoardCore)."""

    def __init__(self, generation: int):
        self.generation = generation
        self.wipe()

    def wipe(self):
        self._upload = None  # (size, digest, bytearray)
        self.cell = None
        self.pbc = True
        self.nlist = self.shifts = None
        self.last_seq = None
        self.last_request = None
        self.last_response = None


class SimEngine:
    """The default compute engine: `load(image)` -> the bit-accurate simulator of the image."""

    name = "nvnmd virtual board (simulator)"

    def load(self, image: Image):
        import nvnmd.sim

        return nvnmd.sim.load(image)


class BoardCore:
    """One image slot and one datapath, shared by every host connection (Session).

    The image belongs to its holders: the sessions that uploaded it or computed with it. A
    session may replace or unload the image only when no other live session holds it; a
    different image is refused with E_BUSY at IMAGE_BEGIN, before any byte of it is sent. A
    host uploading the image already loaded joins its holders. A power loss (`reset`, the
    fault injector) wipes the image and every session's state.
    """

    def __init__(self, max_atoms: int = P.MAX_ATOMS, max_neighbors: int = P.MAX_NEIGHBORS, engine=None):
        self.max_atoms = max_atoms
        self.max_neighbors = max_neighbors
        self.engine = engine or SimEngine()
        # Instrumentation outside the board's reset domain (a test harness's counters).
        self.applied: list[int] = []
        self.resets = 0
        # Board-side compute time of executed COMPUTE requests (retries answered from the
        # cache are not computes): what `bench link` subtracts from round trips.
        self.compute_stats = {"computes": 0, "seconds": 0.0}
        self._lock = threading.RLock()  # one datapath: requests of all sessions run one at a time
        self.generation = 0
        self.sim = None
        self.image_digest = None
        self.holders: set[Session] = set()
        self.default = Session(self.generation)  # the session of single-stream links (pty, FIFOs)

    # ---- sessions ----
    def open_session(self) -> Session:
        return Session(self.generation)

    def close_session(self, session: Session) -> None:
        """The host went away: it no longer holds the image (which stays loaded)."""
        with self._lock:
            self.holders.discard(session)

    def _current(self, session: Session) -> Session:
        if session.generation != self.generation:  # the board lost power since this session's last request
            session.wipe()
            session.generation = self.generation
        return session

    def _others_hold(self, session: Session) -> bool:
        return bool(self.holders - {session})

    def _release(self):
        # an engine holding a process (the RTL simulator) gives it back when its image goes
        close = getattr(self.sim, "close", None)
        if close is not None:
            close()

    def _unload(self):
        self._release()
        self.sim, self.image_digest = None, None
        self.holders.clear()

    def reset(self):
        """Power loss / board reset: image, cell, lists and reply caches of all sessions."""
        with self._lock:
            self.resets += 1
            self.generation += 1
            self._unload()

    # Single-session views (tests and the pty/FIFO links talk to the default session).
    @property
    def cell(self):
        return self._current(self.default).cell

    def load_image_bytes(self, raw: bytes, session: Session | None = None):
        image = Image.from_bytes(raw, source="uploaded image")
        with self._lock:
            self._release()
            self.sim = None
            self.sim = self.engine.load(image)
            self.image_digest = hashlib.sha256(raw).digest()
            self.holders = {session} if session is not None else set()

    def caps(self) -> dict:
        caps = {"protocol": P.PROTOCOL_VERSION, "max_atoms": self.max_atoms, "max_neighbors": self.max_neighbors,
                "loaded": self.sim is not None, "board": self.engine.name,
                "formats": {k: v.to_dict() for k, v in IO_FORMATS.items()},
                "image_sha256": self.image_digest.hex() if self.image_digest else None}
        if self.sim is not None:
            caps.update(profile=getattr(self.sim, "profile", "nvq1"), type_map=list(self.sim.type_map),
                        rcut=float(self.sim.rcut), sel=[int(s) for s in self.sim.sel])
        return caps

    def handle(self, frame: P.Frame, session: Session | None = None) -> bytes:
        """One request frame -> one response frame (cached per sequence number for retries)."""
        with self._lock:
            s = self._current(session or self.default)
            if self.is_retry(frame, s):
                return s.last_response
            try:
                mtype, payload = self._dispatch(frame, s)
            except P.BoardError as exc:
                mtype, payload = P.ERROR, P.encode_error(exc.code, exc.text)
            except P.ProtocolError as exc:
                mtype, payload = P.ERROR, P.encode_error(P.E_BAD_MESSAGE, str(exc))
            except NvnmdError as exc:
                mtype, payload = P.ERROR, P.encode_error(P.E_COMPUTE, str(exc))
            resp = P.encode_frame(mtype, frame.seq, payload)
            s.last_seq, s.last_request, s.last_response = frame.seq, (frame.type, frame.payload), resp
            return resp

    def is_retry(self, frame: P.Frame, session: Session | None = None) -> bool:
        # Same number *and* same content: a new host session whose counter happens to hit
        # the cached number must not be answered with another session's reply.
        with self._lock:
            s = self._current(session or self.default)
            return (s.last_response is not None and frame.seq == s.last_seq
                    and s.last_request == (frame.type, frame.payload))

    def _busy(self, what: str) -> P.BoardError:
        return P.BoardError(P.E_BUSY, f"board busy: another host connection holds image "
                                      f"{self.image_digest.hex()[:12]}; {what} once it disconnects")

    def _dispatch(self, f: P.Frame, s: Session):
        t = f.type
        if t == P.IDENTIFY:
            return P.CAPS, P.encode_caps(self.caps())
        if t == P.RESET:
            s.wipe()
            if self._others_hold(s):
                self.holders.discard(s)  # the image stays for its other holders
            else:
                self._unload()
            return P.ACK, P.encode_ack(0)
        if t == P.IMAGE_BEGIN:
            size, digest = P.decode_image_begin(f.payload)
            if digest != self.image_digest:
                if self.sim is not None and self._others_hold(s):
                    raise self._busy("load another image")
                self._unload()  # the image memory is overwritten from here on
            s._upload = (size, digest, bytearray(size))  # size already checked against MAX_IMAGE
            return P.ACK, P.encode_ack(0)
        if t == P.IMAGE_CHUNK:
            offset, data = P.decode_image_chunk(f.payload)
            if s._upload is None:
                raise P.BoardError(P.E_NOT_LOADED, "IMAGE_CHUNK without IMAGE_BEGIN")
            size, _, buf = s._upload
            if offset + len(data) > size:
                raise P.BoardError(P.E_LIMIT, f"chunk at {offset}+{len(data)} beyond image size {size}")
            buf[offset:offset + len(data)] = data
            return P.ACK, P.encode_ack(offset + len(data))
        if t == P.IMAGE_COMMIT:
            if s._upload is None:
                raise P.BoardError(P.E_NOT_LOADED, "IMAGE_COMMIT without IMAGE_BEGIN")
            size, digest, buf = s._upload
            s._upload = None
            if len(f.payload) != 32 or f.payload != digest or hashlib.sha256(buf).digest() != digest:
                raise P.BoardError(P.E_DIGEST, "uploaded image does not match its SHA-256")
            if self.sim is not None and digest == self.image_digest:
                self.holders.add(s)  # the image already loaded: share it
            elif self.sim is not None and self._others_hold(s):
                raise self._busy("load another image")  # another host loaded one meanwhile
            else:
                self.load_image_bytes(bytes(buf), s)
            return P.ACK, P.encode_ack(size)
        if t == P.CELL:
            s.cell, s.pbc = P.decode_cell(f.payload)
            return P.ACK, P.encode_ack(0)
        if t == P.COMPUTE:
            return P.RESULT, self._compute(f, s)
        raise P.BoardError(P.E_UNSUPPORTED, f"message type {t} is not a request")

    def _compute(self, f: P.Frame, s: Session) -> bytes:
        if self.sim is None:
            raise P.BoardError(P.E_NOT_LOADED, "no image loaded")
        coords, types, nlist, shifts = P.decode_compute(f.payload, self.max_atoms, self.max_neighbors)
        if s.cell is None:
            raise P.BoardError(P.E_NO_CELL, "no cell")
        if nlist is not None:
            s.nlist, s.shifts = nlist, shifts
        elif s.nlist is None:
            raise P.BoardError(P.E_NO_LIST, "request reuses a list the board does not hold")
        if s.nlist.shape[0] != coords.shape[0]:
            raise P.BoardError(P.E_LIMIT, f"held list has {s.nlist.shape[0]} rows for {coords.shape[0]} atoms")
        req = ComputeRequest(coords=coords, types=types, cell=s.cell, nlist=s.nlist, shifts=s.shifts, pbc=s.pbc)
        self.holders.add(s)
        t0 = time.perf_counter()
        res = self.sim.compute(req)
        self.compute_stats["seconds"] += time.perf_counter() - t0
        self.compute_stats["computes"] += 1
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
        self._conns: set[socket.socket] = set()

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

    def serve_stream(self, read, write, session=None):
        dec = P.Decoder()
        session = session or self.core.default
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
                if (not self.core.is_retry(frame, session) and frame.type == P.COMPUTE
                        and self.faults.should_reset()):
                    self.core.reset()
                if self.bandwidth:
                    time.sleep(len(frame.payload) / self.bandwidth)
                resp = self.core.handle(frame, session)
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
        self.sock.listen(MAX_CONNECTIONS)
        self.sock.settimeout(0.2)
        return f"socket://127.0.0.1:{self.sock.getsockname()[1]}"

    def serve_tcp_forever(self):
        """Accept host connections, each served by its own thread and Session: a host that
        connects and goes quiet does not keep the others waiting."""
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(0.2)
            with self._lock:
                full = len(self._conns) >= MAX_CONNECTIONS
                if not full:
                    self._conns.add(conn)
            if full:
                threading.Thread(target=self._refuse, args=(conn,), daemon=True).start()
                continue
            threading.Thread(target=self._serve_conn, args=(conn,), daemon=True).start()

    def _serve_conn(self, conn):
        def read():
            while not self._stop.is_set():
                try:
                    return conn.recv(1 << 20)
                except socket.timeout:
                    continue
            return b""

        session = self.core.open_session()
        try:
            self.serve_stream(read, conn.sendall, session)
        finally:
            self.core.close_session(session)
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _refuse(self, conn):
        """Too many hosts: answer the first request with E_BUSY, then hang up."""
        dec = P.Decoder()
        deadline = time.monotonic() + 2.0
        try:
            while time.monotonic() < deadline and not self._stop.is_set():
                try:
                    data = conn.recv(1 << 16)
                except socket.timeout:
                    continue
                if not data:
                    break
                frames = dec.feed(data)
                if frames:
                    text = f"board busy: {MAX_CONNECTIONS} host connections already open"
                    conn.sendall(P.encode_frame(P.ERROR, frames[0].seq, P.encode_error(P.E_BUSY, text)))
                    break
        except OSError as exc:
            self.last_write_error = exc
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
        """Drop every host connection (a cable pull / board-side link reset)."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError as exc:
                self.last_write_error = exc  # already gone

    def stop(self):
        self._stop.set()
        if self.sock is not None:
            self.sock.close()


def preload(core: BoardCore, image_path) -> None:
    raw = Image.read(image_path).to_bytes()
    core.load_image_bytes(raw)

