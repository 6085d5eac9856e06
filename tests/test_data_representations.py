"""Representations: scikit-learn contract, training statistics only, observed-only CSR."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from dualsparse.data import (
    ObservedRepresentation,
    ampute,
    list_representations,
    load_dataset,
    make_representation,
)

NAMES = [
    "impute-mean",
    "impute-median",
    "impute-knn",
    "impute-iterative",
    "observed",
    "observed+indicator",
    "native-nan",
]
DENSE = ["impute-mean", "impute-median", "impute-knn", "impute-iterative", "native-nan"]


def is_csr(X):
    return sp.issparse(X) and X.format == "csr"


def make(name, **options):
    if name == "impute-iterative":
        options.setdefault("random_state", 0)
    return make_representation(name, **options)


def split_with_missing(rate=0.3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=[0.0, 5.0, -3.0, 10.0], scale=[1.0, 2.0, 0.5, 3.0], size=(120, 4))
    X_missing, _ = ampute(X, "mcar", rate, seed)
    return X_missing[:80], X_missing[80:]


def test_list_representations():
    assert list_representations() == NAMES + ["sparse-input"]


@parametrize_with_checks([make(name) for name in NAMES + ["sparse-input"]])
def test_scikit_learn_estimator_contract(estimator, check):
    check(estimator)


@pytest.mark.parametrize("name", NAMES)
def test_statistics_come_from_training_data_only(name):
    X_train, X_test = split_with_missing()
    rep = make(name).fit(X_train)
    before = rep.transform(X_test)
    rep.transform(X_test * 100 + 7)  # transforming other data must not refit
    after = rep.transform(X_test)
    dense = lambda Z: Z.toarray() if sp.issparse(Z) else Z  # noqa: E731
    np.testing.assert_array_equal(np.isnan(dense(before)), np.isnan(dense(after)))
    np.testing.assert_allclose(dense(before), dense(after))
    # observed test values are standardised with the training mean and std
    mean, std = np.nanmean(X_train, axis=0), np.nanstd(X_train, axis=0)
    observed = ~np.isnan(X_test)
    expected = ((X_test - mean) / std)[observed]
    if sp.issparse(before):
        assert np.allclose(before[:, :4].toarray()[observed], expected)
    else:
        np.testing.assert_allclose(before[observed], expected)


@pytest.mark.parametrize("name", DENSE)
def test_dense_representations(name):
    X_train, X_test = split_with_missing()
    Z = make(name).fit(X_train).transform(X_test)
    assert isinstance(Z, np.ndarray) and Z.dtype == np.float64 and Z.shape == X_test.shape
    if name == "native-nan":
        np.testing.assert_array_equal(np.isnan(Z), np.isnan(X_test))
    else:
        assert not np.isnan(Z).any()


def test_impute_mean_fills_training_mean():
    X_train, X_test = split_with_missing()
    Z = make("impute-mean").fit(X_train).transform(X_test)
    np.testing.assert_allclose(Z[np.isnan(X_test)], 0.0, atol=1e-12)  # the standardised mean
    Z = make("impute-mean", standardize=False).fit(X_train).transform(X_test)
    rows, cols = np.nonzero(np.isnan(X_test))
    np.testing.assert_allclose(Z[rows, cols], np.nanmean(X_train, axis=0)[cols])


def test_impute_median_fills_training_median():
    X_train, X_test = split_with_missing()
    Z = make("impute-median", standardize=False).fit(X_train).transform(X_test)
    rows, cols = np.nonzero(np.isnan(X_test))
    np.testing.assert_allclose(Z[rows, cols], np.nanmedian(X_train, axis=0)[cols])


def test_options_reach_the_scikit_learn_imputer():
    knn = make_representation("impute-knn", n_neighbors=3)
    assert isinstance(knn.imputer, KNNImputer) and knn.imputer.n_neighbors == 3
    assert knn.get_params()["imputer__n_neighbors"] == 3
    iterative = make_representation("impute-iterative", max_iter=4, random_state=1)
    assert isinstance(iterative.imputer, IterativeImputer) and iterative.imputer.max_iter == 4
    assert isinstance(make_representation("impute-median").imputer, SimpleImputer)


def test_iterative_is_reproducible_with_int_or_generator_seed():
    X_train, X_test = split_with_missing()
    outputs = [
        make_representation("impute-iterative", random_state=rs, sample_posterior=True, max_iter=3)
        .fit(X_train)
        .transform(X_test)
        for rs in (5, 5, np.random.default_rng(5), np.random.default_rng(5))
    ]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[2], outputs[3])


def test_observed_stores_exactly_the_observed_cells_even_zeros():
    X_train, X_test = split_with_missing()
    rep = make("observed").fit(X_train)
    X_test[0, 0] = rep.mean_[0]  # standardises to exactly 0
    Z = rep.transform(X_test)
    assert is_csr(Z) and Z.shape == X_test.shape and Z.dtype == np.float64
    observed = ~np.isnan(X_test)
    assert Z.nnz == observed.sum()
    stored = np.zeros(Z.shape, dtype=bool)
    stored[np.repeat(np.arange(Z.shape[0]), np.diff(Z.indptr)), Z.indices] = True
    np.testing.assert_array_equal(stored, observed)
    assert Z[0, 0] == 0.0 and stored[0, 0]
    np.testing.assert_allclose(rep.observed_fraction_, (~np.isnan(X_train)).mean(axis=0))
    assert make("observed", dtype=np.float32).fit(X_train).transform(X_test).dtype == np.float32


@pytest.mark.parametrize(("option", "power"), [(True, 1.0), ("sqrt", 0.5)])
def test_sparsity_normalization_scales_rows_by_observed_count(option, power):
    X_train, X_test = split_with_missing(rate=0.4)
    plain = make("observed").fit(X_train).transform(X_test).toarray()
    scaled = make("observed", sparsity_normalization=option).fit(X_train).transform(X_test)
    n_observed = (~np.isnan(X_test)).sum(axis=1)
    factor = (X_test.shape[1] / n_observed) ** power
    np.testing.assert_allclose(scaled.toarray(), plain * factor[:, None])
    assert scaled.nnz == n_observed.sum()


def test_observed_plus_indicator_appends_sparse_indicators():
    X_train, X_test = split_with_missing()
    X_train[:, 2] = np.nan_to_num(X_train[:, 2], nan=1.0)  # column 2 complete in training
    rep = make("observed+indicator").fit(X_train)
    np.testing.assert_array_equal(rep.indicator_features_, [0, 1, 3])
    Z = rep.transform(X_test)
    assert is_csr(Z) and Z.shape == (X_test.shape[0], 4 + 3)
    missing = np.isnan(X_test)
    np.testing.assert_array_equal(Z[:, 4:].toarray(), missing[:, [0, 1, 3]].astype(float))
    assert Z.nnz == (~missing).sum() + missing[:, [0, 1, 3]].sum()
    assert list(rep.get_feature_names_out()) == [
        "x0", "x1", "x2", "x3", "missing_x0", "missing_x1", "missing_x3"
    ]
    everything = make("observed+indicator", indicator_features="all").fit(X_train)
    assert everything.transform(X_test).shape[1] == 8


def test_allow_empty_rows():
    X_train, _ = split_with_missing()
    X_test = np.full((2, 4), np.nan)
    X_test[1] = 1.0
    with pytest.raises(ValueError, match="no observed value"):
        make("observed").fit(X_train).transform(X_test)
    Z = make("observed", allow_empty_rows=True, sparsity_normalization=True).fit(X_train)
    assert np.diff(Z.transform(X_test).indptr).tolist() == [0, 4]
    filled = make("impute-mean", allow_empty_rows=True).fit(X_train).transform(X_test)
    np.testing.assert_allclose(filled[0], 0.0, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", NAMES)
def test_in_a_pipeline_with_a_classifier(name):
    data = load_dataset("breast_cancer")
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=0.3, random_state=0, stratify=data.y
    )
    X_train, _ = ampute(X_train, "mcar", 0.3, 0)
    X_test, _ = ampute(X_test, "mcar", 0.3, 1)
    classifier = (  # trees take NaN as it is
        DecisionTreeClassifier(max_depth=4, random_state=0)
        if name == "native-nan"
        else LogisticRegression(max_iter=1000)
    )
    options = {"max_iter": 3} if name == "impute-iterative" else {}
    model = make_pipeline(make(name, **options), classifier).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.85


def test_dataframe_feature_names_flow_through():
    import pandas as pd

    X_train, X_test = split_with_missing()
    columns = ["a", "b", "c", "d"]
    rep = ObservedRepresentation(indicator=True).fit(pd.DataFrame(X_train, columns=columns))
    assert list(rep.feature_names_in_) == columns
    assert rep.get_feature_names_out()[-1] == "missing_d"
    Z = rep.transform(pd.DataFrame(X_test, columns=columns))
    assert Z.shape[0] == X_test.shape[0]


def test_observed_in_a_linear_layer_equals_mean_imputation():
    # standardised, a missing entry left out of the sum counts as the training mean
    X_train, X_test = split_with_missing()
    observed = make("observed").fit(X_train).transform(X_test).toarray()
    mean_imputed = make("impute-mean").fit(X_train).transform(X_test)
    np.testing.assert_allclose(observed, mean_imputed, atol=1e-12)


# ---------------------------------------------------------------- naturally sparse input
def test_sparse_input_scales_by_max_abs_and_keeps_zeros_absent():
    from sklearn.preprocessing import MaxAbsScaler

    from dualsparse.data import make_sparse_classification

    X, _ = make_sparse_classification(n_samples=200, n_features=300, density=0.05, random_state=0)
    X_train, X_test = X[:150], X[150:]
    rep = make("sparse-input").fit(X_train)
    for part in (X_train, X_test):
        Z = rep.transform(part)
        assert is_csr(Z) and Z.nnz == sp.csr_matrix(part).count_nonzero()  # no zero became stored
        want = MaxAbsScaler().fit(X_train).transform(part).toarray()
        np.testing.assert_allclose(Z.toarray(), want, rtol=1e-12)
    assert np.abs(rep.transform(X_train).data).max() <= 1.0
    dense = X_train.toarray()  # dense input: the same result, its zeros not stored
    np.testing.assert_allclose(rep.transform(dense[:10]).toarray(), rep.transform(X_train[:10]).toarray())
    assert rep.transform(dense[:10]).nnz == X_train[:10].count_nonzero()
    unscaled = make("sparse-input", scale=False).fit(X_train).transform(X_test)
    np.testing.assert_array_equal(unscaled.toarray(), X_test.toarray())


def test_sparse_input_rejects_missing_values_and_names_the_alternative():
    X = np.array([[1.0, 0.0], [np.nan, 2.0]])
    with pytest.raises(ValueError, match="observed"):
        make("sparse-input").fit(X)
    with pytest.raises(ValueError, match="all zero"):
        make("sparse-input", allow_empty_rows=False).fit(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(TypeError, match="scale"):
        make("sparse-input", standardize=True)


def test_sparse_input_feeds_a_sparse_first_layer_only_its_stored_values():
    from dualsparse import SparseMLPClassifier
    from dualsparse.data import make_sparse_classification

    X, y = make_sparse_classification(n_samples=300, n_features=500, density=0.02, random_state=1)
    Z = make("sparse-input").fit_transform(X)
    est = SparseMLPClassifier(hidden_layer_sizes=(32,), algorithm="static", epsilon=5, max_epochs=2,
                              random_state=0).fit(Z, y)
    # the first layer's forward work is (stored input values x their fan-out), counted brute force
    from dualsparse.sparse.flops import forward_flops

    first, second = est.module_[0], est.module_[-1]
    live = (first.to_dense().detach().numpy() != 0).astype(float)
    products = ((Z.toarray() != 0).astype(float) @ live.T).sum() / Z.shape[0]
    want = forward_flops(products, first.out_features, 1) + forward_flops(second.nnz, second.out_features, 1)
    assert est.flops_["inference_per_sample"] == pytest.approx(want, rel=1e-9)
    assert products < 0.05 * first.nnz  # ~2 % of the inputs stored: ~2 % of a dense input's work
