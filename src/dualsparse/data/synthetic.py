"""A sparse classification problem of any width, built directly as CSR.

Every cell is non-zero independently with probability ``density`` (``informative_density`` for
the informative columns). Classes are balanced. A non-zero *noise* value is standard normal; a
non-zero *informative* value is ``class_sep * sign[class, feature] + noise``, scaled to unit
variance, where each class has its own sign pattern (a vertex of the hypercube, distinct per
class). So only informative entries carry the label, and a sample whose informative entries
are all zero carries none: on average a sample has ``n_informative * informative_density``
informative non-zeros; keep that at 3 or more for a learnable problem.

Memory is O(number of non-zeros): the positions of non-zeros are drawn as geometric gaps, so no
n_samples x n_features array is ever built (n_features of 10^5 to 10^7 is fine).
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from ._validation import check_random_state


def make_sparse_classification(
    n_samples: int = 1000,
    n_features: int = 10_000,
    n_informative: int = 100,
    density: float = 0.05,
    n_classes: int = 2,
    random_state=None,
    *,
    informative_density: float | None = None,
    class_sep: float = 1.0,
    return_informative: bool = False,
):
    """Return (X, y), X a float64 CSR (n_samples, n_features), y int labels 0..n_classes-1.

    ``informative_density`` defaults to ``density``. With ``return_informative=True`` also
    return the sorted indices of the informative columns: (X, y, informative).
    """
    for name, value, low in [
        ("n_samples", n_samples, 1),
        ("n_features", n_features, 1),
        ("n_informative", n_informative, 1),
        ("n_classes", n_classes, 2),
    ]:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if n_informative > n_features:
        raise ValueError(
            f"n_informative ({n_informative}) cannot exceed n_features ({n_features})"
        )
    if n_classes > 2**n_informative:
        raise ValueError(
            f"{n_classes} classes need n_informative >= {int(np.ceil(np.log2(n_classes)))} "
            "so that every class gets its own sign pattern"
        )
    informative_density = density if informative_density is None else informative_density
    for name, value in [("density", density), ("informative_density", informative_density)]:
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    rng = check_random_state(random_state)

    y = rng.permutation(np.arange(n_samples) % n_classes)
    informative = np.sort(rng.choice(n_features, size=n_informative, replace=False))
    signs = _class_signs(n_classes, n_informative, rng)

    is_informative = np.zeros(n_features, dtype=bool)
    is_informative[informative] = True
    noise_cols = np.flatnonzero(~is_informative)
    rows_n, cols_n = _bernoulli_cells(n_samples, noise_cols.size, density, rng)
    rows_i, cols_i = _bernoulli_cells(n_samples, n_informative, informative_density, rng)

    values_n = rng.standard_normal(rows_n.size)
    position = np.searchsorted(informative, informative[cols_i])  # column within `informative`
    signal = class_sep * signs[y[rows_i], position]
    values_i = (signal + rng.standard_normal(rows_i.size)) / np.sqrt(1.0 + class_sep**2)

    rows = np.concatenate([rows_n, rows_i])
    cols = np.concatenate([noise_cols[cols_n], informative[cols_i]])
    values = np.concatenate([values_n, values_i])
    X = sp.csr_matrix((values, (rows, cols)), shape=(n_samples, n_features))
    X.sort_indices()
    return (X, y, informative) if return_informative else (X, y)


def _bernoulli_cells(n_rows, n_cols, p, rng):
    """(rows, cols) of the cells kept when each is kept with probability p, in O(kept) memory.

    The gaps between consecutive kept cells (in row-major order) are geometric(p).
    """
    n_cells = n_rows * n_cols
    if n_cells == 0:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    expected = n_cells * p
    chunk = int(expected + 10 * np.sqrt(expected) + 100)
    flat = np.cumsum(rng.geometric(p, size=chunk)) - 1
    while flat[-1] < n_cells:  # rarely needed: draw further gaps
        flat = np.concatenate([flat, flat[-1] + np.cumsum(rng.geometric(p, size=chunk))])
    flat = flat[flat < n_cells]
    return flat // n_cols, flat % n_cols


def _class_signs(n_classes, n_informative, rng):
    """(n_classes, n_informative) of +-1, rows distinct: a hypercube vertex per class."""
    signs = rng.choice([-1.0, 1.0], size=(n_classes, n_informative))
    bits = min(n_informative, 20)  # distinct codes on the first `bits` columns
    codes = rng.choice(2**bits, size=n_classes, replace=False)
    signs[:, :bits] = np.where((codes[:, None] >> np.arange(bits)) & 1, 1.0, -1.0)
    return signs
