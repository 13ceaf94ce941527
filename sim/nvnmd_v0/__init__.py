"""Profile "nvnmd-v0": deepmd-kit 3.2's NVNMD-v0 QNN model, bit for bit, in one room.

ops (number formats), model (decoded image), simulator (`load(image)`, BOARD: what the rest
of nvnmd may know of the profile), importer (a
`dp train-nvnmd` result -> image) and wrap (deepmd-kit's wrapped board image, read and checked).
"""

from nvnmd.sim.nvnmd_v0.simulator import BOARD, NvnmdV0Simulator, load

__all__ = ["BOARD", "NvnmdV0Simulator", "load"]
