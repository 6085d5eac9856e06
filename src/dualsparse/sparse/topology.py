"""Random sparse patterns without ever building a dense mask.

Connections are identified by their *key* ``row * n_in + col`` (int64): sorted keys are exactly
CSR order, membership tests are binary searches, and sampling an absent position is rejection
sampling on keys, whose cost grows with the number requested, not with ``n_out * n_in``.
"""

from __future__ import annotations

import numpy as np

from ..utils import check_random_state


def keys_of(rows: np.ndarray, cols: np.ndarray, n_in: int) -> np.ndarray:
    return rows.astype(np.int64) * np.int64(n_in) + cols.astype(np.int64)


def split_keys(keys: np.ndarray, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    return keys // n_in, keys % n_in


def sample_absent(n_positions: int, present_sorted: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` distinct keys in ``[0, n_positions)`` drawn uniformly among those not in ``present_sorted``.

    Rejection sampling while the pattern is sparse; an explicit complement when it is dense
    (more than half full), so the cost stays bounded either way.
    """
    rng = check_random_state(rng)
    n_free = n_positions - present_sorted.size
    if n > n_free:
        raise ValueError(f"cannot place {n} connections: only {n_free} positions are free")
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if present_sorted.size * 2 > n_positions:
        free = np.setdiff1d(np.arange(n_positions, dtype=np.int64), present_sorted, assume_unique=True)
        return np.sort(rng.choice(free, size=n, replace=False))
    chosen = np.empty(0, dtype=np.int64)
    while chosen.size < n:
        need = n - chosen.size
        draw = rng.integers(0, n_positions, size=int(need * 1.1) + 16, dtype=np.int64)
        draw = draw[~_contains(present_sorted, draw)]
        draw = np.setdiff1d(np.unique(draw), chosen, assume_unique=True)
        if draw.size > need:
            draw = rng.choice(draw, size=need, replace=False)
        chosen = np.union1d(chosen, draw)
    return chosen


def random_keys(n_out: int, n_in: int, nnz: int, rng) -> np.ndarray:
    """``nnz`` distinct positions of an ``n_out x n_in`` matrix, uniformly at random, sorted."""
    return sample_absent(n_out * n_in, np.empty(0, dtype=np.int64), nnz, rng)


def _contains(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(queries.shape, dtype=bool)
    pos = np.searchsorted(sorted_keys, queries)
    pos = np.minimum(pos, sorted_keys.size - 1)
    return sorted_keys[pos] == queries


def contains(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``queries`` are in ``sorted_keys`` (binary search, no dense mask)."""
    return _contains(sorted_keys, queries)
