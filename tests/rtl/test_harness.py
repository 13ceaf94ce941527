"""The Verilator build cache (fpga/verilator.py): its key follows every input of a build."""

from __future__ import annotations

from conftest import need


def test_build_key_follows_sources_headers_and_parameters(tmp_path):
    need("verilator")
    from nvnmd.fpga.sources import rtl_dir
    from nvnmd.fpga.verilator import build_key

    src = tmp_path / "top.v"
    hdr = tmp_path / "fn.vh"
    src.write_text('`include "fn.vh"\nmodule top #(parameter N = 1) (input wire clk); endmodule\n')
    hdr.write_text("// header\n")
    harness = rtl_dir("harness", "core_harness.cpp")
    key = build_key("top", [src], {"N": 1}, harness)
    assert build_key("top", [src], {"N": 1}, harness) == key  # stable: a second session reuses the build
    assert build_key("top", [src], {"N": 2}, harness) != key
    assert build_key("top", [src], {"N": 1, "M": '"/x"'}, harness) != key
    hdr.write_text("// header, edited\n")  # an `include`d file beside the sources counts too
    key2 = build_key("top", [src], {"N": 1}, harness)
    assert key2 != key
    src.write_text(src.read_text() + "// edited\n")
    assert build_key("top", [src], {"N": 1}, harness) != key2
