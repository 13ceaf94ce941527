"""The `board` backend: nvnmd.backend.Backend over a board (real or virtual) via `nvnmd.host.Board`.

Same interface and result decoding as SimBackend. Uploads the image once, sends the cell when
it changes and the neighbour list only when it changed (the board keeps the last one), and
raises NeighborOverflowError when the board flags overflowing atoms. Pairs closer than the
training data's closest pair of their elements get the host's short-range wall
(`nvnmd.backends.guard`; the image carries the radii).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nvnmd.backend import Result
from nvnmd.backends.decode import to_result
from nvnmd.backends.guard import ShortRangeGuard
from nvnmd.compute import encode_request
from nvnmd.image import Image
from nvnmd.neighbors import build_neighbor_list


class BoardBackend:
    name = "board"

    def __init__(self, url: str, image_or_path, timeout: float = 1.0, retries: int = 8):
        from nvnmd.host.driver import Board

        image = image_or_path if isinstance(image_or_path, Image) else Image.read(Path(os.fspath(image_or_path)))
        self.image = image
        self.board = Board.open(url, timeout=timeout, retries=retries)
        self.board.upload(image)
        caps = self.board.caps
        self.type_map = list(caps["type_map"])
        self.rcut = float(caps["rcut"])
        self.sel = list(caps.get("sel", []))
        self.guard = ShortRangeGuard.for_image(image, self.type_map)
        self._cell = None
        self._list = None

    def close(self):
        self.board.close()

    def compute(self, positions, types, cell, pbc=True, neighbors=None) -> Result:
        if neighbors is None:
            neighbors = build_neighbor_list(positions, cell, self.rcut, pbc=pbc)
        req = encode_request(positions, types, cell, neighbors.nlist, neighbors.shifts, pbc=pbc)
        key = (req.cell.tobytes(), req.pbc)
        if key != self._cell:
            self.board.set_cell(req.cell, req.pbc)
            self._cell = key
        same = (self._list is not None and self._list[0].shape == req.nlist.shape
                and np.array_equal(self._list[0], req.nlist) and np.array_equal(self._list[1], req.shifts))
        if same:
            res = self.board.compute(req.coords, req.types)
        else:
            res = self.board.compute(req.coords, req.types, req.nlist, req.shifts)
            self._list = (req.nlist.copy(), req.shifts.copy())
        result = to_result(res, self.rcut, self.sel, link=dict(self.board.stats))
        return result if self.guard is None else self.guard.apply(result, positions, types, cell, pbc, neighbors)
