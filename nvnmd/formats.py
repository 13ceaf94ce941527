"""Fixed-point number formats: the single source of truth shared by quantize, sim and host.

A `Fixed` format is a two's-complement integer of `bits` bits holding value * 2**frac.
Encoding rounds to nearest with ties toward +inf (floor(x * 2**frac + 0.5)), what an adder
with a half-LSB constant does in hardware, and saturates to the format's range, counting
saturations.

The board's atom I/O formats are defined here (fpga/SPEC.md refers to them); the datapath's
internal formats are chosen per model by the quantizer and carried in the image header.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from nvnmd.errors import FixedPointOverflowError


@dataclass(frozen=True)
class Fixed:
    name: str
    bits: int
    frac: int

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def max_int(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def min_int(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max_value(self) -> float:
        return self.max_int * self.lsb

    def encode(self, x, *, saturate: bool = False) -> tuple[np.ndarray, int]:
        """Float -> int64 codes and the number of values that did not fit.

        With saturate=False an out-of-range value raises FixedPointOverflowError (host-side
        encodings, where clipping would silently change the physics).
        """
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise FixedPointOverflowError(f"{self.name}: non-finite value cannot be encoded")
        q = np.floor(x * (2.0**self.frac) + 0.5)
        over = int(np.count_nonzero((q > self.max_int) | (q < self.min_int)))
        if over and not saturate:
            worst = float(np.max(np.abs(x)))
            raise FixedPointOverflowError(
                f"{self.name}: |value| up to {worst:.6g} exceeds the {self.bits}-bit format's range ±{self.max_value:.6g}"
            )
        return np.clip(q, self.min_int, self.max_int).astype(np.int64), over

    def decode(self, q) -> np.ndarray:
        return np.asarray(q, dtype=np.float64) * self.lsb

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Fixed":
        return cls(name=str(d["name"]), bits=int(d["bits"]), frac=int(d["frac"]))


# Atom I/O formats of the board (host <-> accelerator). Units: Å, eV, eV/Å, eV.
COORD = Fixed("coord", bits=32, frac=20)       # ±2048 Å, 0.95 µÅ resolution
CELL = Fixed("cell", bits=32, frac=20)         # box vectors, same grid as coordinates
FORCE = Fixed("force", bits=32, frac=19)       # ±4096 eV/Å, 1.9 µeV/Å
ENERGY = Fixed("energy", bits=64, frac=24)     # total and per-atom energy, 60 neV
VIRIAL = Fixed("virial", bits=64, frac=24)     # 3x3 virial, eV

IO_FORMATS = {f.name: f for f in (COORD, CELL, FORCE, ENERGY, VIRIAL)}
