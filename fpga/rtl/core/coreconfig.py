"""nvq1_core's Python side: Verilog parameters from an nvq1 model, the banked weight files,
frame preload files and the result read-back (contract: fpga/rtl/core/INTERFACE.md).

Only numpy and nvnmd are imported, so a harness, a test or `nvnmd bench fpga` can use it.
"""

from __future__ import annotations

from pathlib import Path

from nvnmd.resources import package_file

import numpy as np

from nvnmd.compute import ComputeRequest, ComputeResult
from nvnmd.sim.nvq1.model import Nvq1Model
from nvnmd.sim.nvq1.sites import SITES

CORE_DIR = package_file("nvnmd.fpga.rtl.core", "files.txt").parent  # the HDL ships as package data
SOURCES = [CORE_DIR / name for name in (CORE_DIR / "files.txt").read_text().split()]
SHORTCUTS = {"none": 0, "identity": 1, "concat": 2}
MAX_HIDDEN = 4
WIDE = ("SEL", "U_CUT", "WIDTHS", "SHORTCUT", "IDT", "F_IDT", "F_G")


def check_shape(model: Nvq1Model, lanes: int) -> None:
    """The shapes the core's schedule supports; a clear error for any other."""
    from nvnmd.errors import UnsupportedModelError

    if lanes < 1 or lanes & (lanes - 1) or lanes > 256:
        raise UnsupportedModelError(f"LANES={lanes}: a power of two up to 256")
    nhid = len(model.layers) - 1
    if not 1 <= nhid <= MAX_HIDDEN:
        raise UnsupportedModelError(f"{nhid} hidden layers (the core takes 1..{MAX_HIDDEN})")
    nin = model.m1 * model.m2
    for k, layer in enumerate(model.layers):
        nout = layer.w.shape[2]
        if nin % lanes or (not layer.final and nout % lanes):
            raise UnsupportedModelError(f"fitting layer {k} ({nin}x{nout}) is not a multiple of LANES={lanes}")
        nin = nout


def core_params(model: Nvq1Model, mem_dir, lanes: int, max_atoms: int, max_k: int,
                frame_dir: str | None = None, quote: bool = True) -> dict:
    """Every nvq1_core parameter for this model (strings quoted for Verilator -G / cocotb)."""
    check_shape(model, lanes)
    fr = model.frac
    hidden = model.layers[:-1]
    pack = lambda vals, bits: sum((int(v) & ((1 << bits) - 1)) << (bits * k) for k, v in enumerate(vals))
    q = (lambda s: f'"{s}"') if quote else (lambda s: str(s))
    mem_dir = Path(mem_dir).resolve()
    p = dict(
        LANES=lanes, MAX_ATOMS=max_atoms, MAX_K=max_k,
        MEM_DIR=q(mem_dir), BANK_DIR=q(bank_dir(mem_dir, lanes)),
        PRELOAD=int(frame_dir is not None), FRAME_DIR=q(Path(frame_dir).resolve() if frame_dir else ""),
        NTYPES=model.ntypes, M1=model.m1, M2=model.m2, NU1=model.n_u + 1, NS1=model.n_s + 1,
        TYPE_ONE_SIDE=int(model.type_one_side), SEL=pack(model.sel, 8), U_CUT=int(model.u_cut),
        K_LO=int(model.k_lo), S0=int(model.s0),
        F_H=fr["h"], F_GT=fr["Gt"], F_GQ=fr["Gq"], F_T=fr["T"], F_D=fr["D"], F_GTT=fr["gT"], F_GR=fr["gR"],
        F_GG=fr["gG"], F_GS=fr["gs"], F_GH=fr["gh"], F_GU=fr["gu"], F_P=fr["p"],
        NHID=len(hidden), WIDTHS=pack([lay.w.shape[2] for lay in hidden], 12),
        SHORTCUT=pack([SHORTCUTS[lay.shortcut] for lay in hidden], 2),
        IDT=pack([lay.idt is not None for lay in hidden], 1), F_IDT=pack([lay.f_idt for lay in hidden], 8),
        F_G=pack(model.f_g, 8),
    )
    for key in WIDE:  # 64-bit packed parameters as sized literals (a bare decimal is 32-bit)
        p[key] = f"64'h{p[key]:x}"
    return p


