"""nvnmd.quantize: float DeePMD students -> nvq1 board images (fpga/SPEC.md).

build (limits, tables, weights, calibration), tables (the sampled functions), data (frames via
dpdata), evaluate/report (accuracy, parity plots, memory bits), mem ($readmemh files) and cli
(`nvnmd quantize`, `nvnmd test`). deepmd-kit NVNMD-v0 models are imported by their own
profile, `nvnmd.sim.nvnmd_v0.importer`.
"""
