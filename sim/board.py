"""What every simulator profile tells the world about the board it models.

`BoardModel` holds the model-facing facts the sim backend and the virtual board read (type map,
cutoff, sel, neighbour-row width and the `limits` dict the board reports to a host), and
checks requests against them, so each profile only writes its datapath.
"""

from __future__ import annotations

from nvnmd.compute import ComputeRequest, check_request


class BoardModel:
    def __init__(self, model, max_neighbors: int):
        self.model = model
        self.type_map = list(model.type_map)
        self.rcut = model.rcut
        self.sel = list(model.sel)
        self.ntypes = model.ntypes
        self.max_neighbors = max_neighbors
        self.limits = {"max_neighbors": max_neighbors, "sel": self.sel, "ntypes": self.ntypes}

    def checked_nlist(self, request: ComputeRequest):
        return check_request(request, type_map=self.type_map, max_neighbors=self.max_neighbors)
