"""Random sparse patterns without ever building a dense mask.

Connections are identified by their *key* ``row * n_in + col`` (int64): sorted keys are exactly
CSR order, membership tests are binary searches (or one merge pass when the queries are sorted
too), and sampling an absent position is rejection sampling on keys, whose cost grows with the
number requested, not with ``n_out * n_in``.

Large arrays (a SET step on a layer of tens of millions of weights) go through Numba kernels:
linear merges instead of hash-based ``np.unique`` / ``setdiff1d`` / ``union1d``, parallel key
arithmetic. The results, and the random numbers drawn, are exactly those of the plain NumPy
formulation, so a seed gives the same topology whichever path runs.

A topology update (:func:`evolve_csr`, :func:`sample_absent_csr`) works on the CSR arrays
directly, row by row, without any key array of the layer's size (see the notes further down).
"""

from __future__ import annotations

import contextlib
import os

import numba as nb
import numpy as np

from ..utils import check_random_state
from .kernels import _lower_bound

_JIT = dict(nogil=True, cache=True)
_PARALLEL_MIN = 1 << 18  # below this many keys NumPy's own loops are as fast
#: from this many positions, filling every free one skips the draws (smaller layers keep the
#: draws they always made, so seeded results of small fully connected layers do not change)
_FILL_DIRECT_MIN = 1 << 20


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
    if n == n_free and n_positions >= _FILL_DIRECT_MIN:
        # every free position (a layer built fully connected, e.g. GMP's or SNIP's dense start):
        # no draw is needed, and rejection sampling would need ~n log n draws to collect them all
        return np.setdiff1d(np.arange(n_positions, dtype=np.int64), present_sorted, assume_unique=True)
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
    positions = np.ascontiguousarray(positions)
    if positions.dtype not in (np.int32, np.int64):
        positions = positions.astype(np.int64)
    out = np.empty(positions.shape[0], dtype=values.dtype)
    with serial_below(positions.shape[0]):
        _take_or_zero(values, positions, out)
    return out


