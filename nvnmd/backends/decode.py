"""The tail every quantized backend shares: an integer `ComputeResult` -> `nvnmd.backend.Result`.

Neighbour overflow reported by the datapath (sim or board) is an error with one line, never
a silently truncated force; otherwise the codes are decoded to eV, eV/Å and eV and the raw
result and saturation count travel along in `info`.
"""

from __future__ import annotations

from nvnmd.backend import Result
from nvnmd.compute import ComputeResult
from nvnmd.errors import NeighborOverflowError


def to_result(res: ComputeResult, rcut: float, sel, **info) -> Result:
    if res.overflow_atoms:
        raise NeighborOverflowError(
            f"{res.overflow_atoms} atoms have more neighbours of one type within {rcut:g} Å than "
            f"sel {list(sel)} allows")
    energy, forces, virial, atom_energy = res.to_float()
    return Result(energy=energy, forces=forces, virial=virial, atom_energy=atom_energy,
                  info={"saturations": res.saturations, "overflow_atoms": res.overflow_atoms, "raw": res, **info})
