"""Profile "nvq1" (fpga/SPEC.md): the project's own board, everything about it in one room.

model (fixed constants, decoded image), ref (SPEC as loops), fast (vectorised float64, exact),
ckernel (its C pass), tf (TensorFlow float64), simulator (`load(image)` -> Nvq1Simulator).
"""

from nvnmd.sim.nvq1.simulator import Nvq1Simulator, load

__all__ = ["Nvq1Simulator", "load"]
