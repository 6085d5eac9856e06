"""Representations: how data with missing values meets the model.

Each is a scikit-learn transformer (fit on training data only, usable in a Pipeline), chosen by
name with :func:`make_representation`:

* ``impute-mean``, ``impute-median``, ``impute-knn``, ``impute-iterative``: standardise each
  feature on its observed training values, then fill the gaps with scikit-learn's
  SimpleImputer / KNNImputer / IterativeImputer fitted on the training data. Dense output.
  (Imputing after standardising keeps KNN distances and iterative regressions scale-free; with
  ``impute-mean`` a missing value becomes 0, up to rounding: the same as leaving it out of
  ``observed``.)
* ``observed``: standardise the same way, then store only the observed entries in a SciPy CSR
  matrix; a missing entry is absent, so a sparse first layer spends nothing on it. Observed
  values that standardise to 0 are still stored (explicit zeros): ``nnz`` equals the number
  of observed cells. Optional sparsity normalisation (Yi et al., ICLR 2020).
* ``observed+indicator``: the same plus one sparse 0/1 column per feature that had missing
  values in training, set where that feature is missing.
* ``native-nan``: standardised values with NaN kept, for models that handle NaN themselves.
* ``sparse-input``: naturally sparse data (bag-of-words, one-hot, svmlight files), where an
  absent entry is a zero, not a missing value: CSR in, CSR out, each feature divided by its
  largest absolute training value (scikit-learn's MaxAbsScaler; centring would fill every zero).
  NaN is rejected: data with missing values goes through ``observed``.

Every missing-data representation rejects, at fit, a feature with no observed training value (no statistic
can be fitted: scikit-learn's imputers would drop it silently) and, at fit and transform, a row
with no observed value unless ``allow_empty_rows=True``.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (enables the import)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.preprocessing import MaxAbsScaler, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import first, non_numeric_columns, to_float_array, unknown_name


def _reject_non_numeric(X) -> None:
    """A TypeError naming the non-numeric columns (DataFrame) or value (ndarray) and the fix."""
    if isinstance(X, pd.DataFrame) and non_numeric_columns(X):
        raise TypeError(
            f"X has non-numeric column(s) {non_numeric_columns(X)}; encode them as numbers "
            "first (e.g. sklearn.preprocessing.OneHotEncoder) or drop them"
        )
    if isinstance(X, np.ndarray) and X.dtype.kind in "OUS":
        to_float_array(X)  # a TypeError that names the non-numeric value


def check_missing_data(estimator, X, *, reset: bool, allow_empty_rows: bool) -> np.ndarray:
    """Validate X for a representation: numeric, dense, NaN allowed, inf not; see module doc."""
    _reject_non_numeric(X)
    X = validate_data(
        estimator, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan",
        accept_sparse=False,
    )
    missing = np.isnan(X)
    if reset and missing.all(axis=0).any():
        raise ValueError(
            f"feature(s) {first(np.flatnonzero(missing.all(axis=0)))} have no observed value in "
            "the training data, so no statistic can be fitted; drop those columns or remove "
            "fewer values"
        )
    if not allow_empty_rows and missing.all(axis=1).any():
        rows = np.flatnonzero(missing.all(axis=1))
        raise ValueError(
            f"{rows.size} row(s) have no observed value (rows {first(rows)}); drop them, or "
            "pass allow_empty_rows=True to keep them (imputers fill them with training "
            "statistics, observed gives them an empty row)"
        )
    return X


class _StandardizeObserved(TransformerMixin, BaseEstimator):
    """Check X, then standardise each feature on its observed training values; NaN stays NaN."""

    def __init__(self, *, standardize: bool = True, allow_empty_rows: bool = False):
        self.standardize = standardize
        self.allow_empty_rows = allow_empty_rows

    def fit(self, X, y=None):
        X = check_missing_data(self, X, reset=True, allow_empty_rows=self.allow_empty_rows)
        self.mean_, self.scale_ = _observed_mean_scale(X, self.standardize)
        return self

    def transform(self, X):
        check_is_fitted(self, "mean_")
        X = check_missing_data(self, X, reset=False, allow_empty_rows=self.allow_empty_rows)
        return (X - self.mean_) / self.scale_

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "mean_")
        return _feature_names(self, input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class NativeNaNRepresentation(_StandardizeObserved):
    """Standardised values with NaN kept (the ``native-nan`` name), dense float64.

    Parameters
    ----------
    standardize : centre and scale each feature with the mean and standard deviation of its
        observed training values (a constant feature gets scale 1); False passes values on.
    allow_empty_rows : accept rows with no observed value.

    Attributes
    ----------
    mean_, scale_ : (n_features,) training statistics of the observed values.
    """


class ImputedRepresentation(_StandardizeObserved):
    """Standardise as :class:`NativeNaNRepresentation`, then fill the gaps (``impute-*``).

    Parameters
    ----------
    imputer : an unfitted scikit-learn imputer (default SimpleImputer(strategy="mean")); a
        clone is fitted on the standardised training data.
    standardize, allow_empty_rows : as in :class:`NativeNaNRepresentation`.

    Attributes
    ----------
    mean_, scale_ : training statistics; imputer_ : the fitted imputer.
    """

    def __init__(self, imputer=None, *, standardize: bool = True, allow_empty_rows: bool = False):
        super().__init__(standardize=standardize, allow_empty_rows=allow_empty_rows)
        self.imputer = imputer

    def fit(self, X, y=None):
        super().fit(X)
        imputer = SimpleImputer() if self.imputer is None else clone(self.imputer)
        self.imputer_ = imputer.fit(super().transform(X))
        return self

    def transform(self, X):
        check_is_fitted(self, "imputer_")
        return self.imputer_.transform(super().transform(X))


class ObservedRepresentation(TransformerMixin, BaseEstimator):
    """Standardised observed values as CSR; missing entries are absent (not zero).

    Parameters
    ----------
    standardize : centre and scale each feature with the mean and standard deviation of its
        observed training values (a constant feature gets scale 1).
    sparsity_normalization : False, True or "sqrt". Yi et al. (ICLR 2020) scale a row by
        K / (its number of observed entries) so that its input scale does not swing with how
        much of it is missing. Here K = n_features: with True a row with m observed values is
        multiplied by n_features / m (a complete row is unchanged, as in inverted dropout);
        with "sqrt" by sqrt(n_features / m), which instead keeps the variance of a sum of m
        independent unit-variance terms constant. Indicator columns are not scaled.
    indicator : append missingness indicator columns (the ``observed+indicator`` name).
    indicator_features : "missing-only" (features with a missing training value; as
        sklearn.impute.MissingIndicator) or "all".
    dtype : float dtype of the output values.
    allow_empty_rows : accept rows with no observed value (they become empty rows).
    binary : "standardize" (every feature as above) or "sparse": features whose observed
        training values are all 0 or 1 (one-hot codes) are left unscaled and only their 1s are
        stored, as ``sparse-input`` does, so a one-hot table costs one stored value per observed
        category and a missing category is an all-zero segment: naturally sparse and genuinely
        incomplete data (adult) meet in one CSR matrix.

    Attributes
    ----------
    mean_, scale_ : (n_features,) training statistics of the observed values (0 and 1 for
        binary features under ``binary="sparse"``).
    binary_features_ : indices of the features stored by their 1s only (empty unless "sparse").
    observed_fraction_ : (n_features,) fraction of training rows in which each feature is
        observed.
    indicator_features_ : indices of the features that get an indicator column.
    """

    def __init__(
        self,
        *,
        standardize: bool = True,
        sparsity_normalization=False,
        indicator: bool = False,
        indicator_features: str = "missing-only",
        dtype=np.float64,
        allow_empty_rows: bool = False,
        binary: str = "standardize",
    ):
        self.standardize = standardize
        self.sparsity_normalization = sparsity_normalization
        self.indicator = indicator
        self.indicator_features = indicator_features
        self.dtype = dtype
        self.allow_empty_rows = allow_empty_rows
        self.binary = binary

    def fit(self, X, y=None):
        if self.sparsity_normalization not in (False, True, "sqrt"):
            raise ValueError(
                "sparsity_normalization must be False, True or 'sqrt', got "
                f"{self.sparsity_normalization!r}"
            )
        if self.indicator_features not in ("missing-only", "all"):
            raise unknown_name(
                "indicator_features", self.indicator_features, ("missing-only", "all")
            )
        if self.binary not in ("standardize", "sparse"):
            raise unknown_name("binary", self.binary, ("standardize", "sparse"))
        X = check_missing_data(self, X, reset=True, allow_empty_rows=self.allow_empty_rows)
        self.mean_, self.scale_ = _observed_mean_scale(X, self.standardize)
        is_binary = np.all(np.isnan(X) | (X == 0) | (X == 1), axis=0)
        self.binary_features_ = np.flatnonzero(is_binary) if self.binary == "sparse" else np.array([], dtype=int)
        self.mean_[self.binary_features_], self.scale_[self.binary_features_] = 0.0, 1.0
        self.observed_fraction_ = (~np.isnan(X)).mean(axis=0)
        if not self.indicator:
            self.indicator_features_ = np.array([], dtype=int)
        elif self.indicator_features == "all":
            self.indicator_features_ = np.arange(X.shape[1])
        else:
            self.indicator_features_ = np.flatnonzero(self.observed_fraction_ < 1.0)
        return self

    def transform(self, X):
        check_is_fitted(self, "observed_fraction_")
        X = check_missing_data(self, X, reset=False, allow_empty_rows=self.allow_empty_rows)
        observed = ~np.isnan(X)
        values = (X - self.mean_) / self.scale_
        stored = observed.copy()
        stored[:, self.binary_features_] &= X[:, self.binary_features_] == 1  # a 0 code: absent
        if self.sparsity_normalization:
            n_observed = observed.sum(axis=1)
            factor = X.shape[1] / np.maximum(n_observed, 1)  # an empty row has nothing to scale
            if self.sparsity_normalization == "sqrt":
                factor = np.sqrt(factor)
            values *= factor[:, None]
        if self.indicator_features_.size:
            missing = ~observed[:, self.indicator_features_]
            values = np.hstack([values, np.ones(missing.shape)])
            stored = np.hstack([stored, missing])
        return _csr_of_stored(values, stored, self.dtype)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "observed_fraction_")
        names = _feature_names(self, input_features)
        return np.concatenate([names, [f"missing_{n}" for n in names[self.indicator_features_]]])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class SparseInputRepresentation(TransformerMixin, BaseEstimator):
    """Naturally sparse data as CSR, each feature scaled by its largest absolute training value.

    For data whose absent entries are zeros (bag-of-words counts, one-hot codes, svmlight files)
    rather than missing values. Standardising would turn every zero into a stored value, so each
    feature is only divided by max |x| over the training rows (``MaxAbsScaler``): zeros stay
    absent, stored values land in [-1, 1], and a sparse first layer works only on them. Dense
    input is stored without its zeros. NaN or inf is rejected: a missing value has no place in
    this representation (use ``observed``, where an absent entry means "not observed").

    Parameters
    ----------
    scale : divide by the max-abs of each feature (a feature that is all zero keeps scale 1).
    dtype : float dtype of the output values.
    allow_empty_rows : accept all-zero rows (a document with no known word). Default True:
        in sparse data an empty row is a valid observation, not a row with nothing observed.
    """

    def __init__(self, *, scale: bool = True, dtype=np.float64, allow_empty_rows: bool = True):
        self.scale = scale
        self.dtype = dtype
        self.allow_empty_rows = allow_empty_rows

    def _check(self, X, reset: bool):
        _reject_non_numeric(X)
        X = validate_data(self, X, reset=reset, dtype=np.float64, accept_sparse="csr", ensure_all_finite=False)
        stored = X.data if sp.issparse(X) else X
        if not np.isfinite(stored).all():
            raise ValueError(
                "X contains NaN or infinity. The 'sparse-input' representation is for data whose absent entries "
                "are zeros; for data with missing values use 'observed' (missing entries absent) or an 'impute-*' one"
            )
        X = sp.csr_matrix(X, dtype=np.float64)
        X.eliminate_zeros()
        if not self.allow_empty_rows and (np.diff(X.indptr) == 0).any():
            rows = np.flatnonzero(np.diff(X.indptr) == 0)
            raise ValueError(f"{rows.size} row(s) are all zero (rows {first(rows)}); drop them or pass allow_empty_rows=True")
        return X

    def fit(self, X, y=None):
        X = self._check(X, reset=True)
        self.scaler_ = MaxAbsScaler().fit(X) if self.scale else None
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        X = self._check(X, reset=False)
        if self.scaler_ is not None:
            X = self.scaler_.transform(X)
        return sp.csr_matrix(X, dtype=self.dtype)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_features_in_")
        return _feature_names(self, input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _observed_mean_scale(X, standardize):
    """Per-feature mean and standard deviation of the observed values (NaN ignored, as
    sklearn's StandardScaler does); scale 1 for a constant feature; (0, 1) if not standardising.
    """
    if not standardize:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    scaler = StandardScaler().fit(X)
    return scaler.mean_, scaler.scale_


def _csr_of_stored(values, stored, dtype):
    """CSR holding values[stored] exactly: built from the mask, so stored zeros stay stored."""
    rows, cols = np.nonzero(stored)  # row-major: sorted by row, then column
    indptr = np.concatenate([[0], np.cumsum(stored.sum(axis=1))])
    return sp.csr_matrix(
        (values[rows, cols].astype(dtype), cols, indptr), shape=stored.shape
    )


def _feature_names(estimator, input_features):
    if input_features is not None:
        input_features = np.asarray(input_features, dtype=object)
        if input_features.shape != (estimator.n_features_in_,):
            raise ValueError(
                f"input_features has {input_features.size} names, expected "
                f"{estimator.n_features_in_}"
            )
        return input_features
    if hasattr(estimator, "feature_names_in_"):
        return np.asarray(estimator.feature_names_in_, dtype=object)
    return np.asarray([f"x{i}" for i in range(estimator.n_features_in_)], dtype=object)


# ---------------------------------------------------------------- by name


def _imputing(imputer_class, **fixed):
    """Builder for an impute-* name: its own options go to the representation, the rest to
    the scikit-learn imputer."""

    def build(*, standardize=True, allow_empty_rows=False, **imputer_options):
        bad = set(imputer_options) & set(fixed)
        if bad:
            raise TypeError(f"option(s) {sorted(bad)} are fixed by the representation's name")
        if isinstance(imputer_options.get("random_state"), np.random.Generator):
            # scikit-learn imputers take an int seed, not a Generator: draw one from it
            imputer_options["random_state"] = int(imputer_options["random_state"].integers(2**31))
        return ImputedRepresentation(
            imputer_class(**fixed, **imputer_options),
            standardize=standardize,
            allow_empty_rows=allow_empty_rows,
        )

    build.imputer_class = imputer_class
    return build


REPRESENTATIONS = {
    "impute-mean": _imputing(SimpleImputer, strategy="mean"),
    "impute-median": _imputing(SimpleImputer, strategy="median"),
    "impute-knn": _imputing(KNNImputer),
    "impute-iterative": _imputing(IterativeImputer),
    "observed": lambda **options: ObservedRepresentation(**options),
    "observed+indicator": lambda **options: ObservedRepresentation(indicator=True, **options),
    "native-nan": lambda **options: NativeNaNRepresentation(**options),
    "sparse-input": lambda **options: SparseInputRepresentation(**options),
}


def list_representations() -> list[str]:
    """Names that :func:`make_representation` accepts."""
    return list(REPRESENTATIONS)


def make_representation(name: str, **options):
    """A new, unfitted transformer for the representation `name` (see module doc).

    Options: ``standardize`` and ``allow_empty_rows`` for all; for ``impute-*`` any argument
    of the scikit-learn imputer (e.g. ``n_neighbors`` for knn, ``max_iter`` and
    ``random_state`` for iterative; a Generator random_state is turned into an int seed
    drawn from it); for ``observed*`` the arguments of :class:`ObservedRepresentation`; for
    ``sparse-input`` those of :class:`SparseInputRepresentation` (``scale``, not ``standardize``).
    """
    if name not in REPRESENTATIONS:
        raise unknown_name("representation", name, REPRESENTATIONS)
    if name.startswith("observed") and "indicator" in options:
        raise TypeError(f"indicator= is fixed by the name {name!r}")
    try:
        return REPRESENTATIONS[name](**options)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        raise TypeError(f"{err}; representation {name!r} takes {_option_names(name)}") from err


def _option_names(name):
    if name == "sparse-input":
        return list(inspect.signature(SparseInputRepresentation).parameters)
    if name.startswith("observed"):
        names = inspect.signature(ObservedRepresentation).parameters
        return [p for p in names if p != "indicator"]
    names = ["standardize", "allow_empty_rows"]
    imputer_class = getattr(REPRESENTATIONS[name], "imputer_class", None)
    if imputer_class is not None:
        names += [p for p in inspect.signature(imputer_class).parameters if p != "strategy"]
    return names
