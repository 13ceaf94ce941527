"""The hardware (`nvnmd.fpga`): specification, RTL sources, their builds and figures.

SPEC.md and PROTOCOL.md define what the board computes and how it talks; `rtl/` is the
Verilog (`rtl/core/`: the nvq1 datapath, `rtl/link/`: the protocol's framing,
`rtl/front/`: CELL and COMPUTE decode), `synth/` the
yosys scripts. Python here only finds, builds and runs those files; it imports nothing from
the simulator (the arrow goes image <- rtl).
"""
