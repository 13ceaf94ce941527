"""Whole frames through nvq1_core in Verilator (cocotb, clock generated in the HDL) against the
simulator: energy, atom energies, forces, virial, every counter of SPEC §2.2 and overflow_atoms
identical, and the core's own cycle count equal to fpga/rtl/core/cycles.py's closed form.

One Verilator build serves every case: the model memories are read at time 0 through MEM_DIR,
a symlink the test points at the shipped LGPS student's --emit-mem files or at a variant with
forced saturations (same shape and fractions, other contents). Frames: a 50-atom LGPS frame
with a Verlet skin written through the frame write port; a frame compressed to 0.7 (close
contacts, neighbour overflow, T and D clips) and a forced-saturation model, both preloaded.
This file is both the pytest module and the cocotb test module."""

from __future__ import annotations

import copy
import dataclasses
import json
import os

import numpy as np
import pytest

try:
    import cocotb
    from cocotb.triggers import ReadOnly, RisingEdge, Timer
except ImportError:
    cocotb = None

LANES = 16
MAX_ATOMS = 64
MAX_K = 192

# ----------------------------------------------------------------------------- cocotb side
if cocotb is not None:

    @cocotb.test()
    async def run_frame(dut):
        """Optionally write the frame through the port, start, wait for done, read every result."""
        clk = dut.clk
        while int(dut.rst.value):
            await RisingEdge(clk)
        await RisingEdge(clk)
        frame = os.environ.get("NVQ1_FRAME_WRITES")
        if frame:
            writes = np.load(frame)
        else:  # preloaded memories; the frame's scalars still go through the port
            writes = [(0, 0, int(os.environ["NVQ1_NATOMS"])), (0, 1, int(os.environ["NVQ1_K"]))]
        for sel, addr, val in writes:
            dut.wr_en.value = 1
            dut.wr_sel.value = int(sel)
            dut.wr_addr.value = int(addr)
            dut.wr_data.value = int(val) & ((1 << 64) - 1)
            await RisingEdge(clk)
        dut.wr_en.value = 0
        natoms = int(os.environ["NVQ1_NATOMS"])
        dut.start.value = 1
        await RisingEdge(clk)
        dut.start.value = 0
        while not int(dut.done.value):  # poll on simulated time: no Python per cycle
            await Timer(20, "us")
        await RisingEdge(clk)
        words = {}
        addrs = [(0, a) for a in range(41)] + [(1, i) for i in range(natoms)] + [(2, a) for a in range(3 * natoms)]
        for sel, addr in addrs:
            dut.rd_sel.value = sel
            dut.rd_addr.value = addr
            await RisingEdge(clk)
            await ReadOnly()
            words[f"{sel},{addr}"] = int(dut.rd_data.value)
            await RisingEdge(clk)
        with open(os.environ["NVQ1_OUT"], "w") as fh:
            json.dump(words, fh)


