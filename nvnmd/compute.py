"""The accelerator's integer interface: what a compute request carries and what comes back.

Shared by the simulator (`nvnmd.sim`), the host driver and wire protocol (`nvnmd.host`) and
the backends. Values are in the formats of `nvnmd.formats` (fpga/SPEC.md); a request holds
coordinates continuous since the neighbour list was built (not re-wrapped), so a neighbour's
periodic image `shifts[i, k]` stays valid until the next rebuild:

    r_ij = coords[j] + shifts[i, k] @ cell - coords[i]      (exact integer arithmetic)

Profiles whose hardware returns floats (deepmd-kit NVNMD-v0) put float64 arrays in the
result and set `encoding="float64"`; our own profile returns fixed-point integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nvnmd.formats import CELL, COORD, ENERGY, FORCE, VIRIAL


@dataclass
class ComputeRequest:
    coords: np.ndarray  # int64 [N, 3], COORD codes
    types: np.ndarray  # int64 [N]
    cell: np.ndarray  # int64 [3, 3], CELL codes, rows are box vectors
    nlist: np.ndarray  # int32 [N, K], neighbour indices, -1 = empty
    shifts: np.ndarray  # int8 [N, K, 3], periodic image of each neighbour
    pbc: bool = True

    @property
    def natoms(self) -> int:
        return int(self.coords.shape[0])


@dataclass
class ComputeResult:
    energy: np.ndarray  # scalar: int64 ENERGY codes (or float64)
    atom_energy: np.ndarray  # [N]
    forces: np.ndarray  # [N, 3]: FORCE codes
    virial: np.ndarray  # [3, 3]: VIRIAL codes
    saturations: int = 0  # values clipped anywhere in the datapath
    overflow_atoms: int = 0  # atoms with more in-cutoff neighbours of a type than sel
    encoding: str = "fixed"  # "fixed" or "float64"
    counters: dict = field(default_factory=dict)  # per-site saturation counts, optional

    def to_float(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """(energy eV, forces eV/Å [N,3], virial eV [3,3], atom energies eV [N])."""
        if self.encoding == "float64":
            return (float(self.energy), np.asarray(self.forces, float), np.asarray(self.virial, float),
                    np.asarray(self.atom_energy, float))
        return (float(ENERGY.decode(self.energy)), FORCE.decode(self.forces), VIRIAL.decode(self.virial),
                ENERGY.decode(self.atom_energy))


def encode_request(positions, types, cell, nlist, shifts, pbc: bool = True) -> ComputeRequest:
    """Float positions/cell (Å) and a neighbour list -> a request in the board's formats."""
    coords, _ = COORD.encode(positions)
    cell_q, _ = CELL.encode(np.asarray(cell, dtype=np.float64).reshape(3, 3))
    return ComputeRequest(
        coords=coords,
        types=np.asarray(types, dtype=np.int64),
        cell=cell_q,
        nlist=np.asarray(nlist, dtype=np.int32),
        shifts=np.asarray(shifts, dtype=np.int8),
        pbc=bool(pbc),
    )


def frame_request(coord, types, cell, rcut):
    """Kernel arguments (coords, types, cell, nlist, shifts) for one float frame, list at rcut."""
    from nvnmd.neighbors import build_neighbor_list

    nl = build_neighbor_list(coord, cell, rcut)
    req = encode_request(coord, types, cell, nl.nlist, nl.shifts)
    return req.coords, req.types, req.cell, req.nlist, req.shifts


def check_request(request: ComputeRequest, *, type_map, max_neighbors: int) -> np.ndarray:
    """Refuse a request no board profile can evaluate; returns the neighbour list as an array.

    Every simulator profile (and so the virtual board) applies the same checks: the list has a
    row per atom and fits the board's row width, atom types exist in the model, and neighbour
    indices point at atoms of the request.
    """
    from nvnmd.errors import NeighborOverflowError, StructureError

    nlist = np.asarray(request.nlist)
    if nlist.ndim != 2 or nlist.shape[0] != request.natoms:
        raise StructureError(f"neighbour list shape {nlist.shape} does not match {request.natoms} atoms")
    if nlist.shape[1] > max_neighbors:
        raise NeighborOverflowError(f"neighbour list rows of {nlist.shape[1]} exceed the board's {max_neighbors} slots")
    types = np.asarray(request.types)
    if types.size and (types.min() < 0 or types.max() >= len(type_map)):
        raise StructureError(f"atom types must lie in 0..{len(type_map) - 1} ({' '.join(type_map)})")
    if nlist.size and nlist.max() >= request.natoms:
        raise StructureError("neighbour index beyond the number of atoms")
    return nlist
