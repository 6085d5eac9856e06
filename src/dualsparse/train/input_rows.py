"""How a fit reads a small CSR input: as dense rows, expanded once per fit.

Why: at up to a few million cells, slicing, expanding or scattering a CSR input at every step costs
more than reading its dense rows (observed CSR against dense input on the sweep shape of
``benchmarks/small_data.py``: 1.4-1.7x for a dense network, 5-10 % for the compiled epoch, ~15 %
for RigL's autograd capture steps). The arithmetic on the dense rows is the same (a stored zero
and an absent cell are both 0). Sparse layers still have their FLOPs counted from the stored
values of the CSR matrix, by the caller; larger or sparser inputs stay CSR, so memory and
first-layer work follow their non-zeros.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: cells (rows x features) up to which a CSR input is read as dense rows
MAX_CELLS = 1 << 22
#: for sparse layers, the stored fraction from which it is: sparser inputs are cheaper walked
#: per stored value (see ``compiled_epoch.SPARSE_WALK_BELOW``, half this)
MIN_STORED = 0.1


class DenseRows:
    """A small CSR input as the dense rows a fit reads (``X``), and the first layer's products
    over any rows by the FLOP convention (stored values x fan-out), which the dense rows no
    longer show.

    Counting is cheap because it is done often (after every compiled run, at every autograd
    step): the first set of rows asked about (an epoch's, for a fit that runs whole epochs)
    keeps its stored values per column, so a later count over the same set is a sort and a dot
    product with the fan-out; other sets (epochs split by capture steps, single batches) sum
    products per row, computed once per topology."""

    def __init__(self, X):
        self.X = np.ascontiguousarray(X.toarray())
        self._csr = X
        self._pattern = None  # the 0/1 stored pattern, built on the first count (dense networks never count)
        self._topology = (None, None, None)  # (first layer's col_idx tensor, fan-out per input, products per row)
        self._set = (None, None)  # (sorted rows, stored values per column over them)

    @property
    def pattern(self):
        if self._pattern is None:
            X = self._csr
            self._pattern = sp.csr_matrix((np.ones(X.nnz), X.indices, X.indptr), shape=X.shape)
        return self._pattern

    def first_products(self, first, rows: np.ndarray) -> int:
        """Stored values x fan-out of ``first`` (the first layer) over rows ``rows`` of X."""
        cols, fan_out, per_row = self._topology
        if cols is not first.col_idx:
            fan_out, per_row = first.input_degree().cpu().numpy(), None
            self._topology = (first.col_idx, fan_out, None)
        ordered = np.sort(rows)
        kept, stored = self._set
        if kept is None:
            times = np.bincount(ordered, minlength=self.pattern.shape[0])  # a row may repeat
            stored = np.rint(self.pattern.T @ times).astype(np.int64)
            kept, self._set = ordered, (ordered, stored)
        if np.array_equal(kept, ordered):
            return int(stored @ fan_out)
        if per_row is None:
            per_row = self.pattern @ fan_out
            self._topology = (first.col_idx, fan_out, per_row)
        return int(round(per_row[rows].sum()))


def dense_rows(X, sparse_layers: bool) -> DenseRows | None:
    """X read as dense rows when it is a CSR input small (and, for sparse layers, dense) enough
    to be read that way; None otherwise (read X itself)."""
    if not sp.issparse(X):
        return None
    cells = X.shape[0] * X.shape[1]
    if not 0 < cells <= MAX_CELLS or (sparse_layers and X.nnz < MIN_STORED * cells):
        return None
    return DenseRows(X)
