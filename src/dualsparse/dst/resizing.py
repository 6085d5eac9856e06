"""Algorithms whose layers change their number of live weights: drop ``n_drop``, grow ``n_grow``.

:class:`TopologyAlgorithm` swaps as many connections as it drops. Pruning schedules (GMP,
GraNet), one-shot pruning (SNIP) and global redistribution (SNFS) decide per layer how many to
drop and how many to grow, which may differ (``n_grow = 0`` is pure pruning). The update stays
on the CSR arrays in a few O(nnz) passes (:func:`~dualsparse.sparse.topology.evolve_csr` handles
any counts); when the count changes, ``values`` becomes a new Parameter of the new size
(:meth:`~dualsparse.sparse.SparseLinear.replace_pattern`) that takes the old one's place in the
optimiser, with the state of every surviving weight carried and that of new weights zeroed
(:func:`~dualsparse.dst.optim_state.remap_state`). No dense weight is formed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..sparse import SparseLinear
from ..utils import check_random_state
from .algorithm import TopologyAlgorithm, _LayerContext


class ResizingAlgorithm(TopologyAlgorithm):
    """A drop rule, a grow rule and a plan saying, per layer, how many to drop and how many to grow.

    Subclasses implement :meth:`plan` and :meth:`due`. Drop ties follow the engine's stable rule
    (the first stored of equal scores go first); grown positions are all absent before the drop.
    """

    changes_density = True

    @property
    def evolves(self) -> bool:
        return True

    def plan(self, layers: list[SparseLinear], optimizer, epoch: int, step: int, context) -> list[tuple]:
        """One ``(n_drop, n_grow)`` or ``(n_drop, n_grow, drop_scores)`` per sparse layer."""
        raise NotImplementedError

    @torch.no_grad()
    def update(self, model, optimizer=None, epoch: int = 0, step: int = 0, rng=None, context=None) -> list[dict]:
        """Resize every SparseLinear in ``model`` as :meth:`plan` says; one dict of counts per layer."""
        rng = check_random_state(rng)
        layers = [m for m in model.modules() if isinstance(m, SparseLinear)]
        counts = self.plan(layers, optimizer, epoch, step, context)
        info = []
        for index, (layer, planned) in enumerate(zip(layers, counts)):
            n_drop, n_grow = int(planned[0]), int(planned[1])
            scores = planned[2] if len(planned) > 2 else None
            info.append(self.resize_layer(layer, n_drop, n_grow, optimizer, rng, _LayerContext(context, index),
                                          index, scores))
        return info

    def resize_layer(self, layer: SparseLinear, n_drop: int, n_grow: int, optimizer, rng, context, index: int = 0,
                     scores: np.ndarray | None = None) -> dict:
        """Drop the ``n_drop`` lowest-scored connections and grow ``n_grow`` absent ones.

        ``scores``: the drop scores if the plan computed them already (else the drop rule's).
        Counts are clipped so the layer keeps at least one connection and grows only into
        positions absent before the drop.
        """
        nnz = layer.nnz
        n_free = layer.in_features * layer.out_features - nnz
        n_grow = max(0, min(int(n_grow), n_free))
        n_drop = max(0, min(int(n_drop), nnz, nnz - 1 + n_grow))
        if n_drop == 0 and n_grow == 0:
            return {"layer": index, "nnz": nnz, "dropped": 0, "grown": 0}
        return self.evolve_layer(layer, n_drop, n_grow, optimizer, rng, context, index, scores)

    def grow_csr(self, layer, n: int, rng, context):
        if n <= 0:
            return np.zeros(layer.out_features + 1, dtype=np.int64), np.empty(0, dtype=np.int32)
        return super().grow_csr(layer, n, rng, context)


def update_time(every, epoch: int, step: int) -> int:
    """The schedule's clock at an update: completed epochs (epoch schedules) or the step."""
    return epoch + 1 if every == "epoch" else step


def check_every(every):
    if every != "epoch" and (isinstance(every, bool) or int(every) != every or int(every) < 1):
        raise ValueError(f"every must be 'epoch' or a positive number of steps, got {every!r}")
    return every if every == "epoch" else int(every)


def cosine_fraction(zeta: float, t: float, horizon: float | None, decay: str) -> float:
    """``zeta``, or ``zeta * (1 + cos(pi t / horizon)) / 2`` with ``decay="cosine"`` (0 at the horizon)."""
    if decay == "constant" or not horizon:
        return zeta
    return zeta * 0.5 * (1.0 + math.cos(math.pi * min(t, horizon) / horizon))


def check_fraction(zeta, what: str = "zeta") -> float:
    zeta = float(zeta)
    if not 0.0 <= zeta < 1.0 or math.isnan(zeta):
        raise ValueError(f"{what} must be in [0, 1), got {zeta!r}")
    return zeta


def check_decay(decay: str) -> str:
    if decay not in ("constant", "cosine"):
        raise ValueError(f"unknown decay {decay!r}; choose 'constant' or 'cosine'")
    return decay


def target_nnz(layer: SparseLinear, density: float) -> int:
    return max(1, int(round(density * layer.in_features * layer.out_features)))


def magnitudes(layer: SparseLinear) -> np.ndarray:
    return layer.values.detach().abs().cpu().numpy()
