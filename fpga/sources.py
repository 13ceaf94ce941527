"""Where the hardware's files are, in a checkout or an installed wheel (importlib.resources)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def fpga_root() -> Path:
    # The package is installed as plain files (setuptools never zips it), so the traversable
    # is a real directory that simulators and yosys can be pointed at.
    return Path(str(resources.files("nvnmd.fpga")))


def rtl_dir(*parts: str) -> Path:
    return fpga_root().joinpath("rtl", *parts)


def link_sources() -> list[Path]:
    """The protocol front end's Verilog files, dependencies first."""
    d = rtl_dir("link")
    return [d / "nvq_crc32c_byte.v", d / "nvq_link_rx.v", d / "nvq_link_tx.v", d / "nvq_uart.v"]


def core_sources() -> list[Path]:
    """The datapath's Verilog files in dependency order (fpga/rtl/core/files.txt); the
    `include`d headers sit beside them (pass their directory as an include path)."""
    d = rtl_dir("core")
    return [d / name for name in (d / "files.txt").read_text().split()]
