"""Subcommands that belong to the package core: `inspect` (describe a student)."""

from __future__ import annotations

import argparse

from nvnmd.student import default_student_path, load_student


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="describe a deepmd-kit se_e2_a student model")
    p.add_argument("model", nargs="?", help="model file (.pb/.dp/.pth); default: the embedded LGPS student")
    p.set_defaults(func=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    print(load_student(args.model or default_student_path()).describe())
    return 0