def bank_dir(mem_dir, lanes: int) -> Path:
    return Path(mem_dir).resolve() / f"banks_L{lanes}"


def write_banks(mem_dir, model: Nvq1Model, lanes: int) -> Path:
    """fit{l}_w.b{bb}.mem: bank b holds the flat entries a ≡ b (mod lanes) of fit{l}_w.mem, read
    from the --emit-mem file itself (so the banks hold exactly what the quantizer emitted)."""
    check_shape(model, lanes)
    out = bank_dir(mem_dir, lanes)
    out.mkdir(parents=True, exist_ok=True)
    for k in range(len(model.layers)):
        lines = [ln for ln in (Path(mem_dir) / f"fit{k}_w.mem").read_text().splitlines() if not ln.startswith("//")]
        for b in range(lanes):
            (out / f"fit{k}_w.b{b:02x}.mem").write_text("\n".join(lines[b::lanes]) + "\n")
    return out


def _hex(values, bits: int) -> str:
    mask, digits = (1 << bits) - 1, (bits + 3) // 4
    return "\n".join(format(int(v) & mask, f"0{digits}x") for v in np.asarray(values).ravel()) + "\n"


def write_frame(request: ComputeRequest, out_dir) -> Path:
    """The preload files of INTERFACE.md (same addressing as the write port)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nlist = np.asarray(request.nlist, dtype=np.int64)
    n, k = nlist.shape
    (out / "frame.mem").write_text(_hex([n, k], 32))
    (out / "coords.mem").write_text(_hex(request.coords, 32))
    (out / "types.mem").write_text(_hex(request.types, 4))
    (out / "cell.mem").write_text(_hex(request.cell, 32))
    (out / "nlist.mem").write_text(_hex(nlist if nlist.size else [0], 32))
    shifts = np.asarray(request.shifts, dtype=np.int64)
    (out / "shifts.mem").write_text(_hex(shifts if shifts.size else [0], 8))
    return out


def frame_writes(request: ComputeRequest):
    """(sel, addr, value) for every word of a frame through the write port, in order."""
    nlist = np.asarray(request.nlist, dtype=np.int64)
    n, k = nlist.shape
    yield 0, 0, n
    yield 0, 1, k
    for a, v in enumerate(np.asarray(request.coords).ravel()):
        yield 1, a, int(v)
    for a, v in enumerate(np.asarray(request.types).ravel()):
        yield 2, a, int(v)
    for a, v in enumerate(np.asarray(request.cell).ravel()):
        yield 3, a, int(v)
    for a, v in enumerate(nlist.ravel()):
        yield 4, a, int(v)
    for a, v in enumerate(np.asarray(request.shifts).ravel()):
        yield 5, a, int(v)


def _signed(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def read_result(read, natoms: int) -> tuple[ComputeResult, int]:
    """`read(sel, addr) -> int` (raw 64-bit port value) -> (ComputeResult, cycles)."""
    scal = lambda a: _signed(read(0, a))
    counters = {name: scal(8 + s) for s, name in enumerate(SITES)}
    result = ComputeResult(
        energy=np.int64(scal(0)),
        atom_energy=np.array([_signed(read(1, i)) for i in range(natoms)], dtype=np.int64),
        forces=np.array([_signed(read(2, a)) for a in range(3 * natoms)], dtype=np.int64).reshape(natoms, 3),
        virial=np.array([scal(32 + a) for a in range(9)], dtype=np.int64).reshape(3, 3),
        saturations=scal(3), overflow_atoms=scal(1),
        counters={k: v for k, v in counters.items() if v},
    )
    return result, scal(2)
