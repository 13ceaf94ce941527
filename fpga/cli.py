"""`nvnmd rtl check|synth`: the RTL against the simulator on a user's image and frames, and
yosys resource estimates with the budget check against named parts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nvnmd.errors import NvnmdError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rtl", help="the accelerator's RTL: check against the simulator, synthesis estimates")
    rs = p.add_subparsers(dest="rtl_cmd", required=True)

    c = rs.add_parser("check", help="run the RTL (Verilator) on an image and frames; compare bit for bit with the simulator")
    c.add_argument("--image", help="nvq1 image (default: quantize the embedded student now)")
    c.add_argument("--frames", help="frames: a deepmd/npy system directory or any dpdata/ASE file "
                                    "(default: the shipped 50-atom LGPS frames)")
    c.add_argument("--fmt", help="dpdata format of --frames when it cannot be guessed")
    c.add_argument("--limit", type=int, default=0, help="compare at most this many frames (0: all)")
    c.add_argument("--lanes", type=int, default=8, help="MAC lanes of the build (default 8)")
    c.add_argument("--max-atoms", type=int, default=1024, help="frame memory depth of the build (default 1024)")
    c.add_argument("--max-k", type=int, default=256, help="neighbour row width of the build (default 256)")
    c.add_argument("--json", help="write the per-frame report here")
    c.set_defaults(func=cmd_check)

    s = rs.add_parser("synth", help="yosys synth_xilinx -family xcup resource counts and the budget of named parts")
    s.add_argument("--image", help="nvq1 image (default: quantize the embedded student now)")
    s.add_argument("--lanes", default="8", help="comma-separated LANES values (default 8)")
    s.add_argument("--max-atoms", type=int, default=1024, help="frame memory depth (default 1024)")
    s.add_argument("--max-k", type=int, default=128, help="neighbour row width (default 128)")
    s.add_argument("--link", action="store_true", help="synthesize the link front end (fpga/rtl/link) only")
    s.add_argument("--json", help="write the counts here (atomically)")
    s.add_argument("--log-dir", help="keep each yosys log here (core_l<LANES>.log; per-pass times at its end)")
    s.set_defaults(func=cmd_synth)


def load_image(path):
    from nvnmd.image import Image

    if path:
        if not Path(path).is_file():
            raise NvnmdError(f"image not found: {path}")
        return Image.read(path)
    from nvnmd.host.cli import _load_or_quantize

    return _load_or_quantize(None)


def requests_for(frames_path, fmt, sim, limit: int):
    from nvnmd.compute import encode_request
    from nvnmd.neighbors import build_neighbor_list
    from nvnmd.quantize.data import default_frames_path, load_frames

    path = Path(frames_path) if frames_path else default_frames_path() / "lgps50"
    frames = load_frames(path, list(sim.type_map), fmt)
    if limit > 0:
        frames = frames[:limit]
    if not frames:
        raise NvnmdError(f"no frames in {path}")
    requests = []
    for f in frames:  # lists at the image's rcut, as the sim backend builds them
        nl = build_neighbor_list(f.coord, f.cell, float(sim.rcut))
        requests.append(encode_request(f.coord, f.types, f.cell, nl.nlist, nl.shifts))
    return requests, [f.system for f in frames]


def cmd_check(args) -> int:
    import nvnmd.sim
    from nvnmd.fpga.compare import check_frames
    from nvnmd.fpga.verilator import RtlCore

    if args.limit < 0:
        raise NvnmdError("--limit must not be negative")
    image = load_image(args.image)
    sim = nvnmd.sim.load(image)
    if getattr(sim, "profile", "") != "nvq1":
        raise NvnmdError(f"the RTL implements the nvq1 profile; this image is {sim.profile}")
    requests, systems = requests_for(args.frames, args.fmt, sim, args.limit)
    widest = max(int(r.nlist.shape[1]) for r in requests)
    largest = max(r.natoms for r in requests)
    if widest > args.max_k or largest > args.max_atoms:
        raise NvnmdError(f"frames need {largest} atoms x {widest} slots; build with --max-atoms/--max-k at least that")
    with RtlCore(image, lanes=args.lanes, max_atoms=args.max_atoms, max_k=args.max_k) as core:
        report = check_frames(core, sim, requests, systems, progress=True)
    print(report.summary())
    if args.json:
        from nvnmd.image import write_atomic

        write_atomic(Path(args.json), json.dumps(report.to_dict(), indent=1).encode())
    sys.stdout.flush()
    return 0 if report.identical == len(report.frames) else 1


def core_synth_inputs(image, lanes: int, max_atoms: int, max_k: int):
    """(sources, params) of nvq1_core for `image` at `lanes`, with its memory files in the cache."""
    from nvnmd.fpga.sources import core_sources
    from nvnmd.fpga.verilator import prepare_memories

    model, mem_dir = prepare_memories(image, lanes)
    from nvnmd.fpga.rtl.core import coreconfig

    return core_sources(), coreconfig.core_params(model, str(mem_dir), lanes, max_atoms, max_k)


def cmd_synth(args) -> int:
    from nvnmd.fpga.synth import format_table, synthesize
    from nvnmd.fpga.sources import link_sources

    results = []
    if args.link:
        counts = synthesize("nvq_link_rx", link_sources()[:2], {"RING_AW": 12})
        counts["what"] = "nvq_link_rx (4 KiB ring)"
        results.append(counts)
        counts = synthesize("nvq_link_tx", [link_sources()[0], link_sources()[2]], {})
        counts["what"] = "nvq_link_tx"
        results.append(counts)
    else:
        try:
            lanes = [int(x) for x in str(args.lanes).split(",")]
        except ValueError:
            raise NvnmdError(f"--lanes must be comma-separated integers, got {args.lanes!r}") from None
        image = load_image(args.image)
        for n in lanes:
            sources, params = core_synth_inputs(image, n, args.max_atoms, args.max_k)
            print(f"nvnmd: synthesizing nvq1_core LANES={n} with yosys ...", file=sys.stderr, flush=True)
            log = Path(args.log_dir) / f"core_l{n}.log" if args.log_dir else None
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
            counts = synthesize("nvq1_core", sources, params, log=log)
            counts.update(what=f"nvq1_core LANES={n}", lanes=n, max_atoms=args.max_atoms, max_k=args.max_k,
                          image=image.digest()[:16])
            results.append(counts)
    print(format_table(results))
    if args.json:
        from nvnmd.image import write_atomic

        write_atomic(Path(args.json), json.dumps(results, indent=1).encode())
    return 0
