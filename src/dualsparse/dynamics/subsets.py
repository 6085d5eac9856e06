"""Choose a subset of the training data from per-example statistics, and train on it.

Strategies (each is a priority order; the first ``fraction`` of it is kept, per class when
stratified):

=========================  ==========================================================================
``random``                 uniform at random (the baseline every other strategy must beat)
``forgetting``             most forgotten first, never-learned first of all (Toneva et al. 2019);
                           ties by lower confidence
``el2n``                   largest EL2N first (Paul et al. 2021)
``grand``                  largest GraNd first (Paul et al. 2021)
``hard-to-learn``          lowest confidence first (data-map region, Swayamdipta et al. 2020)
``ambiguous``              highest variability first (data map)
``easy-to-learn``          highest confidence first (data map)
``unforgettable-removed``  every forgettable or never-learned row first (random order), then the
                           unforgettable ones (random order): drops unforgettable rows first
=========================  ==========================================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

from ..utils import check_random_state
from ._common import check_fraction, n_rows, take_rows
from .compare import hardness

STRATEGIES = ("random", "forgetting", "el2n", "grand", "hard-to-learn", "ambiguous", "easy-to-learn",
              "unforgettable-removed")
STRATIFY = (True, False, "proportional", "balanced")
_NEEDS = {"forgetting": "forgetting_events", "el2n": "el2n", "grand": "grand", "hard-to-learn": "confidence",
          "ambiguous": "variability", "easy-to-learn": "confidence", "unforgettable-removed": "unforgettable"}
_HOW = {"el2n": "ExampleTracker(el2n_epoch=...) and train at least el2n_epoch + 1 epochs",
        "grand": "ExampleTracker(grand_epoch=...)"}


def check_strategy(strategy) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    return strategy


def priority(stats: pd.DataFrame, strategy: str, rows: np.ndarray, rng) -> np.ndarray:
    """``rows`` reordered keep-first by ``strategy`` (random tie-breaking)."""
    rows = rows[rng.permutation(rows.size)]  # random order among equal keys (stable sorts below)
    if strategy == "random":
        return rows
    column = _NEEDS[strategy]
    if column not in stats.columns:
        raise ValueError(f"strategy {strategy!r} needs the statistic {column!r}, which stats lack; "
                         "pass ExampleTracker.example_stats_")
    if strategy == "unforgettable-removed":
        unforgettable = stats["unforgettable"].to_numpy(dtype=bool, na_value=False)[rows]
        return rows[np.argsort(unforgettable, kind="stable")]
    if strategy == "forgetting":
        key = -hardness(stats, "forgetting")[rows]
    else:
        values = stats[column].to_numpy(dtype=np.float64, na_value=np.nan)[rows]
        if np.isnan(values).any():
            missing = int(np.isnan(values).sum())
            raise ValueError(
                f"strategy {strategy!r} needs {column!r} for every training row, but {missing} of {rows.size} are NaN; "
                f"compute it with {_HOW.get(strategy, 'ExampleTracker')}"
            )
        key = values if strategy == "hard-to-learn" else -values
    return rows[np.argsort(key, kind="stable")]


def _quotas(counts: np.ndarray, total: int, how: str) -> np.ndarray:
    """Rows to keep per class, summing to ``total`` (each class at most its count)."""
    k = counts.size
    if how == "proportional":
        exact = counts * (total / counts.sum())
        q = np.floor(exact).astype(np.int64)
        if total >= k:  # every class keeps at least one row when there is room for it
            q = np.maximum(q, np.minimum(1, counts))
        rest = total - q.sum()
        if rest > 0:
            order = np.argsort(-(exact - np.floor(exact)), kind="stable")
            order = order[q[order] < counts[order]]
            q[order[:rest]] += 1
        elif rest < 0:  # the minimum of one pushed us over: take back from the largest quotas
            for i in np.argsort(-q, kind="stable")[: -rest]:
                q[i] -= 1
        return q
    # balanced: water-filling, equal shares capped by what each class has
    q = np.zeros(k, dtype=np.int64)
    left = total
    open_ = counts > 0
    while left > 0 and open_.any():
        share = max(1, left // int(open_.sum()))
        for i in np.flatnonzero(open_):
            add = min(share, counts[i] - q[i], left)
            q[i] += add
            left -= add
            if q[i] >= counts[i]:
                open_[i] = False
            if left == 0:
                break
    return q


def select_subset(stats: pd.DataFrame, strategy: str, fraction: float, stratify=True, random_state=None,
                  n_samples: int | None = None) -> np.ndarray:
    """Row indices (into the X the statistics describe, sorted) of the kept training rows.

    Parameters
    ----------
    stats : DataFrame from ``ExampleTracker.example_stats_`` (for ``random`` only ``in_train`` and
        ``label`` are needed).
    strategy : one of :data:`STRATEGIES`.
    fraction : float in (0, 1], share of the training rows to keep (at least one row is kept).
    stratify : True / "proportional" keeps each class's share; "balanced" gives every class an
        equal share (capped by its size; a class-balanced replay buffer); False ignores classes.
    random_state : seeds the random order and the tie-breaking.
    n_samples : if given, the number of rows of the data the subset is for; a mismatch with
        ``len(stats)`` is an error (statistics of other data).
    """
    check_strategy(strategy)
    fraction = check_fraction(fraction)
    if not isinstance(stats, pd.DataFrame):
        raise TypeError(f"stats must be a DataFrame from ExampleTracker.example_stats_, got {type(stats).__name__}")
    if n_samples is not None and len(stats) != n_samples:
        raise ValueError(
            f"stats describe {len(stats)} rows but the data has {n_samples}; compute the statistics on this "
            "data (one row of stats per row of X, same order)"
        )
    if stratify not in STRATIFY:
        raise ValueError(f"stratify must be True, False, 'proportional' or 'balanced', got {stratify!r}")
    rng = check_random_state(random_state)
    in_train = stats["in_train"].to_numpy(dtype=bool) if "in_train" in stats else np.ones(len(stats), dtype=bool)
    rows = np.flatnonzero(in_train)
    if rows.size == 0:
        raise ValueError("stats have no training rows (in_train is False everywhere)")
    total = max(1, int(round(fraction * rows.size)))
    order = priority(stats, strategy, rows, rng)
    if stratify is False:
        return np.sort(order[:total])
    if "label" not in stats.columns:
        raise ValueError("stratified selection needs a label column in stats; pass stratify=False or example_stats_")
    labels = stats["label"].to_numpy()[order]
    classes, codes = np.unique(labels, return_inverse=True)
    counts = np.bincount(codes, minlength=classes.size)
    quota = _quotas(counts, total, "balanced" if stratify == "balanced" else "proportional")
    # rank of each row within its class, in priority order; keep those under the class quota
    rank = np.empty(order.size, dtype=np.int64)
    by_class = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[by_class] = np.arange(order.size) - np.repeat(starts, counts)
    return np.sort(order[rank < quota[codes]])


def train_on_subset(estimator, X, y, indices, X_test, y_test, dense_reference="auto") -> dict:
    """Fit a clone of ``estimator`` on rows ``indices`` of (X, y); accuracy and the joint saving.

    The saving compares the training FLOPs of this (sparse) model on the subset with those of the
    *dense* model on *all* rows — data pruning and weight sparsity together.
    ``dense_reference``: ``"estimate"`` scales the subset run's dense-equivalent count,
    ``flops_['train_dense'] * len(X) / len(indices)`` (exact when both runs train the same number
    of epochs, i.e. without early stopping); ``"measure"`` fits the dense model on all rows;
    a fitted estimator (the dense model on all rows) is used as is; ``"auto"`` estimates unless
    the estimator stops early. Returns a plain dict.
    """
    n_all = n_rows(X)
    if n_rows(y) != n_all:
        raise ValueError(f"X has {n_all} rows but y has {n_rows(y)}; pass one label per row")
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("indices must be a non-empty 1-D array of row numbers (as select_subset returns)")
    if idx.min() < 0 or idx.max() >= n_all:
        raise ValueError(f"indices must lie in [0, {n_all}) for X with {n_all} rows; got {idx.min()}..{idx.max()}")
    if np.unique(idx).size != idx.size:
        raise ValueError("indices contain repeated rows; pass each row once")
    if dense_reference == "auto":
        dense_reference = "measure" if getattr(estimator, "early_stopping", False) else "estimate"
    if isinstance(dense_reference, str) and dense_reference not in ("estimate", "measure"):
        raise ValueError(f"dense_reference must be 'auto', 'estimate', 'measure' or a fitted dense estimator, "
                         f"got {dense_reference!r}")
    if dense_reference == "estimate" and getattr(estimator, "early_stopping", False):
        raise ValueError("dense_reference='estimate' assumes equal epochs, but the estimator stops early; "
                         "use dense_reference='measure'")
    est = clone(estimator).fit(take_rows(X, idx), np.asarray(y)[idx])
    out = {
        "n_all": int(n_all), "n_subset": int(idx.size), "fraction": idx.size / n_all,
        "accuracy": float(est.score(X_test, y_test)), "epochs": int(est.n_iter_),
        "train_flops": est.flops_["train"], "train_flops_dense_subset": est.flops_["train_dense"],
    }
    if dense_reference == "estimate":
        out.update(dense_full_train_flops=est.flops_["train_dense"] * n_all / idx.size,
                   dense_full_source="estimated", dense_full_accuracy=None)
    else:
        if dense_reference == "measure":
            ref = clone(estimator).set_params(algorithm="dense").fit(X, y)
            source = "measured"
        else:
            ref = dense_reference
            if not hasattr(ref, "flops_"):
                raise ValueError("dense_reference must be a fitted estimator (with flops_) or a string")
            source = "given"
        out.update(dense_full_train_flops=ref.flops_["train"], dense_full_source=source,
                   dense_full_accuracy=float(ref.score(X_test, y_test)))
    ratio = out["train_flops"] / out["dense_full_train_flops"]
    out.update(flops_ratio=float(ratio), flops_saving=float(1.0 - ratio))
    return out


def class_counts(labels) -> dict:
    """{label: count} as plain Python values (for logging buffer contents)."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {v.item() if hasattr(v, "item") else v: int(c) for v, c in zip(values, counts)}

