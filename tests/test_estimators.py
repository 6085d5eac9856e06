"""The estimators honour scikit-learn's contract and the library's promises."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import dualsparse.sparse.layer as layer_mod
import dualsparse.train.estimators as estimators_mod
from dualsparse import Callback, SparseMLPClassifier, SparseMLPRegressor
from dualsparse.sparse import SparseLinear
from dualsparse.sparse.density import DensityWarning

# Small networks that are really sparse (the default epsilon makes such tiny layers fully
# connected) and enough epochs for the "learns the training set" checks.
CHECK_PARAMS = dict(hidden_layer_sizes=(16,), max_epochs=40, random_state=0, sparsity=0.5, learning_rate=0.01)


@parametrize_with_checks([SparseMLPClassifier(**CHECK_PARAMS), SparseMLPRegressor(**CHECK_PARAMS)])
def test_sklearn_contract(estimator, check):
    check(estimator)


# The whole battery with every parameter at its default, and no expected failures: scikit-learn's
# own MLPClassifier / MLPRegressor declare none either.
@parametrize_with_checks([SparseMLPClassifier(), SparseMLPRegressor()])
def test_sklearn_contract_at_defaults(estimator, check):
    check(estimator)


def _one_feature():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 1))
    return X, np.sin(2 * X[:, 0]) + 0.1 * rng.normal(size=200)


# Everything at its default (unscaled inputs, random_state=None); each bar is well below what
# fits reach (and what scikit-learn's MLP reaches) and well above guessing.
@pytest.mark.parametrize("load, make, min_score", [
    (lambda: load_iris(return_X_y=True), SparseMLPClassifier, 0.9),
    (lambda: load_wine(return_X_y=True), SparseMLPClassifier, 0.6),
    (lambda: load_breast_cancer(return_X_y=True), SparseMLPClassifier, 0.75),
    (lambda: load_digits(return_X_y=True), SparseMLPClassifier, 0.95),
    (lambda: load_diabetes(return_X_y=True), SparseMLPRegressor, 0.4),
    (_one_feature, SparseMLPRegressor, 0.6),
    (lambda: (np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([3, 7])), SparseMLPClassifier, 1.0),
], ids=["iris", "wine", "breast_cancer", "digits", "diabetes", "one_feature", "two_samples"])
def test_defaults_fit_what_sklearns_mlp_fits(load, make, min_score):
    X, y = load()
    est = make().fit(X, y)
    assert est.score(X, y) >= min_score
    assert est.predict(X).shape == y.shape
    density = est.density_
    assert 0 < density["overall"] <= 1 and all(0 < d <= 1 for d in density["layers"])


def test_density_reports_each_layer_capped_on_its_own():
    X, y = load_breast_cancer(return_X_y=True)
    # 30-100-2: ER at SET's epsilon=20 asks 20 (30 + 100) = 2600 of 3000 input weights and 20 (100 + 2)
    # = 2040 of the 200 output weights; only the output layer is capped (full), per layer as in SET.
    expected = {"overall": 2800 / 3200, "layers": [2600 / 3000, 1.0], "nnz": [2600, 200], "dense_weights": [3000, 200]}
    est = SparseMLPClassifier(max_epochs=2, random_state=0).fit(X, y)
    assert est.density_ == expected
    # the same epsilon given explicitly: not an error, the same network
    assert SparseMLPClassifier(epsilon=20, max_epochs=1, random_state=0).fit(X, y).density_ == expected
    # nnz is what the layers hold, through training and topology updates
    layers = [m for m in est.module_.modules() if isinstance(m, SparseLinear)]
    assert [m.nnz for m in layers] == expected["nnz"]
    dense = SparseMLPClassifier(algorithm="dense", max_epochs=1).fit(X, y).density_
    assert dense == {"overall": 1.0, "layers": [1.0, 1.0], "nnz": [3000, 200], "dense_weights": [3000, 200]}
    sparse = SparseMLPClassifier(sparsity=0.9, max_epochs=1).fit(X, y).density_
    assert sparse["overall"] == pytest.approx(0.1, abs=1e-3) and sum(sparse["nnz"]) == round(0.1 * 3200)
    with pytest.raises(NotFittedError):
        SparseMLPClassifier().density_


@pytest.fixture
def fresh_density_warnings(monkeypatch):
    """Forget which networks this process has already warned about."""
    monkeypatch.setattr(estimators_mod, "_WARNED_FULLY_CONNECTED", set())


def _density_warnings(record):
    return [w for w in record if issubclass(w.category, DensityWarning)]


def test_fully_dense_default_network_warns_once(iris, fresh_density_warnings):
    X, y = iris
    with pytest.warns(DensityWarning, match=r"every layer of the 4-100-3 network is fully connected.*"
                                            r"algorithm='set'.*sparsity=") as record:
        est = SparseMLPClassifier(max_epochs=1).fit(X, y)
    assert len(_density_warnings(record)) == 1 and est.density_["overall"] == 1.0
    # not again for the same network: refits, clones in a grid search, continued training
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        est.fit(X, y)
        est.partial_fit(X, y)
        GridSearchCV(SparseMLPClassifier(max_epochs=1), {"zeta": [0.1, 0.3]}, cv=3).fit(X, y)
    assert _density_warnings(record) == []


@pytest.mark.parametrize("params", [dict(), dict(sparsity=0.5), dict(sparsity=0.0), dict(algorithm="dense")])
def test_no_density_warning_when_the_network_is_sparse_or_dense_by_request(params, fresh_density_warnings):
    X, y = load_breast_cancer(return_X_y=True)  # at the default epsilon its input layer is sparse
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        SparseMLPClassifier(max_epochs=1, **params).fit(X, y)
        SparseMLPClassifier(max_epochs=1, hidden_layer_sizes=(8,), **{"sparsity": 0.5, **params}).fit(X, y)
    assert _density_warnings(record) == []


def test_explicit_epsilon_that_leaves_no_sparse_layer_is_an_error(iris, fresh_density_warnings):
    X, y = iris
    with pytest.raises(ValueError, match="epsilon=20 makes every layer of the 4-100-3 network fully connected.*"
                                         "lower epsilon below 3.846.*sparsity"):
        SparseMLPClassifier(epsilon=20).fit(X, y)
    est = SparseMLPClassifier(epsilon=3, max_epochs=1).fit(X, y)  # below the limit: the input layer is sparse
    assert est.density_["layers"][0] == pytest.approx(3 * 104 / 400, abs=1 / 400) and est.density_["layers"][1] == 1.0


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def small(**kw):
    params = dict(hidden_layer_sizes=(32, 32), sparsity=0.7, max_epochs=20, random_state=0, learning_rate=0.01)
    params.update(kw)
    return SparseMLPClassifier(**params)


@pytest.mark.parametrize("algorithm", ["set", "static", "dense", "rigl"])
def test_learns_iris_with_every_algorithm(iris, algorithm):
    X, y = iris
    est = small(algorithm=algorithm).fit(X, y)
    assert est.score(X, y) > 0.9
    n_sparse = sum(isinstance(m, SparseLinear) for m in est.module_.modules())
    assert (n_sparse == 0) == (algorithm == "dense")


def test_same_seed_same_result_and_seed_matters(iris):
    X, y = iris
    a = small(algorithm="set", dropout=0.2).fit(X, y).predict_proba(X)
    b = small(algorithm="set", dropout=0.2).fit(X, y).predict_proba(X)
    c = small(algorithm="set", dropout=0.2, random_state=1).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_set_evolves_topology_each_epoch_and_keeps_nnz(iris):
    X, y = iris
    seen = []

    class Recorder(Callback):
        def on_topology_update(self, est, epoch, info):
            seen.append((epoch, [i["nnz"] for i in info], [i["grown"] for i in info]))

    est = small(algorithm="set", max_epochs=4, callbacks=[Recorder()]).fit(X, y)
    layers = [m for m in est.module_.modules() if isinstance(m, SparseLinear)]
    nnz = [m.nnz for m in layers]
    # between epochs only: the returned model has no freshly regrown, untrained weights
    assert [s[0] for s in seen] == [0, 1, 2]
    assert all(s[1] == nnz for s in seen)
    # every layer that is not fully connected swaps connections each epoch; full ones cannot
    assert all((g > 0) == (layer.density < 1) for s in seen for g, layer in zip(s[2], layers))
    assert any(layer.density < 1 for layer in layers)
    # the pending update is applied when training continues
    est.partial_fit(X, y)
    assert [s[0] for s in seen] == [0, 1, 2, 3]


def test_callback_hooks_order_and_batch_indices(iris):
    X, y = iris
    events, rows = [], []

    class Recorder(Callback):
        def on_fit_begin(self, est, X_, y_, train_index, validation_index):
            events.append("fit_begin")
            assert X_.shape == X.shape and train_index.size + validation_index.size == X.shape[0]

        def on_epoch_begin(self, est, epoch):
            events.append(f"epoch_begin{epoch}")

        def on_batch_end(self, est, epoch, batch_index, outputs, y_batch, loss):
            rows.append(batch_index)
            assert outputs.shape == (batch_index.size, 3)

        def on_epoch_end(self, est, epoch, logs):
            events.append(f"epoch_end{epoch}")

        def on_fit_end(self, est):
            events.append("fit_end")

    small(max_epochs=2, callbacks=[Recorder()], batch_size=16).fit(X, y)
    assert events == ["fit_begin", "epoch_begin0", "epoch_end0", "epoch_begin1", "epoch_end1", "fit_end"]
    first_epoch = np.sort(np.concatenate(rows[: int(np.ceil(150 / 16))]))
    np.testing.assert_array_equal(first_epoch, np.arange(150))


def test_flops_match_a_brute_force_count(iris):
    X, y = iris
    est = small(algorithm="static", max_epochs=3, batch_size=50).fit(X, y)
    layers = [m for m in est.module_.modules() if isinstance(m, SparseLinear)]
    n = X.shape[0] * 3
    expected = 0
    expected_dense = 0
    for i, layer in enumerate(layers):
        fwd = 2 * layer.nnz * n + layer.out_features * n
        bwd = 2 * layer.nnz * n * (1 if i == 0 else 2)
        expected += fwd + bwd
        d = layer.in_features * layer.out_features
        expected_dense += 2 * d * n + layer.out_features * n + 2 * d * n * (1 if i == 0 else 2)
    assert est.flops_["train"] == expected and est.flops_["train_dense"] == expected_dense
    assert est.flops_["inference_per_sample"] == sum(2 * l.nnz + l.out_features for l in layers)
    assert est.flops_["train"] < est.flops_["train_dense"]


def test_sparse_input_flops_follow_stored_values():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 40))
    X[rng.random(X.shape) < 0.75] = 0
    y = (X[:, :5].sum(1) > 0).astype(int)
    Xs = sp.csr_matrix(X)
    est = small(algorithm="static", max_epochs=2, hidden_layer_sizes=(32,)).fit(Xs, y)
    dense_in = small(algorithm="static", max_epochs=2, hidden_layer_sizes=(32,)).fit(X, y)
    # same model and seed: dense and CSR inputs give the same predictions
    np.testing.assert_allclose(est.predict_proba(Xs), dense_in.predict_proba(X), atol=1e-5)
    first = next(m for m in est.module_.modules() if isinstance(m, SparseLinear))
    deg = first.input_degree().numpy()
    per_sample = (2 * deg[Xs.indices].sum() / 200 + 32) + sum(
        2 * m.nnz + m.out_features for m in est.module_.modules() if isinstance(m, SparseLinear) and m is not first)
    assert est.flops_["inference_per_sample"] == pytest.approx(per_sample)
    assert est.flops_["train"] < dense_in.flops_["train"]


def test_inputs_numpy_pandas_csr_agree(iris):
    X, y = iris
    frame = pd.DataFrame(X, columns=list("abcd"))
    p_np = small().fit(X, y).predict_proba(X)
    p_pd = small().fit(frame, pd.Series(y)).predict_proba(frame)
    p_sp = small().fit(sp.csr_matrix(X), y).predict_proba(sp.csr_matrix(X))
    np.testing.assert_allclose(p_np, p_pd)
    np.testing.assert_allclose(p_np, p_sp, atol=1e-5)


def test_pipeline_cross_val_and_grid_search():
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), small(max_epochs=5, hidden_layer_sizes=(32,)))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.85
    grid = GridSearchCV(pipe, {"sparsemlpclassifier__zeta": [0.1, 0.3]}, cv=2)
    grid.fit(X, y)
    assert grid.best_params_["sparsemlpclassifier__zeta"] in (0.1, 0.3)


def test_partial_fit_and_warm_start(iris):
    X, y = iris
    est = small()
    with pytest.raises(ValueError, match="classes must be passed"):
        est.partial_fit(X[:10], y[:10])
    est.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert list(est.classes_) == [0, 1, 2] and est.n_iter_ == 1
    est.partial_fit(X, y)
    assert est.n_iter_ == 2
    with pytest.raises(ValueError, match="not in classes"):
        est.partial_fit(X[:5], np.array([0, 1, 2, 3, 4]))
    warm = small(max_epochs=3, warm_start=True).fit(X, y)
    layer = next(m for m in warm.module_.modules() if isinstance(m, SparseLinear))
    warm.fit(X, y)
    assert warm.n_iter_ == 6 and next(m for m in warm.module_.modules() if isinstance(m, SparseLinear)) is layer


def test_early_stopping_holds_out_validation(iris):
    X, y = iris
    est = small(early_stopping=True, validation_fraction=0.2, max_epochs=200, n_iter_no_change=3).fit(X, y)
    assert est.validation_index_.size == 30 and np.intersect1d(est.train_index_, est.validation_index_).size == 0
    assert est.n_iter_ < 200 and "validation_score" in est.history_[-1]


def test_regressor_learns_a_linear_target():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 10))
    y = 100 * X[:, 0] - 50 * X[:, 1] + 3
    est = SparseMLPRegressor(hidden_layer_sizes=(64,), sparsity=0.5, max_epochs=60, random_state=0, learning_rate=0.01).fit(X, y)
    assert est.score(X, y) > 0.9
    assert est.predict(X).shape == (300,)


def test_allrelu_and_sgd_options(iris):
    X, y = iris
    est = small(activation="allrelu", optimizer="sgd", momentum=0.9, weight_decay=1e-4, dropout=0.1).fit(X, y)
    assert est.score(X, y) > 0.85


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda X, y: small().fit(X[:10], y[:9]), "10 rows but y has 9"),
        (lambda X, y: small().fit(X[:, 0], y), "2D array"),
        (lambda X, y: small().fit(X[:0], y[:0]), "0 sample"),
        (lambda X, y: small().fit(np.where(np.eye(150, 4) == 1, np.nan, X), y), "NaN.*observed"),
        (lambda X, y: small().fit(np.where(np.eye(150, 4) == 1, np.inf, X), y), "infinity"),
        (lambda X, y: small().fit(X, np.where(np.arange(150) == 3, np.nan, y)), "y contains NaN"),
        (lambda X, y: small().fit(X, y).predict(X[:, :3]), "3 features"),
        (lambda X, y: small(sparsity=1.0).fit(X, y), "sparsity must be in"),
        (lambda X, y: small(sparsity=None, epsilon=1000).fit(X, y), "lower epsilon"),
        (lambda X, y: small(algorithm="sett").fit(X, y), "unknown algorithm.*choose one of"),
        (lambda X, y: small(distribution="xx").fit(X, y), "unknown distribution"),
        (lambda X, y: small(activation="swish").fit(X, y), "unknown activation"),
        (lambda X, y: small(optimizer="rmsprop").fit(X, y), "unknown optimizer"),
        (lambda X, y: small(learning_rate=-1).fit(X, y), "learning_rate"),
        (lambda X, y: small(sparsity=None, epsilon=0).fit(X, y), "epsilon must be a positive number or None"),
        (lambda X, y: small(sparsity=None, epsilon="20").fit(X, y), "epsilon must be a positive number or None"),
        (lambda X, y: small(sparsity=True).fit(X, y), "sparsity must be in"),
        (lambda X, y: small(sparsity=None, distribution="erk").fit(X, y), "needs a global sparsity"),
    ],
)
def test_bad_input_gives_clear_errors(iris, make, match):
    X, y = iris
    with pytest.raises(ValueError, match=match):
        make(X, y)


def test_predict_before_fit(iris):
    with pytest.raises(NotFittedError):
        small().predict(iris[0])


def test_torch_backend_trains_like_numba(iris, monkeypatch):
    """The CUDA code path (torch.sparse) run on the CPU gives the same model."""
    X, y = iris
    a = small(algorithm="set", max_epochs=3).fit(X, y)
    original_init = layer_mod.SparseLinear.__init__

    def init_with_torch_backend(self, *args, **kw):
        original_init(self, *args, **kw)
        self.backend = "torch"

    monkeypatch.setattr(layer_mod.SparseLinear, "__init__", init_with_torch_backend)
    b = small(algorithm="set", max_epochs=3).fit(X, y)
    assert all(m.backend == "torch" for m in b.module_.modules() if isinstance(m, SparseLinear))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-4)


def test_unscaled_features_warn_once_per_fit_and_scaled_ones_do_not():
    import warnings

    import scipy.sparse as sp
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.preprocessing import StandardScaler

    from dualsparse.train import ScaleWarning

    X, y = load_breast_cancer(return_X_y=True)
    with pytest.warns(ScaleWarning, match=r"column 23 has standard deviation 569.*StandardScaler"):
        est = SparseMLPClassifier(max_epochs=1, random_state=0).fit(X, y)
    Xd, yd = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScaleWarning)
        est.partial_fit(X, y)  # continuing a fit: said once already
        SparseMLPClassifier(max_epochs=1, random_state=0).fit(StandardScaler().fit_transform(X), y)
        SparseMLPClassifier(max_epochs=1, random_state=0).fit(Xd, yd)  # pixels 0-16: std <= 6.5
        SparseMLPClassifier(max_epochs=1, random_state=0).fit(sp.csr_matrix(X), y)  # zeros mean absent


def test_a_fit_that_runs_out_of_epochs_while_improving_warns_as_scikit_learn_does():
    """The training-loss rule of sklearn's MLP: still improving by more than tol within the last
    n_iter_no_change epochs when max_epochs runs out -> ConvergenceWarning; plateaued -> none."""
    from sklearn.exceptions import ConvergenceWarning

    est = SparseMLPClassifier(n_iter_no_change=3, tol=0.01)
    est.early_stopping = False
    falling = [{"loss": 1.0 - 0.05 * i} for i in range(10)]
    flat = [{"loss": 1.0 - 0.05 * i} for i in range(6)] + [{"loss": 0.75 - 0.001 * i} for i in range(4)]
    with pytest.warns(ConvergenceWarning, match=r"max_epochs=100.*raise max_epochs"):
        est._warn_if_not_converged(falling)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est._warn_if_not_converged(flat)  # 4 epochs without a 0.01 gain > n_iter_no_change = 3

    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    with pytest.warns(ConvergenceWarning, match="training loss"):  # 84 + 76 weights learn slowly
        SparseMLPClassifier(sparsity=0.9, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        SparseMLPClassifier(early_stopping=True, random_state=0).fit(X, y)  # stopped by the rule
        SparseMLPClassifier(random_state=0).partial_fit(X, y, classes=np.unique(y))  # one epoch asked
