"""The Verilog of the board (core/: the nvq1 datapath, link/: the PROTOCOL.md front end,
harness/: the Verilator native test harness) and the Python that configures it."""
