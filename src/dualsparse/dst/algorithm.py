"""A dynamic-sparse-training algorithm is a drop rule, a grow rule and a schedule."""

from __future__ import annotations

import numpy as np
import torch

from ..sparse import SparseLinear
from ..sparse.topology import split_keys
from ..utils import check_random_state
from .optim_state import remap_state
from .rules import GradientGrow, MagnitudeDrop, RandomGrow
from .schedule import Schedule


class TopologyAlgorithm:
    """Drop the lowest-scored fraction of each sparse layer's connections, grow as many elsewhere.

    The number of connections per layer is preserved exactly. ``grow_init`` sets the value of a
    regrown weight: ``"zero"`` (the default: it starts neutral and the gradient decides, as in
    RigL) or ``"random"`` (He-uniform for the layer's fan-in). Measured on iris (MLP 32-32, 70 %
    sparse, zeta 0.3, 6 seeds): random regrowth perturbs the function every epoch and cost 7 points
    of training accuracy against zero (0.914 vs 0.981). Optimiser state of regrown weights is reset.
    Regrowth picks only positions that were absent before the drop, so "regrown" always means new.
    """

    name = "custom"
    sparse = True

    def __init__(self, drop=None, grow=None, schedule: Schedule | None = None, grow_init: str = "zero"):
        if grow_init not in ("zero", "random"):
            raise ValueError(f"grow_init must be 'zero' or 'random', got {grow_init!r}")
        self.drop = drop if drop is not None else MagnitudeDrop()
        self.grow = grow if grow is not None else RandomGrow()
        self.schedule = schedule if schedule is not None else Schedule()
        self.grow_init = grow_init

    @property
    def evolves(self) -> bool:
        return self.schedule.zeta > 0

    @property
    def needs_gradient(self) -> bool:
        return getattr(self.grow, "needs_gradient", False)

    def due(self, epoch: int, step: int, end_of_epoch: bool) -> bool:
        return self.evolves and self.schedule.due(epoch, step, end_of_epoch)

    def prepare(self, X) -> None:
        """Look at the training inputs once before training (data-aware algorithms use it)."""

    @torch.no_grad()
    def update(self, model, optimizer=None, epoch: int = 0, step: int = 0, rng=None, context=None) -> list[dict]:
        """Evolve every SparseLinear in ``model``; returns one dict of counts per layer."""
        rng = check_random_state(rng)
        fraction = self.schedule.fraction(epoch, step)
        info = []
        for index, layer in enumerate(m for m in model.modules() if isinstance(m, SparseLinear)):
            info.append(self.update_layer(layer, fraction, optimizer, rng, _LayerContext(context, index), index))
        return info

    def update_layer(self, layer: SparseLinear, fraction: float, optimizer, rng, context, index: int = 0) -> dict:
        nnz = layer.nnz
        n_free = layer.in_features * layer.out_features - nnz
        n_swap = min(int(round(fraction * nnz)), nnz - 1, n_free)
        if n_swap <= 0:
            return {"layer": index, "nnz": nnz, "dropped": 0, "grown": 0}
        present = layer.keys()
        scores = self.drop_scores(layer, context)
        keep = np.sort(np.argpartition(scores, n_swap)[n_swap:])
        grown = np.sort(self.grow.select(layer, n_swap, present, rng, context))
        rows_k, cols_k = split_keys(present[keep], layer.in_features)
        rows_g, cols_g = split_keys(grown, layer.in_features)
        if self.grow_init == "zero":
            new_vals = np.zeros(n_swap)
        else:
            new_vals = layer.init_values(rows_g, rng)
        values = torch.cat([layer.values.detach()[torch.from_numpy(keep).to(layer.values.device)],
                            torch.as_tensor(new_vals, dtype=layer.values.dtype, device=layer.values.device)])
        old_param = layer.values
        old_position = layer.set_connections(
            np.concatenate([rows_k, rows_g]), np.concatenate([cols_k, cols_g]), values
        )
        remap_state(optimizer, old_param, layer.values, old_position)
        return {"layer": index, "nnz": layer.nnz, "dropped": n_swap, "grown": n_swap}

    def drop_scores(self, layer, context) -> np.ndarray:
        return self.drop.scores(layer, context)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(zeta={self.schedule.zeta}, every={self.schedule.every!r})"


class _LayerContext:
    """What a rule may know while updating one layer: its index and the captured batch (if any)."""

    def __init__(self, parent, layer_index: int):
        self.layer_index = layer_index
        self.layer_io = getattr(parent, "layer_io", {})


class SET(TopologyAlgorithm):
    """Sparse Evolutionary Training (Mocanu et al. 2018): magnitude drop, random growth, each epoch."""

    name = "set"

    def __init__(self, zeta: float = 0.3, every="epoch", grow_init: str = "zero"):
        super().__init__(MagnitudeDrop(), RandomGrow(), Schedule(zeta, every), grow_init)


class RigL(TopologyAlgorithm):
    """RigL (Evci et al. 2020): magnitude drop, growth by gradient magnitude, cosine-decayed fraction."""

    name = "rigl"

    def __init__(self, zeta: float = 0.3, every=100, end: int | None = None, grow_init: str = "zero"):
        super().__init__(MagnitudeDrop(), GradientGrow(), Schedule(zeta, every, "cosine" if end else "constant", end), grow_init)


class Static(TopologyAlgorithm):
    """A sparse network whose random topology never changes (the control for SET)."""

    name = "static"

    def __init__(self):
        super().__init__(schedule=Schedule(0.0))


class Dense(Static):
    """Fully connected layers trained through the same loop, for fair comparisons."""

    name = "dense"
    sparse = False
