"""SET's drop-and-regrow on a small layer in a handful of compiled calls.

On the layers small fits are made of (a few thousand connections), a SET update spent about
0.4 ms per layer in some twenty NumPy, Numba and torch calls whose fixed costs, not their
arithmetic, set the time; with whole epochs compiled (``train.compiled_epoch``) that had become
most of what separates a SET fit from a static one. :func:`random_swap_small` does the same
update — the same random draws from the same Generator, the same dropped set under the stable tie
rule, the same grown positions, bit for bit — with one compiled call for the acceptance of the
sampled positions and one for threshold, drop counts and merge. The general path
(:func:`~dualsparse.sparse.topology.sample_absent_csr` then
:func:`~dualsparse.sparse.topology.evolve_csr`) stays for large layers, where its parallel kernels
pay, and is the reference the tests compare against.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .topology import _JIT, _accept_row, _merge_row, _okey, _order_params, rejection_rows

SMALL_SWAP_MAX = 1 << 16  # connections (nnz) up to which a layer takes this path


def applies(nnz: int, n_positions: int) -> bool:
    """Whether :func:`random_swap_small` handles a layer: small, and sparse enough that absent
    positions are sampled row by row (denser layers sample among all keys, as the general path does)."""
    return nnz <= SMALL_SWAP_MAX and nnz * 2 <= n_positions


def random_swap_small(row_ptr, col_idx, values, n_in: int, n_swap: int, rng):
    """Drop the ``n_swap`` smallest-magnitude connections and grow as many at absent positions
    drawn uniformly, with value 0: exactly ``sample_absent_csr`` followed by ``evolve_csr`` with
    magnitude scores and zero growth.

    ``row_ptr`` int64, ``col_idx`` int32/int64 and ``values`` float32/float64 are the layer's CSR
    arrays; ``rng`` a numpy Generator. Returns ``(row_ptr, col_idx, values, old_position)`` of the
    new pattern, as ``evolve_csr`` does. Requires :func:`applies`.
    """
    g_ptr, g_col = _sample_rows(row_ptr, col_idx, n_in, n_swap, rng)
    bits = values.view(np.uint32 if values.dtype == np.float32 else np.uint64)
    _, sign, full = _order_params(bits)
    return _evolve_small(row_ptr, col_idx, values, bits, sign, full, n_swap, g_ptr, g_col)


def _sample_rows(row_ptr, col_idx, n_in, n, rng):
    """``sample_absent_csr``'s rejection loop (same draws, in the same order) on a serial kernel."""
    return rejection_rows(row_ptr, col_idx, n_in, n, rng,
                          lambda counts, expo, ch_ptr, ch_col: _accept_small(counts, expo, n_in, row_ptr, col_idx,
                                                                             ch_ptr, ch_col))


@nb.njit(**_JIT)
def _accept_small(counts, expo, n_in, row_ptr, col_idx, ch_ptr, ch_col):
    """``_accept_rows`` on one thread, with the draw counts' cumulative sum done here."""
    n_out = counts.shape[0]
    ptr = np.zeros(n_out + 1, dtype=np.int64)
    for i in range(n_out):
        ptr[i + 1] = ptr[i] + counts[i]
    cand = np.empty(ptr[n_out], dtype=col_idx.dtype)
    out_ptr = np.zeros(n_out + 1, dtype=np.int64)
    for i in range(n_out):
        out_ptr[i + 1] = out_ptr[i] + _accept_row(i, ptr, expo, n_in, row_ptr, col_idx, ch_ptr, ch_col, cand)
    out = np.empty(out_ptr[n_out], dtype=cand.dtype)
    for i in range(n_out):
        a = ptr[i]
        o = out_ptr[i]
        for k in range(out_ptr[i + 1] - o):
            out[o + k] = cand[a + k]
    return out_ptr, out


@nb.njit(**_JIT)
def _evolve_small(row_ptr, col_idx, values, bits, sign, full, n_drop, g_ptr, g_col):
    """``evolve_csr`` for magnitude scores and zero growth, on one thread: threshold by
    partition, drops per row under the stable tie rule, one merge pass."""
    n_out = row_ptr.shape[0] - 1
    nnz = bits.shape[0]
    keys = np.empty(nnz, dtype=np.uint64)
    for k in range(nnz):
        keys[k] = _okey(bits[k], sign, full, True)
    t = np.partition(keys, n_drop - 1)[n_drop - 1]
    below = 0
    for k in range(nnz):
        below += keys[k] < t
    ties = n_drop - below
    new_ptr = np.zeros(n_out + 1, dtype=np.int64)
    tie_drop = np.zeros(n_out, dtype=np.int64)
    for i in range(n_out):
        lo = 0
        eq = 0
        for k in range(row_ptr[i], row_ptr[i + 1]):
            lo += keys[k] < t
            eq += keys[k] == t
        take = min(max(ties, 0), eq)
        ties -= take
        tie_drop[i] = take
        new_ptr[i + 1] = new_ptr[i] + (row_ptr[i + 1] - row_ptr[i]) - lo - take + (g_ptr[i + 1] - g_ptr[i])
    n_new = new_ptr[n_out]
    out_col = np.empty(n_new, dtype=col_idx.dtype)
    out_values = np.empty(n_new, dtype=values.dtype)
    old_pos = np.empty(n_new, dtype=np.int32)
    g_values = np.zeros(g_col.shape[0], dtype=values.dtype)
    for i in range(n_out):
        _merge_row(i, row_ptr, col_idx, values, bits, sign, full, True, t, tie_drop, new_ptr,
                   g_ptr, g_col, g_values, out_col, out_values, old_pos)
    return new_ptr, out_col, out_values, old_pos


@nb.njit(**_JIT)
def remap_into(state, old_position):
    """``state[:] = state[old_position]`` with 0 where the position is -1, in place (one thread):
    carries a per-weight optimiser tensor across a same-size swap without a new tensor."""
    old = state.copy()
    for k in range(old_position.shape[0]):
        p = old_position[k]
        state[k] = old[p] if p >= 0 else 0
