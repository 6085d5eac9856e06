"""Random sparse patterns without ever building a dense mask.

Connections are identified by their *key* ``row * n_in + col`` (int64): sorted keys are exactly
CSR order, membership tests are binary searches (or one merge pass when the queries are sorted
too), and sampling an absent position is rejection sampling on keys, whose cost grows with the
number requested, not with ``n_out * n_in``.

Large arrays (a SET step on a layer of tens of millions of weights) go through Numba kernels:
linear merges instead of hash-based ``np.unique`` / ``setdiff1d`` / ``union1d``, parallel key
arithmetic. The results, and the random numbers drawn, are exactly those of the plain NumPy
formulation, so a seed gives the same topology whichever path runs.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ..utils import check_random_state
from .kernels import _lower_bound

_JIT = dict(nogil=True, cache=True)
_PARALLEL_MIN = 1 << 18  # below this many keys NumPy's own loops are as fast


def keys_of(rows: np.ndarray, cols: np.ndarray, n_in: int) -> np.ndarray:
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    if rows.ndim == 1 and rows.shape == cols.shape and rows.size >= _PARALLEL_MIN and rows.dtype.kind == cols.dtype.kind == "i":
        out = np.empty(rows.size, dtype=np.int64)
        _keys_of(np.ascontiguousarray(rows), np.ascontiguousarray(cols), np.int64(n_in), out)
        return out
    return rows.astype(np.int64) * np.int64(n_in) + cols.astype(np.int64)


def split_keys(keys: np.ndarray, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    keys = np.asarray(keys)
    if keys.ndim == 1 and keys.size >= _PARALLEL_MIN and keys.dtype == np.int64 and 0 < n_in and keys.size and keys.min() >= 0 and keys.max() < 2**52:
        rows = np.empty(keys.size, dtype=np.int64)
        cols = np.empty(keys.size, dtype=np.int64)
        _split_keys(np.ascontiguousarray(keys), np.int64(n_in), rows, cols)
        return rows, cols
    return keys // n_in, keys % n_in


def sample_absent(n_positions: int, present_sorted: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` distinct keys in ``[0, n_positions)`` drawn uniformly among those not in ``present_sorted``.

    Rejection sampling while the pattern is sparse; an explicit complement when it is dense
    (more than half full), so the cost stays bounded either way.
    """
    rng = check_random_state(rng)
    present_sorted = np.asarray(present_sorted, dtype=np.int64)
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
        # the distinct draws, ascending, that are neither present nor already chosen
        draw.sort()
        draw = draw[: _keep_new(draw, present_sorted, chosen)]
        if draw.size > need:
            draw = rng.choice(draw, size=need, replace=False)
            draw.sort()
        chosen = _union_sorted(chosen, draw)
    return chosen


def random_keys(n_out: int, n_in: int, nnz: int, rng) -> np.ndarray:
    """``nnz`` distinct positions of an ``n_out x n_in`` matrix, uniformly at random, sorted."""
    return sample_absent(n_out * n_in, np.empty(0, dtype=np.int64), nnz, rng)


