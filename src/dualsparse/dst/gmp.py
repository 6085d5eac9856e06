"""Gradual magnitude pruning (Zhu & Gupta 2017) and what it shares with other pruning schedules."""

from __future__ import annotations

import numpy as np

from .resizing import ResizingAlgorithm, check_every, magnitudes, target_nnz, update_time
from .rules import MagnitudeDrop
from .schedule import CubicDensity, Schedule, _as_list

#: share of the planned epochs by which pruning ends when no ``end`` is given (Zhu & Gupta prune
#: during the first part of training and let the last part recover at the final density)
DEFAULT_END_SHARE = 0.75


class DensityTargets:
    """Initial and final per-layer densities of an algorithm whose density changes.

    ``final_density``: one float for every layer, one per layer, or None for the densities the
    estimator's density rule gives (``sparsity`` / ``epsilon``), which it passes through
    :meth:`set_targets`. ``initial_density``: where each layer starts (1.0: dense); a layer whose
    final density is at or above it starts at its final density and is never pruned.
    """

    def _init_targets(self, initial_density, final_density):
        self.initial_density = _as_list(initial_density, "initial_density")[0] if not isinstance(
            initial_density, (list, tuple)) else _as_list(initial_density, "initial_density")
        self.final_density = None if final_density is None else (
            _as_list(final_density, "final_density") if isinstance(final_density, (list, tuple))
            else _as_list(final_density, "final_density")[0])
        if self.final_density is not None:
            CubicDensity(self.initial_density, self.final_density, 0, 1)  # final above initial: error now
        self._targets = None
        self._horizon = None
        self._steps_per_epoch = None

    def set_targets(self, targets, horizon=None, steps_per_epoch=None) -> None:
        super().set_targets(targets, horizon, steps_per_epoch)
        self._targets = [float(d) for d in targets]
        self._horizon = horizon
        self._steps_per_epoch = steps_per_epoch

    def final_densities(self, n_layers: int) -> list[float]:
        final = self.final_density if self.final_density is not None else self._targets
        if final is None:
            raise RuntimeError(f"{type(self).__name__} needs a final density: pass final_density=... (e.g. 0.1), or train "
                               f"through SparseMLPClassifier/Regressor, which sets it from sparsity/epsilon")
        final = list(final) if isinstance(final, (list, tuple)) else [final] * n_layers
        if len(final) != n_layers:
            raise ValueError(f"final_density has {len(final)} entries for a network of {n_layers} sparse layers")
        return final

    def start_densities(self, final: list[float]) -> list[float]:
        initial = self.initial_density if isinstance(self.initial_density, list) else [self.initial_density] * len(final)
        if len(initial) != len(final):
            raise ValueError(f"initial_density has {len(initial)} entries for a network of {len(final)} sparse layers")
        return [max(i, f) for i, f in zip(initial, final)]

    def initial_densities(self, targets):
        final = self.final_density if self.final_density is not None else list(targets)
        final = list(final) if isinstance(final, (list, tuple)) else [final] * len(targets)
        return self.start_densities(final)


class GradualPruning(DensityTargets, ResizingAlgorithm):
    """Shared by GMP and GraNet: the cubic density curve between ``start`` and ``end``."""

    def _init_schedule(self, start, end, every):
        self.every = check_every(every)
        self.start = int(start)
        self.end = None if end is None else int(end)
        if self.start < 0:
            raise ValueError(f"start must be >= 0, got {start!r}")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"the pruning schedule ends (end={self.end}) before or when it starts "
                             f"(start={self.start}); give end > start")

    def pruning_end(self) -> int:
        if self.end is not None:
            return self.end
        if self._horizon is None or self.every != "epoch":
            unit = "epoch" if self.every == "epoch" else "step"
            raise RuntimeError(f"{type(self).__name__} needs to know when pruning ends: pass end=... (the last pruning "
                               f"{unit}), or train through an estimator with every='epoch' (end then defaults to "
                               f"{DEFAULT_END_SHARE:.0%} of max_epochs)")
        return max(self.start + 1, int(round(DEFAULT_END_SHARE * self._horizon)))

    def curve(self, n_layers: int) -> CubicDensity:
        final = self.final_densities(n_layers)
        return CubicDensity(self.start_densities(final), final, self.start, self.pruning_end())

    def pruning_due(self, epoch: int, step: int, end_of_epoch: bool) -> bool:
        if (self.every == "epoch") != end_of_epoch:
            return False
        t = update_time(self.every, epoch, step)
        if self.every != "epoch" and t % self.every:
            return False
        return self.start < t <= self.pruning_end()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(initial_density={self.initial_density!r}, final_density={self.final_density!r}, "
                f"start={self.start}, end={self.end}, every={self.every!r})")


class GMP(GradualPruning):
    """Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune").

    Rule: at each update between ``start`` and ``end``, drop each layer's smallest-|w|
    connections down to ``d_t = d_f + (d_i - d_f)(1 - (t - start)/(end - start))^3``; never regrow.

    Starts dense (``initial_density=1.0``, stored as a fully populated SparseLinear) or at a
    lower initial density; ends at each layer's final density (``final_density``, or the
    estimator's density rule). ``t`` counts completed epochs (``every="epoch"``) or steps
    (``every=k``: prune every k steps, as Zhu & Gupta's Δt). ``end`` defaults to 75 % of the
    estimator's ``max_epochs``. Layer-wise, as in Zhu & Gupta's TensorFlow implementation (each
    layer reaches its own target), not GraNet's global threshold. Ties: stable (the first stored
    of equal magnitudes is pruned first).
    """

    name = "gmp"
    display_name = "GMP MLP"

    def __init__(self, initial_density: float = 1.0, final_density=None, start: int = 0, end: int | None = None,
                 every="epoch"):
        super().__init__(MagnitudeDrop(), None, Schedule(0.0, every if every == "epoch" else check_every(every)))
        self._init_targets(initial_density, final_density)
        self._init_schedule(start, end, every)

    @property
    def needs_gradient(self) -> bool:
        return False

    def due(self, epoch: int, step: int, end_of_epoch: bool) -> bool:
        return self.pruning_due(epoch, step, end_of_epoch)

    def plan(self, layers, optimizer, epoch, step, context):
        density = self.curve(len(layers)).density(update_time(self.every, epoch, step))
        return [(max(0, layer.nnz - target_nnz(layer, d)), 0) for layer, d in zip(layers, density)]

