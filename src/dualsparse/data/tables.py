"""A table of text cells with genuinely missing values -> numeric features, one-hot categories.

Why its own module: every archive reader (Orange ``.tab``, UCI comma files) ends with the same
question, how to turn text columns into numbers without losing which cells were missing. The
answer is declared once here:

* a numeric column becomes one float64 feature; a missing cell stays NaN;
* a categorical column becomes one 0/1 feature ``"name=value"`` per category (the declared
  order when the source lists its values, else sorted); a missing cell is NaN in every one of
  its columns, as ``penguins`` does, so ``np.isnan(X)`` is the whole missing mask, imputers fill
  the category's frequencies, and the ``observed`` representation stores none of its columns:
  an all-zero segment, exactly the observed-only encoding of an unknown category;
* the mask of missing cells (feature space) is returned on its own as well, and which features
  came from categorical columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING_TOKENS = ("", "?", "~")  # how the sources write an unknown value


@dataclass
class EncodedTable:
    """Numeric features of a table and what each column means."""

    X: np.ndarray  # float64, NaN = missing
    missing: np.ndarray  # bool, same shape: the source had no value there
    feature_names: list[str]
    categorical: np.ndarray  # bool per feature: one-hot column of a categorical variable


def is_missing(column: pd.Series) -> np.ndarray:
    """True where a text cell holds no value."""
    text = column.astype(str).str.strip()
    return (column.isna() | text.isin(MISSING_TOKENS)).to_numpy()


def encode_table(frame: pd.DataFrame, kinds: dict, categories: dict | None = None) -> EncodedTable:
    """Encode text columns; ``kinds[column]`` is "numeric" or "categorical".

    ``categories[column]`` optionally gives a categorical column's values in their declared
    order; values met in the data but not declared follow them (as Orange reads its own files).
    """
    categories = categories or {}
    blocks, names, flags = [], [], []
    for col in frame.columns:
        kind = kinds[col]
        missing = is_missing(frame[col])
        text = frame[col].astype(str).str.strip()
        if kind == "numeric":
            values = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=np.float64)
            bad = np.isnan(values) & ~missing
            if bad.any():
                raise ValueError(f"column {col!r} is declared numeric but holds {text[bad].iloc[0]!r}")
            blocks.append(values[:, None])
            names.append(str(col))
            flags.append(False)
        elif kind == "categorical":
            seen = sorted(set(text[~missing]), key=_natural)
            declared = list(categories.get(col) or [])
            order = declared + [v for v in seen if v not in declared]
            codes = pd.Categorical(text.where(~missing), categories=order).codes
            onehot = np.zeros((len(frame), len(order)))
            rows = np.flatnonzero(codes >= 0)
            onehot[rows, codes[rows]] = 1.0
            onehot[missing] = np.nan
            blocks.append(onehot)
            names += [f"{col}={v}" for v in order]
            flags += [True] * len(order)
        else:
            raise ValueError(f"column {col!r}: unknown kind {kind!r}; use 'numeric' or 'categorical'")
    X = np.hstack(blocks) if blocks else np.empty((len(frame), 0))
    return EncodedTable(X, np.isnan(X), names, np.asarray(flags, dtype=bool))


def _natural(value: str):
    """Numbers in numeric order, then text: '2' before '10'."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)
