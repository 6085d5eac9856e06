"""Amputation: exact rates (a share of all cells), reproducibility, and each mechanism's statistical
signature."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from dualsparse.data import ampute, ampute_split

MECHANISM_OPTIONS = [
    ("mcar", {}),
    ("mar", {}),
    ("mar", {"drivers": [0, 1], "features": [3, 4, 5]}),
    ("mnar", {"kind": "self-masking", "direction": "upper"}),
    ("mnar", {"kind": "self-masking", "direction": "lower"}),
    ("mnar", {"kind": "quantile", "direction": "upper"}),
    ("mnar", {"kind": "quantile", "direction": "lower", "quantile": 0.9}),
]
IDS = ["mcar", "mar", "mar-explicit", "sm-upper", "sm-lower", "q-upper", "q-lower-random"]


def normal_data(n=400, d=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def amputed_columns(X_missing):
    """Columns that lost at least one value."""
    return np.flatnonzero(np.isnan(X_missing).any(axis=0))


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.45])
@pytest.mark.parametrize(("mechanism", "options"), MECHANISM_OPTIONS, ids=IDS)
def test_rate_is_a_share_of_all_cells(mechanism, options, rate):
    # 170 x 6 = 1020 cells; the rate counts all of them, the MAR drivers and unlisted columns too
    X = normal_data(n=170)
    X_missing, mask = ampute(X, mechanism, rate, 0, **options)
    assert X.size >= 1000
    assert abs(np.isnan(X_missing).mean() - rate) <= 0.01
    assert abs(mask.sum() - rate * X.size) <= 0.5  # exact up to rounding to whole cells


@pytest.mark.parametrize("mechanism", ["mcar", "mnar"])
def test_high_rate_where_every_column_may_lose_values(mechanism):
    X = normal_data(n=170)
    X_missing, _ = ampute(X, mechanism, 0.77, 0)
    assert abs(np.isnan(X_missing).mean() - 0.77) <= 0.01


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.77])
@pytest.mark.parametrize(("mechanism", "options"), MECHANISM_OPTIONS, ids=IDS)
def test_per_feature_rate_within_one_point_in_each_amputed_feature(mechanism, options, rate):
    # per_feature keeps its meaning: the rate of each amputed feature's own cells
    n = 170 if mechanism != "mar" else 340
    X = normal_data(n=n)
    X_missing, mask = ampute(X, mechanism, rate, 0, per_feature=True, **options)
    columns = options.get("features", amputed_columns(X_missing))
    cells = np.isnan(X_missing[:, columns])
    assert cells.size >= 1000
    assert abs(cells.mean() - rate) <= 0.01
    per_column = cells.sum(axis=0)  # every feature gets floor or ceil of rate * n_samples
    assert per_column.max() - per_column.min() <= 1
    assert abs(per_column.mean() / n - rate) <= 0.01


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("mechanism", ["mcar", "mar", "mnar"])
def test_mechanisms_compared_at_one_rate_remove_the_same_share_of_breast_cancer(mechanism, rate):
    # the case: MAR at 0.3 used to remove 21 % of the cells, MCAR and MNAR 30 %
    from dualsparse.data import load_dataset

    X = load_dataset("breast_cancer").X
    X_missing, mask = ampute(X, mechanism, rate, 0)
    assert abs(np.isnan(X_missing).mean() - rate) <= 0.01
    assert abs(mask.sum() - rate * X.size) <= 0.5
    if mechanism == "mar":  # the drivers stay complete; the other columns make up the rate
        complete = ~mask.any(axis=0)
        assert complete.sum() == round(0.3 * X.shape[1])
        share = mask[:, ~complete].mean()
        assert abs(share - rate * X.shape[1] / (~complete).sum()) <= 0.001


def test_mar_removes_more_from_the_non_driver_columns():
    X = normal_data(n=2000, d=10)
    drivers = [0, 1, 2, 3]
    X_missing, mask = ampute(X, "mar", 0.3, 0, drivers=drivers)
    assert not mask[:, drivers].any()
    amputed = mask[:, 4:]
    assert abs(amputed.mean() - 0.3 * 10 / 6) <= 0.001  # 50 % of the non-driver cells
    # each non-driver column carries part of it (no column left untouched, none emptied)
    assert (amputed.mean(axis=0) > 0.2).all() and (amputed.mean(axis=0) < 0.8).all()


@pytest.mark.parametrize(("mechanism", "options"), MECHANISM_OPTIONS, ids=IDS)
def test_mask_marks_exactly_the_removed_values(mechanism, options):
    X = normal_data()
    X_missing, mask = ampute(X, mechanism, 0.3, 1, **options)
    assert mask.dtype == bool and mask.shape == X.shape
    np.testing.assert_array_equal(np.isnan(X_missing), mask)
    np.testing.assert_array_equal(X_missing[~mask], X[~mask])
    assert X_missing.dtype == np.float64


@pytest.mark.parametrize(("mechanism", "options"), MECHANISM_OPTIONS, ids=IDS)
def test_same_seed_same_mask_other_seed_other_mask(mechanism, options):
    X = normal_data()
    _, first = ampute(X, mechanism, 0.3, 7, **options)
    _, again = ampute(X, mechanism, 0.3, 7, **options)
    _, other = ampute(X, mechanism, 0.3, 8, **options)
    _, from_generator = ampute(X, mechanism, 0.3, np.random.default_rng(7), **options)
    _, generator_again = ampute(X, mechanism, 0.3, np.random.default_rng(7), **options)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(from_generator, generator_again)
    exact_tail = options.get("kind") == "quantile" and "quantile" not in options
    if not exact_tail:  # the deterministic exact tail is the same for any seed
        assert (first != other).any()


def test_existing_nan_stays_missing_and_counts_towards_the_rate():
    X = normal_data(n=500)
    existing = np.random.default_rng(3).random(X.shape) < 0.1
    X[existing] = np.nan
    X_missing, mask = ampute(X, "mcar", 0.3, 0)
    assert np.isnan(X_missing[existing]).all()
    assert not (mask & existing).any()  # the mask marks only what this call removed
    assert abs(np.isnan(X_missing).mean() - 0.3) <= 0.01
    assert abs(mask.sum() - (0.3 * X.size - existing.sum())) <= 1


def test_existing_nan_counts_per_feature():
    X = normal_data(n=500)
    X[:100, 0] = np.nan  # 20 % of column 0 missing already
    X_missing, _ = ampute(X, "mnar", 0.4, 0, per_feature=True)
    assert np.allclose(np.isnan(X_missing).mean(axis=0), 0.4, atol=0.01)


def test_mcar_missingness_is_independent_of_values():
    X = normal_data(n=4000, d=3)
    _, mask = ampute(X, "mcar", 0.3, 11)
    for j in range(3):
        for k in range(3):  # its own value and the other columns' values
            quartile = np.digitize(X[:, k], np.quantile(X[:, k], [0.25, 0.5, 0.75]))
            table = pd.crosstab(quartile, mask[:, j]).to_numpy()
            assert chi2_contingency(table).pvalue > 0.001


def test_mar_missingness_is_driven_by_the_drivers_not_by_the_value():
    X = normal_data(n=3000, d=6)
    drivers, amputed = [0, 1, 2], [3, 4, 5]
    _, mask = ampute(X, "mar", 0.3, 5, drivers=drivers, features=amputed)
    assert not mask[:, drivers].any()
    for j in amputed:
        missing = mask[:, j]
        model = LogisticRegression().fit(X[:, drivers], missing)
        auc_drivers = roc_auc_score(missing, model.decision_function(X[:, drivers]))
        auc_own_value = roc_auc_score(missing, X[:, j])
        assert auc_drivers > 0.7
        assert abs(auc_own_value - 0.5) < 0.05


def test_mar_default_drivers_are_fully_observed_columns():
    X = normal_data(n=600, d=10)
    X_missing, mask = ampute(X, "mar", 0.4, 2)
    untouched = ~np.isnan(X_missing).any(axis=0)
    assert untouched.sum() == 3  # round(0.3 * 10) drivers
    X_again, _ = ampute(X, "mar", 0.4, 2)
    np.testing.assert_array_equal(np.isnan(X_again), np.isnan(X_missing))
    # the missingness of each amputed column is predictable from the untouched ones
    for j in np.flatnonzero(~untouched):
        model = LogisticRegression().fit(X[:, untouched], mask[:, j])
        assert roc_auc_score(mask[:, j], model.decision_function(X[:, untouched])) > 0.7


def test_mar_drivers_with_existing_nan_are_not_chosen():
    X = normal_data(n=300, d=5)
    X[0, [0, 1]] = np.nan
    X_missing, mask = ampute(X, "mar", 0.2, 0, driver_fraction=0.4)
    drivers = np.flatnonzero(~np.isnan(X_missing).any(axis=0))
    assert set(drivers) <= {2, 3, 4} and len(drivers) == 2


@pytest.mark.parametrize("kind", ["self-masking", "quantile"])
@pytest.mark.parametrize("per_feature", [False, True])
def test_mnar_removed_values_lie_in_the_configured_direction(kind, per_feature):
    X = normal_data(n=2000, d=3)
    for direction, sign in [("upper", 1), ("lower", -1)]:
        _, mask = ampute(
            X, "mnar", 0.3, 4, kind=kind, direction=direction, per_feature=per_feature
        )
        for j in range(3):
            removed, kept = X[mask[:, j], j], X[~mask[:, j], j]
            assert sign * (removed.mean() - kept.mean()) > 0.5


def test_mnar_quantile_default_removes_exactly_the_tail():
    X = normal_data(n=1000, d=2)
    _, mask = ampute(X, "mnar", 0.25, 0, kind="quantile", direction="upper", per_feature=True)
    for j in range(2):
        assert X[mask[:, j], j].min() > X[~mask[:, j], j].max()


def test_mnar_quantile_with_wider_tail_draws_a_random_subset_of_it():
    X = normal_data(n=1000, d=2)
    masks = [
        ampute(X, "mnar", 0.2, seed, kind="quantile", direction="lower", quantile=0.5)[1]
        for seed in (0, 1)
    ]
    for mask in masks:
        for j in range(2):
            assert (X[mask[:, j], j] < np.median(X[:, j])).all()
    assert (masks[0] != masks[1]).any()


def test_self_masking_strength_sharpens_the_selection():
    X = normal_data(n=3000, d=1)
    gaps = []
    for strength in (0.5, 4.0):
        _, mask = ampute(X, "mnar", 0.3, 0, strength=strength)
        gaps.append(X[mask].mean() - X[~mask].mean())
    assert gaps[1] > gaps[0] > 0


def test_features_limits_amputation_and_the_rate_still_counts_all_cells():
    X = normal_data(n=500, d=6)
    X_missing, mask = ampute(X, "mcar", 0.3, 0, features=[1, 4])
    assert set(amputed_columns(X_missing)) == {1, 4}
    assert abs(np.isnan(X_missing).mean() - 0.3) <= 0.01
    assert abs(np.isnan(X_missing[:, [1, 4]]).mean() - 0.9) <= 0.01  # 0.3 * 6 / 2


def test_existing_nan_outside_the_amputable_columns_count_towards_the_rate():
    X = normal_data(n=500, d=6)
    X[:250, 5] = np.nan  # 250 of 3000 cells, in a column that may not lose values
    X_missing, mask = ampute(X, "mar", 0.3, 0, drivers=[0], features=[1, 2, 3, 4])
    assert abs(np.isnan(X_missing).mean() - 0.3) <= 0.01
    assert abs(mask.sum() - (0.3 * X.size - 250)) <= 0.5
    assert not mask[:, [0, 5]].any()


def test_rate_zero_removes_nothing():
    X = normal_data()
    X_missing, mask = ampute(X, "mar", 0.0, 0)
    assert not mask.any()
    np.testing.assert_array_equal(X_missing, X)


def test_dataframe_and_integer_input():
    frame = pd.DataFrame(np.arange(1200).reshape(200, 6), columns=list("abcdef"))
    X_missing, mask = ampute(frame, "mcar", 0.2, 0)
    assert isinstance(X_missing, np.ndarray) and X_missing.dtype == np.float64
    assert abs(mask.mean() - 0.2) <= 0.01


@pytest.mark.parametrize(("mechanism", "options"), MECHANISM_OPTIONS, ids=IDS)
def test_ampute_split_train_only(mechanism, options):
    X_train, X_test = normal_data(n=300), normal_data(n=100, seed=1)
    Xtr, Xte, mtr, mte = ampute_split(X_train, X_test, mechanism, 0.3, 0, **options)
    assert mtr.any() and not mte.any()
    np.testing.assert_array_equal(Xte, X_test)
    np.testing.assert_array_equal(np.isnan(Xtr), mtr)


@pytest.mark.parametrize(("mechanism", "options"), MECHANISM_OPTIONS, ids=IDS)
def test_ampute_split_both_uses_one_mechanism(mechanism, options):
    X_train, X_test = normal_data(n=400), normal_data(n=200, seed=1)
    Xtr, Xte, mtr, mte = ampute_split(
        X_train, X_test, mechanism, 0.3, 0, apply_to="both", per_feature=True, **options
    )
    columns = amputed_columns(Xtr)
    np.testing.assert_array_equal(amputed_columns(Xte), columns)  # same features (MAR: drivers)
    for X_missing in (Xtr, Xte):
        assert np.allclose(np.isnan(X_missing[:, columns]).mean(axis=0), 0.3, atol=0.01)
    again = ampute_split(
        X_train, X_test, mechanism, 0.3, 0, apply_to="both", per_feature=True, **options
    )
    np.testing.assert_array_equal(again[3], mte)


@pytest.mark.parametrize(("mechanism", "options"), MECHANISM_OPTIONS, ids=IDS)
def test_ampute_split_both_meets_the_overall_rate_in_each_set(mechanism, options):
    X_train, X_test = normal_data(n=400), normal_data(n=200, seed=1)
    amputed = amputed_columns(ampute_split(X_train, X_test, mechanism, 0.3, 0, **options)[0])
    X_test[:30, amputed[-1]] = np.nan  # the test set has NaN of its own (not in a MAR driver)
    Xtr, Xte, mtr, mte = ampute_split(X_train, X_test, mechanism, 0.3, 0, apply_to="both", **options)
    for X_missing in (Xtr, Xte):
        assert abs(np.isnan(X_missing).mean() - 0.3) <= 0.01
    assert abs(mte.sum() - (0.3 * X_test.size - 30)) <= 0.5


def test_ampute_split_both_keeps_the_mnar_direction_on_test():
    X_train, X_test = normal_data(n=1000, d=2), normal_data(n=1000, d=2, seed=1)
    *_, mte = ampute_split(X_train, X_test, "mnar", 0.3, 0, apply_to="both", direction="lower")
    assert X_test[mte].mean() < X_test[~mte].mean() - 0.5