def keep_largest(scores: np.ndarray, n_drop: int) -> np.ndarray:
    """Ascending positions of all but the ``n_drop`` lowest ``scores`` (SET's magnitude drop).

    Ties at the threshold: the first stored ones are dropped, i.e. the dropped positions are
    ``np.argsort(scores, kind="stable")[:n_drop]`` (the rule :func:`evolve_csr` follows). One
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
def _gallop(a, p, m, v):
    """First position >= p of sorted a[:m] holding a value >= v: a few steps, then a binary search."""
    if p + 8 < m and a[p + 8] < v:
        return _lower_bound(a, p + 8, m, v)
    while p < m and a[p] < v:
        p += 1
    return p


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
        p1 = _gallop(present, p1, m1, v)
        if p1 < m1 and present[p1] == v:
            continue
        p2 = _gallop(chosen, p2, m2, v)
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


# ============================================================================ evolution
# A topology update (drop the lowest-scored connections, grow as many absent ones) done directly
# on CSR arrays in a few O(nnz) passes, parallel over rows, with no int64 key array of size nnz:
#
# * selection: the n_drop-th smallest score by a 16-bit radix histogram over the scores' bits
#   (2 passes for float32), not a sort or an argpartition;
# * growth: uniform draws of (row, col) pairs, bucketed by row (counting sort), then sorted,
#   de-duplicated and checked against the row's present columns per row;
# * merge: each row's kept columns and grown columns merged in one pass that writes the new
#   column indices, values and old positions (for optimiser state).
#
# Tie rule (exact and deterministic): the dropped connections are the first ``n_drop`` of the
# stable ascending sort of the scores in CSR order, i.e. ``np.argsort(scores, kind="stable")[:n_drop]``:
# among scores equal to the threshold, those stored first (lower row, then lower column) go first.

#: below this many connections per layer an update runs on the calling thread alone: the passes
#: then take a few ms, while waking a thread pool on a busy 2-core machine (a sibling thread that
#: was descheduled) can cost tens of ms per parallel region. Environment override:
#: ``DUALSPARSE_EVOLVE_PARALLEL_MIN``.
EVOLVE_PARALLEL_MIN = int(os.environ.get("DUALSPARSE_EVOLVE_PARALLEL_MIN", 1 << 19))


@contextlib.contextmanager
def serial_below(work: int, threshold: int | None = None):
    """Run the enclosed Numba kernels on one thread when ``work`` is under ``threshold``
    (default :data:`EVOLVE_PARALLEL_MIN`). Results do not depend on the thread count."""
    threshold = EVOLVE_PARALLEL_MIN if threshold is None else threshold
    n = nb.get_num_threads()
    if n > 1 and work < threshold:
        nb.set_num_threads(1)
        try:
            yield
        finally:
            nb.set_num_threads(n)
    else:
        yield


_RADIX_BITS = 16
_RADIX_SIZE = 1 << _RADIX_BITS
_SMALL_SELECT = 1 << 15  # below this many scores np.partition is as fast as the histograms


def _n_chunks(n: int, per_chunk: int = 1 << 15) -> int:
    return int(max(1, min(4 * nb.get_num_threads(), n // per_chunk)))


def score_bits(scores: np.ndarray) -> tuple[np.ndarray, bool]:
    """(unsigned-integer view of ``scores``, absolute=False) for :func:`select_threshold` & co."""
    scores = np.ascontiguousarray(scores)
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    return scores.view(np.uint32 if scores.dtype == np.float32 else np.uint64), False


def _order_params(bits: np.ndarray):
    width = bits.dtype.itemsize * 8
    sign = np.uint64(1) << np.uint64(width - 1)
    full = np.uint64((1 << width) - 1)
    return width, sign, full


def orderable(bits: np.ndarray, absolute: bool) -> np.ndarray:
    """The unsigned keys whose integer order is the float order of the scores (|score| if absolute).

    -0.0 and 0.0 tie. NaN sorts above +inf (as in ``np.sort``) for |score| and positive NaN.
    """
    width, sign, full = _order_params(bits)
    u = bits.astype(np.uint64)
    if absolute:
        return u & (full ^ sign)
    neg = ((u & sign) != 0) & (u != sign)  # -0.0 ties with 0.0, as floats compare
    return np.where(neg, u ^ full, u | sign)


@nb.njit(inline="always")
def _okey(u, sign, full, absolute):
    k = np.uint64(u)
    if absolute:
        return k & (full ^ sign)
    if k & sign and k != sign:  # negative (-0.0 ties with 0.0, as floats compare)
        return k ^ full
    return k | sign


@nb.njit(parallel=True, **_JIT)
def _radix_digit(bits, sign, full, absolute, shift, use_prefix, prefix_shift, prefix, rank, n_chunks):
    n = bits.shape[0]
    hist = np.zeros((n_chunks, _RADIX_SIZE), dtype=np.int32)
    digit_mask = np.uint64(_RADIX_SIZE - 1)
    for c in nb.prange(n_chunks):
        a = n * c // n_chunks
        b = n * (c + 1) // n_chunks
        h = hist[c]
        for k in range(a, b):
            key = _okey(bits[k], sign, full, absolute)
            if use_prefix and (key >> prefix_shift) != prefix:
                continue
            h[np.int64((key >> shift) & digit_mask)] += 1
    # the digit holding the 0-based ``rank``-th key, and how many keys lie in lower digits
    before = 0
    for d in range(_RADIX_SIZE):
        count = 0
        for c in range(n_chunks):
            count += hist[c, d]
        if before + count > rank:
            return d, before
        before += count
    return _RADIX_SIZE - 1, before


def select_threshold(bits: np.ndarray, absolute: bool, n_drop: int) -> tuple[int, int]:
    """(threshold key T, number of ties at T to drop) so that the dropped set is the keys < T plus
    the first ``ties`` keys == T in storage order: exactly the ``n_drop`` smallest scores under the
    stable tie rule. ``1 <= n_drop <= len(bits)``."""
    n = bits.shape[0]
    if not 1 <= n_drop <= n:
        raise ValueError(f"n_drop must be in [1, {n}], got {n_drop}")
    width, sign, full = _order_params(bits)
    if n <= _SMALL_SELECT:
        keys = orderable(bits, absolute)
        t = keys[np.argpartition(keys, n_drop - 1)[n_drop - 1]]
        below = int(np.count_nonzero(keys < t))
        return int(t), n_drop - below
    rank = n_drop - 1  # 0-based rank of the threshold among all keys
    below = 0
    prefix = 0
    # one histogram per thread (1 when serial_below applies); int32 counts: chunks under 2**31
    n_chunks = max(nb.get_num_threads(), n // 2**30 + 1)
    for p in range(width // _RADIX_BITS):
        shift = width - _RADIX_BITS * (p + 1)
        digit, before = _radix_digit(bits, sign, full, absolute, np.uint64(shift), p > 0,
                                     np.uint64(shift + _RADIX_BITS), np.uint64(prefix), rank, n_chunks)
        digit, before = int(digit), int(before)
        below += before
        rank -= before
        prefix = (prefix << _RADIX_BITS) | digit
    return prefix, n_drop - below


@nb.njit(parallel=True, **_JIT)
def _count_rows(row_ptr, bits, sign, full, absolute, t, below_row, ties_row):
    n_out = row_ptr.shape[0] - 1
    for i in nb.prange(n_out):
        lo = 0
        eq = 0
        for k in range(row_ptr[i], row_ptr[i + 1]):
            key = _okey(bits[k], sign, full, absolute)
            if key < t:
                lo += 1
            elif key == t:
                eq += 1
        below_row[i] = lo
        ties_row[i] = eq


def drops_per_row(row_ptr: np.ndarray, bits: np.ndarray, absolute: bool, t: int, ties: int):
    """(dropped connections per row, of which ties at the threshold) under the stable tie rule."""
    width, sign, full = _order_params(bits)
    n_out = row_ptr.shape[0] - 1
    below_row = np.empty(n_out, dtype=np.int64)
    ties_row = np.empty(n_out, dtype=np.int64)
    _count_rows(row_ptr, bits, sign, full, absolute, np.uint64(t), below_row, ties_row)
    ties_before = np.cumsum(ties_row) - ties_row
    tie_drop = np.clip(ties - ties_before, 0, ties_row)
    return below_row + tie_drop, tie_drop


@nb.njit(inline="always")
def _accept_row(i, ptr, expo, n_in, row_ptr, col_idx, ch_ptr, ch_col, cand):
    """Row ``i`` of :func:`_accept_rows`: its accepted columns go to ``cand[ptr[i]:]``; returns how many."""
    a = ptr[i]
    b = ptr[i + 1]
    if a == b:
        return 0
    e0 = a + i
    total = 0.0
    for k in range(b - a + 1):
        total += expo[e0 + k]
    scale = n_in / total
    p = row_ptr[i]
    p1 = row_ptr[i + 1]
    q = ch_ptr[i]
    q1 = ch_ptr[i + 1]
    w = a
    last = -1
    s = 0.0
    for k in range(b - a):
        s += expo[e0 + k]
        v = min(np.int64(s * scale), n_in - 1)
        if v == last:
            continue
        last = v
        while p < p1 and col_idx[p] < v:
            p += 1
        if p < p1 and col_idx[p] == v:
            continue
        while q < q1 and ch_col[q] < v:
            q += 1
        if q < q1 and ch_col[q] == v:
            continue
        cand[w] = v
        w += 1
    return w - a


@nb.njit(parallel=True, **_JIT)
def _accept_rows(ptr, expo, n_in, row_ptr, col_idx, ch_ptr, ch_col, col_dtype_example, n_chunks):
    """Draw, per row, ``ptr[i+1] - ptr[i]`` iid uniform columns already in ascending order and keep
    the distinct ones present neither in the layer nor among those already chosen.

    The sorted draws are the order statistics of uniforms by exponential spacings: with
    ``E_0..E_c`` iid Exp(1) (``expo[ptr[i] + i:]``), ``floor(n_in * (E_0+..+E_k) / (E_0+..+E_c))``,
    k < c, are c iid uniform columns, sorted, so no sort is needed and the check against the row's
    (sorted) present columns is one merge walk. Returns (accepted per row ptr, accepted columns).
    """
    n_out = ptr.shape[0] - 1
    m = ptr[n_out]
    cand = np.empty(m, dtype=col_dtype_example.dtype)
    acc = np.zeros(n_out, dtype=np.int64)
    for c in nb.prange(n_chunks):
        i0 = n_out * c // n_chunks
        i1 = n_out * (c + 1) // n_chunks
        for i in range(i0, i1):
            acc[i] = _accept_row(i, ptr, expo, n_in, row_ptr, col_idx, ch_ptr, ch_col, cand)
    out_ptr = np.zeros(n_out + 1, dtype=np.int64)
    for i in range(n_out):
        out_ptr[i + 1] = out_ptr[i] + acc[i]
    out = np.empty(out_ptr[n_out], dtype=cand.dtype)
    for c in nb.prange(n_chunks):
        i0 = n_out * c // n_chunks
        i1 = n_out * (c + 1) // n_chunks
        for i in range(i0, i1):
            a = ptr[i]
            o = out_ptr[i]
            for k in range(acc[i]):
                out[o + k] = cand[a + k]
    return out_ptr, out


@nb.njit(**_JIT)
def _remove_positions(ptr, col, remove_sorted):
    """Drop the entries at the ascending positions ``remove_sorted`` from a row-grouped array."""
    n_out = ptr.shape[0] - 1
    out = np.empty(col.shape[0] - remove_sorted.shape[0], dtype=col.dtype)
    out_ptr = np.zeros(n_out + 1, dtype=np.int64)
    r = 0
    w = 0
    for i in range(n_out):
        for k in range(ptr[i], ptr[i + 1]):
            if r < remove_sorted.shape[0] and remove_sorted[r] == k:
                r += 1
                continue
            out[w] = col[k]
            w += 1
        out_ptr[i + 1] = w
    return out_ptr, out


@nb.njit(parallel=True, **_JIT)
def _union_rows(ptr_a, col_a, ptr_b, col_b):
    """Per-row sorted union of two disjoint row-grouped column sets."""
    n_out = ptr_a.shape[0] - 1
    out_ptr = np.zeros(n_out + 1, dtype=np.int64)
    for i in range(n_out):
        out_ptr[i + 1] = out_ptr[i] + (ptr_a[i + 1] - ptr_a[i]) + (ptr_b[i + 1] - ptr_b[i])
    out = np.empty(out_ptr[n_out], dtype=col_a.dtype)
    for i in nb.prange(n_out):
        p = ptr_a[i]
        p1 = ptr_a[i + 1]
        q = ptr_b[i]
        q1 = ptr_b[i + 1]
        w = out_ptr[i]
        while p < p1 or q < q1:
            if q >= q1 or (p < p1 and col_a[p] < col_b[q]):
                out[w] = col_a[p]
                p += 1
            else:
                out[w] = col_b[q]
                q += 1
            w += 1
    return out_ptr, out


def csr_of_keys(keys: np.ndarray, n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """(row pointer, columns) of sorted distinct keys ``row * n_in + col``."""
    keys = np.asarray(keys, dtype=np.int64)
    rows, cols = split_keys(keys, n_in)
    ptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_out), out=ptr[1:])
    return ptr, cols.astype(np.int32 if n_in < 2**31 else np.int64)


def sample_absent_csr(row_ptr: np.ndarray, col_idx: np.ndarray, n_in: int, n: int, rng):
    """``n`` positions drawn uniformly among those absent from a CSR pattern, as (ptr, cols) by row.

    Same law as :func:`sample_absent` (rejection sampling: uniform draws, the distinct ones that
    are absent are kept, a uniform subset of them if too many, repeated for the missing ones) but
    drawn as (row, col) pairs and checked row by row against the row's sorted columns, so no
    key array of the layer's size is built. Columns are ascending within each row.
    """
    with serial_below(int(row_ptr[-1]) + n):
        return _sample_absent_csr(row_ptr, col_idx, n_in, n, rng)


def _sample_absent_csr(row_ptr: np.ndarray, col_idx: np.ndarray, n_in: int, n: int, rng):
    rng = check_random_state(rng)
    row_ptr = np.ascontiguousarray(row_ptr, dtype=np.int64)
    col_idx = np.ascontiguousarray(col_idx)
    n_out = row_ptr.shape[0] - 1
    nnz = int(row_ptr[-1])
    n_positions = n_out * n_in
    if n > n_positions - nnz:
        raise ValueError(f"cannot place {n} connections: only {n_positions - nnz} positions are free")
    col_dtype = np.int32 if n_in < 2**31 else np.int64
    if nnz * 2 > n_positions:
        return csr_of_keys(sample_absent(n_positions, keys_from_csr(row_ptr, col_idx, n_in), n, rng), n_out, n_in)
    if col_idx.dtype != col_dtype:
        col_idx = col_idx.astype(col_dtype)
    n_chunks = _n_chunks(n_out, 1 << 12)
    no_cols = np.empty(0, col_dtype)

    def accept(counts, expo, ch_ptr, ch_col):
        ptr = np.zeros(n_out + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        return _accept_rows(ptr, expo, n_in, row_ptr, col_idx, ch_ptr, ch_col, no_cols, n_chunks)

    return rejection_rows(row_ptr, col_idx, n_in, n, rng, accept)


def rejection_rows(row_ptr, col_idx, n_in: int, n: int, rng, accept):
    """The rejection loop of :func:`sample_absent_csr` (one copy, shared with the small-layer path).

    Each round draws Poisson(m / n_out) positions per row (a Poisson process: all positions
    exchangeable, so the distinct absent ones, given their number, are a uniform subset) with
    columns iid uniform, from exponential spacings; ``accept(counts, expo, ch_ptr, ch_col)`` keeps
    the distinct absent ones not chosen yet, as (ptr, cols) by row; a uniform subset is kept if too
    many, and rounds repeat for the missing ones. The draws and their order are fixed here.
    """
    n_out = row_ptr.shape[0] - 1
    nnz = int(row_ptr[-1])
    n_positions = n_out * n_in
    if n > n_positions - nnz:
        raise ValueError(f"cannot place {n} connections: only {n_positions - nnz} positions are free")
    ch_ptr = np.zeros(n_out + 1, dtype=np.int64)
    ch_col = np.empty(0, dtype=col_idx.dtype)
    while True:
        have = int(ch_ptr[-1])
        need = n - have
        if need <= 0:
            return ch_ptr, ch_col
        accept_rate = max(0.05, 1.0 - (nnz + have + 0.5 * need) / n_positions)
        m = int(need / accept_rate + 4.0 * np.sqrt(need)) + 16
        counts = rng.poisson(m / n_out, size=n_out)
        expo = rng.standard_exponential(int(counts.sum()) + n_out)
        a_ptr, a_col = accept(counts, expo, ch_ptr, ch_col)
        del expo
        got = int(a_ptr[-1])
        if got > need:
            remove = np.sort(rng.choice(got, size=got - need, replace=False))
            a_ptr, a_col = _remove_positions(a_ptr, a_col, remove)
        if have == 0:
            ch_ptr, ch_col = a_ptr, a_col
        else:
            ch_ptr, ch_col = _union_rows(ch_ptr, ch_col, a_ptr, a_col)


@nb.njit(inline="always")
def _merge_row(i, row_ptr, col_idx, values, bits, sign, full, absolute, t, tie_drop, new_ptr,
               g_ptr, g_col, g_values, out_col, out_values, old_pos):
    """Row ``i`` of :func:`_merge_evolved`."""
    w = new_ptr[i]
    w1 = new_ptr[i + 1]
    ties_left = tie_drop[i]
    k = row_ptr[i]
    k1 = row_ptr[i + 1]
    g1 = g_ptr[i + 1]
    for j in range(g_ptr[i], g1 + 1):
        last = j == g1
        gc = g_col[min(j, g1 - 1)] if not last else 0
        while k < k1 and (last or col_idx[k] < gc):
            key = _okey(bits[k], sign, full, absolute)
            tie = key == t
            drop = (key < t) | (tie & (ties_left > 0))
            ties_left -= 1 if (tie & (ties_left > 0)) else 0
            if w < w1:  # a dropped last connection must not write into the next row
                out_col[w] = col_idx[k]
                out_values[w] = values[k]
                old_pos[w] = k
            w += 0 if drop else 1
            k += 1
        if not last:
            out_col[w] = gc
            out_values[w] = g_values[j]
            old_pos[w] = -1
            w += 1


@nb.njit(parallel=True, **_JIT)
def _merge_evolved(row_ptr, col_idx, values, bits, sign, full, absolute, t, tie_drop, new_ptr,
                   g_ptr, g_col, g_values, out_col, out_values, old_pos, n_chunks):
    """Per row, one forward pass: the old connections are copied with a branch-free keep/drop
    (a dropped one is overwritten by the next write), each grown one is written where the old
    columns pass it. Mispredicted branches: about one per grown connection."""
    n_out = row_ptr.shape[0] - 1
    for c in nb.prange(n_chunks):
        i0 = n_out * c // n_chunks
        i1 = n_out * (c + 1) // n_chunks
        for i in range(i0, i1):
            _merge_row(i, row_ptr, col_idx, values, bits, sign, full, absolute, t, tie_drop, new_ptr,
                       g_ptr, g_col, g_values, out_col, out_values, old_pos)


def evolve_csr(row_ptr, col_idx, values, bits, absolute: bool, n_drop: int, g_ptr, g_col, g_values):
    """Drop the ``n_drop`` lowest-scored connections of a CSR pattern and add the grown ones.

    ``bits`` is the unsigned view of the scores (``values.view(uint32)`` with ``absolute=True``
    for magnitude, or :func:`score_bits`); the dropped set follows the stable tie rule (module
    notes). ``(g_ptr, g_col)`` are the grown positions by row (ascending, absent from the pattern)
    with their values ``g_values``. Returns ``(row_ptr, col_idx, values, old_position)`` of the new
    pattern; ``old_position[k]`` is the old storage position of new position ``k``, -1 if grown
    (int32 when the layer has under 2**31 connections, int64 otherwise).
    """
    with serial_below(bits.shape[0]):
        return _evolve_csr(row_ptr, col_idx, values, bits, absolute, n_drop, g_ptr, g_col, g_values)


def _evolve_csr(row_ptr, col_idx, values, bits, absolute: bool, n_drop: int, g_ptr, g_col, g_values):
    row_ptr = np.ascontiguousarray(row_ptr, dtype=np.int64)
    n_out = row_ptr.shape[0] - 1
    nnz = int(row_ptr[-1])
    if n_drop > 0:
        t, ties = select_threshold(bits, absolute, n_drop)
        dropped, tie_drop = drops_per_row(row_ptr, bits, absolute, t, ties)
    else:
        t, ties = 0, 0
        dropped = tie_drop = np.zeros(n_out, dtype=np.int64)
        absolute = True
    new_ptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(np.diff(row_ptr) - dropped + np.diff(g_ptr), out=new_ptr[1:])
    n_new = int(new_ptr[-1])
    out_col = np.empty(n_new, dtype=col_idx.dtype)
    out_values = np.empty(n_new, dtype=values.dtype)
    old_pos = np.empty(n_new, dtype=np.int32 if nnz < 2**31 - 1 else np.int64)
    g_values = np.ascontiguousarray(g_values, dtype=values.dtype)
    _, sign, full = _order_params(bits)
    if n_drop == 0:
        t = 0  # nothing is below key 0 and no tie is dropped
    _merge_evolved(row_ptr, col_idx, values, bits, sign, full, absolute, np.uint64(t), tie_drop, new_ptr,
                   g_ptr, g_col, g_values, out_col, out_values, old_pos, _n_chunks(n_out, 1 << 12))
    return new_ptr, out_col, out_values, old_pos


# ============================================================================ sampled products
# Gradient-informed rules (MEST's drop score, SNIP's sensitivity, sampled growth) need the weight
# gradient G^T X of a captured batch only at given positions: the stored connections, or a sample
# of absent ones. Computing it there (a sampled dense-dense product, SDDMM) costs
# O(positions x batch) and never forms the (out x in) gradient.


@nb.njit(parallel=True, **_JIT)
def _sampled_products(ptr, col, gt, xt, out):
    n_out = ptr.shape[0] - 1
    batch = gt.shape[1]
    for i in nb.prange(n_out):
        for k in range(ptr[i], ptr[i + 1]):
            c = col[k]
            s = 0.0
            for b in range(batch):
                s += gt[i, b] * xt[c, b]
            out[k] = s


def sampled_products(ptr: np.ndarray, col: np.ndarray, gt: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """``out[k] = gt[row_k] . xt[col_k]`` for the positions of a row-grouped pattern ``(ptr, col)``:
    the entries of ``gt @ xt.T`` (``gt``: (n_out, batch), ``xt``: (n_in, batch)) at those positions
    only, float64 accumulation, in one parallel pass over rows."""
    ptr = np.ascontiguousarray(ptr, dtype=np.int64)
    col = np.ascontiguousarray(col)
    gt = np.ascontiguousarray(gt)
    xt = np.ascontiguousarray(xt, dtype=gt.dtype)
    if gt.shape[1] != xt.shape[1] or gt.shape[0] != ptr.shape[0] - 1:
        raise ValueError(f"sampled_products: gt {gt.shape} and xt {xt.shape} do not match a pattern of {ptr.shape[0] - 1} rows")
    out = np.empty(col.shape[0], dtype=gt.dtype)
    with serial_below(col.shape[0] * max(1, gt.shape[1]) // 8):
        _sampled_products(ptr, col, gt, xt, out)
    return out
