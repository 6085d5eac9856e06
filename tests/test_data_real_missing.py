"""Simulated missingness on top of real missing values, and how the report names it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dualsparse.data import ampute, ampute_split


def incomplete_everywhere(n=300, p=4, seed=0):
    """Every column misses some values, as in the voting records."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    X[rng.random((n, p)) < 0.05] = np.nan
    return X


def test_mar_needs_complete_drivers_unless_told_otherwise():
    X = incomplete_everywhere()
    with pytest.raises(ValueError, match="incomplete_drivers=True"):
        ampute(X, "mar", 0.2, random_state=0)
    X_missing, mask = ampute(X, "mar", 0.2, random_state=0, incomplete_drivers=True)
    assert np.isnan(X_missing).sum() == round(0.2 * X.size)  # the real NaN count towards the rate
    assert not (mask & np.isnan(X)).any()


def test_a_missing_driver_value_counts_as_the_driver_mean():
    """Rows whose driver is missing get the score of a driver at its mean: between the extremes."""
    n = 3000
    X = np.zeros((n, 2))
    X[: n // 3, 0], X[n // 3: 2 * n // 3, 0], X[2 * n // 3:, 0] = 1.0, -1.0, np.nan
    X[:, 1] = np.random.default_rng(1).standard_normal(n)
    _, mask = ampute(X, "mar", 0.4, random_state=2, drivers=[0], incomplete_drivers=True, strength=3.0)
    high, low, unknown = (mask[s, 1].sum() for s in (slice(0, n // 3), slice(n // 3, 2 * n // 3), slice(2 * n // 3, n)))
    lo, hi = sorted((high, low))
    assert 0.25 < (unknown - lo) / (hi - lo) < 0.75  # well inside, not at either extreme
    assert not mask[:, 0].any()  # drivers are never amputed


def test_apply_to_both_draws_mar_drivers_observed_in_the_test_rows_too():
    rng = np.random.default_rng(3)
    X_train, X_test = rng.standard_normal((200, 6)), rng.standard_normal((50, 6))
    X_test[0, [0, 2]] = np.nan  # real data can miss a value in a test row only
    for seed in range(20):
        _, X_te, mask_train, _ = ampute_split(X_train, X_test, "mar", 0.2, seed, apply_to="both")
        drivers = np.flatnonzero(~mask_train.any(axis=0))
        assert not set(drivers) & {0, 2}
        assert np.isnan(X_te).sum() == round(0.2 * X_test.size)


def test_report_names_real_missing_values():
    from dualsparse.experiments.grid_report import _rate_label

    def summary(own, mechanism="mcar"):
        return pd.DataFrame({"mechanism": [mechanism, mechanism], "rate": [0.0, 0.2],
                             "realised_rate_mean": [own, 0.2]})

    real = summary(0.05)
    assert _rate_label(real, 0.0) == "real (realised 0.050)"
    assert _rate_label(real, 0.2) == "real + mcar 0.2 (realised 0.200)"
    assert _rate_label(summary(0.0), 0.2) == "0.2 (realised 0.200)"  # simulated only: as before


def test_observed_binary_sparse_stores_one_hot_codes_by_their_ones():
    """One-hot columns: 1s stored unscaled, 0s and missing absent; numeric columns as before."""
    from dualsparse.data import make_representation

    nan = np.nan
    X = np.array([[1, 0, 2.0], [0, 1, nan], [nan, nan, 4.0], [0, 1, 6.0]])  # colour=a, colour=b, size
    Z = make_representation("observed+indicator", binary="sparse").fit_transform(X)
    size = X[[0, 2, 3], 2]
    z = (X[:, 2] - size.mean()) / size.std()
    want = np.array([[1, 0, z[0], 0, 0, 0],  # then indicators of the three features with a NaN
                     [0, 1, 0, 0, 0, 1],
                     [0, 0, z[2], 1, 1, 0],
                     [0, 1, z[3], 0, 0, 0]])
    np.testing.assert_allclose(Z.toarray(), want)
    assert Z.nnz == 3 + 3 + 3  # three 1s, three observed sizes, three indicators: no stored zero
    plain = make_representation("observed").fit_transform(X)
    assert plain.nnz == int((~np.isnan(X)).sum())  # the default still stores every observed cell
