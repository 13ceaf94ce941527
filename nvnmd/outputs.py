"""Output paths: checked before any work starts, every output file with the same mode.

`check_output_dir(path, opt)` and `check_output_file(path, opt)` refuse, in one line naming the
user's path and option, an output that cannot be written: a file where a directory is wanted
(or the reverse), a parent that is a file, a read-only or missing-permission location. They
create the directory (or the file's parent), as the command would, and probe it with a file
that is removed at once; its name never reaches the message. `output_mode()` is the mode an
ordinary `open(path, "w")` gives (0666 less the umask); `nvnmd.image.write_atomic` applies it
to its temp files, which mkstemp creates 0600.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nvnmd.errors import NvnmdError


def output_mode() -> int:
    """0o666 & ~umask, read without changing the umask where the kernel reports it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _probe(directory: Path, what: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".nvnmd-probe-")
    except OSError as exc:
        raise NvnmdError(f"{what}: cannot write there ({_why(exc)})") from None
    os.close(fd)
    os.unlink(tmp)


def _make_dir(path: Path, what: str) -> None:
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise NvnmdError(f"{what}: {parent} is a file, not a directory")
        if parent.exists():
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NvnmdError(f"{what}: cannot create the directory ({_why(exc)})") from None


def check_output_dir(path, opt: str = "-o") -> Path:
    """The output directory `path`, created and known to be writable."""
    path = Path(path)
    what = f"{opt} {path}"
    if path.exists() and not path.is_dir():
        raise NvnmdError(f"{what}: exists and is not a directory")
    _make_dir(path, what)
    _probe(path, what)
    return path


def check_output_file(path, opt: str = "-o") -> Path:
    """The output file `path`: not a directory, its directory created and writable."""
    path = Path(path)
    what = f"{opt} {path}"
    if path.is_dir():
        raise NvnmdError(f"{what}: is a directory; give the file to write")
    parent = path.parent if str(path.parent) else Path(".")
    _make_dir(parent, what)
    _probe(parent, what)
    if path.exists() and not os.access(path, os.W_OK):
        raise NvnmdError(f"{what}: exists and is not writable")
    return path
