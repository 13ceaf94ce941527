"""`nvnmd bench link`: link latency/throughput over socket:// to the virtual board, and a
projection of per-step link time for a 1350-atom LGPS cell over a UART and PCIe from the
protocol's actual bytes per step.

Board compute time is measured on the board side, for the very requests timed, and
subtracted (reported separately), so the link figures describe the link and the host/board
protocol stacks, not the simulator. Steps are timed on the shipped 50-atom frame and its
2x2x1 repeat (200 atoms, the demo's cell), since a small cell's per-atom cost is higher.
"""

from __future__ import annotations

import time

UART_BPS = 300e3  # 3 Mbaud, 8N1: 10 bits per byte
PCIE_BPS = 7.9e9  # Gen3 x8 payload rate
PCIE_LATENCY = 2e-6  # per DMA transfer (descriptor fetch + completion), a typical XDMA figure
PROJ_ATOMS = 1350


def _image(args):
    from nvnmd.host.cli import _load_or_quantize

    return _load_or_quantize(getattr(args, "image", None))


def _cells(frame):
    """The shipped 50-atom frame and its 2x2x1 repeat (200 atoms, the demo's cell size)."""
    import numpy as np

    cell = np.asarray(frame.cell, dtype=np.float64).reshape(3, 3)
    shifts = np.array([(i, j, 0) for i in range(2) for j in range(2)], dtype=np.float64) @ cell
    big = (np.concatenate([frame.coord + s for s in shifts]), np.tile(frame.types, 4), cell * [[2], [2], [1]])
    return [(frame.coord, frame.types, cell), big]


