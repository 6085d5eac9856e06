"""Sparse Networks from Scratch (SNFS; Dettmers & Zettlemoyer 2019): momentum-guided growth."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..sparse.topology import csr_of_keys, row_of_each, sample_absent_csr
from .budget import redistribute
from .gradients import block_gradient, captured_window, gradient_at
from .resizing import ResizingAlgorithm, check_decay, check_every, check_fraction, cosine_fraction, update_time
from .rules import MagnitudeDrop, TopScoreGrow
from .schedule import Schedule

_ADAM_EPS = 1e-8  # the authors' get_momentum_for_weight: exp_avg / (sqrt(exp_avg_sq) + 1e-8)


def momentum_of(optimizer, param) -> tuple[torch.Tensor, str]:
    """The per-weight momentum SNFS reads: SGD's ``momentum_buffer``, or Adam's
    ``exp_avg / (sqrt(exp_avg_sq) + 1e-8)`` (as the authors' code); a clear error otherwise."""
    state = optimizer.state.get(param, {}) if optimizer is not None else {}
    if "exp_avg" in state and "exp_avg_sq" in state:
        return state["exp_avg"] / (state["exp_avg_sq"].sqrt() + _ADAM_EPS), "adam"
    if state.get("momentum_buffer") is not None:
        return state["momentum_buffer"], "sgd"
    if optimizer is None:
        raise RuntimeError("SNFS needs the optimiser (its momentum decides regrowth): pass optimizer=... to update")
    if isinstance(optimizer, torch.optim.SGD) and not optimizer.param_groups[0].get("momentum"):
        raise RuntimeError("SNFS needs optimiser momentum, and this SGD has momentum=0: use SGD with momentum > 0 "
                           "(e.g. momentum=0.9) or Adam")
    raise RuntimeError(f"SNFS needs optimiser momentum (SGD's momentum_buffer or Adam's exp_avg) and "
                       f"{type(optimizer).__name__} has none for this layer yet: update after at least one "
                       f"optimiser step, with SGD (momentum > 0) or Adam")


class MomentumGrow(TopScoreGrow):
    """Grow where the magnitude of the momentum an absent weight would have is largest.

    An absent weight has no optimiser state in a truly sparse layer; its momentum is that of its
    gradient, rebuilt from the last ``K`` captured batches (oldest first, k = 0..K-1) with the
    optimiser's own decay: SGD ``|sum_k mu^(K-1-k) G_k|``; Adam ``|m| / (sqrt(v) + 1e-8)``
    with ``m = sum_k (1-b1) b1^(K-1-k) G_k`` and ``v = sum_k (1-b2) b2^(K-1-k) G_k^2``
    (``G_k = g_k.T @ x_k``, built a block of rows at a time).
    """

    needed_by = "SNFS (momentum growth)"

    def __init__(self, block_elements: int = 1 << 24, candidates: float | None = None):
        super().__init__(block_elements)
        self.kind, self.hyper = "sgd", (0.9, 0.999)
        self.candidates = candidates

    def _weights(self, k: int):
        if self.kind == "adam":
            b1, b2 = self.hyper
            return [(1 - b1) * b1 ** (k - 1 - j) for j in range(k)], [(1 - b2) * b2 ** (k - 1 - j) for j in range(k)]
        return [self.hyper[0] ** (k - 1 - j) for j in range(k)], None

    def select_csr(self, layer, n: int, rng, context):
        """All absent positions scored (``candidates=None``), or the best of a uniform sample of
        ``candidates * n`` absent positions scored at those positions only (O(sample x batch x
        window), the way growth scales to layers whose dense gradient cannot be built)."""
        if self.candidates is None:
            keys = np.sort(self.select(layer, n, layer.keys(), rng, context))
            return csr_of_keys(keys, layer.out_features, layer.in_features)
        n_free = layer.in_features * layer.out_features - layer.nnz
        m = int(min(n_free, max(n, math.ceil(self.candidates * n))))
        ptr, col = sample_absent_csr(layer.row_ptr.cpu().numpy(), layer.col_idx.cpu().numpy(), layer.in_features, m, rng)
        window = captured_window(layer, context, self.needed_by)
        w1, w2 = self._weights(len(window))
        m1 = sum(w * gradient_at(layer, ptr, col, x, g).astype(np.float64) for (x, g), w in zip(window, w1))
        if w2 is not None:
            v = sum(w * gradient_at(layer, ptr, col, x, g).astype(np.float64) ** 2 for (x, g), w in zip(window, w2))
            scores = np.abs(m1) / (np.sqrt(v) + _ADAM_EPS)
        else:
            scores = np.abs(m1)
        chosen = np.sort(np.lexsort((rng.random(scores.size), -scores))[:n])  # CSR order = key order
        counts = np.bincount(row_of_each(ptr)[chosen], minlength=layer.out_features)
        out_ptr = np.zeros(layer.out_features + 1, dtype=np.int64)
        np.cumsum(counts, out=out_ptr[1:])
        return out_ptr, col[chosen]

    def block_scores(self, layer, r0, r1, context):
        window = captured_window(layer, context, self.needed_by)
        w1, w2 = self._weights(len(window))
        m = block_gradient(window, r0, r1, w1)
        if w2 is not None:
            return m.abs() / (block_gradient(window, r0, r1, w2, square=True).sqrt() + _ADAM_EPS)
        return m.abs()


class SNFS(ResizingAlgorithm):
    """SNFS (Dettmers & Zettlemoyer 2019, "Sparse Networks from Scratch: Faster Training without Losing Performance").

    Rule: drop each layer's ``zeta_t`` smallest-|w| connections; regrow the total dropped, shared
    across layers in proportion to each layer's mean momentum magnitude, at the absent positions
    of largest momentum magnitude.

    The mean momentum of a layer is read exactly from the optimiser (SGD's momentum buffer or
    Adam's ``exp_avg / (sqrt(exp_avg_sq) + eps)``, over its live weights, as the authors'
    ``momentum_redistribution``); a layer's regrowth is capped by its absent positions and the
    excess goes to the others (water-filling; the authors iterate a residual loop). The momentum
    of absent positions, which a truly sparse layer never stores, is rebuilt from the last
    ``window`` captured batches with the optimiser's decay (:class:`MomentumGrow`): exact for the
    window, the older gradients' share (``mu^window``) missing. Updates at each epoch end (the
    paper) or every ``every`` steps; ``zeta_t`` decays on a cosine to 0 at the end of training
    (``decay="cosine"``, as the authors' default) or stays. Total nnz is preserved; per-layer
    nnz moves. Ties: stable drop (first stored first), random growth ties (seeded).

    Cost: growth scores every absent position in row blocks (O(n_out n_in batch window) time,
    O(block) memory); ``candidates=c`` scores instead a uniform sample of ``c`` absent positions
    per grown connection (as gradient-sampled growth, Heddes et al. 2024), O(c n batch window):
    the setting for layers too large for a dense gradient (a deviation from the paper's rule).
    """

    name = "snfs"
    display_name = "SNFS MLP"
    needs_momentum = True

    def __init__(self, zeta: float = 0.5, every="epoch", window: int = 4, decay: str = "cosine",
                 candidates: float | None = None, grow_init: str = "zero"):
        if isinstance(window, bool) or int(window) != window or int(window) < 1:
            raise ValueError(f"window must be a positive number of batches, got {window!r}")
        if candidates is not None and not float(candidates) >= 1:
            raise ValueError(f"candidates must be None (score every absent position) or >= 1 sampled positions "
                             f"per grown connection, got {candidates!r}")
        grow = MomentumGrow(candidates=None if candidates is None else float(candidates))
        super().__init__(MagnitudeDrop(), grow, Schedule(check_fraction(zeta), check_every(every)), grow_init)
        self.zeta = check_fraction(zeta)
        self.every = check_every(every)
        self.window = int(window)
        self.capture_batches = int(window)
        self.decay = check_decay(decay)
        self._horizon = self._steps_per_epoch = None

    def set_targets(self, targets, horizon=None, steps_per_epoch=None) -> None:
        super().set_targets(targets, horizon, steps_per_epoch)
        self._horizon, self._steps_per_epoch = horizon, steps_per_epoch

    def due(self, epoch: int, step: int, end_of_epoch: bool) -> bool:
        return self.zeta > 0 and self.schedule.due(epoch, step, end_of_epoch)

    def fraction(self, t: int) -> float:
        horizon = self._horizon
        if horizon is not None and self.every != "epoch":
            horizon = horizon * self._steps_per_epoch if self._steps_per_epoch else None
        return cosine_fraction(self.zeta, t, horizon, self.decay)

    def layer_momentum(self, optimizer, layers) -> tuple[np.ndarray, str]:
        """Mean |momentum| over each layer's live weights, and the optimiser kind."""
        means, kind = [], "sgd"
        for layer in layers:
            m, kind = momentum_of(optimizer, layer.values)
            means.append(float(m.detach().abs().mean()) if m.numel() else 0.0)
        return np.array(means), kind

    def plan(self, layers, optimizer, epoch, step, context):
        fraction = self.fraction(update_time(self.every, epoch, step))
        means, kind = self.layer_momentum(optimizer, layers)
        group = optimizer.param_groups[0]
        self.grow.kind = kind
        self.grow.hyper = tuple(group["betas"]) if kind == "adam" else (float(group.get("momentum", 0.0)), 0.0)
        drops = [max(0, min(int(round(fraction * layer.nnz)), layer.nnz - 1)) for layer in layers]
        capacity = [layer.in_features * layer.out_features - layer.nnz for layer in layers]
        grows = redistribute(sum(drops), means, capacity)
        return list(zip(drops, grows.tolist()))
