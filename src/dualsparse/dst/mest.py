"""MEST: memory-economic sparse training (Yuan et al., NeurIPS 2021)."""

from __future__ import annotations

import numpy as np

from .algorithm import TopologyAlgorithm
from .gradients import live_gradient
from .resizing import check_fraction
from .rules import MagnitudeDrop, RandomGrow
from .schedule import Schedule


class MagnitudeGradientDrop(MagnitudeDrop):
    """Score = |w| + gamma * |dL/dw| at each live connection (MEST's importance): a small weight
    that the loss is still pushing is kept. The gradient is the latest captured batch's, computed
    only at the stored connections (a sampled product)."""

    def __init__(self, gamma: float = 1.0):
        self.gamma = float(gamma)

    @property
    def needs_gradient(self) -> bool:
        return self.gamma > 0

    def scores(self, layer, context) -> np.ndarray:
        w = layer.values.detach().abs().cpu().numpy()
        if self.gamma == 0:
            return w
        g = live_gradient(layer, context, "MEST (gamma > 0)")
        return (w.astype(g.dtype) + self.gamma * np.abs(g)).astype(w.dtype)


class MEST(TopologyAlgorithm):
    """MEST (Yuan et al. 2021, "MEST: Accurate and Fast Memory-Economic Sparse Training Framework on the Edge").

    Rule: drop the ``zeta`` fraction of each layer's connections of lowest ``|w| + gamma |dL/dw|``;
    grow as many uniformly at random among the absent positions (elastic mutation, fixed density).

    ``gamma`` (the authors' ``sp_lmd``; their argument defaults to 0, i.e. plain magnitude, and
    their scripts set it per run) weighs the captured batch's gradient at the live connections;
    with ``gamma=0`` no gradient is captured and MEST is SET with MEST's schedule. Updates every
    epoch (``every="epoch"``; the authors mutate every few epochs) until ``end`` (None: to the end;
    the authors decay the mutation rate to 0 late in training). The data side of MEST (removing
    examples never forgotten) is :meth:`examples_to_keep`, off by default
    (``remove_unforgettable=0``). Ties: stable drop (first stored first). Not implemented: the
    soft memory bound variant (grow before prune, EM&S).
    """

    name = "mest"
    display_name = "MEST MLP"

    def __init__(self, zeta: float = 0.3, gamma: float = 1.0, every="epoch", end: int | None = None,
                 remove_unforgettable: float = 0.0, remove_at: int = 5, grow_init: str = "zero"):
        gamma = float(gamma)
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}; 0 drops by magnitude alone")
        super().__init__(MagnitudeGradientDrop(gamma), RandomGrow(), Schedule(check_fraction(zeta), every, end=end),
                         grow_init)
        self.gamma = gamma
        self.remove_unforgettable = check_fraction(remove_unforgettable, "remove_unforgettable")
        if isinstance(remove_at, bool) or int(remove_at) != remove_at or int(remove_at) < 1:
            raise ValueError(f"remove_at must be a positive epoch, got {remove_at!r}")
        self.remove_at = int(remove_at)

    @property
    def needs_gradient(self) -> bool:
        return self.drop.needs_gradient

    @property
    def needs_example_stats(self) -> bool:
        return self.remove_unforgettable > 0

    def examples_to_keep(self, epoch: int, forgetting_events: np.ndarray, learned: np.ndarray):
        """MEST's data efficiency: at the start of epoch ``remove_at``, the training examples to keep.

        ``forgetting_events`` and ``learned`` (ever classified correctly) have one entry per
        training example so far. Examples learned and never forgotten are the removable ones; a
        ``remove_unforgettable`` share of the training set is removed from them, the earliest
        stored first (ties in the authors' sort are broken by index too). Returns a boolean mask,
        or None when nothing changes at this epoch.
        """
        if self.remove_unforgettable <= 0 or epoch != self.remove_at:
            return None
        forgetting_events = np.asarray(forgetting_events)
        removable = np.flatnonzero((forgetting_events == 0) & np.asarray(learned, dtype=bool))
        n_remove = min(removable.size, int(round(self.remove_unforgettable * forgetting_events.size)))
        keep = np.ones(forgetting_events.size, dtype=bool)
        keep[removable[:n_remove]] = False
        return keep
