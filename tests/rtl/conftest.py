"""RTL test infrastructure: tool checks and one build directory per HDL configuration.

RTL tests need Icarus Verilog (quick unit benches) or Verilator (whole-core builds) and cocotb
(`pip install -e '.[rtl]'`). Without them the tests skip with the install line; CI sets
NVNMD_RTL_REQUIRED=1, which turns a missing tool into a failure instead. Builds are cached by
`nvnmd.fpga.build` (content hash of sources and parameters), so a test session builds each
configuration once, and a second session on the same machine builds nothing.
"""

from __future__ import annotations

import os
import shutil

import pytest

INSTALL = "apt-get install verilator iverilog yosys g++ make; pip install -e '.[rtl]'"


def need(*tools: str) -> None:
    """Skip (or, under NVNMD_RTL_REQUIRED=1, fail) unless every tool is available."""
    missing = [t for t in tools if (shutil.which(t) is None if t != "cocotb" else not _has_cocotb())]
    if not missing:
        return
    msg = f"RTL tools missing: {', '.join(missing)} ({INSTALL})"
    if os.environ.get("NVNMD_RTL_REQUIRED") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def _has_cocotb() -> bool:
    try:
        import cocotb  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def rtl_build_root(tmp_path_factory):
    """Where this session's simulator builds go (NVNMD_RTL_BUILD keeps them across sessions)."""
    root = os.environ.get("NVNMD_RTL_BUILD")
    if root:
        os.makedirs(root, exist_ok=True)
        from pathlib import Path

        return Path(root)
    return tmp_path_factory.mktemp("rtl_build")
