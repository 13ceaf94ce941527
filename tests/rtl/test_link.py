"""The link front end (fpga/rtl/link/) against host/protocol.py, in Icarus through cocotb.

Each pytest test runs one cocotb bench of tb_link.py on a fresh simulator process; the build
(~0.2 s with Icarus) is shared by the tests of one configuration.
"""

from __future__ import annotations

import pytest

from conftest import need

RX_BENCHES = ["rx_real_frames", "rx_corrupted", "rx_back_to_back"]


def _runner(build_dir, top: str, parameters: dict):
    from cocotb.runner import get_runner

    from nvnmd.fpga.sources import link_sources

    runner = get_runner("icarus")
    runner.build(verilog_sources=link_sources(), hdl_toplevel=top, parameters=parameters, build_dir=build_dir,
                 timescale=("1ns", "1ps"))
    return runner


@pytest.fixture(scope="module")
def rx(rtl_build_root):
    need("iverilog", "cocotb")
    # a 2 KiB ring: small enough that the oversize-length case is cheap to provoke
    return _runner(rtl_build_root / "link_rx", "nvq_link_rx", {"RING_AW": 11})


@pytest.fixture(scope="module")
def tx(rtl_build_root):
    need("iverilog", "cocotb")
    return _runner(rtl_build_root / "link_tx", "nvq_link_tx", {})


@pytest.mark.parametrize("bench", RX_BENCHES)
def test_link_rx(rx, bench):
    rx.test(test_module="tb_link", hdl_toplevel="nvq_link_rx", testcase=bench)


def test_link_tx(tx):
    tx.test(test_module="tb_link", hdl_toplevel="nvq_link_tx", testcase="tx_frames")


@pytest.mark.parametrize("top,bench", [("nvq_uart_link_rx", "uart_rx_frames"), ("nvq_uart_tx", "uart_tx_bytes")])
def test_uart(rtl_build_root, top, bench):
    need("iverilog", "cocotb")
    runner = _runner(rtl_build_root / top, top, {"CLKS_PER_BIT": 4})
    runner.test(test_module="tb_link", hdl_toplevel=top, testcase=bench)
