"""`nvnmd board serve|info|selftest`: the virtual board and link checks from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nvnmd.errors import NvnmdError
from nvnmd.resources import shipped

FRAMES = shipped("frames/lgps50")  # the selftest frame


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("board", help="FPGA board link: virtual board, info, selftest")
    bs = p.add_subparsers(dest="board_cmd", required=True)

    s = bs.add_parser("serve", help="serve the simulator behind the board protocol on 127.0.0.1 or a pty")
    s.add_argument("--model", help="nvq1 image to preload (else the host uploads one)")
    s.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default 0: any free port)")
    s.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal instead of TCP")
    s.add_argument("--bandwidth", type=float, default=0.0, help="emulated link bandwidth, bytes/s (0: unlimited)")
    s.add_argument("--latency", type=float, default=0.0, help="emulated per-reply latency, s")
    for name in ("drop", "corrupt", "delay", "duplicate"):
        s.add_argument(f"--{name}", type=float, default=0.0, help=f"probability to {name} a frame")
    s.add_argument("--reset-every", type=int, default=0, help="reset the board every N new compute requests")
    s.add_argument("--rtl", action="store_true",
                   help="compute on the RTL (nvq1_core in Verilator) instead of the simulator; needs verilator, g++, make")
    s.add_argument("--lanes", type=int, default=8, help="--rtl: MAC lanes of the fitting GEMV (default 8)")
    s.add_argument("--max-atoms", type=int, default=1024, help="--rtl: frame memory depth in atoms (default 1024)")
    s.add_argument("--seed", type=int, default=0, help="fault injection seed")
    s.set_defaults(func=cmd_serve)

    i = bs.add_parser("info", help="identify a board and print its capabilities")
    i.add_argument("url")
    i.add_argument("--timeout", type=float, default=2.0)
    i.set_defaults(func=cmd_info)

    t = bs.add_parser("selftest", help="upload a model, compute a shipped frame, compare bit for bit with the simulator")
    t.add_argument("url")
    t.add_argument("--model", help="nvq1 image (default: quantize the embedded student now)")
    t.add_argument("--timeout", type=float, default=5.0)
    t.set_defaults(func=cmd_selftest)


def _faults(args):
    from nvnmd.host.faults import Faults

    for name in ("drop", "corrupt", "delay", "duplicate"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            raise NvnmdError(f"--{name} must be a probability in [0, 1], got {v}")
    if args.reset_every < 0 or args.bandwidth < 0 or args.latency < 0:
        raise NvnmdError("--reset-every, --bandwidth and --latency must not be negative")
    return Faults(drop=args.drop, corrupt=args.corrupt, delay=args.delay, duplicate=args.duplicate,
                  reset_every=args.reset_every, seed=args.seed)


def cmd_serve(args) -> int:
    from nvnmd.host.server import BoardCore, VirtualBoard, preload

    if args.rtl:
        from nvnmd.fpga.board import RtlEngine

        engine = RtlEngine(lanes=args.lanes, max_atoms=args.max_atoms)
        core = BoardCore(max_atoms=engine.max_atoms, max_neighbors=engine.max_k, engine=engine)
    else:
        core = BoardCore()
    if args.model:
        if not Path(args.model).is_file():
            raise NvnmdError(f"model not found: {args.model}")
        preload(core, args.model)
    vb = VirtualBoard(core, _faults(args), bandwidth=args.bandwidth, latency=args.latency)
    if args.pty:
        print(vb.open_pty(), flush=True)
        try:
            vb.serve_pty_forever()
        except KeyboardInterrupt:
            return 0
        return 0
    try:
        url = vb.listen_tcp(args.port)
    except OSError as exc:
        raise NvnmdError(f"cannot listen on 127.0.0.1:{args.port}: {exc}") from None
    print(url, flush=True)
    try:
        vb.serve_tcp_forever()
    except KeyboardInterrupt:
        vb.stop()
    return 0


def cmd_info(args) -> int:
    from nvnmd.host.driver import Board

    with Board.open(args.url, timeout=args.timeout) as board:
        print(json.dumps(board.caps, indent=2, sort_keys=True))
    return 0


def selftest(url: str, image, timeout: float = 5.0) -> tuple[bool, str]:
    """Upload `image`, compute the first shipped 50-atom frame on the board and in-process."""
    import numpy as np

    import nvnmd.sim
    from nvnmd.compute import encode_request
    from nvnmd.host.driver import Board
    from nvnmd.neighbors import build_neighbor_list
    from nvnmd.quantize.data import load_frames

    sim = nvnmd.sim.load(image)
    frame = load_frames(FRAMES, sim.type_map)[0]
    nl = build_neighbor_list(frame.coord, frame.cell, sim.rcut)
    req = encode_request(frame.coord, frame.types, frame.cell, nl.nlist, nl.shifts)
    ref = sim.compute(req)
    with Board.open(url, timeout=timeout) as board:
        board.upload(image)
        board.set_cell(req.cell, req.pbc)
        got = board.compute(req.coords, req.types, req.nlist, req.shifts)
        again = board.compute(req.coords, req.types)  # the board's retained list
    diffs = []
    for res, what in ((got, "with list"), (again, "reused list")):
        for name in ("energy", "atom_energy", "forces", "virial"):
            if not np.array_equal(np.asarray(getattr(res, name)), np.asarray(getattr(ref, name))):
                diffs.append(f"{name} ({what})")
    ok = not diffs
    msg = (f"{frame.natoms} atoms, energy code {int(ref.energy)}: " +
           ("bit-identical to the simulator" if ok else "differs in " + ", ".join(diffs)))
    return ok, msg


def _load_or_quantize(model):
    from nvnmd.image import Image

    if model:
        if not Path(model).is_file():
            raise NvnmdError(f"model not found: {model}")
        return Image.read(model)
    from nvnmd.quantize.student_image import student_image

    return student_image()


def cmd_selftest(args) -> int:
    image = _load_or_quantize(args.model)
    ok, msg = selftest(args.url, image, timeout=args.timeout)
    print(("PASS" if ok else "FAIL") + ": " + msg)
    sys.stdout.flush()
    return 0 if ok else 1