def run(args, image=None) -> dict:
    from nvnmd.compute import encode_request
    from nvnmd.host import protocol as P
    from nvnmd.host.cli import FRAMES
    from nvnmd.host.driver import Board
    from nvnmd.host.server import BoardCore, VirtualBoard
    from nvnmd.neighbors import build_neighbor_list
    from nvnmd.quantize.data import load_frames

    image = image if image is not None else _image(args)
    core = BoardCore()
    vb = VirtualBoard(core)
    url = vb.start_tcp()
    repeat = max(int(getattr(args, "repeat", 5) or 5), 1) * 40
    try:
        board = Board.open(url, timeout=5.0)
        board.upload(image)
        caps = board.caps
        frame = load_frames(FRAMES, caps["type_map"])[0]
        reqs = []
        for coord, types, cell in _cells(frame):
            nl = build_neighbor_list(coord, cell, caps["rcut"] + 1.0)
            reqs.append(encode_request(coord, types, cell, nl.nlist, nl.shifts))
        req = reqs[0]
        board.set_cell(req.cell)

        # small-frame round trip (CELL -> ACK, no compute)
        t0 = time.perf_counter()
        for _ in range(repeat):
            board.set_cell(req.cell)
        rtt_small = (time.perf_counter() - t0) / repeat

        # bulk throughput: 64 KiB image chunks into a scratch upload (no compute)
        chunk = bytes(64 << 10)
        board.request(P.IMAGE_BEGIN, P.encode_image_begin(len(chunk) * 32, bytes(32)), P.ACK)
        t0 = time.perf_counter()
        for i in range(32):
            board.request(P.IMAGE_CHUNK, P.encode_image_chunk(i * len(chunk), chunk), P.ACK)
        dt = time.perf_counter() - t0
        mbps = 32 * (len(chunk) + P.OVERHEAD + 8) / dt / 1e6
        fps_bulk = 32 / dt
        board.upload(image)  # the scratch upload replaced the image; restore it

        # Compute steps. The board times its own compute of exactly these requests
        # (BoardCore.compute_stats), so link = round trip - board compute, per step: no
        # separately timed in-process loop (whose noise, subtracted and clamped at zero, once
        # printed a 0.00 link), and a 50-atom step is not read as per-atom cost: small cells
        # pay the fitting net's per-type blocks once per step, hence the 200-atom rows.
        def steps(r, with_list):
            board.set_cell(r.cell)
            board.compute(r.coords, r.types, r.nlist, r.shifts)  # warm: list held, caches hot
            c0 = dict(core.compute_stats)
            t0 = time.perf_counter()
            for _ in range(repeat):
                if with_list:
                    board.compute(r.coords, r.types, r.nlist, r.shifts)
                else:
                    board.compute(r.coords, r.types)
            wall = (time.perf_counter() - t0) / repeat
            board_s = (core.compute_stats["seconds"] - c0["seconds"]) / (core.compute_stats["computes"] - c0["computes"])
            return wall, board_s

        measured = {}
        for r in reqs:
            for with_list in (False, True):
                measured[(r.coords.shape[0], with_list)] = steps(r, with_list)
        board.close()
    finally:
        vb.stop()

    n, k = req.coords.shape[0], int(req.nlist.shape[1])
    rows = [{"what": f"socket:// CELL/ACK round trip ({P.OVERHEAD + 37}+{P.OVERHEAD + 8} B)",
             "us_per_atom_step": rtt_small * 1e6 / n, "us": rtt_small * 1e6}]
    for r in reqs:
        na, kk = r.coords.shape[0], int(r.nlist.shape[1])
        for with_list in (False, True):
            wall, board_s = measured[(na, with_list)]
            link = wall - board_s
            rq, rs = P.compute_bytes(na, kk, with_list)
            what = f"list resent (K={kk})" if with_list else "list reused"
            rows.append({"what": f"socket:// {na}-atom step, {what}: link", "us_per_atom_step": link * 1e6 / na,
                         "us": link * 1e6, "bytes": rq + rs})
            rows.append({"what": f"  {na}-atom step, {what}: board compute", "us_per_atom_step": board_s * 1e6 / na,
                         "us": board_s * 1e6})
    # Projection for the 1350-atom cell: list width scales with density, not size, so the
    # measured K of the shipped LGPS frame (rcut + 1 Å skin) is used.
    proj = []
    for with_list in (False, True):
        rq, rs = P.compute_bytes(PROJ_ATOMS, k, with_list)
        total = rq + rs
        uart = total / UART_BPS
        pcie = total / PCIE_BPS + 2 * PCIE_LATENCY
        proj.append({"with_list": with_list, "request_bytes": rq, "result_bytes": rs, "uart_ms": uart * 1e3,
                     "pcie_us": pcie * 1e6})
        rows.append({"what": f"projection {PROJ_ATOMS} atoms {'+list' if with_list else 'reuse'}: UART 3 Mbaud",
                     "us_per_atom_step": uart * 1e6 / PROJ_ATOMS, "us": uart * 1e6, "bytes": total})
        rows.append({"what": f"projection {PROJ_ATOMS} atoms {'+list' if with_list else 'reuse'}: PCIe Gen3 x8",
                     "us_per_atom_step": pcie * 1e6 / PROJ_ATOMS, "us": pcie * 1e6, "bytes": total})
    t_reuse, b_reuse = measured[(n, False)]
    t_list, b_list = measured[(n, True)]
    notes = [
        f"socket:// bulk: {mbps:.1f} MB/s, {fps_bulk:.0f} frames/s (64 KiB chunks); small frames "
        f"{1 / rtt_small:.0f} round trips/s; steps {1 / t_reuse:.0f}/s incl. compute",
        "per step, ms (round trip = link + board compute, the board timing its own compute): " + "; ".join(
            f"{na} atoms {'list resent' if wl else 'list reused'} {w * 1e3:.2f} = {(w - bs) * 1e3:.2f} + "
            f"{bs * 1e3:.2f}" for (na, wl), (w, bs) in measured.items()),
        f"projection per step, {PROJ_ATOMS} atoms, K={k}: UART 300 kB/s (3 Mbaud 8N1), PCIe Gen3 x8 "
        f"{PCIE_BPS / 1e9:.1f} GB/s + {PCIE_LATENCY * 1e6:.0f} µs per transfer (2 per step)",
    ]
    for p in proj:
        notes.append(f"  {'list resent' if p['with_list'] else 'list reused'}: {p['request_bytes']} B out + "
                     f"{p['result_bytes']} B back -> UART {p['uart_ms']:.2f} ms, PCIe {p['pcie_us']:.2f} µs")
    return {"rows": rows, "notes": notes, "projection": proj, "natoms": n, "width": k,
            "socket": {"rtt_small_us": rtt_small * 1e6, "bulk_MBps": mbps, "bulk_fps": fps_bulk,
                       "step_reuse_us": t_reuse * 1e6, "step_list_us": t_list * 1e6,
                       "board_reuse_us": b_reuse * 1e6, "board_list_us": b_list * 1e6,
                       "link_reuse_us": (t_reuse - b_reuse) * 1e6, "link_list_us": (t_list - b_list) * 1e6,
                       "steps_ms": {f"{na}{'+list' if wl else ''}": {"round_trip": w * 1e3, "board": bs * 1e3}
                                    for (na, wl), (w, bs) in measured.items()}}}
