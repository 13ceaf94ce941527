"""The `nvnmd` command: argument parsing, subcommand dispatch, one-line errors.

Each subcommand lives beside the code it drives and exposes `register(subparsers)`, which
adds its parser and sets `func(args) -> int`. Heavy imports (TensorFlow, deepmd-kit) happen
inside the command functions so `nvnmd --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from nvnmd import __version__
from nvnmd.errors import NvnmdError

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES = [
    "nvnmd.commands",
    "nvnmd.md.cli",
    "nvnmd.quantize.cli",
    "nvnmd.bench",
    "nvnmd.host.cli",
    "nvnmd.structures.cli",
    "nvnmd.neb",
    "nvnmd.lammps.cli",
    "nvnmd.fpga.cli",
    "nvnmd.distill.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nvnmd",
        description="Quantize DeePMD students for an NVNMD-style FPGA, simulate the board "
        "bit-accurately, and run host-driven MD for Li-ion conductivity.",
    )
    parser.add_argument("--version", action="version", version=f"nvnmd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NvnmdError as exc:
        print(f"nvnmd: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"nvnmd: error: no such file: {exc.filename or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nvnmd: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """Console entry point. Leaves via os._exit so TensorFlow's exit-time chatter never prints."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
