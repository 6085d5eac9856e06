"""Do dense and sparse networks find the same examples hard?

* :func:`compare` — rank agreement (Spearman) of forgetting counts, EL2N, confidence and GraNd
  between two runs on the same data, and the overlap of their hardest k %.
* :func:`noise_floor` — the same numbers between seeds of *one* model: a dense-vs-sparse
  difference means something only where it exceeds this.
* :func:`compression_identified` — Hooker et al. (2019)'s compression-identified exemplars: rows
  where the modal prediction over seeds of the sparse model differs from the dense model's.
"""

from __future__ import annotations

import itertools
import numbers
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sstats

# scores where larger means harder; "forgetting" ranks never-learned rows above every count
SCORES = ("forgetting", "el2n", "grand", "confidence")


def _check_stats(stats, name="stats") -> pd.DataFrame:
    if not isinstance(stats, pd.DataFrame):
        raise TypeError(f"{name} must be a DataFrame from ExampleTracker.example_stats_, got {type(stats).__name__}")
    if "in_train" not in stats.columns:
        raise ValueError(f"{name} has no in_train column; pass ExampleTracker.example_stats_")
    return stats


def _col(stats, name) -> np.ndarray:
    return stats[name].to_numpy(dtype=np.float64, na_value=np.nan)


def hardness(stats: pd.DataFrame, by: str) -> np.ndarray:
    """A score per row of ``stats`` where larger means harder (NaN where unavailable).

    ``forgetting``: forgetting events over presentations, never-learned rows ranked above all
    (Toneva et al.: they count as infinitely forgotten), ties broken by lower mean confidence;
    ``el2n`` and ``grand``: the score itself; ``confidence``: minus the mean confidence.
    """
    _check_stats(stats)
    if by == "forgetting":
        f = _col(stats, "forgetting_events")
        never = stats["never_learned"].to_numpy(dtype=np.float64, na_value=np.nan)
        conf = _col(stats, "confidence") if "confidence" in stats else np.zeros(len(stats))
        top = np.nanmax(f) + 2 if np.isfinite(f).any() else 1.0
        score = np.where(never == 1, top, f)
        # tie-break inside equal counts: confidence in [0, 1] mapped into (0, 1) below the next count
        return score + 0.5 * (1.0 - np.nan_to_num(conf, nan=0.5))
    if by in ("el2n", "grand"):
        return _col(stats, by)
    if by == "confidence":
        return -_col(stats, "confidence")
    raise ValueError(f"unknown score {by!r}; choose one of {', '.join(SCORES)}")


def _rank_values(stats, by):
    if by == "forgetting":  # Spearman on the counts themselves (never-learned above every count)
        f = _col(stats, "forgetting_events")
        never = stats["never_learned"].to_numpy(dtype=np.float64, na_value=np.nan)
        top = np.nanmax(f) + 1 if np.isfinite(f).any() else 1.0
        return np.where(never == 1, top, f)
    return hardness(stats, by)


def _top(score: np.ndarray, rows: np.ndarray, m: int) -> np.ndarray:
    order = np.lexsort((rows, -score))  # deterministic: hardest first, then by row
    return rows[order[:m]]


