"""Byte transports to a board: pyserial URLs (tty, socket://, loop://, spy://) and XDMA.

A transport moves bytes only: `write(data)`, `read_some(timeout) -> bytes` (b"" on timeout),
`close()`. Framing and retries are the driver's job. `open_transport(url)` picks one:

    /dev/ttyUSB0?baud=3000000     a UART (any pyserial port name, baud from the query)
    socket://127.0.0.1:PORT       TCP (pyserial's socket handler)
    loop://  spy://...            pyserial loopback and wire logging
    xdma://H2C_PATH,C2H_PATH      PCIe XDMA host-to-card / card-to-host character devices
"""

from __future__ import annotations

import os
import select
import urllib.parse

from nvnmd.errors import LinkError


def read_ready(url: str, handle, read, timeout: float, closed: str) -> bytes:
    """Whatever the OS holds for `handle` within `timeout`, in one read (b"" if nothing came).

    An end of stream is a LinkError (`closed` says whose end), as is any OS error."""
    try:
        r, _, _ = select.select([handle], [], [], max(timeout, 0.0))
        if not r:
            return b""
        data = read(1 << 20)
    except BlockingIOError:
        return b""
    except OSError as exc:
        raise LinkError(f"{url}: read failed: {exc}") from None
    if not data:
        raise LinkError(f"{url}: {closed}")
    return data


class SerialTransport:
    def __init__(self, url: str, baud: int = 115200):
        import serial

        self.url = url
        try:
            self.ser = serial.serial_for_url(url, baudrate=baud, timeout=0.1, do_not_open=False)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise LinkError(f"cannot open {url}: {exc}") from None
        self._exc = (serial.SerialException, OSError)
        sock = getattr(self.ser, "_socket", None)
        if sock is not None:
            # Request/response traffic: Nagle + delayed ACK would add ~40 ms per step.
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def write(self, data: bytes) -> None:
        try:
            self.ser.write(data)
        except self._exc as exc:
            raise LinkError(f"{self.url}: write failed: {exc}") from None

    def read_some(self, timeout: float) -> bytes:
        if self._sock is not None:
            # pyserial's socket handler reads byte by byte (in_waiting is 0/1); read what
            # the kernel holds in one recv instead.
            return read_ready(self.url, self._sock, self._sock.recv, timeout, "connection closed by the board")
        try:
            self.ser.timeout = max(timeout, 0.0)
            first = self.ser.read(1)
            if not first:
                return b""
            waiting = self.ser.in_waiting
            return first + (self.ser.read(waiting) if waiting else b"")
        except self._exc as exc:
            raise LinkError(f"{self.url}: read failed: {exc}") from None

    def close(self) -> None:
        self.ser.close()


class XdmaTransport:
    """Two character devices (XDMA h2c/c2h) or, in tests, two FIFOs served by a thread."""

    def __init__(self, h2c: str, c2h: str):
        self.url = f"xdma://{h2c},{c2h}"
        try:
            # c2h first and non-blocking: opening a FIFO's read end must not wait for its
            # writer, which (in the stand-in) only opens after it sees our h2c open.
            self.rfd = os.open(c2h, os.O_RDONLY | os.O_NONBLOCK)
            self.wfd = os.open(h2c, os.O_WRONLY)
        except OSError as exc:
            raise LinkError(f"cannot open {self.url}: {exc}") from None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.wfd, view)
            except OSError as exc:
                raise LinkError(f"{self.url}: write failed: {exc}") from None
            view = view[n:]

    def read_some(self, timeout: float) -> bytes:
        return read_ready(self.url, self.rfd, lambda n: os.read(self.rfd, n), timeout, "device closed by the board")

    def close(self) -> None:
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError as exc:
                # already closed by a failed open path; nothing else to release
                del exc


SOCKET_OPTIONS = {"logging": ("debug", "info", "warning", "error")}  # what pyserial's socket:// accepts


def check_socket_url(url: str) -> None:
    """socket://HOST:PORT[?logging=LEVEL], checked here so that a bad port or option is named
    (pyserial reports either as its list of logging levels)."""
    parts = urllib.parse.urlsplit(url)
    host, sep, port = parts.netloc.rpartition(":")
    if not sep or not host:
        raise LinkError(f"{url}: a socket URL needs a host and a port, socket://HOST:PORT")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise LinkError(f"{url}: port {port!r} is not a number in 1..65535")
    for key, values in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items():
        if key not in SOCKET_OPTIONS:
            raise LinkError(f"{url}: unknown option {key!r} (a socket URL takes only ?logging=LEVEL)")
        if any(v not in SOCKET_OPTIONS[key] for v in values):
            raise LinkError(f"{url}: {key} must be one of {', '.join(SOCKET_OPTIONS[key])}")


def open_transport(url: str):
    if url.startswith("xdma://"):
        paths = url[len("xdma://"):].split(",")
        if len(paths) != 2 or not all(paths):
            raise LinkError(f"xdma URL must be xdma://H2C_PATH,C2H_PATH, got {url}")
        return XdmaTransport(paths[0], paths[1])
    if url.startswith("socket://"):
        check_socket_url(url)
    if "://" in url:
        return SerialTransport(url)
    # A tty path with an optional ?baud=N query (pyserial port names carry no query).
    path, _, query = url.partition("?")
    baud = 115200
    if query:
        q = urllib.parse.parse_qs(query)
        try:
            baud = int(q.get("baud", [baud])[0])
        except ValueError:
            raise LinkError(f"bad baud rate in {url}") from None
    return SerialTransport(path, baud=baud)
