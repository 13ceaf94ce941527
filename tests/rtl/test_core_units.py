"""nvq1_core's arithmetic units in Icarus (cocotb) against sim/nvq1/ref.py on random vectors:
rnd/sat (SPEC §2.2, saturating values at both ends), the cubic table unit (§4, with the
quantizer's coefficient bounds), the 27x18 MAC lane with 48-bit groups (§2.3, extreme
operands) and the LANES adder tree. This file is both the pytest module and the cocotb test
module the simulator imports."""

from __future__ import annotations

import os
import random

import pytest

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge, Timer
except ImportError:  # the pytest side skips through conftest.need
    cocotb = None

N_VECTORS = int(os.environ.get("NVQ1_UNIT_VECTORS", "400"))


def _seed(name: str) -> random.Random:
    return random.Random(f"nvq1-core-{name}")


# ----------------------------------------------------------------------------- cocotb side
if cocotb is not None:

    def _rndsat_vectors(bits: int, rng: random.Random):
        for n in range(N_VECTORS):
            k = rng.randint(-4, 30)
            # around the clip point, both signs (nvq1 intermediates stay below 2^56, SPEC §2.3)
            span = min(bits + max(k, 0) + rng.choice([-3, 0, 1, 4]), 60)
            x = rng.randint(-(1 << span), (1 << span))
            if n % 7 == 0:  # exactly at the clip boundaries after rounding
                edge = ((1 << (bits - 1)) - 1) if n % 2 else -(1 << (bits - 1))
                x = edge << max(k, 0)
                k = max(k, 0)
            yield x, k

    @cocotb.test()
    async def run_rndsat(dut):
        from nvnmd.sim.nvq1.ref import Counts, rnd

        bits = int(dut.BITS.value)
        clips = 0
        for x, k in _rndsat_vectors(bits, _seed(f"rndsat{bits}")):
            dut.x.value = x
            dut.k.value = k
            await Timer(1, "ns")
            cnt = Counts()
            want = cnt.sat(rnd(x, k), bits, "site")
            assert dut.y.value.signed_integer == want, (x, k)
            assert int(dut.clip.value) == cnt.sites.get("site", 0), (x, k)
            clips += int(dut.clip.value)
        assert N_VECTORS // 5 < clips < N_VECTORS * 4 // 5  # both clipping and passing vectors

    def _cubic_vectors(rng: random.Random):
        from nvnmd.sim.nvq1.ref import coeffs

        lim = 1 << 26
        n = 0
        while n < N_VECTORS:
            scale = rng.choice([1 << 10, 1 << 20, 1 << 25])
            y = [rng.randint(-scale, scale) for _ in range(2)]
            m = [rng.randint(-scale // 4, scale // 4) for _ in range(2)]
            a, b, c, d = coeffs(y, m, 0)
            if any(abs(v) >= lim for v in (a, b, c, d, 3 * a, 2 * b + 3 * a)):
                continue  # the quantizer refuses such tables (SPEC §4)
            t = rng.choice([0, (1 << 17) - 1, rng.randrange(1 << 17)])
            n += 1
            yield a, b, c, d, t

    @cocotb.test()
    async def run_cubic(dut):
        from nvnmd.sim.nvq1.ref import cubic, cubic_slope

        cocotb.start_soon(Clock(dut.clk, 10, units="ns").start())
        want = []
        for step, vec in enumerate(list(_cubic_vectors(_seed("cubic"))) + [None] * 2):
            if vec is not None:
                a, b, c, d, t = vec
                dut.a.value, dut.b.value, dut.c.value, dut.d.value, dut.t.value = a, b, c, d, t
                want.append((cubic(a, b, c, d, t), cubic_slope(a, b, c, t), vec))
            await RisingEdge(dut.clk)
            await Timer(1, "ns")
            if step >= 2:  # inputs sampled at edge s appear after edge s + 2 (3 stages)
                y, yp, v = want[step - 2]
                assert dut.y.value.signed_integer == y, v
                assert dut.yp.value.signed_integer == yp, v

    @cocotb.test()
    async def run_mac(dut):
        cocotb.start_soon(Clock(dut.clk, 10, units="ns").start())
        rng = _seed("mac")
        amax, bmax = 1 << 26, (1 << 17) - 1  # x is 27-bit saturated, |W| <= 2^17 - 1 (SPEC §3)
        for n in range(N_VECTORS // 8):
            length = rng.choice([1, 2, 15, 16, 17, 31, 32, 33, 48, rng.randint(1, 256)])
            if n % 3 == 0:  # extreme operands: every 16-term group at its bound (|group| < 2^47)
                s = rng.choice([1, -1])  # all products of one sign: -2^26 * ±bmax, (2^26 - 1) * ∓bmax
                terms = [(-amax, s * bmax) if rng.random() < 0.5 else (amax - 1, -s * bmax) for _ in range(length)]
            else:
                terms = [(rng.randint(-amax, amax - 1), rng.randint(-bmax, bmax)) for _ in range(length)]
            dut.clr.value = 1
            dut.en.value = 0
            dut.last.value = 0
            await RisingEdge(dut.clk)
            dut.clr.value = 0
            for k, (a, b) in enumerate(terms):
                dut.a.value, dut.b.value = a, b
                dut.en.value = 1
                dut.last.value = int(k == length - 1)
                await RisingEdge(dut.clk)
            dut.en.value = 0
            dut.last.value = 0
            await RisingEdge(dut.clk)
            await RisingEdge(dut.clk)
            await Timer(1, "ns")
            assert dut.sum.value.signed_integer == sum(a * b for a, b in terms), (n, length)

    @cocotb.test()
    async def run_tree(dut):
        cocotb.start_soon(Clock(dut.clk, 10, units="ns").start())
        rng = _seed("tree")
        lanes = int(dut.LANES.value)
        lat = 1 + (lanes.bit_length() - 1)
        want = []
        for step in range(N_VECTORS // 4 + lat - 1):
            if step < N_VECTORS // 4:
                a = [rng.randint(-(1 << 31), (1 << 31) - 1) if step % 5 == 0 else rng.randint(-(1 << 27), 1 << 27)
                     for _ in range(lanes)]
                b = [rng.randint(-(1 << 17), (1 << 17) - 1) for _ in range(lanes)]
                dut.a.value = sum((v & 0xFFFFFFFF) << (32 * k) for k, v in enumerate(a))
                dut.b.value = sum((v & 0x3FFFF) << (18 * k) for k, v in enumerate(b))
                want.append(sum(x * y for x, y in zip(a, b)))
            await RisingEdge(dut.clk)
            await Timer(1, "ns")
            if step >= lat - 1:
                assert dut.root.value.signed_integer == want[step - lat + 1], step


# ----------------------------------------------------------------------------- pytest side
def _run_icarus(build_dir, toplevel: str, sources, parameters: dict, testcase: str):
    from cocotb.runner import get_runner

    from nvnmd.fpga.rtl.core.coreconfig import CORE_DIR

    runner = get_runner("icarus")
    runner.build(verilog_sources=[CORE_DIR / s for s in sources], includes=[CORE_DIR], hdl_toplevel=toplevel,
                 parameters=parameters, build_dir=build_dir, timescale=("1ns", "1ps"), always=True)
    results = runner.test(hdl_toplevel=toplevel, test_module="test_core_units", testcase=testcase,
                          build_dir=build_dir, test_dir=os.path.dirname(__file__),
                          extra_env={"PYTHONPATH": os.path.dirname(__file__) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    from cocotb.runner import get_results

    total, failed = get_results(results)
    assert total >= 1 and failed == 0, f"{failed} of {total} cocotb tests failed ({results})"


@pytest.fixture(autouse=True)
def _tools():
    from conftest import need

    need("iverilog", "cocotb")


@pytest.mark.parametrize("bits", [18, 27, 32])
def test_rndsat_unit(tmp_path, bits):
    _run_icarus(tmp_path, "nvq1_rndsat", ["nvq1_rndsat.v"], {"BITS": bits}, "run_rndsat")


def test_cubic_unit(tmp_path):
    _run_icarus(tmp_path, "nvq1_cubic", ["nvq1_cubic.v"], {}, "run_cubic")


def test_mac_lane(tmp_path):
    _run_icarus(tmp_path, "nvq1_mac", ["nvq1_mac.v"], {}, "run_mac")


@pytest.mark.parametrize("lanes", [1, 8])
def test_adder_tree(tmp_path, lanes):
    _run_icarus(tmp_path, "nvq1_tree", ["nvq1_tree.v"], {"LANES": lanes}, "run_tree")
