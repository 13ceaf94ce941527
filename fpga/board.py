"""The RTL as the virtual board's compute engine (`nvnmd board serve --rtl`).

The board's protocol handling stays in `nvnmd.host.server.BoardCore` (framing, image upload
and digest, cell, list reuse, retry cache, reset); only the compute of each COMPUTE request
goes to nvq1_core in a Verilator native harness instead of the simulator. The host driver
cannot tell the difference except by the CAPS board name, which is the point: `nvnmd board
selftest` and `nvnmd md --backend board` run on the RTL unchanged.
"""

from __future__ import annotations

from nvnmd.fpga.verilator import RtlCore, RtlError


class RtlBoardModel:
    """What BoardCore needs of a loaded image (compute, type_map, rcut, sel, profile), on the RTL."""

    def __init__(self, image, lanes: int, max_atoms: int, max_k: int):
        self.core = RtlCore(image, lanes=lanes, max_atoms=max_atoms, max_k=max_k)
        m = self.core.model
        self.profile, self.type_map, self.rcut, self.sel = "nvq1", list(m.type_map), float(m.rcut), list(m.sel)

    def compute(self, request):
        return self.core.compute(request)

    def close(self):
        self.core.close()


class RtlEngine:
    def __init__(self, lanes: int = 8, max_atoms: int = 1024, max_k: int = 256):
        if lanes < 1 or max_atoms < 1 or not 1 <= max_k <= 256:
            raise RtlError("--lanes and --max-atoms must be positive, --max-k in 1..256")
        self.lanes, self.max_atoms, self.max_k = lanes, max_atoms, max_k
        self.name = f"nvnmd virtual board (RTL: nvq1_core in Verilator, LANES={lanes})"

    def load(self, image) -> RtlBoardModel:
        return RtlBoardModel(image, self.lanes, self.max_atoms, self.max_k)
