"""Compile-once C kernels: the project's .c/.h files (shipped as package data) built on first use.

`CLibrary(prefix, package, sources, header, flags)` names C sources in PACKAGE's `csrc/`
folder and the header whose cffi block (between `/* --- cffi cdef begin --- */` and
`/* --- cffi cdef end --- */`) declares what Python calls, so the declarations exist once, in
C. `get()` returns (ffi, lib), or None when no compiler is available or NVNMD_NO_C=1, so every
caller keeps a numpy fallback.

The sources are compiled by the C compiler Python was built with, with `-Wall -Wextra` on top
of the caller's flags; what the compiler says is kept (`warnings`, and a `.log` beside the
library) and the project's tests demand that it says nothing. The objects are then linked into
a cffi extension. Headers generated from Python (`generated`, e.g. the counter slots of
sim/nvq1/sites.py) are written into the build folder, never into the package.

Libraries live in $NVNMD_CACHE (default ~/.cache/nvnmd) under a name keyed by every source
and header text, the flags and the machine; they are built in a private folder and moved in
atomically, so concurrent processes never load a half-written file. NVNMD_SANITIZE=1 builds
(and caches separately) with `-fsanitize=address,undefined` for the sanitizer test; such a
library loads only into a process started with the sanitizer runtime preloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from nvnmd.resources import package_file

WARNINGS = ["-Wall", "-Wextra"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
CDEF_BEGIN, CDEF_END = "/* --- cffi cdef begin --- */", "/* --- cffi cdef end --- */"


def cdef_from_header(text: str) -> str:
    """The cffi declarations of a header: the text between its cffi markers."""
    try:
        start = text.index(CDEF_BEGIN) + len(CDEF_BEGIN)
        return text[start:text.index(CDEF_END, start)]
    except ValueError:
        raise ValueError("header has no cffi cdef block") from None


def compiler() -> list[str]:
    """The C compiler command (Python's own, as distutils would use it)."""
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")


class CLibrary:
    def __init__(self, prefix: str, package: str, sources: list[str], header: str, flags: list[str],
                 fallback: str, generated: dict[str, str] | None = None, link: list[str] | None = None):
        self.prefix, self.package, self.sources, self.header = prefix, package, list(sources), header
        self.flags, self.link, self.fallback = list(flags), list(link or []), fallback
        self.generated = dict(generated or {})
        self.warnings = ""
        self._lib = False  # not tried yet

    def csrc(self) -> Path:
        """The folder of the sources and headers (package data)."""
        return package_file(self.package, "csrc")

    def get(self):
        """The compiled library (ffi, lib), or None (then the caller's numpy path runs)."""
        if self._lib is not False:
            return self._lib
        self._lib = None
        if os.environ.get("NVNMD_NO_C") == "1":
            return None
        try:
            self._lib = self._build()
        except Exception as exc:  # any compiler/cffi failure means: use the fallback path
            print(f"nvnmd: {self.prefix} C kernel unavailable, using {self.fallback} ({type(exc).__name__}: "
                  f"{str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ''})", file=sys.stderr)
        return self._lib

    def _flags(self) -> tuple[list[str], list[str]]:
        if os.environ.get("NVNMD_SANITIZE") == "1":
            return self.flags + SANITIZE, self.link + SANITIZE[:1]
        return self.flags, self.link

    def _build(self):
        import cffi

        src = self.csrc()
        cflags, lflags = self._flags()
        texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(src.iterdir()) if p.suffix in (".c", ".h")}
        key = "\0".join([*(f"{k}\0{v}" for k, v in sorted({**texts, **self.generated}.items())),
                         " ".join(compiler() + cflags + WARNINGS + lflags), platform.node(), platform.machine()])
        name = f"_{self.prefix}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        cache = Path(os.environ.get("NVNMD_CACHE", Path.home() / ".cache" / "nvnmd"))
        cache.mkdir(parents=True, exist_ok=True)
        target, log = cache / f"{name}.so", cache / f"{name}.log"
        if not target.exists():
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                tmp = Path(tmp)
                for fname, text in self.generated.items():
                    (tmp / fname).write_text(text, encoding="utf-8")
                objects, said = [], []
                for source in self.sources:
                    obj = tmp / (Path(source).stem + ".o")
                    cmd = [*compiler(), "-c", "-fPIC", *cflags, *WARNINGS, f"-I{src}", f"-I{tmp}",
                           str(src / source), "-o", str(obj)]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0:
                        raise RuntimeError(f"{source} does not compile: {proc.stderr.strip()}")
                    said.append(proc.stderr)
                    objects.append(str(obj))
                ffi = cffi.FFI()
                ffi.cdef(cdef_from_header(texts[self.header]))
                ffi.set_source(name, f'#include "{self.header}"', include_dirs=[str(src), str(tmp)],
                               extra_objects=objects,
                               extra_link_args=lflags)
                built = ffi.compile(tmpdir=str(tmp), verbose=False)
                (tmp / "log").write_text("".join(said), encoding="utf-8")
                os.replace(tmp / "log", log)
                os.replace(built, target)
        self.warnings = log.read_text(encoding="utf-8") if log.exists() else ""
        spec = importlib.util.spec_from_file_location(name, target)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.ffi, mod.lib
