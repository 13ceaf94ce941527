"""The native kernels as real sources: warning-free builds, the generated counter enum, and a run
under AddressSanitizer + UndefinedBehaviorSanitizer that must give the normal build's bits.

The kernels: sim/nvq1/csrc/nvq1_kernel.c (the nvq1 fast kernel's C pass), nvnmd/csrc/neighbors.c
(cell-list neighbour search) and host/csrc/crc32c.c (the protocol's CRC-32C).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nvnmd.cbuild import CLibrary, cdef_from_header, compiler

ROOT = Path(__file__).resolve().parents[1]


def _libraries():
    from nvnmd.host import protocol
    from nvnmd.neighbors import _LIBRARY as nl
    from nvnmd.sim.nvq1.ckernel import library

    return [library(), nl, protocol._CRC_LIB]


def _fresh(lib: CLibrary) -> CLibrary:
    return CLibrary(lib.prefix, lib.package, lib.sources, lib.header, lib.flags, lib.fallback, lib.generated, lib.link)


def _have_compiler() -> bool:
    try:
        return subprocess.run([*compiler(), "--version"], capture_output=True).returncode == 0
    except OSError:
        return False


needs_cc = pytest.mark.skipif(not _have_compiler(), reason="no C compiler (the numpy fallbacks run)")


@needs_cc
def test_kernels_build_without_a_single_warning(tmp_path, monkeypatch):
    """-Wall -Wextra on every C source, built from scratch: the compiler says nothing."""
    monkeypatch.setenv("NVNMD_CACHE", str(tmp_path))
    monkeypatch.delenv("NVNMD_NO_C", raising=False)
    for lib in map(_fresh, _libraries()):
        assert lib.get() is not None, lib.prefix
        assert lib.warnings == "", f"{lib.prefix}:\n{lib.warnings}"


@needs_cc
def test_warnings_are_caught(tmp_path, monkeypatch):
    """The capture works: a source with an unused variable is reported (so the test above can fail)."""
    pkg = tmp_path / "pkg_warn"
    (pkg / "csrc").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "csrc" / "w.h").write_text("/* --- cffi cdef begin --- */\nint w(int a);\n/* --- cffi cdef end --- */\n")
    (pkg / "csrc" / "w.c").write_text('#include "w.h"\nint w(int a) { int unused; return a + 1; }\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NVNMD_CACHE", str(tmp_path / "cache"))
    lib = CLibrary("warn", "pkg_warn", ["w.c"], "w.h", ["-O2"], fallback="none")
    ffi, c = lib.get()
    assert c.w(41) == 42
    assert "unused" in lib.warnings


def test_counter_enum_is_generated_from_sites():
    from nvnmd.sim.nvq1 import ckernel
    from nvnmd.sim.nvq1.sites import SITES

    enum = dict((m[0], int(m[1])) for m in re.findall(r"NVQ1_SITE_(\w+) = (\d+)", ckernel.sites_header()))
    assert list(enum) == [*SITES, "overflow"] and list(enum.values()) == list(range(len(SITES) + 1))
    assert f"NVQ1_NSLOTS = {ckernel.NSLOTS}" in ckernel.sites_header() and ckernel.NSLOTS == len(SITES) + 1
    # the kernel names its slots only through the generated enum, and the header declares its API once
    src = (ROOT / "sim/nvq1/csrc/nvq1_kernel.c").read_text()
    assert "enum" not in src and '#include "nvq1_sites.h"' in src
    used = set(re.findall(r"NVQ1_SITE_(\w+)", src))
    assert used <= set(SITES) | {"overflow"} and len(used) >= len(SITES) - 1
    cdef = cdef_from_header((ROOT / "sim/nvq1/csrc/nvq1_kernel.h").read_text())
    assert "nvq1_compute" in cdef and "nvq1_work_doubles" in cdef and "#" not in cdef


SANITIZED = r"""
import json, sys
import numpy as np
from nvnmd.compute import encode_request
from nvnmd.host.protocol import crc32c
from nvnmd.image import Image
from nvnmd.neighbors import build_neighbor_list, c_kernel
from nvnmd.sim.nvq1 import ckernel
import nvnmd.sim
src, out = sys.argv[1], sys.argv[2]
assert ckernel.get() is not None and c_kernel() is not None
f = np.load(src)
sim = nvnmd.sim.load(Image.from_bytes(open(src.replace(".npz", ".nvq"), "rb").read()))
res = {}
nl = build_neighbor_list(f["coord"], f["cell"], sim.rcut)
res["nlist"], res["shifts"] = nl.nlist, nl.shifts
req = encode_request(f["coord"], f["types"], f["cell"], nl.nlist, nl.shifts)
for threads in (1, 2):
    sim._fast.threads = threads
    r = sim.compute(req)
    for k in ("atom_energy", "forces", "virial"):
        res[f"{k}{threads}"] = np.asarray(getattr(r, k))
    res[f"counters{threads}"] = np.array(json.dumps(r.counters))
    res[f"over{threads}"] = np.array(r.overflow_atoms)
