"""`nvnmd bench link`: link latency/throughput over socket:// to the virtual board, and a
projection of per-step link time for a 1350-atom LGPS cell over a UART and PCIe from the
protocol's actual bytes per step.

Board compute time is measured on the board side and subtracted (reported separately), so
the figures describe the link and the host/board protocol stacks, not the simulator.
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


def run(args) -> dict:
    from nvnmd.compute import encode_request
    from nvnmd.host import protocol as P
    from nvnmd.host.cli import FRAMES
    from nvnmd.host.driver import Board
    from nvnmd.host.server import BoardCore, VirtualBoard
    from nvnmd.neighbors import build_neighbor_list
    from nvnmd.quantize.data import load_frames

    image = _image(args)
    core = BoardCore()
    vb = VirtualBoard(core)
    url = vb.start_tcp()
    repeat = max(int(getattr(args, "repeat", 5) or 5), 1) * 40
    try:
        board = Board.open(url, timeout=5.0)
        board.upload(image)
        caps = board.caps
        frame = load_frames(FRAMES, caps["type_map"])[0]
        nl = build_neighbor_list(frame.coord, frame.cell, caps["rcut"] + 1.0)
        req = encode_request(frame.coord, frame.types, frame.cell, nl.nlist, nl.shifts)
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
        board.set_cell(req.cell)

        # compute steps, board compute time subtracted
        def steps(with_list):
            t0 = time.perf_counter()
            for _ in range(repeat):
                if with_list:
                    board.compute(req.coords, req.types, req.nlist, req.shifts)
                else:
                    board.compute(req.coords, req.types)
            return (time.perf_counter() - t0) / repeat

        # Board compute time: the same requests run in-process on the same simulator.
        t0 = time.perf_counter()
        for _ in range(repeat):
            core.sim.compute(req)
        t_compute = (time.perf_counter() - t0) / repeat
        t_list = steps(True)
        t_reuse = steps(False)
        board.close()
    finally:
        vb.stop()

    n, k = frame.natoms, int(nl.nlist.shape[1])
    req_r, res_b = P.compute_bytes(n, k, False)
    req_l, _ = P.compute_bytes(n, k, True)
    rows = [
        {"what": f"socket:// CELL/ACK round trip ({P.OVERHEAD + 37}+{P.OVERHEAD + 8} B)",
         "us_per_atom_step": rtt_small * 1e6 / n, "us": rtt_small * 1e6},
        {"what": f"socket:// {n}-atom step, list reused, link only", "us_per_atom_step":
         max(t_reuse - t_compute, 0) * 1e6 / n, "us": max(t_reuse - t_compute, 0) * 1e6, "bytes": req_r + res_b},
        {"what": f"socket:// {n}-atom step, list resent (K={k}), link only", "us_per_atom_step":
         max(t_list - t_compute, 0) * 1e6 / n, "us": max(t_list - t_compute, 0) * 1e6, "bytes": req_l + res_b},
        {"what": f"board compute (simulator) {n} atoms", "us_per_atom_step": t_compute * 1e6 / n,
         "us": t_compute * 1e6},
    ]
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
    notes = [
        f"socket:// bulk: {mbps:.1f} MB/s, {fps_bulk:.0f} frames/s (64 KiB chunks); small frames "
        f"{1 / rtt_small:.0f} round trips/s; steps {1 / t_reuse:.0f}/s incl. compute",
        f"projection per step, {PROJ_ATOMS} atoms, K={k}: UART 300 kB/s (3 Mbaud 8N1), PCIe Gen3 x8 "
        f"{PCIE_BPS / 1e9:.1f} GB/s + {PCIE_LATENCY * 1e6:.0f} µs per transfer (2 per step)",
    ]
    for p in proj:
        notes.append(f"  {'list resent' if p['with_list'] else 'list reused'}: {p['request_bytes']} B out + "
                     f"{p['result_bytes']} B back -> UART {p['uart_ms']:.2f} ms, PCIe {p['pcie_us']:.2f} µs")
    return {"rows": rows, "notes": notes, "projection": proj, "natoms": n, "width": k,
            "socket": {"rtt_small_us": rtt_small * 1e6, "bulk_MBps": mbps, "bulk_fps": fps_bulk,
                       "step_reuse_us": t_reuse * 1e6, "step_list_us": t_list * 1e6, "compute_us": t_compute * 1e6}}
