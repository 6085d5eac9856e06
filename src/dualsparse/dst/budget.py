"""Splitting a network-wide number of connections across layers.

Two ways an algorithm decides *how much* each layer changes when the decision is global:

* :func:`redistribute` — a budget shared in proportion to per-layer weights, each layer capped by
  its room (SNFS: regrowth in proportion to each layer's mean momentum magnitude);
* :func:`lowest_per_layer` — a global ranking: how many of the network's ``n`` lowest scores fall
  in each layer (GraNet's and SNIP's global magnitude / sensitivity thresholds).
"""

from __future__ import annotations

import numpy as np


def redistribute(total: int, weights, capacity) -> np.ndarray:
    """Integers summing to ``min(total, sum(capacity))``, proportional to ``weights``, each <= its capacity.

    Water-filling: layers whose share exceeds their capacity are filled and the rest of the budget
    is shared again among the others (SNFS's residual loop, solved exactly). Rounding is by
    largest remainder (ties: the earlier layer), so the parts always add up. Layers of weight 0
    get nothing unless the others are full; all-zero weights share in proportion to capacity.
    """
    weights = np.asarray(weights, dtype=np.float64)
    capacity = np.asarray(capacity, dtype=np.int64)
    if weights.shape != capacity.shape or weights.ndim != 1:
        raise ValueError("weights and capacity need one entry per layer")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError(f"redistribution weights must be finite and >= 0, got {weights.tolist()}")
    total = int(min(max(int(total), 0), int(capacity.sum())))
    out = np.zeros(weights.size, dtype=np.int64)
    open_ = capacity > 0
    left = total
    while left > 0 and open_.any():
        w = np.where(open_, weights, 0.0)
        if w.sum() <= 0:
            w = np.where(open_, capacity - out, 0).astype(np.float64)
        share = left * w / w.sum()
        room = capacity - out
        full = open_ & (share >= room)
        if full.any():
            out[full] = capacity[full]
            open_ &= ~full
            left = total - int(out.sum())
            continue
        base = np.floor(share).astype(np.int64)
        rest = left - int(base.sum())
        order = np.argsort(-(share - base), kind="stable")
        base[order[:rest]] += 1
        out += base
        left = 0
    return out


def lowest_per_layer(scores: list[np.ndarray], n: int, keep_min: int = 1) -> np.ndarray:
    """How many of the ``n`` lowest scores over all layers lie in each layer.

    Ties: the stable order over the layers' scores concatenated (earlier layer first, then storage
    order), i.e. the dropped set is ``np.argsort(np.concatenate(scores), kind="stable")[:n]``. A
    layer keeps at least ``keep_min`` connections (a sparse layer cannot be empty): what it cannot
    give is taken, in the same order, from the other layers.
    """
    sizes = np.array([s.shape[0] for s in scores], dtype=np.int64)
    limit = np.maximum(sizes - keep_min, 0)
    n = int(min(max(int(n), 0), int(limit.sum())))
    counts = np.zeros(sizes.size, dtype=np.int64)
    if n == 0:
        return counts
    capped = np.zeros(sizes.size, dtype=bool)
    while True:
        active = [i for i in range(sizes.size) if not capped[i]]
        need = n - int(limit[capped].sum())
        flat = np.concatenate([np.asarray(scores[i], dtype=np.float64) for i in active])
        t = np.partition(flat, need - 1)[need - 1]
        below = np.array([int(np.count_nonzero(np.asarray(scores[i]) < t)) for i in active])
        ties = np.array([int(np.count_nonzero(np.asarray(scores[i]) == t)) for i in active])
        tie_left = need - int(below.sum())
        tie_take = np.clip(tie_left - (np.cumsum(ties) - ties), 0, ties)
        take = below + tie_take
        over = [a for a, i in enumerate(active) if take[a] > limit[i]]
        if not over:
            counts[active] = take
            counts[capped] = limit[capped]
            return counts
        for a in over:
            capped[active[a]] = True
