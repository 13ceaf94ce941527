"""Files shipped inside the package (data and C sources), reached through importlib.resources.

The one way any module finds a shipped file: `shipped("lgps_student.pb")` for the embedded data
in nvnmd/data/, `package_file("nvnmd.sim.nvq1", "csrc/nvq1_kernel.c")` for a file beside the
code of a subpackage. Never a path built from the location of a source file: an installed wheel has no
repository around it, and the subpackages (quantize/, sim/, host/) are mapped into `nvnmd.*`
from folders that are not siblings of nvnmd/data once installed.

Both return a real filesystem path. On an ordinary install (wheel or editable) the resource
already is one; from a zip import the resource (a file or a whole folder, e.g. a deepmd/npy
frame system) is copied once into $NVNMD_CACHE/resources/ and that copy is returned.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from nvnmd.errors import NvnmdError

DATA_PACKAGE = "nvnmd.data"


def shipped(name: str) -> Path:
    """A file or folder of the embedded data (nvnmd/data/NAME), as a filesystem path."""
    return package_file(DATA_PACKAGE, name)


def package_file(package: str, name: str) -> Path:
    """PACKAGE's resource NAME ('/'-separated below the package folder) as a filesystem path."""
    node = resources.files(package)
    for part in name.split("/"):
        node = node.joinpath(part)
    if not (node.is_file() or node.is_dir()):
        raise NvnmdError(f"shipped file {package}:{name} is missing from the installed package (a broken install?)")
    if isinstance(node, Path):
        return node
    return _materialise(package, name, node)


def package_text(package: str, name: str) -> str:
    """The text of PACKAGE's resource NAME (C sources, headers)."""
    return package_file(package, name).read_text(encoding="utf-8")


def _materialise(package: str, name: str, node: Traversable) -> Path:
    """Copy a resource that is not on the filesystem (zip import) into the cache, atomically."""
    cache = Path(os.environ.get("NVNMD_CACHE", Path.home() / ".cache" / "nvnmd")) / "resources"
    digest = hashlib.sha256(_fingerprint(node).encode()).hexdigest()[:12]
    target = cache / f"{package}-{digest}" / name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staged = Path(tmp) / "copy"
        _copy(node, staged)
        try:
            os.replace(staged, target)
        except OSError:  # another process got there first (a folder cannot replace a folder)
            if not target.exists():
                raise
    return target


def _copy(node: Traversable, dest: Path) -> None:
    if node.is_dir():
        dest.mkdir()
        for child in node.iterdir():
            _copy(child, dest / child.name)
    else:
        dest.write_bytes(node.read_bytes())


def _fingerprint(node: Traversable) -> str:
    if node.is_dir():
        return "d" + "".join(f"{c.name}:{_fingerprint(c)};" for c in sorted(node.iterdir(), key=lambda c: c.name))
    return hashlib.sha256(node.read_bytes()).hexdigest()


