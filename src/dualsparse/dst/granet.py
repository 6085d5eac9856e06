"""GraNet: gradual magnitude pruning with zero-cost neuroregeneration (Liu et al., NeurIPS 2021)."""

from __future__ import annotations

from .budget import lowest_per_layer
from .gmp import GradualPruning
from .resizing import check_decay, check_fraction, cosine_fraction, magnitudes, target_nnz, update_time
from .rules import GradientGrow, MagnitudeDrop
from .schedule import Schedule


class GraNet(GradualPruning):
    """GraNet (Liu et al. 2021, "Sparse Training via Boosting Pruning Plasticity with Neuroregeneration").

    Rule: at each update, prune globally by |w| to the cubic-schedule density, then in each
    layer drop a further ``zeta_t`` of its connections by |w| and regrow as many where the
    captured batch's gradient is largest ("zero-cost neuroregeneration": density unchanged by it).

    From a dense (``initial_density=1.0``) or sparse start (0.5, the authors' default) to each
    layer's final density on Zhu & Gupta's curve between ``start`` and ``end`` (default: 75 % of
    ``max_epochs``); the pruning is global (one magnitude threshold over all layers, as the
    authors' ``pruning``), so layers end at different densities whose total is the target.
    ``zeta_t`` decays from ``zeta`` on a cosine to 0 at the end of training (``decay="cosine"``,
    the authors' ``CosineDecay``) or stays (``"constant"``); regeneration continues after the
    pruning ends. Ties: stable within and across layers (earlier layer, then storage order).

    Deviations from the authors' code: grown positions are absent before this update, so a
    connection just pruned is not regrown in the same step (their dense mask allows it); each
    layer keeps at least one connection (their strict threshold can empty a layer).
    """

    name = "granet"
    display_name = "GraNet MLP"

    def __init__(self, zeta: float = 0.5, initial_density: float = 0.5, final_density=None, start: int = 0,
                 end: int | None = None, every="epoch", decay: str = "cosine", grow_init: str = "zero"):
        super().__init__(MagnitudeDrop(), GradientGrow(), Schedule(check_fraction(zeta), every), grow_init)
        self.zeta = check_fraction(zeta)
        self.decay = check_decay(decay)
        self._init_targets(initial_density, final_density)
        self._init_schedule(start, end, every)

    def due(self, epoch: int, step: int, end_of_epoch: bool) -> bool:
        if (self.every == "epoch") != end_of_epoch:
            return False
        t = update_time(self.every, epoch, step)
        return t > self.start and (self.every == "epoch" or t % self.every == 0)

    def regrowth_fraction(self, t: int) -> float:
        horizon = self._horizon
        if horizon is not None and self.every != "epoch":
            horizon = horizon * self._steps_per_epoch if self._steps_per_epoch else None
        return cosine_fraction(self.zeta, t, horizon, self.decay)

    def plan(self, layers, optimizer, epoch, step, context):
        t = update_time(self.every, epoch, step)
        scores = [magnitudes(layer) for layer in layers]
        if self.pruning_due(epoch, step, self.every == "epoch"):
            density = self.curve(len(layers)).density(t)
            target = sum(target_nnz(layer, d) for layer, d in zip(layers, density))
            pruned = lowest_per_layer(scores, sum(layer.nnz for layer in layers) - target)
        else:
            pruned = [0] * len(layers)
        fraction = self.regrowth_fraction(t)
        plan = []
        for layer, n_prune, s in zip(layers, pruned, scores):
            left = layer.nnz - int(n_prune)
            free = layer.in_features * layer.out_features - layer.nnz
            n_swap = max(0, min(int(round(fraction * left)), left - 1, free))
            plan.append((int(n_prune) + n_swap, n_swap, s))
        return plan
