"""Input checks shared by the data modules.

Every check raises at once with a message that names the problem and the fix: bad input is
never dropped or coerced silently.
"""

from __future__ import annotations

import difflib
import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp


def check_random_state(random_state) -> np.random.Generator:
    """A Generator: None -> fresh entropy, int -> seeded, Generator -> itself (advanced by use)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or (
        isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
    ):
        return np.random.default_rng(random_state)
    raise TypeError(
        f"random_state must be None, an int or a numpy.random.Generator, got {random_state!r}"
    )


def unknown_name(kind: str, name, valid) -> ValueError:
    """ValueError for a name not in `valid`, listing the valid names (and a close match)."""
    valid = list(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}; choose one of {valid}.{hint}")


def check_rate(rate) -> float:
    """A missingness rate is a real number in [0, 1): 1 would leave nothing to learn from."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"rate must be a number in [0, 1), got {rate!r}")
    if not 0.0 <= rate < 1.0 or np.isnan(rate):
        raise ValueError(
            f"rate must be in [0, 1) (the fraction of cells to make missing), got {rate!r}"
        )
    return float(rate)


def non_numeric_columns(frame: pd.DataFrame) -> list:
    """Columns of a DataFrame that are not numeric (bool counts as numeric)."""
    return [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]


def check_dense_numeric(X, name: str = "X") -> np.ndarray:
    """A 2-D float64 copy of X; NaN allowed (missing), inf and non-numeric values rejected."""
    if sp.issparse(X):
        raise TypeError(
            f"{name} is a sparse matrix, but a dense array with NaN for missing values is needed "
            f"(in a sparse matrix an absent entry means 0, not missing); call {name}.toarray() "
            "if that is what you mean"
        )
    if isinstance(X, pd.DataFrame):
        bad = non_numeric_columns(X)
        if bad:
            raise TypeError(
                f"{name} has non-numeric column(s) {bad}; encode them as numbers first "
                "(e.g. one-hot with sklearn.preprocessing.OneHotEncoder) or drop them"
            )
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    X = to_float_array(X, name)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if np.isinf(X).any():
        rows, cols = np.nonzero(np.isinf(X))
        raise ValueError(
            f"{name} contains {rows.size} infinite value(s), e.g. at (row, column) "
            f"{(int(rows[0]), int(cols[0]))}; inf is not a missing value: replace it with NaN "
            "(missing) or a finite number"
        )
    return X


def to_float_array(X, name: str = "X") -> np.ndarray:
    """np.asarray(X, float64) that reports strings and other objects as a TypeError."""
    try:
        return np.array(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} has non-numeric values ({err}); encode categorical values as numbers first "
            "(e.g. sklearn.preprocessing.OneHotEncoder) or drop those columns"
        ) from err


def first(indices, k: int = 5) -> str:
    """Up to k indices as a short string for error messages."""
    indices = [int(i) for i in np.asarray(indices).ravel()[:k]]
    return f"{indices}{' ...' if len(indices) == k else ''}"


def check_labels(y, n_samples: int | None = None, name: str = "y") -> np.ndarray:
    """A 1-D label array without missing or infinite values, as long as X."""
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:  # column or row vector (as MATLAB stores labels)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one label per sample), got shape {y.shape}; "
            "for one-hot labels pass their argmax"
        )
    if n_samples is not None and y.shape[0] != n_samples:
        raise ValueError(
            f"X has {n_samples} rows but {name} has {y.shape[0]} labels; they must match "
            "(one label per row of X)"
        )
    missing = pd.isna(y) if y.dtype.kind == "O" else (np.isnan(y) if y.dtype.kind == "f" else None)
    if missing is not None and missing.any():
        raise ValueError(
            f"{name} has {int(missing.sum())} missing label(s) (NaN/None) at rows "
            f"{first(np.flatnonzero(missing))}; labels cannot be missing: drop those rows "
            "or fill the labels before loading"
        )
    if y.dtype.kind == "f" and np.isinf(y).any():
        raise ValueError(
            f"{name} has {int(np.isinf(y).sum())} infinite label(s) at rows "
            f"{first(np.flatnonzero(np.isinf(y)))}; fix or drop those rows"
        )
    return y
