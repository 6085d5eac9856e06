"""When topology changes and by how much."""

from __future__ import annotations

import math

#: ``every="auto"``: RigL's update interval (Evci et al. 2020, ΔT = 100 steps), shortened to one
#: epoch's steps where an epoch has fewer. Why: on small tables an epoch is a few steps and early
#: stopping ends a fit after tens of them; with a fixed 100, RigL on the real-missing study's
#: hepatitis, horse-colic and voting (3-9 steps per epoch, 9-10 epochs) never updated once, so it
#: was the static network under another name. Shortened, the update falls halfway through each
#: epoch, so validation scores and the fitted model never carry freshly dropped weights.
AUTO_STEPS = 100


class Schedule:
    """Update every epoch (``every="epoch"``), every ``every`` optimiser steps, or ``"auto"``:
    every :data:`AUTO_STEPS` steps or once per epoch, whichever comes first (:meth:`fit_to`
    learns the epoch's length).

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
        if every not in ("epoch", "auto") and (isinstance(every, (bool, str)) or int(every) != every or int(every) < 1):
            raise ValueError(f"every must be 'epoch', 'auto' or a positive number of steps, got {every!r}")
        self.zeta = zeta
        self.every = every
        self.decay = decay
        self.end = end
        self.interval = None if every == "epoch" else AUTO_STEPS if every == "auto" else int(every)
        self.phase = 0  # a step update falls on steps k * interval + phase, from the interval-th on

    def fit_to(self, steps_per_epoch: int | None) -> None:
        """Resolve ``every="auto"`` for a fit with ``steps_per_epoch`` optimiser steps per epoch."""
        if self.every == "auto" and steps_per_epoch:
            self.interval = max(1, min(AUTO_STEPS, int(steps_per_epoch)))
            self.phase = self.interval // 2 if self.interval < AUTO_STEPS else 0

    @property
    def per_epoch(self) -> bool:
        return self.every == "epoch"

    def due(self, epoch: int, step: int, end_of_epoch: bool) -> bool:
        """Whether to update now (epoch and step count from 0 and 1 respectively)."""
        if self.per_epoch:
            return end_of_epoch and (self.end is None or epoch < self.end)
        if end_of_epoch or step < self.interval or step % self.interval != self.phase:
            return False
        return self.end is None or step < self.end

    def fraction(self, epoch: int, step: int) -> float:
        t = epoch if self.per_epoch else step
        if self.decay == "constant" or self.end is None:
            return self.zeta
        return self.zeta * 0.5 * (1.0 + math.cos(math.pi * min(t, self.end) / self.end))


class CubicDensity:
    """Gradual pruning on Zhu & Gupta's (2017) cubic curve, from ``initial`` to ``final`` density.

    ``density(t) = final + (initial - final) * (1 - (t - start) / (end - start)) ** 3`` for
    ``start <= t <= end`` (``initial`` before, ``final`` after): prune fast while the network is
    redundant, slowly as it nears the target. ``t`` counts completed epochs (epoch schedules) or
    optimiser steps (step schedules). ``initial`` and ``final`` may be floats or one float per
    layer; :meth:`density` then returns one per layer.
    """

    def __init__(self, initial, final, start: int = 0, end: int = 1):
        initial_list, final_list = _as_list(initial, "initial density"), _as_list(final, "final density")
        if len(initial_list) != len(final_list) and 1 not in (len(initial_list), len(final_list)):
            raise ValueError(f"initial ({len(initial_list)}) and final ({len(final_list)}) densities differ in number of layers")
        for d_i, d_f in zip(initial_list * (len(final_list) if len(initial_list) == 1 else 1),
                            final_list * (len(initial_list) if len(final_list) == 1 else 1)):
            if d_f > d_i:
                raise ValueError(f"a pruning schedule cannot end denser than it starts: final density {d_f:g} > "
                                 f"initial density {d_i:g}; lower the final density (raise sparsity) or raise "
                                 f"initial_density (1.0 starts dense)")
        start, end = int(start), int(end)
        if start < 0:
            raise ValueError(f"the pruning start must be >= 0, got {start}")
        if end <= start:
            raise ValueError(f"the pruning schedule ends (end={end}) before or when it starts (start={start}); "
                             f"give end > start")
        self.initial, self.final = initial, final
        self.start, self.end = start, end

    def progress(self, t: float) -> float:
        """Fraction of the pruning done by time ``t`` on the cubic curve, in [0, 1]."""
        p = min(max((t - self.start) / (self.end - self.start), 0.0), 1.0)
        return 1.0 - (1.0 - p) ** 3

    def density(self, t: float):
        q = self.progress(t)
        if isinstance(self.initial, (list, tuple)) or isinstance(self.final, (list, tuple)):
            n = max(len(_as_list(self.initial, "")), len(_as_list(self.final, "")))
            d_i = _as_list(self.initial, "") * (n if not isinstance(self.initial, (list, tuple)) else 1)
            d_f = _as_list(self.final, "") * (n if not isinstance(self.final, (list, tuple)) else 1)
            return [f + (i - f) * (1.0 - q) for i, f in zip(d_i, d_f)]
        return float(self.final) + (float(self.initial) - float(self.final)) * (1.0 - q)

    def __repr__(self) -> str:
        return f"CubicDensity(initial={self.initial!r}, final={self.final!r}, start={self.start}, end={self.end})"


def _as_list(value, what: str) -> list[float]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in values:
        v = float(v)
        if not 0.0 < v <= 1.0 or math.isnan(v):
            raise ValueError(f"{what} must be in (0, 1], got {v!r}")
        out.append(v)
    return out
