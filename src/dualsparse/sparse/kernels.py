"""CPU kernels for truly sparse linear layers (Numba).

Why these exist: a sparse weight stored as CSR (rows = output units) costs O(batch x nnz) only if
the inner loop runs over the batch, contiguously. So activations are kept *batch-last*
(features x batch, C order): every stored weight w_ij then touches one contiguous vector
``x[j, :]`` and one ``y[i, :]``, which the compiler vectorises (the idea of SparseProp,
Nikdan et al. 2023). The backward pass walks the weights in CSC order (columns = inputs) so that
the input gradient ``gx[j, :]`` and the value gradient ``gv[k]`` are produced in one fused,
race-free parallel loop over inputs.

All kernels write into preallocated outputs and never allocate anything of dense-weight size.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(nogil=True, cache=True, fastmath=True)


@nb.njit(parallel=True, **_JIT)
def csr_forward(row_ptr, col_idx, values, xt, yt):
    """yt[i, :] += sum_k values[k] * xt[col_idx[k], :] over the stored k of row i."""
    n_out = row_ptr.shape[0] - 1
    batch = xt.shape[1]
    for i in nb.prange(n_out):
        for k in range(row_ptr[i], row_ptr[i + 1]):
            w = values[k]
            j = col_idx[k]
            for b in range(batch):
                yt[i, b] += w * xt[j, b]


@nb.njit(parallel=True, **_JIT)
def csc_backward(col_ptr, row_idx, perm, values, xt, gt, gxt, gv):
    """Fused backward in CSC order.

    For every input j and stored weight k = (i, j):
    ``gv[k] = <gt[i, :], xt[j, :]>`` and ``gxt[j, :] += values[k] * gt[i, :]``.
    Each thread owns whole input columns, so neither output needs atomics.
    """
    n_in = col_ptr.shape[0] - 1
    batch = xt.shape[1]
    for j in nb.prange(n_in):
        for p in range(col_ptr[j], col_ptr[j + 1]):
            i = row_idx[p]
            k = perm[p]
            w = values[k]
            s = 0.0
            for b in range(batch):
                g = gt[i, b]
                s += g * xt[j, b]
                gxt[j, b] += w * g
            gv[k] = s


@nb.njit(parallel=True, **_JIT)
def csr_value_grad(row_ptr, col_idx, xt, gt, gv):
    """gv[k] = <gt[i, :], xt[j, :]> only (no input gradient needed, e.g. the first layer)."""
    n_out = row_ptr.shape[0] - 1
    batch = xt.shape[1]
    for i in nb.prange(n_out):
        for k in range(row_ptr[i], row_ptr[i + 1]):
            j = col_idx[k]
            s = 0.0
            for b in range(batch):
                s += gt[i, b] * xt[j, b]
            gv[k] = s


@nb.njit(parallel=True, **_JIT)
def sparse_input_forward(x_ptr, x_idx, x_val, col_ptr, row_idx, perm, values, y):
    """y[b, :] += x[b, :] @ W.T for a CSR input x (batch x in); y is batch-first.

    Work per sample is the sum, over its stored inputs j, of the connections leaving j: a missing
    input costs nothing.
    """
    batch = x_ptr.shape[0] - 1
    for b in nb.prange(batch):
        for q in range(x_ptr[b], x_ptr[b + 1]):
            j = x_idx[q]
            xv = x_val[q]
            for p in range(col_ptr[j], col_ptr[j + 1]):
                y[b, row_idx[p]] += xv * values[perm[p]]


@nb.njit(parallel=True, **_JIT)
def sparse_input_value_grad(xc_ptr, xc_row, xc_val, col_ptr, row_idx, perm, g, gv):
    """gv[k] = sum_b x[b, j] * g[b, i] for a sparse input given in CSC (xc_*, per input column).

    Parallel over input columns: each stored weight is written by exactly one thread.
    """
    n_in = col_ptr.shape[0] - 1
    for j in nb.prange(n_in):
        q0 = xc_ptr[j]
        q1 = xc_ptr[j + 1]
        for p in range(col_ptr[j], col_ptr[j + 1]):
            i = row_idx[p]
            s = 0.0
            for q in range(q0, q1):
                s += xc_val[q] * g[xc_row[q], i]
            gv[perm[p]] = s


@nb.njit(cache=True)
def csr_to_csc(n_in, row_ptr, col_idx):
    """Counting-sort transpose of a CSR pattern: (col_ptr, row_idx, perm), perm[p] = CSR position."""
    nnz = col_idx.shape[0]
    n_out = row_ptr.shape[0] - 1
    col_ptr = np.zeros(n_in + 1, dtype=row_ptr.dtype)
    for k in range(nnz):
        col_ptr[col_idx[k] + 1] += 1
    for j in range(n_in):
        col_ptr[j + 1] += col_ptr[j]
    fill = col_ptr[:-1].copy()
    row_idx = np.empty(nnz, dtype=col_idx.dtype)
    perm = np.empty(nnz, dtype=row_ptr.dtype)
    for i in range(n_out):
        for k in range(row_ptr[i], row_ptr[i + 1]):
            j = col_idx[k]
            p = fill[j]
            row_idx[p] = i
            perm[p] = k
            fill[j] = p + 1
    return col_ptr, row_idx, perm


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the kernels (defaults to torch's intra-op thread count)."""
    nb.set_num_threads(max(1, min(int(n), nb.config.NUMBA_NUM_THREADS)))