res["crc"] = np.array([crc32c(nl.nlist.tobytes()), crc32c(b"123456789"), crc32c(bytes(range(7)))])
np.savez(out, **res)
"""


def _runtime(name: str) -> str | None:
    cc = compiler()
    try:
        path = subprocess.run([*cc, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return None
    return path if os.path.isabs(path) and os.path.exists(path) else None


@needs_cc
@pytest.mark.skipif(_runtime("libasan.so") is None, reason="no AddressSanitizer runtime for this compiler")
def test_kernels_under_address_and_undefined_sanitizers(quantized, tmp_path):
    """A compressed 400-atom LGPS frame (close contacts, sel overflow, saturations all fire)
    through the neighbour search, the nvq1 kernel on 1 and 2 threads and the CRC, built with
    -fsanitize=address,undefined (any report aborts the run): the same bits as the normal build."""
    model, frames = quantized
    frame = next(fr for fr in frames if fr.natoms == 400)
    squeeze = 0.62
    np.savez(tmp_path / "frame.npz", coord=frame.coord * squeeze, cell=frame.cell * squeeze, types=frame.types)
    (tmp_path / "frame.nvq").write_bytes(model.to_image().to_bytes())
    script = tmp_path / "run.py"
    script.write_text(SANITIZED)
    runs = {}
    for mode in ("plain", "sanitized"):
        env = dict(os.environ, NVNMD_CACHE=str(tmp_path / f"cache-{mode}"), OMP_NUM_THREADS="1")
        env.pop("NVNMD_NO_C", None)
        if mode == "sanitized":
            env.update(NVNMD_SANITIZE="1", LD_PRELOAD=_runtime("libasan.so"),
                       ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=86",
                       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87")
        out = tmp_path / f"{mode}.npz"
        proc = subprocess.run([sys.executable, str(script), str(tmp_path / "frame.npz"), str(out)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{mode} run failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr[-4000:]
        runs[mode] = dict(np.load(out))
    built = sorted((tmp_path / "cache-sanitized").glob("_*.so"))
    assert len(built) == 3 and all(b"__asan_report" in p.read_bytes() and b"__ubsan_handle" in p.read_bytes()
                                   for p in built), "the sanitized run used uninstrumented libraries"
    plain, sanitized = runs["plain"], runs["sanitized"]
    assert sorted(plain) == sorted(sanitized)
    for key in plain:
        np.testing.assert_array_equal(plain[key], sanitized[key], err_msg=key)
    counters = json.loads(str(plain["counters1"]))
    assert counters.get("close_contact", 0) > 0 and sum(counters.values()) > counters["close_contact"]
    assert int(plain["over1"]) > 0
    for k in ("atom_energy", "forces", "virial", "counters", "over"):  # threads: the same bits
        np.testing.assert_array_equal(plain[f"{k}1"], plain[f"{k}2"], err_msg=k)


def _frame_request(model, frame, squeeze):
    from nvnmd.compute import encode_request
    from nvnmd.neighbors import build_neighbor_list

    coord, cell = frame.coord * squeeze, frame.cell * squeeze
    nl = build_neighbor_list(coord, cell, model.rcut)
    req = encode_request(coord, frame.types, cell, nl.nlist, nl.shifts)
    return req.coords, req.types, req.cell, req.nlist, req.shifts


@needs_cc
@pytest.mark.parametrize("squeeze", [1.0, 0.62])
def test_threads_give_the_same_bits(quantized, squeeze):
    """1, 2 and 3 threads (and the BLAS and plain-loop GEMM routes): identical energies, forces,
    virial, counters and overflow on a 400-atom LGPS frame (compressed: counters fire)."""
    from nvnmd.sim.nvq1.fast import FastKernel

    model, frames = quantized
    frame = next(fr for fr in frames if fr.natoms == 400)
    args = _frame_request(model, frame, squeeze)
    base = FastKernel(model, threads=1)
    assert base.clib is not None
    ref = base.compute(*args)
    if squeeze < 1:
        assert ref[3].get("close_contact", 0) > 0 and ref[4] > 0
    for threads in (2, 3):
        base.threads = threads
        got = base.compute(*args)
        for a, b in zip(ref[:3], got[:3]):
            np.testing.assert_array_equal(a, b)
        assert got[3] == ref[3] and got[4] == ref[4]
    blas = FastKernel(model)  # the packed GEMM switched off: scipy's dgemm
    ffi = blas.clib[0]
    for l in range(16):
        for t in range(8):
            blas._fitp.wp[l][t] = blas._fitp.wtp[l][t] = ffi.NULL
    assert blas._fitp.dgemm != ffi.NULL
    got = blas.compute(*args)
    for a, b in zip(ref[:3], got[:3]):
        np.testing.assert_array_equal(a, b)
    assert got[3] == ref[3] and got[4] == ref[4]


@needs_cc
def test_sim_backend_threads_option(quantized, tmp_path):
    from nvnmd.backends import make_backend
    from nvnmd.errors import NvnmdError

    model, frames = quantized
    frame = next(fr for fr in frames if fr.natoms == 400)
    image = model.to_image()
    one, _ = make_backend("sim", image=image)
    two, why = make_backend("sim", image=image, threads=2)
    assert "2 threads" in why and two.sim._fast.threads == 2
    a, b = (be.compute(frame.coord, frame.types, frame.cell) for be in (one, two))
    np.testing.assert_array_equal(a.forces, b.forces)
    assert a.energy == b.energy
    np.testing.assert_array_equal(a.virial, b.virial)
    with pytest.raises(NvnmdError, match="threads"):
        make_backend("sim", image=image, threads=0)
