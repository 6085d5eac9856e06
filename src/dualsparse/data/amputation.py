"""Amputation: remove values from complete data by a known missingness mechanism.

Why not pyampute or hyperimpute: pyampute's rate counts incomplete rows rather than cells and
is met only on average; hyperimpute's simulation takes no seed. Here the rate is a fraction of
cells and is met exactly, and the same seed gives the same mask.

How a mask is drawn. Each mechanism gives every candidate cell a logit ``s`` (how strongly the
mechanism wants it removed). An intercept ``a`` is calibrated so that the logistic
probabilities ``sigmoid(a + s)`` sum to the number ``k`` of cells to remove, and exactly ``k``
cells are then drawn without replacement with those probabilities as weights (Gumbel-top-k).
The model keeps its shape, the count is exact.

* ``"mcar"``: ``s = 0``: every observed cell is equally likely.
* ``"mar"``: ``s = strength * z`` where ``z`` is a random linear combination (standard normal
  coefficients, scaled to unit variance) of standardised *driver* features, which are fully
  observed and never amputed. Each amputed feature has its own combination.
* ``"mnar"``, ``kind="self-masking"``: ``s = +-strength * (standardised value itself)``,
  ``direction="upper"`` removes large values more often, ``"lower"`` small ones.
* ``"mnar"``, ``kind="quantile"``: removes the values beyond a quantile of their feature, the
  largest (``"upper"``) or smallest (``"lower"``). By default the cut sits exactly at the rate
  (deterministic); a less extreme ``quantile`` removes a random subset of a wider tail.

The rate. ``rate`` is the fraction of *all* cells of X (every column, drivers included) that
are missing afterwards, for every mechanism, so that mechanisms compared at one rate leave the
same amount of information missing. NaN already in X, in any column, stays missing and counts
towards it: only ``round(rate * X.size) - already_missing`` further cells are removed (an error
if more are missing already). The cells are drawn from the amputable columns only (all of them,
except the drivers under MAR, unless ``features`` says otherwise), so where some columns are
kept complete the others lose more than ``rate`` of their own cells: under MAR with d drivers
among p features, ``rate * p / (p - d)`` on average. When the amputable columns hold too few observed cells to reach the rate (a high rate
with many drivers, or a short ``features`` list) ``ampute`` raises an error that says how high
the rate can go. The returned mask marks only the cells removed by this call;
``np.isnan(X_missing)`` marks all missing ones.
``per_feature=True`` instead applies the rate to each amputed feature on its own (each gets the
floor or ceiling of ``rate * n_samples`` missing, existing NaN in it included; the total over
the amputed features stays exact); the drivers and columns left out of ``features`` keep their
cells, so the share of all cells missing is then below ``rate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, log_expit

from ._validation import check_dense_numeric, check_random_state, check_rate, first, unknown_name

MECHANISMS = ("mcar", "mar", "mnar")
MNAR_KINDS = ("self-masking", "quantile")
DIRECTIONS = ("upper", "lower")
APPLY_TO = ("train", "both")

# which keyword options each mechanism reads; anything else given is an error, not ignored
_OPTIONS = {
    "mcar": set(),
    "mar": {"drivers", "driver_fraction", "strength", "incomplete_drivers"},
    "mnar": {"kind", "direction", "strength", "quantile"},
}
_DEFAULTS = {
    "drivers": None,
    "incomplete_drivers": False,
    "driver_fraction": 0.3,
    "strength": 2.0,
    "kind": "self-masking",
    "direction": "upper",
    "quantile": None,
}


def ampute(
    X,
    mechanism: str,
    rate: float,
    random_state=None,
    *,
    per_feature: bool = False,
    features=None,
    **options,
):
    """Remove a fraction ``rate`` of cells by a missingness mechanism; return (X_missing, mask).

    Parameters
    ----------
    X : array-like (n_samples, n_features), numeric; NaN marks values already missing.
    mechanism : "mcar", "mar" or "mnar".
    rate : float in [0, 1), fraction of all cells of X missing afterwards, existing NaN
        included (met exactly up to rounding to whole cells); the cells are removed from the
        amputable columns only (``features``; under MAR all but the drivers), which therefore
        lose more than ``rate`` of their own cells. With ``per_feature=True``: the fraction of
        each amputed feature's cells instead.
    random_state : None, int or numpy.random.Generator; the same int gives the same mask.
    per_feature : meet the rate in each amputed feature rather than over all cells of X.
    features : column indices that may lose values (default: all, or all but the MAR drivers);
        the rate still counts all cells of X, so these columns must be able to hold them.
    **options : mechanism options
        mar: ``drivers`` (column indices, fully observed; default: round(``driver_fraction``
        (0.3) * n_features), at least one, drawn at random from the fully observed columns),
        ``strength`` (2.0, logit slope per standard deviation of the driver score),
        ``incomplete_drivers`` (False; True lets drivers have missing values of their own, as
        in real data where no column is complete: a missing driver value counts as its mean
        in the score, so the new missingness still depends on observed values only).
        mnar: ``kind`` ("self-masking" or "quantile"), ``direction`` ("upper" or "lower"),
        ``strength`` (2.0, self-masking only), ``quantile`` (quantile kind only: cut point in
        (0, 1); values above it ("upper") or below it ("lower") are candidates; default: the
        cut that makes the tail hold exactly the cells to remove).

    Returns
    -------
    X_missing : float64 ndarray, X with NaN where values were removed.
    mask : bool ndarray, True where this call removed a value.
    """
    X = check_dense_numeric(X)
    rng = check_random_state(random_state)
    model = _Mechanism.fit(X, mechanism, check_rate(rate), rng, per_feature, features, options)
    return model.apply(X, rng)


def ampute_split(
    X_train,
    X_test,
    mechanism: str,
    rate: float,
    random_state=None,
    *,
    apply_to: str = "train",
    per_feature: bool = False,
    features=None,
    **options,
):
    """Ampute a train/test split; return (X_train_missing, X_test_missing, mask_train, mask_test).

    ``apply_to="train"`` removes values from the training set only (the test set is returned as
    a float copy with an all-False mask); ``"both"`` removes them from both with the *same*
    mechanism: same amputed features, drivers and coefficients, standardised with training
    statistics. Each set meets the rate exactly on its own (a share of all its cells, as in
    :func:`ampute`). With ``"both"``, MAR drivers drawn at random are chosen among the columns
    observed in both sets (real data can miss a value in a test row only). Options as in
    :func:`ampute`.
    """
    if apply_to not in APPLY_TO:
        raise unknown_name("apply_to", apply_to, APPLY_TO)
    X_train = check_dense_numeric(X_train, "X_train")
    X_test = check_dense_numeric(X_test, "X_test")
    if X_test.shape[1] != X_train.shape[1]:
        raise ValueError(
            f"X_train has {X_train.shape[1]} features but X_test has {X_test.shape[1]}; "
            "they must have the same columns"
        )
    rng = check_random_state(random_state)
    # "both": MAR drivers must be observed in the test rows too (real data can miss them there only)
    observed_too = ~np.isnan(X_test).any(axis=0) if apply_to == "both" else None
    model = _Mechanism.fit(
        X_train, mechanism, check_rate(rate), rng, per_feature, features, options, observed_too
    )
    X_train_missing, mask_train = model.apply(X_train, rng, name="X_train")
    if apply_to == "train":
        return X_train_missing, X_test, mask_train, np.zeros(X_test.shape, dtype=bool)
    X_test_missing, mask_test = model.apply(X_test, rng, name="X_test")
    return X_train_missing, X_test_missing, mask_train, mask_test


@dataclass
class _Mechanism:
    """A missingness mechanism fitted to one data set and applicable to others (train -> test)."""

    mechanism: str
    rate: float
    per_feature: bool
    features: np.ndarray | None  # amputed columns
    options: dict
    drivers: np.ndarray | None = None  # MAR: fully observed columns that drive missingness
    center: np.ndarray | None = None  # standardisation of the scored columns (training stats)
    scale: np.ndarray | None = None
    coef: np.ndarray | None = None  # MAR: (n_drivers, n_amputed), scores scaled to unit variance
    features_given: bool = False  # the caller restricted the amputable columns

    @classmethod
    def fit(cls, X, mechanism, rate, rng, per_feature, features, options, observed_too=None):
        if mechanism not in MECHANISMS:
            raise unknown_name("mechanism", mechanism, MECHANISMS)
        extra = set(options) - _OPTIONS[mechanism]
        if extra:
            raise TypeError(
                f"option(s) {sorted(extra)} do not apply to mechanism {mechanism!r}; "
                f"it takes {sorted(_OPTIONS[mechanism]) or 'no options'}"
            )
        opts = {k: options.get(k, _DEFAULTS[k]) for k in _OPTIONS[mechanism]}
        model = cls(mechanism, rate, bool(per_feature), _check_columns(features, X.shape[1]), opts)
        model.features_given = model.features is not None
        if mechanism == "mar":
            model._fit_mar(X, rng, observed_too)
        elif mechanism == "mnar":
            model._fit_mnar(X, given=set(options))
        if model.features is None:
            model.features = np.arange(X.shape[1])
        if model.features.size == 0:
            raise ValueError("no feature to ampute: `features` is empty")
        return model

    def _fit_mar(self, X, rng, observed_too=None):
        fully_observed = ~np.isnan(X).any(axis=0)
        if self.options["incomplete_drivers"]:
            fully_observed[:] = True  # any column may drive; its missing values count as its mean
            observed_too = None
        drivers = self.options["drivers"]
        if drivers is None and observed_too is not None:
            fully_observed &= observed_too  # drawn drivers: observed in every set amputed
        if drivers is not None:
            drivers = _check_columns(drivers, X.shape[1], "drivers")
            if not fully_observed[drivers].all():
                raise ValueError(
                    f"MAR driver column(s) {first(drivers[~fully_observed[drivers]])} have "
                    "missing values; drivers must be fully observed: choose other drivers"
                )
        else:
            fraction = self.options["driver_fraction"]
            if not 0.0 < fraction < 1.0:
                raise ValueError(f"driver_fraction must be in (0, 1), got {fraction!r}")
            pool = np.flatnonzero(fully_observed)
            if self.features is not None:
                pool = np.setdiff1d(pool, self.features)
            n_max = pool.size - (1 if self.features is None else 0)  # leave one to ampute
            if n_max < 1:
                raise ValueError(
                    "MAR needs at least one fully observed feature that is not amputed to drive "
                    "the missingness; pass `features` (fewer amputed columns) or `drivers`, "
                    "incomplete_drivers=True (data where no column is complete), or use mechanism='mcar'"
                )
            n_drivers = min(max(1, round(fraction * X.shape[1])), n_max)
            drivers = np.sort(rng.choice(pool, size=n_drivers, replace=False))
        if self.features is None:
            self.features = np.setdiff1d(np.arange(X.shape[1]), drivers)
        elif np.intersect1d(self.features, drivers).size:
            raise ValueError(
                f"column(s) {first(np.intersect1d(self.features, drivers))} are both amputed and "
                "MAR drivers; drivers must stay fully observed"
            )
        self.drivers = drivers
        self.center, self.scale = _mean_std(X[:, drivers])
        z = np.nan_to_num((X[:, drivers] - self.center) / self.scale)
        coef = rng.standard_normal((drivers.size, self.features.size))
        score_std = (z @ coef).std(axis=0)
        self.coef = coef / np.where(score_std > 0, score_std, 1.0)

    def _fit_mnar(self, X, given):
        kind, direction = self.options["kind"], self.options["direction"]
        if kind not in MNAR_KINDS:
            raise unknown_name("MNAR kind", kind, MNAR_KINDS)
        if direction not in DIRECTIONS:
            raise unknown_name("direction", direction, DIRECTIONS)
        if kind == "self-masking" and "quantile" in given:
            raise TypeError("quantile= applies to kind='quantile' only")
        if kind == "quantile" and "strength" in given:
            raise TypeError("strength= applies to kind='self-masking' only")
        q = self.options["quantile"]
        if q is not None and not 0.0 < q < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {q!r}")
        if self.features is None:
            self.features = np.arange(X.shape[1])
        self.center, self.scale = _mean_std(X[:, self.features])

    def apply(self, X, rng, name="X"):
        """Ampute X (same columns as the data fitted on); return (X_missing, mask).

        The rate counts all cells of X (``per_feature``: each amputed feature's cells); existing
        NaN count towards it, and the cells still to remove come from the amputed features.
        """
        incomplete_ok = self.mechanism == "mar" and self.options["incomplete_drivers"]
        if self.mechanism == "mar" and not incomplete_ok and np.isnan(X[:, self.drivers]).any():
            bad = self.drivers[np.isnan(X[:, self.drivers]).any(axis=0)]
            raise ValueError(
                f"{name} has missing values in MAR driver column(s) {first(bad)}; drivers must be "
                "fully observed in every set amputed: pass `drivers` observed in all of them, or "
                "apply_to='train'"
            )
        values = X[:, self.features]
        observed = ~np.isnan(values)
        n_rows, n_cols = values.shape
        if self.per_feature:
            targets = _target_counts(self.rate, n_rows, n_cols, True, rng)
            groups = np.arange(n_cols)[:, None]
            missing = (~observed).sum(axis=0)
            limit = np.ceil(self.rate * n_rows)  # beyond rounding
        else:  # a share of all cells of X; NaN in any column counts
            targets = [int(np.floor(self.rate * X.size + 0.5))]
            groups = [np.arange(n_cols)]
            missing = [int(np.isnan(X).sum())]
            limit = np.ceil(self.rate * X.size)
        logits = self._logits(X)
        removed = np.zeros(values.shape, dtype=bool)
        for cols, target, have in zip(groups, targets, missing):
            block_observed = observed[:, cols]
            if have > limit:
                where = f"feature {self.features[cols[0]]}" if self.per_feature else name
                raise ValueError(
                    f"{where} already has {have} missing cells, more than rate={self.rate} "
                    f"allows ({target}); existing NaN count towards the rate: choose a higher "
                    "rate"
                )
            k = max(target - have, 0)
            if k > block_observed.sum():  # only when not per_feature: then rate < 1 suffices
                raise ValueError(self._too_few_cells(name, X, k, int(block_observed.sum()), have))
            if self._is_quantile():
                chosen = self._choose_tail(values[:, cols], block_observed, k, rng)
            else:
                cells = np.flatnonzero(block_observed)
                chosen = cells[_choose(logits[:, cols].ravel()[cells], k, rng)]
            block = np.zeros(block_observed.size, dtype=bool)
            block[chosen] = True
            removed[:, cols] = block.reshape(block_observed.shape)
        mask = np.zeros(X.shape, dtype=bool)
        mask[:, self.features] = removed
        X_missing = X.copy()
        X_missing[mask] = np.nan
        return X_missing, mask

    def _too_few_cells(self, name, X, k, available, have):
        """The message when the amputable columns cannot hold the cells the rate asks for."""
        n_cols = self.features.size
        top = np.floor((have + available) / X.size * 1000) / 1000  # the highest rate reachable
        if self.features_given:
            columns = f"the {n_cols} column(s) in `features`"
            fix = "more columns in `features`"
        else:  # MAR (otherwise every column is amputable and rate < 1 always fits)
            columns = (f"the {n_cols} amputable column(s) (all {X.shape[1]} but the "
                       f"{self.drivers.size} MAR drivers, which stay complete)")
            if self.options["drivers"] is None:
                fix = ("fewer drivers (a lower driver_fraction, now "
                       f"{self.options['driver_fraction']:g}, or a short `drivers` list)")
            else:
                fix = "fewer `drivers`"
        return (
            f"rate={self.rate:g} means {have + k} of the {X.size} cells of {name} missing "
            f"({have} of them already), but {columns} hold only {available} observed cells, so at "
            f"most rate={top:g} can be reached: choose a lower rate, {fix}, or per_feature=True "
            "to apply the rate to each amputed column instead of to all cells"
        )

    def _is_quantile(self):
        return self.mechanism == "mnar" and self.options["kind"] == "quantile"

    def _logits(self, X):
        """Logit slope s of every amputed cell (before the calibrated intercept)."""
        if self.mechanism == "mcar" or self._is_quantile():
            return np.zeros((X.shape[0], self.features.size))
        if self.mechanism == "mar":
            z = np.nan_to_num((X[:, self.drivers] - self.center) / self.scale)  # missing driver: its mean
            return self.options["strength"] * (z @ self.coef)
        sign = 1.0 if self.options["direction"] == "upper" else -1.0
        z = (X[:, self.features] - self.center) / self.scale
        return sign * self.options["strength"] * np.nan_to_num(z)  # NaN cells: not candidates

    def _choose_tail(self, values, observed, k, rng):
        """Flat indices into `values` of k observed cells from the configured tail."""
        if k <= 0:
            return np.array([], dtype=int)
        upper = self.options["direction"] == "upper"
        # rank in (0, 1) of each observed value within its feature; near 1 = most extreme
        rank = np.full(values.shape, -np.inf)
        for j in range(values.shape[1]):
            rows = np.flatnonzero(observed[:, j])
            v = values[rows, j] if upper else -values[rows, j]
            order = np.lexsort((rng.random(rows.size), v))  # ties in random order
            rank[rows[order], j] = (np.arange(rows.size) + 0.5) / rows.size
        rank = rank.ravel()
        q = self.options["quantile"]
        if q is None:  # deterministic: the k most extreme cells
            return np.lexsort((rng.random(rank.size), -rank))[:k]
        tail = np.flatnonzero(rank > (q if upper else 1.0 - q))
        if tail.size < k:
            raise ValueError(
                f"the tail beyond quantile={q} holds {tail.size} observed cells, fewer than the "
                f"{k} to remove; move the quantile away from the {self.options['direction']} "
                "end, or pass quantile=None for the exact tail"
            )
        return rng.choice(tail, size=k, replace=False)


def _choose(logits, k, rng):
    """Draw exactly k indices without replacement, weights sigmoid(a + logits), a calibrated.

    The intercept a makes the expected count of the logistic model equal k; Gumbel-top-k then
    samples k distinct cells with those weights.
    """
    n = logits.size
    if k <= 0:
        return np.array([], dtype=int)
    if k >= n:
        return np.arange(n)
    bound = np.abs(logits).max() + 50.0
    a = brentq(lambda a: expit(a + logits).sum() - k, -bound, bound)
    keys = log_expit(a + logits) + rng.gumbel(size=n)
    return np.argpartition(-keys, k - 1)[:k]


def _target_counts(rate, n_rows, n_cols, per_feature, rng):
    """Missing cells to reach: one total, or per feature floor/ceil with an exact total."""
    total = int(np.floor(rate * n_rows * n_cols + 0.5))
    if not per_feature:
        return np.array([total])
    base = int(np.floor(rate * n_rows))
    counts = np.full(n_cols, base)
    counts[rng.choice(n_cols, size=total - base * n_cols, replace=False)] += 1
    return counts


def _mean_std(X):
    """Mean and std of each column over its observed values; std 0 (constant) becomes 1."""
    center = np.nanmean(X, axis=0)
    scale = np.nanstd(X, axis=0)
    return center, np.where(scale > 0, scale, 1.0)


def _check_columns(columns, n_features, name="features"):
    """Sorted unique column indices, or None; errors name the bad index."""
    if columns is None:
        return None
    columns = np.asarray(columns)
    if columns.dtype == bool:
        if columns.shape != (n_features,):
            raise ValueError(f"boolean {name} must have one entry per feature ({n_features})")
        columns = np.flatnonzero(columns)
    if columns.ndim != 1 or (columns.size and columns.dtype.kind not in "iu"):
        raise TypeError(f"{name} must be a list of integer column indices, got {columns!r}")
    bad = columns[(columns < 0) | (columns >= n_features)]
    if bad.size:
        raise ValueError(f"{name} has column index(es) {first(bad)} outside [0, {n_features})")
    if np.unique(columns).size != columns.size:
        raise ValueError(f"{name} lists a column more than once: {columns.tolist()}")
    return np.sort(columns.astype(int))