def compare(stats_a: pd.DataFrame, stats_b: pd.DataFrame, k: float = 10.0) -> dict:
    """Agreement of two runs' per-example statistics on the same data (same rows, same order).

    Only rows in training in both runs are used. Returns a plain dict: ``n_examples``, ``k``,
    and for each score in forgetting, el2n, grand, confidence that both runs have:
    ``spearman_<score>`` and ``overlap_<score>`` (share of the hardest ``k`` % of run a that is
    also among the hardest ``k`` % of run b; chance level is k/100).
    """
    _check_stats(stats_a, "stats_a")
    _check_stats(stats_b, "stats_b")
    if len(stats_a) != len(stats_b):
        raise ValueError(
            f"stats_a has {len(stats_a)} rows but stats_b has {len(stats_b)}; compare statistics of runs "
            "on the same X (one row per row of X)"
        )
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not 0 < k <= 100:
        raise ValueError(f"k must be a percentage in (0, 100], got {k!r}; e.g. k=10 for the hardest 10 %")
    both = (stats_a["in_train"].to_numpy(dtype=bool) & stats_b["in_train"].to_numpy(dtype=bool))
    rows = np.flatnonzero(both)
    out = {"n_examples": int(rows.size), "k": float(k)}
    if rows.size < 2:
        raise ValueError("fewer than 2 rows were trained on in both runs; nothing to compare")
    m = max(1, int(round(k / 100.0 * rows.size)))
    for by in SCORES:
        needed = {"forgetting": "forgetting_events"}.get(by, by)
        if needed not in stats_a or needed not in stats_b:
            continue
        ra, rb = _rank_values(stats_a, by)[rows], _rank_values(stats_b, by)[rows]
        ok = np.isfinite(ra) & np.isfinite(rb)
        if ok.sum() < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: NaN correlation, reported as such
            rho = sstats.spearmanr(ra[ok], rb[ok]).statistic
        ha, hb = hardness(stats_a, by)[rows], hardness(stats_b, by)[rows]
        top_a = _top(ha[ok], rows[ok], m)
        top_b = _top(hb[ok], rows[ok], m)
        out[f"spearman_{by}"] = float(rho)
        out[f"overlap_{by}"] = float(np.intersect1d(top_a, top_b).size / top_a.size)
    return out


def noise_floor(stats_by_seed, k: float = 10.0) -> dict:
    """:func:`compare` over every pair of seeds of one model, averaged (plus ``n_pairs``).

    ``stats_by_seed``: a list of at least two ``example_stats_`` of the same model and data.
    """
    stats_by_seed = list(stats_by_seed)
    if len(stats_by_seed) < 2:
        raise ValueError(f"noise_floor needs statistics of at least 2 seeds, got {len(stats_by_seed)}")
    pairs = [compare(a, b, k) for a, b in itertools.combinations(stats_by_seed, 2)]
    keys = sorted(set().union(*pairs) - {"n_examples", "k"})
    out = {key: float(np.nanmean([p.get(key, np.nan) for p in pairs])) for key in keys}
    out.update(n_pairs=len(pairs), k=float(k), n_examples=int(min(p["n_examples"] for p in pairs)))
    return out


def modal_prediction(preds_by_seed) -> np.ndarray:
    """Most frequent prediction per column of a (seeds, n) array; ties go to the smallest label."""
    preds = np.asarray(preds_by_seed)
    if preds.ndim != 2 or preds.shape[0] < 1:
        raise ValueError(f"predictions must be a 2-D (seeds, examples) array, got shape {preds.shape}")
    labels, codes = np.unique(preds, return_inverse=True)
    codes = codes.reshape(preds.shape)
    n = preds.shape[1]
    counts = np.zeros((n, labels.size), dtype=np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(n), preds.shape).ravel(), codes.ravel()), 1)
    return labels[counts.argmax(1)]


def compression_identified(preds_sparse_by_seed, preds_dense_by_seed) -> np.ndarray:
    """Boolean mask of compression-identified exemplars (Hooker et al. 2019).

    Both arguments are (seeds, n) predictions of the same n rows (e.g. a test set) by several
    seeds of a sparse and of a dense model; a row is compression-identified where the modal
    prediction of the sparse seeds differs from that of the dense seeds.
    """
    a = np.asarray(preds_sparse_by_seed)
    b = np.asarray(preds_dense_by_seed)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(
            f"pass predictions as 2-D (seeds, examples) arrays, got shapes {a.shape} and {b.shape}; "
            "stack one est.predict(X) per seed with np.stack"
        )
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"sparse predictions cover {a.shape[1]} rows but dense ones {b.shape[1]}; predict the same X")
    return modal_prediction(a) != modal_prediction(b)
