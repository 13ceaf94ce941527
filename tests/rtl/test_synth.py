"""Synthesis estimates (fpga/synth.py): the yosys xcup flow on the link front end, the folding
of cell counts into part budgets and the budget check."""

from __future__ import annotations

import pytest

from conftest import need


def test_fold_counts_every_budget():
    from nvnmd.fpga.synth import fold

    cells = {"DSP48E2": 3, "RAMB36E2": 2, "RAMB18E2": 3, "LUT2": 10, "LUT6": 5, "LUT6_2": 1, "RAM64M": 2,
             "SRLC32E": 4, "FDRE": 7, "FDSE": 1, "CARRY8": 9, "MUXF7": 4}
    got = fold(cells)
    # LUTRAM: RAM64M is 4 LUTs, SRLC32E one; CARRY8/MUXF7 are not LUTs
    assert got == {"DSP48E2": 3, "RAMB36E2": 3.5, "LUT": 16 + 8 + 4, "LUTRAM": 12, "FF": 8}


def test_budget_flags_the_part_that_overflows():
    from nvnmd.fpga.synth import PARTS, budget

    small = PARTS["XCZU7EV (ZCU104)"]
    counts = {"DSP48E2": small["DSP48E2"] + 1, "RAMB36E2": 10, "LUT": 1000, "FF": 1000}
    fits = {b["part"]: b["fits"] for b in budget(counts)}
    assert fits == {"XCZU7EV (ZCU104)": False, "XCU250 (Alveo U250)": True}


def test_link_rx_synthesizes_to_one_bram(tmp_path):
    need("yosys")
    from nvnmd.fpga.sources import link_sources
    from nvnmd.fpga.synth import synthesize

    # 4 KiB ring: one RAMB36E2 (4096 x 9); the framer itself needs no multiplier
    got = synthesize("nvq_link_rx", link_sources()[:2], {"RING_AW": 12}, log=tmp_path / "yosys.log")
    assert got["RAMB36E2"] == 1 and got["DSP48E2"] == 0
    assert 100 < got["LUT"] < 5000 and 100 < got["FF"] < 2000, got