def _contains(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    sorted_keys = np.asarray(sorted_keys)
    queries = np.asarray(queries)
    if sorted_keys.size == 0:
        return np.zeros(queries.shape, dtype=bool)
    if (
        queries.ndim == 1
        and queries.size >= _PARALLEL_MIN
        and sorted_keys.ndim == 1
        and sorted_keys.dtype == queries.dtype == np.int64
    ):
        return locate(sorted_keys, queries) >= 0
    pos = np.searchsorted(sorted_keys, queries)
    pos = np.minimum(pos, sorted_keys.size - 1)
    return sorted_keys[pos] == queries


def contains(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``queries`` are in ``sorted_keys`` (binary search, no dense mask)."""
    return _contains(sorted_keys, queries)


def locate(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query, its position in ``sorted_keys``, or -1 where it is absent (int64).

    Equals ``np.where(contains(k, q), np.searchsorted(k, q), -1)`` in one parallel pass; when the
    queries are ascending (a new topology's keys) it is a merge walk.
    """
    sorted_keys = np.ascontiguousarray(sorted_keys, dtype=np.int64)
    queries = np.ascontiguousarray(queries, dtype=np.int64)
    out = np.empty(queries.shape[0], dtype=np.int64)
    if sorted_keys.size == 0:
        out[:] = -1
        return out
    _locate_kernel(sorted_keys, queries, out)
    return out


def row_of_each(row_ptr: np.ndarray) -> np.ndarray:
    """Row (output unit) of every stored value of a CSR pattern, int64 (``repeat_interleave``)."""
    row_ptr = np.ascontiguousarray(row_ptr, dtype=np.int64)
    out = np.empty(int(row_ptr[-1]), dtype=np.int64)
    _rows_kernel(row_ptr, out)
    return out


def keys_from_csr(row_ptr: np.ndarray, col_idx: np.ndarray, n_in: int) -> np.ndarray:
    """Sorted keys ``row * n_in + col`` of a CSR pattern in one parallel pass (no row array)."""
    row_ptr = np.ascontiguousarray(row_ptr, dtype=np.int64)
    col_idx = np.ascontiguousarray(col_idx)
    out = np.empty(col_idx.shape[0], dtype=np.int64)
    _csr_keys_kernel(row_ptr, col_idx, np.int64(n_in), out)
    return out


def take_or_zero(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``out[k] = values[positions[k]]``, or 0 where ``positions[k] < 0`` (one parallel pass).

    For carrying per-weight state (optimiser moments) across a topology change with the
    ``old_position`` that :meth:`SparseLinear.set_connections` returns.
    """
    values = np.ascontiguousarray(values)
    positions = np.ascontiguousarray(positions, dtype=np.int64)
    out = np.empty(positions.shape[0], dtype=values.dtype)
    _take_or_zero(values, positions, out)
    return out


def keep_largest(scores: np.ndarray, n_drop: int) -> np.ndarray:
    """Ascending positions of all but the ``n_drop`` lowest ``scores`` (SET's magnitude drop).

    The kept *set* equals ``np.sort(np.argpartition(scores, n_drop)[n_drop:])`` except, possibly,
    which of several scores tied at the threshold is dropped (here: the last ones). One
    ``np.partition`` of the scores plus one compaction pass; no int64 argpartition and no sort.
    """
    scores = np.ascontiguousarray(scores)
    n = scores.shape[0]
    if n_drop <= 0:
        return np.arange(n, dtype=np.int64)
    if n_drop >= n:
        return np.empty(0, dtype=np.int64)
    threshold = np.partition(scores, n_drop - 1)[n_drop - 1]
    below = int(np.count_nonzero(scores < threshold))
    out = np.empty(n - n_drop, dtype=np.int64)
    _keep_above(scores, threshold, n_drop - below, out)
    return out


# ---------------------------------------------------------------------------- kernels
@nb.njit(parallel=True, **_JIT)
def _keys_of(rows, cols, n_in, out):
    for k in nb.prange(rows.shape[0]):
        out[k] = np.int64(rows[k]) * n_in + np.int64(cols[k])


@nb.njit(parallel=True, **_JIT)
def _split_keys(keys, n_in, rows, cols):
    # float64 reciprocal then an exact integer correction: vectorises, unlike int64 division
    inv = 1.0 / n_in
    for k in nb.prange(keys.shape[0]):
        v = keys[k]
        r = np.int64(v * inv)
        c = v - r * n_in
        if c < 0:
            r -= 1
            c += n_in
        elif c >= n_in:
            r += 1
            c -= n_in
        rows[k] = r
        cols[k] = c


@nb.njit(**_JIT)
def _is_sorted(a):
    for k in range(1, a.shape[0]):
        if a[k] < a[k - 1]:
            return False
    return True


@nb.njit(parallel=True, **_JIT)
def _locate_kernel(sorted_keys, queries, out):
    n = queries.shape[0]
    m = sorted_keys.shape[0]
    n_chunks = max(1, min(64, n // 4096))
    for c in nb.prange(n_chunks):
        q0 = n * c // n_chunks
        q1 = n * (c + 1) // n_chunks
        ascending = _is_sorted(queries[q0:q1])
        p = _lower_bound(sorted_keys, 0, m, queries[q0]) if (ascending and q1 > q0) else 0
        for q in range(q0, q1):
            v = queries[q]
            if ascending:
                step = 0
                while p < m and sorted_keys[p] < v and step < 8:
                    p += 1
                    step += 1
                if p < m and sorted_keys[p] < v:
                    p = _lower_bound(sorted_keys, p, m, v)
            else:
                p = _lower_bound(sorted_keys, 0, m, v)
            out[q] = p if (p < m and sorted_keys[p] == v) else -1


@nb.njit(parallel=True, **_JIT)
def _take_or_zero(values, positions, out):
    for k in nb.prange(positions.shape[0]):
        p = positions[k]
        out[k] = values[p] if p >= 0 else 0


@nb.njit(parallel=True, **_JIT)
def _rows_kernel(row_ptr, out):
    n_out = row_ptr.shape[0] - 1
    for i in nb.prange(n_out):
        for k in range(row_ptr[i], row_ptr[i + 1]):
            out[k] = i


@nb.njit(parallel=True, **_JIT)
def _csr_keys_kernel(row_ptr, col_idx, n_in, out):
    n_out = row_ptr.shape[0] - 1
    for i in nb.prange(n_out):
        base = np.int64(i) * n_in
        for k in range(row_ptr[i], row_ptr[i + 1]):
            out[k] = base + np.int64(col_idx[k])


@nb.njit(**_JIT)
def _keep_above(scores, threshold, ties_to_drop, out):
    """Positions with score > threshold, plus the ties at the threshold after the first
    ``ties_to_drop`` of them, ascending."""
    kept = 0
    ties = 0
    for k in range(scores.shape[0]):
        v = scores[k]
        if v > threshold:
            out[kept] = k
            kept += 1
        elif v == threshold:
            if ties >= ties_to_drop:
                out[kept] = k
                kept += 1
            ties += 1


@nb.njit(**_JIT)
def _keep_new(draw, present, chosen):
    """Compact the ascending ``draw`` in place to its distinct values in neither sorted array.

    Returns the number kept (the prefix of ``draw``). Each membership walk is a merge that
    gallops (binary search) over long stretches, so the cost is about
    ``len(draw) * log(len(present) / len(draw))``.
    """
    n = draw.shape[0]
    m1 = present.shape[0]
    m2 = chosen.shape[0]
    p1 = 0
    p2 = 0
    kept = 0
    have_last = False
    last = np.int64(0)
    for q in range(n):
        v = draw[q]
        if have_last and v == last:
            continue
        have_last = True
        last = v
        if p1 < m1 and present[p1] < v:
            if p1 + 8 < m1 and present[p1 + 8] < v:
                p1 = _lower_bound(present, p1 + 8, m1, v)
            else:
                while p1 < m1 and present[p1] < v:
                    p1 += 1
        if p1 < m1 and present[p1] == v:
            continue
        if p2 < m2 and chosen[p2] < v:
            if p2 + 8 < m2 and chosen[p2 + 8] < v:
                p2 = _lower_bound(chosen, p2 + 8, m2, v)
            else:
                while p2 < m2 and chosen[p2] < v:
                    p2 += 1
        if p2 < m2 and chosen[p2] == v:
            continue
        draw[kept] = v
        kept += 1
    return kept


@nb.njit(**_JIT)
def _merge_disjoint(a, b):
    out = np.empty(a.shape[0] + b.shape[0], dtype=np.int64)
    i = 0
    j = 0
    k = 0
    while i < a.shape[0] and j < b.shape[0]:
        if a[i] < b[j]:
            out[k] = a[i]
            i += 1
        else:
            out[k] = b[j]
            j += 1
        k += 1
    while i < a.shape[0]:
        out[k] = a[i]
        i += 1
        k += 1
    while j < b.shape[0]:
        out[k] = b[j]
        j += 1
        k += 1
    return out


def _union_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted union of two ascending arrays of distinct keys that share none."""
    if a.size == 0:
        return np.ascontiguousarray(b, dtype=np.int64)
    if b.size == 0:
        return a
    return _merge_disjoint(a, b)
