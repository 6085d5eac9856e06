"""The NeuMiss block (train/neumiss.py) and the estimators' missing_block option."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from dualsparse import SparseMLPClassifier, SparseMLPRegressor
from dualsparse.sparse import SparseLinear
from dualsparse.train.neumiss import NeuMissBlock


def _incomplete(n=80, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    X[rng.random(X.shape) < 0.25] = np.nan
    return X, y


@pytest.mark.parametrize("sparse", [True, False])
def test_block_is_the_neumann_series_written_out_densely(sparse):
    """h0 = o (x - mu); h_k = o (W h_{k-1}) + h0; out = [h_depth, 1 - o], against NumPy on the dense W."""
    X, _ = _incomplete(n=7, d=5)
    block = NeuMissBlock(5, depth=3, density=0.6, sparse=sparse, random_state=1)
    with torch.no_grad():
        block.mu.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0, 0.5]))
    W = (block.W.to_dense() if sparse else block.W.weight).detach().numpy().astype(np.float64)
    o = (~np.isnan(X)).astype(np.float64)
    h0 = o * (np.nan_to_num(X.astype(np.float64)) - block.mu.detach().numpy())
    h = h0
    for _ in range(3):
        h = o * (h @ W.T) + h0
    expected = np.hstack([h, 1 - o])
    out = block(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert np.isfinite(out).all()


def test_gradients_reach_mu_and_w_and_are_finite_with_nan_inputs():
    X, _ = _incomplete(n=9, d=4)
    block = NeuMissBlock(4, depth=2, density=1.0, random_state=0)
    block(torch.from_numpy(X)).sum().backward()
    assert torch.isfinite(block.mu.grad).all() and block.mu.grad.abs().sum() > 0
    assert torch.isfinite(block.W.values.grad).all() and block.W.values.grad.abs().sum() > 0


@pytest.mark.parametrize("algorithm", ["set", "dense", "rigl"])
def test_estimator_fits_nan_input_reproducibly(algorithm):
    X, y = _incomplete()
    kw = dict(hidden_layer_sizes=(16,), missing_block="neumiss", max_epochs=200, random_state=0, algorithm=algorithm)
    if algorithm != "dense":
        kw["sparsity"] = 0.5
    a = SparseMLPClassifier(**kw).fit(X, y)
    b = SparseMLPClassifier(**kw).fit(X, y)
    assert isinstance(a.module_[0], NeuMissBlock)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.isfinite(a.predict_proba(X)).all()
    assert a.score(X, y) > 0.8
    assert len(a.density_["layers"]) == 3  # W (6 x 6), then 12 -> 16 -> 2
    assert a.density_["dense_weights"][:2] == [36, 12 * 16]


def test_set_evolves_the_block_weights_too():
    X, y = _incomplete(n=120, d=8)
    est = SparseMLPClassifier(hidden_layer_sizes=(16,), sparsity=0.5, missing_block="neumiss", max_epochs=3,
                              random_state=0).fit(X, y)
    W = est.module_[0].W
    assert isinstance(W, SparseLinear) and W.nnz < 64
    update = est.history_[0]["topology"][0]  # the first layer an update visits is the block's W
    assert update["grown"] > 0 and update["nnz"] == W.nnz == est.density_["nnz"][0]


def test_flops_count_every_application_of_w():
    """Brute force: one epoch, one batch; W (no bias) is applied depth times, each with value and
    input gradients; the MLP after it on [h, mask] counts as a layer with an input upstream."""
    X, y = _incomplete(n=20, d=5)
    depth = 3
    est = SparseMLPClassifier(hidden_layer_sizes=(8,), sparsity=0.5, missing_block="neumiss", neumiss_depth=depth,
                              max_epochs=1, batch_size=20, random_state=0).fit(X, y)
    W, first, last = est.module_[0].W, est.module_[1], est.module_[3]
    n = 20
    w_cost = depth * (2 * W.nnz * n + 4 * W.nnz * n)
    first_cost = 2 * first.nnz * n + 8 * n + 4 * first.nnz * n
    last_cost = 2 * last.nnz * n + 2 * n + 4 * last.nnz * n
    assert est.flops_["train"] == w_cost + first_cost + last_cost
    dense = depth * 6 * 25 * n + (2 * 80 * n + 8 * n + 4 * 80 * n) + (2 * 16 * n + 2 * n + 4 * 16 * n)
    assert est.flops_["train_dense"] == dense
    inference = depth * 2 * W.nnz + (2 * first.nnz + 8) + (2 * last.nnz + 2)
    assert est.flops_["inference_per_sample"] == pytest.approx(inference)


def test_regressor_takes_the_block_too():
    X, y = _incomplete()
    est = SparseMLPRegressor(hidden_layer_sizes=(8,), missing_block="neumiss", max_epochs=3, random_state=0)
    assert np.isfinite(est.fit(X, y.astype(float)).predict(X)).all()


def test_bad_input_names_the_fix():
    X, y = _incomplete()
    with pytest.raises(ValueError, match="missing_block must be None or one of 'neumiss'"):
        SparseMLPClassifier(missing_block="neumis").fit(X, y)
    with pytest.raises(ValueError, match="neumiss_depth must be a positive integer"):
        SparseMLPClassifier(missing_block="neumiss", neumiss_depth=0).fit(X, y)
    with pytest.raises(ValueError, match="contains NaN"):  # without the block, NaN is still refused
        SparseMLPClassifier(max_epochs=1).fit(X, y)
    Xi = X.copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity is not one"):
        SparseMLPClassifier(missing_block="neumiss", max_epochs=1).fit(Xi, y)
    with pytest.raises(ValueError, match="native-nan"):
        SparseMLPClassifier(missing_block="neumiss", max_epochs=1).fit(sp.csr_matrix(np.nan_to_num(X)), y)


def test_allow_nan_tag_follows_the_option():
    assert not SparseMLPClassifier().__sklearn_tags__().input_tags.allow_nan
    assert SparseMLPClassifier(missing_block="neumiss").__sklearn_tags__().input_tags.allow_nan


def test_a_config_runs_the_block_on_native_nan(tmp_path):
    import textwrap

    from dualsparse.experiments import ResultsStore, loads_config, run_sweep

    cfg = loads_config(textwrap.dedent("""
        [experiment]
        name = "neumiss"
        seeds = 1
        [data]
        datasets = ["breast_cancer"]
        [missingness]
        mechanisms = ["mnar"]
        rates = [0.3]
        apply_to = "both"
        [representations]
        names = ["observed", "native-nan"]
        [models]
        names = ["set"]
        sparsities = [0.5]
        [mlp]
        hidden_layer_sizes = [8]
        max_epochs = 3
        missing_block = "neumiss"
    """))
    with ResultsStore(tmp_path / "r.sqlite") as store:
        summary = run_sweep(cfg, store, quiet=True)
        assert (summary.ran, summary.failed) == (2, 0)
        rows = {r["representation"]: r for r in store.rows()}
    assert rows["native-nan"]["accuracy"] > 0.6 and rows["observed"]["accuracy"] > 0.6
    assert rows["native-nan"]["n_features"] == rows["observed"]["n_features"] == 30
