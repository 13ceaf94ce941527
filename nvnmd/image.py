"""The board image container: one file (`.nvq`) holding a quantized model for the accelerator.

Layout (little-endian), version 1:

    magic  b"NVNMDIMG"                      8 bytes
    container version (uint32)              4 bytes
    header length H (uint32)                4 bytes
    header: UTF-8 JSON, H bytes             {"profile", "meta", "sections": [{name, dtype, shape, offset, nbytes}]}
    section data, each 8-byte aligned
    SHA-256 of everything before it         32 bytes

The header names the numeric profile ("nvq1" for our own spec, "nvnmd-v0" for deepmd-kit
NVNMD models) and carries every number format the sections are written in (`meta`), so a
reader never guesses a format. Sections are plain integer/float arrays; nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nvnmd.errors import CorruptFileError

MAGIC = b"NVNMDIMG"
CONTAINER_VERSION = 1
ALLOWED_DTYPES = {"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float64"}
MAX_HEADER = 1 << 24
MAX_SECTION_BYTES = 1 << 31


@dataclass
class Image:
    profile: str
    meta: dict
    sections: dict[str, np.ndarray] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        entries, blobs, offset = [], [], 0
        for name, arr in self.sections.items():
            arr = np.ascontiguousarray(arr)
            if arr.dtype.name not in ALLOWED_DTYPES:
                raise ValueError(f"section {name}: dtype {arr.dtype} not allowed in an image")
            data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            entries.append({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape), "offset": offset, "nbytes": len(data)})
            pad = (-len(data)) % 8
            blobs.append(data + b"\0" * pad)
            offset += len(data) + pad
        header = json.dumps({"profile": self.profile, "meta": self.meta, "sections": entries}, sort_keys=True).encode()
        header += b" " * ((-len(header)) % 8)
        body = MAGIC + struct.pack("<II", CONTAINER_VERSION, len(header)) + header + b"".join(blobs)
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_bytes(cls, raw: bytes, source: str = "image") -> "Image":
        if len(raw) < 16 + 32 or raw[:8] != MAGIC:
            raise CorruptFileError(f"{source}: not an nvnmd image (bad magic or too short)")
        body, digest = raw[:-32], raw[-32:]
        if hashlib.sha256(body).digest() != digest:
            raise CorruptFileError(f"{source}: checksum mismatch (truncated or corrupted image)")
        version, hlen = struct.unpack_from("<II", raw, 8)
        if version != CONTAINER_VERSION:
            raise CorruptFileError(f"{source}: image container version {version}, this nvnmd reads {CONTAINER_VERSION}")
        if hlen > MAX_HEADER or 16 + hlen > len(body):
            raise CorruptFileError(f"{source}: header length {hlen} out of range")
        try:
            header = json.loads(body[16 : 16 + hlen])
        except ValueError:
            raise CorruptFileError(f"{source}: header is not valid JSON") from None
        data = body[16 + hlen :]
        sections = {}
        for entry in header.get("sections", []):
            dtype, shape = entry["dtype"], tuple(int(n) for n in entry["shape"])
            start, nbytes = int(entry["offset"]), int(entry["nbytes"])
            if dtype not in ALLOWED_DTYPES or nbytes > MAX_SECTION_BYTES or start < 0 or start + nbytes > len(data):
                raise CorruptFileError(f"{source}: section {entry.get('name')} is malformed")
            count = int(np.prod(shape)) if shape else 1
            if count * np.dtype(dtype).itemsize != nbytes:
                raise CorruptFileError(f"{source}: section {entry['name']} size does not match its shape")
            arr = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=start)
            sections[entry["name"]] = arr.astype(np.dtype(dtype)).reshape(shape)
        return cls(profile=str(header["profile"]), meta=header["meta"], sections=sections)

    def digest(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def write(self, path: str | os.PathLike) -> None:
        write_atomic(Path(path), self.to_bytes())

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Image":
        path = Path(path)
        return cls.from_bytes(path.read_bytes(), source=str(path))


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the complete new content, with the
    mode every other output gets (0666 less the umask)."""
    from nvnmd.errors import NvnmdError
    from nvnmd.outputs import output_mode

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # the message names the user's path, never the temp file's
        raise NvnmdError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        os.fchmod(fd, output_mode())  # mkstemp makes it 0600; outputs get what open() would give
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
