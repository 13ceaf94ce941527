"""Compile-once C helpers: build a cffi extension on first use and cache it by source hash.

`CLibrary(prefix, cdef, source, flags).get()` returns (ffi, lib), or None when no compiler is
available or NVNMD_NO_C=1, so every caller keeps a numpy fallback. Libraries live in
$NVNMD_CACHE (default ~/.cache/nvnmd) under a name keyed by source, flags and machine; they are
built in a private directory and moved in atomically, so concurrent processes never load a
half-written file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
import tempfile
from pathlib import Path


class CLibrary:
    def __init__(self, prefix: str, cdef: str, source: str, flags: list[str], fallback: str):
        self.prefix, self.cdef, self.source, self.flags, self.fallback = prefix, cdef, source, list(flags), fallback
        self._lib = False  # not tried yet

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
            print(f"nvnmd: {self.prefix} C kernel unavailable, using {self.fallback} ({type(exc).__name__})",
                  file=sys.stderr)
        return self._lib

    def _build(self):
        import cffi

        key = self.cdef + self.source + " ".join(self.flags) + platform.node() + platform.machine()
        name = f"_{self.prefix}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        cache = Path(os.environ.get("NVNMD_CACHE", Path.home() / ".cache" / "nvnmd"))
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / f"{name}.so"
        if not target.exists():
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                ffi = cffi.FFI()
                ffi.cdef(self.cdef)
                ffi.set_source(name, self.source, extra_compile_args=self.flags)
                os.replace(ffi.compile(tmpdir=tmp, verbose=False), target)
        spec = importlib.util.spec_from_file_location(name, target)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.ffi, mod.lib
