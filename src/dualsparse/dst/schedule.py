"""When topology changes and by how much."""

from __future__ import annotations

import math


class Schedule:
    """Update every epoch (``every="epoch"``) or every ``every`` optimiser steps.

    ``zeta`` is the fraction of each layer's connections replaced per update; with
    ``decay="cosine"`` it decays to 0 at ``end`` (RigL), with ``"constant"`` it stays (SET).
    ``end`` is an epoch (epoch schedules) or a step (step schedules); None means never stop.
    """

    def __init__(self, zeta: float = 0.3, every="epoch", decay: str = "constant", end: int | None = None):
        zeta = float(zeta)
        if not 0.0 <= zeta < 1.0 or math.isnan(zeta):
            raise ValueError(f"zeta must be in [0, 1), got {zeta!r}; SET uses 0.3")
        if decay not in ("constant", "cosine"):
            raise ValueError(f"unknown decay {decay!r}; choose 'constant' or 'cosine'")
        if every != "epoch" and (int(every) != every or int(every) < 1):
            raise ValueError(f"every must be 'epoch' or a positive number of steps, got {every!r}")
        self.zeta = zeta
        self.every = every
        self.decay = decay
        self.end = end

    @property
    def per_epoch(self) -> bool:
        return self.every == "epoch"

    def due(self, epoch: int, step: int, end_of_epoch: bool) -> bool:
        """Whether to update now (epoch and step count from 0 and 1 respectively)."""
        if self.per_epoch:
            return end_of_epoch and (self.end is None or epoch < self.end)
        return (not end_of_epoch) and step % int(self.every) == 0 and (self.end is None or step < self.end)

    def fraction(self, epoch: int, step: int) -> float:
        t = epoch if self.per_epoch else step
        if self.decay == "constant" or self.end is None:
            return self.zeta
        return self.zeta * 0.5 * (1.0 + math.cos(math.pi * min(t, self.end) / self.end))
