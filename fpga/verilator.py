"""The RTL in Verilator: native-harness builds cached by content, and the core as a compute engine.

`build_native(top, sources, params)` compiles a top module with the C++ harness of
`rtl/harness/core_harness.cpp` (the clock runs in C++; no Python per cycle) and caches the
executable under $NVNMD_CACHE/rtl (default ~/.cache/nvnmd/rtl), keyed by the Verilator
version, the contents of every source, the parameters and the flags; a build happens in a
private directory and is moved in atomically, so concurrent test processes never run a
half-written binary. `Harness` keeps one simulator process alive across frames.

`RtlCore(image, lanes=...)` is nvq1_core (fpga/rtl/core/INTERFACE.md) behind the same
`compute(request) -> ComputeResult` call as the simulator: the board's virtual server and
`nvnmd rtl check` use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from nvnmd.errors import NvnmdError
from nvnmd.fpga.sources import core_sources, rtl_dir

HARNESS = "core_harness.cpp"
# Lint warnings are the RTL authors' business (verilator --lint-only -Wall in their tests);
# a build for simulation must not stop on them.
VERILATOR_FLAGS = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "--prefix", "Vcore"]


class RtlError(NvnmdError):
    """The RTL toolchain is missing, a build failed, or the simulated core misbehaved."""


def cache_root() -> Path:
    return Path(os.environ.get("NVNMD_CACHE", Path.home() / ".cache" / "nvnmd")) / "rtl"


def verilator_version() -> str:
    exe = shutil.which("verilator")
    if exe is None or shutil.which("make") is None or shutil.which("g++") is None:
        raise RtlError("the RTL runs in Verilator: install it with `apt-get install verilator g++ make`")
    return subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def _param_flag(name: str, value) -> str:
    return f"-G{name}={value}"


def build_key(top: str, sources: list[Path], params: dict, harness: Path) -> str:
    h = hashlib.sha256()
    h.update(verilator_version().encode())
    h.update(json.dumps([top, VERILATOR_FLAGS, sorted((k, str(v)) for k, v in params.items())]).encode())
    # every file the build reads: the sources, the headers beside them (`include) and the harness
    headers = sorted({hdr for s in sources for hdr in Path(s).parent.glob("*.vh")})
    for path in [*sources, *headers, harness]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:20]


def build_native(top: str, sources: list[Path], params: dict, *, harness: Path | None = None,
                 jobs: int | None = None, quiet: bool = False) -> Path:
    """Compile (once) and return the path of the harness executable for `top` with `params`."""
    harness = harness or rtl_dir("harness", HARNESS)
    if not sources:
        raise RtlError(f"no Verilog sources for {top}")
    key = build_key(top, sources, params, harness)
    final = cache_root() / f"{top}-{key}"
    exe = final / "Vcore"
    if exe.exists():
        return exe
    final.parent.mkdir(parents=True, exist_ok=True)
    jobs = jobs or int(os.environ.get("NVNMD_RTL_JOBS", "1"))
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{top}-") as tmp:
        obj = Path(tmp) / "obj"
        includes = sorted({f"-I{Path(s).parent}" for s in sources})
        cmd = ["verilator", "--cc", "--exe", "--build", "-j", str(jobs), "--Mdir", str(obj), "-o", "Vcore",
               "--top-module", top, *VERILATOR_FLAGS, *includes, *(_param_flag(k, v) for k, v in params.items()),
               *map(str, sources), str(harness)]
        if not quiet:
            print(f"nvnmd: building {top} in Verilator (once per configuration; cached in {final.parent})",
                  file=sys.stderr, flush=True)
        log = Path(tmp) / "build.log"
        with open(log, "w") as fh:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp).returncode
        if rc != 0:
            tail = [ln for ln in log.read_text(errors="replace").splitlines() if "%Error" in ln or "error" in ln]
            kept = final.parent / f"{top}-{key}.failed.log"
            shutil.copy(log, kept)
            raise RtlError(f"Verilator build of {top} failed ({(tail or ['see log'])[0].strip()}); log: {kept}")
        out = Path(tmp) / "bin"
        out.mkdir()
        os.replace(obj / "Vcore", out / "Vcore")
        (out / "build.json").write_text(json.dumps({"top": top, "params": {k: str(v) for k, v in params.items()},
                                                    "sources": [str(s) for s in sources], "cmd": cmd}, indent=1))
        try:
            os.replace(out, final)
        except OSError:
            if not exe.exists():  # not a concurrent build that won the race
                raise
    return exe


class Harness:
    """One live simulator process of core_harness.cpp; commands and replies on private pipes."""

    def __init__(self, exe: Path):
        cmd_r, self._cmd_w = os.pipe()
        self._rep_r, rep_w = os.pipe()
        # The simulator's own stdout ($display) goes to our stderr, never into the protocol.
        self.proc = subprocess.Popen([str(exe), str(cmd_r), str(rep_w)], pass_fds=(cmd_r, rep_w),
                                     stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno())
        os.close(cmd_r)
        os.close(rep_w)
        self._w = os.fdopen(self._cmd_w, "wb")
        self._r = os.fdopen(self._rep_r, "rb")
        self.clocks = 0  # all clocks this process has simulated in 'G' commands

    def _read(self, n: int) -> bytes:
        data = self._r.read(n)
        if data is None or len(data) != n:
            code = self.proc.poll()
            raise RtlError(f"the RTL simulator process ended unexpectedly (exit code {code})")
        return data

    def _send(self, data: bytes) -> None:
        try:
            self._w.write(data)
            self._w.flush()
        except BrokenPipeError:
            raise RtlError(f"the RTL simulator process ended unexpectedly (exit code {self.proc.poll()})") from None

    def write(self, sel: int, addr: int, values) -> None:
        vals = np.ascontiguousarray(np.asarray(values, dtype="<i8").ravel())
        self._send(b"W" + struct.pack("<BII", sel, addr, vals.size) + vals.tobytes())

    def run(self, max_cycles: int) -> int:
        """Pulse start and clock until done; returns the clocks simulated."""
        self._send(b"G" + struct.pack("<Q", max_cycles))
        status, clocks = struct.unpack("<BQ", self._read(9))
        self.clocks += clocks
        if status:
            raise RtlError(f"the RTL core did not finish a frame within {max_cycles} clocks")
        return clocks

    def read(self, sel: int, addr: int, n: int) -> np.ndarray:
        self._send(b"R" + struct.pack("<BII", sel, addr, n))
        return np.frombuffer(self._read(8 * n), dtype="<i8").astype(np.int64) if n else np.zeros(0, np.int64)

    def reset(self) -> None:
        self._send(b"X")
        self._read(1)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send(b"Q")
            except RtlError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self._w, self._r):
            try:
                f.close()
            except OSError:
                pass


def prepare_memories(image, lanes: int):
    """(Nvq1Model, directory) of the image's `$readmemh` files plus their LANES banked copies,
    written once per (image, lanes) into the cache and moved in atomically."""
    from nvnmd.fpga.rtl.core import coreconfig
    from nvnmd.quantize.mem import emit_mem
    from nvnmd.sim.nvq1.model import PROFILE, Nvq1Model

    if image.profile != PROFILE:
        raise RtlError(f"the RTL implements the {PROFILE} profile, not {image.profile}")
    model = Nvq1Model.from_image(image)
    mem_dir = cache_root() / f"mem-{image.digest()[:20]}-L{int(lanes)}"
    if not (mem_dir / ".complete").exists():
        mem_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=mem_dir.parent, prefix=".mem-"))
        try:
            emit_mem(image, tmp)
            coreconfig.write_banks(str(tmp), model, int(lanes))
            (tmp / ".complete").write_text("")
            try:
                os.replace(tmp, mem_dir)
            except OSError:
                if not (mem_dir / ".complete").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return model, mem_dir


# Result read port (INTERFACE.md): scalars in sel 0 up to the virial at 32 + 9.
N_SCALARS = 41


class RtlCore:
    """nvq1_core in a Verilator native harness, evaluating ComputeRequests like the simulator.

    The image's memories are written once per image into the cache (the `--emit-mem` files
    plus the LANES banked copies) and the core is built for the image's shape; the process
    stays alive across frames. `last_cycles` is the core's own count of the last frame.
    """

    def __init__(self, image, lanes: int = 8, max_atoms: int = 1024, max_k: int = 128, quiet: bool = False):
        from nvnmd.fpga.rtl.core import coreconfig
        from nvnmd.image import Image

        if not isinstance(image, Image) and hasattr(image, "to_image"):
            image = Image.from_bytes(image.to_image().to_bytes())
        self.image = image
        self.lanes, self.max_atoms, self.max_k = int(lanes), int(max_atoms), int(max_k)
        self.model, self.mem_dir = prepare_memories(image, self.lanes)
        self._cc = coreconfig
        self.params = coreconfig.core_params(self.model, str(self.mem_dir), self.lanes, self.max_atoms, self.max_k)
        self.exe = build_native("nvq1_core", core_sources(), self.params, quiet=quiet)
        self.harness = Harness(self.exe)
        self.type_map = list(self.model.type_map) if hasattr(self.model, "type_map") else image.meta["type_map"]
        self.last_cycles = 0
        self._held = None  # (nlist, shifts) last written, to skip rewriting a reused list

    def compute(self, request):
        from nvnmd.compute import check_request

        nlist = check_request(request, type_map=self.type_map, max_neighbors=self.max_k)
        n, k = request.natoms, int(nlist.shape[1])
        if n > self.max_atoms:
            raise RtlError(f"{n} atoms exceed this RTL build's frame memory of {self.max_atoms}")
        h = self.harness
        h.write(0, 0, [n, k])
        h.write(1, 0, np.asarray(request.coords).reshape(-1))
        h.write(2, 0, np.asarray(request.types).reshape(-1))
        h.write(3, 0, np.asarray(request.cell).reshape(-1))
        shifts = np.asarray(request.shifts)
        held = self._held
        if held is None or held[0].shape != nlist.shape or not (np.array_equal(held[0], nlist)
                                                                and np.array_equal(held[1], shifts)):
            h.write(4, 0, nlist.reshape(-1))
            h.write(5, 0, shifts.reshape(-1))
            self._held = (nlist.copy(), shifts.copy())
        # A generous bound: far above any schedule of this size, so only a hung core trips it.
        h.run(max_cycles=200_000 + 50_000 * max(n, 1) * max(k, 1))
        scal = h.read(0, 0, N_SCALARS)
        atom_e = h.read(1, 0, n)
        forces = h.read(2, 0, 3 * n)
        blocks = {0: scal, 1: atom_e, 2: forces}
        res, cycles = self._cc.read_result(lambda sel, addr: int(blocks[sel][addr]), n)
        self.last_cycles = int(cycles)
        return res

    def close(self) -> None:
        self.harness.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
