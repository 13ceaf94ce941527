"""nvq1_core: the Verilog datapath (fpga/rtl/core/*.v) and its Python side (coreconfig, cycles)."""
