"""Seeded fault injection for the virtual board: drop, corrupt, delay, duplicate, reset.

One `random.Random(seed)` drives every decision so a fault run is reproducible. Faults apply
per frame in both directions (inbound frames can be dropped or corrupted before the board
sees them; outbound frames dropped, corrupted, delayed or duplicated). Resets are injected on
the arrival of every N-th new request: the board loses its image, cell and list, as after a
power glitch between two steps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Faults:
    drop: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    duplicate: float = 0.0
    reset_every: int = 0
    delay_s: float = 0.05
    seed: int = 0
    stats: dict = field(default_factory=lambda: {k: 0 for k in ("drop_in", "drop_out", "corrupt_in", "corrupt_out",
                                                                 "delay", "duplicate", "reset")})

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self._requests = 0

    @property
    def active(self) -> bool:
        return bool(self.drop or self.corrupt or self.delay or self.duplicate or self.reset_every)

    def _corrupt(self, data: bytes) -> bytes:
        b = bytearray(data)
        i = self.rng.randrange(len(b))
        b[i] ^= 1 << self.rng.randrange(8)
        return bytes(b)

    def inbound(self, data: bytes) -> bytes | None:
        """A whole frame as received -> the bytes the board decodes (None = lost)."""
        if self.drop and self.rng.random() < self.drop / 2:
            self.stats["drop_in"] += 1
            return None
        if self.corrupt and self.rng.random() < self.corrupt / 2:
            self.stats["corrupt_in"] += 1
            return self._corrupt(data)
        return data

    def should_reset(self) -> bool:
        """Called for each new (not retried) request."""
        if not self.reset_every:
            return False
        self._requests += 1
        if self._requests % self.reset_every == 0:
            self.stats["reset"] += 1
            return True
        return False

    def outbound(self, data: bytes) -> list[tuple[float, bytes]]:
        """A frame to send -> [(delay seconds, bytes)] to put on the wire."""
        if self.drop and self.rng.random() < self.drop / 2:
            self.stats["drop_out"] += 1
            return []
        if self.corrupt and self.rng.random() < self.corrupt / 2:
            self.stats["corrupt_out"] += 1
            data = self._corrupt(data)
        out = [(0.0, data)]
        if self.delay and self.rng.random() < self.delay:
            self.stats["delay"] += 1
            out = [(self.delay_s, data)]
        if self.duplicate and self.rng.random() < self.duplicate:
            self.stats["duplicate"] += 1
            out.append((0.0, data))
        return out
