"""Profile "nvq1" (fpga/SPEC.md): the project's own board, everything about it in one room.

model (fixed constants, decoded image), ref (SPEC as loops), sites (the §2.2 counter sites),
arith (planes, bounds, seeds, shifts every float64 kernel shares), stages (the datapath as one
function per SPEC stage), fast (stages vectorised, or its C pass), ckernel (that C pass),
tf (TensorFlow float64), simulator (`load(image)` -> Nvq1Simulator, and
BOARD: limits, kernels and table floor for the rest of nvnmd).
"""

from nvnmd.sim.nvq1.simulator import BOARD, Nvq1Simulator, load

__all__ = ["BOARD", "Nvq1Simulator", "load"]