# ----------------------------------------------------------------------------- pytest side
@pytest.fixture(scope="module")
def core_sim(quantized, tmp_path_factory):
    """(run(model, request, via_port) -> (ComputeResult, cycles)): the one Verilator build."""
    from conftest import need

    need("verilator", "cocotb")
    from cocotb.runner import get_runner

    from nvnmd.fpga.rtl.core import coreconfig as cc
    from nvnmd.quantize.mem import emit_mem

    root = tmp_path_factory.mktemp("core_frames")
    model = quantized[0]
    mems = {}

    def mem_dir_of(name, m):
        if name not in mems:
            d = root / f"mem_{name}"
            emit_mem(m.to_image(), d)
            cc.write_banks(d, m, LANES)
            mems[name] = d
        return mems[name]

    link, frame_dir = root / "mem", root / "frame"
    os.symlink(mem_dir_of("lgps", model), link)
    frame_dir.mkdir()
    params = cc.core_params(model, link, LANES, MAX_ATOMS, MAX_K, frame_dir=str(frame_dir))
    # the symlink, not its target, goes into the build (core_params resolves paths)
    params["MEM_DIR"], params["BANK_DIR"] = f'"{link}"', f'"{link}/banks_L{LANES}"'
    runner = get_runner("verilator")
    build = root / "build"
    runner.build(verilog_sources=[*cc.SOURCES, cc.CORE_DIR / "tb" / "nvq1_core_tb.v"], includes=[cc.CORE_DIR],
                 hdl_toplevel="nvq1_core_tb", parameters=params, build_dir=build,
                 build_args=["--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O2"], timescale=("1ns", "1ps"))

    def run(name, m, request, via_port):
        if link.is_symlink():
            link.unlink()
        os.symlink(mem_dir_of(name, m), link)
        n = request.natoms
        assert n <= MAX_ATOMS and request.nlist.shape[1] <= MAX_K
        if via_port:  # the preload must not be what is measured: preload other coordinates
            cc.write_frame(dataclasses.replace(request, coords=np.roll(request.coords, 1, axis=0)), frame_dir)
        else:
            cc.write_frame(request, frame_dir)
        env = {"NVQ1_NATOMS": str(n), "NVQ1_OUT": str(root / "out.json"), "NVQ1_FRAME_WRITES": "", "NVQ1_K": str(request.nlist.shape[1]),
               "PYTHONPATH": os.path.dirname(__file__) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        if via_port:
            env["NVQ1_FRAME_WRITES"] = str(root / "writes.npy")
            np.save(root / "writes.npy", np.array(list(cc.frame_writes(request)), dtype=np.int64))
        results = runner.test(hdl_toplevel="nvq1_core_tb", test_module="test_core_frames", testcase="run_frame",
                              build_dir=build, test_dir=root, extra_env=env)
        from cocotb.runner import get_results

        total, failed = get_results(results)
        assert total == 1 and failed == 0, f"cocotb frame run failed ({results})"
        words = {tuple(int(x) for x in k.split(",")): v for k, v in json.loads((root / "out.json").read_text()).items()}
        return cc.read_result(lambda s, a: words[(s, a)], n)

    return run


def _request(frame, model, squeeze=1.0, skin=0.5):
    from nvnmd.compute import encode_request
    from nvnmd.neighbors import build_neighbor_list

    coord, cell = frame.coord * squeeze, frame.cell * squeeze
    nl = build_neighbor_list(coord, cell, model.rcut + skin)
    return encode_request(coord, frame.types, cell, nl.nlist, nl.shifts)


def saturating_model(model):
    """Same shape and fractions (same build), contents pushed past the formats: G tables x3,
    h̃ tables x4, some layer-0 column exponents lowered by 6, the final layer's by 12."""
    m = copy.deepcopy(model)
    lim = (1 << 26) - 1
    m.g_tab = np.clip(m.g_tab * 3, -lim, lim)
    m.u_tab = m.u_tab.copy()
    m.u_tab[:, 2:] = np.clip(m.u_tab[:, 2:] * 4, -lim, lim)
    m.layers[0].e = m.layers[0].e.copy()
    m.layers[0].e[:, ::7] -= 6
    m.layers[-1].e = m.layers[-1].e - 12
    return m


def _check(core_sim, name, model, request, via_port, min_sites=0):
    from nvnmd.fpga.rtl.core import cycles
    from nvnmd.sim.nvq1.simulator import Nvq1Simulator

    want = Nvq1Simulator(model).compute(request)
    got, cyc = core_sim(name, model, request, via_port)
    assert got.energy == want.energy
    np.testing.assert_array_equal(got.atom_energy, want.atom_energy)
    np.testing.assert_array_equal(got.forces, want.forces)
    np.testing.assert_array_equal(got.virial, want.virial)
    assert got.counters == want.counters
    assert got.saturations == want.saturations and got.overflow_atoms == want.overflow_atoms
    assert len(want.counters) >= min_sites
    assert cyc == cycles.frame_cycles(model, request, LANES)
    return want


def test_lgps_frame_through_write_port(core_sim, quantized):
    model, frames = quantized
    want = _check(core_sim, "lgps", model, _request(frames[3], model), via_port=True)
    assert want.saturations == 0


def test_compressed_frame_close_contacts_and_overflow(core_sim, quantized):
    model, frames = quantized
    want = _check(core_sim, "lgps", model, _request(frames[4], model, squeeze=0.7), via_port=False, min_sites=3)
    assert want.counters.get("close_contact", 0) > 0 and want.overflow_atoms > 0


def test_forced_saturation_model(core_sim, quantized):
    model, frames = quantized
    want = _check(core_sim, "sat", saturating_model(model), _request(frames[5], model), via_port=False, min_sites=15)
    assert want.saturations > 10000
