"""Data-aware topology (set-observed), input importance, and FLOPs that follow the observed data."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from dualsparse import SparseMLPClassifier
from dualsparse.data import ampute, load_dataset, make_representation
from dualsparse.dst import ObservedSET, observed_frequency
from dualsparse.sparse import SparseLinear


def test_observed_frequency_brute_force():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    X[rng.random(X.shape) < 0.4] = 0
    expected = np.array([(X[:, j] != 0).mean() for j in range(6)])
    np.testing.assert_allclose(observed_frequency(X), expected)
    np.testing.assert_allclose(observed_frequency(sp.csr_matrix(X)), expected)


def test_observed_set_grows_from_observed_and_drops_unobserved_inputs():
    layer = SparseLinear(40, 50, density=0.1, random_state=0)
    model = torch.nn.Sequential(layer)
    freq = np.full(40, 0.01)
    freq[:5] = 1.0
    algo = ObservedSET(zeta=0.3, grow_power=1.0, drop_power=1.0)
    algo.drop.frequency = algo.grow.frequency = freq
    before = layer.keys()
    before_cols = before % 40
    algo.update(model, None, rng=0)
    after = layer.keys()
    grown = after[~np.isin(after, before)]
    dropped = before[~np.isin(before, after)]
    assert (grown % 40 < 5).mean() > 0.8  # ~5 / (5 + 35 * 0.01) = 93 % expected
    # drops hit rarely observed inputs far more than their share of connections
    assert (dropped % 40 >= 5).mean() >= (before_cols >= 5).mean()
    assert layer.nnz == before.size


def test_set_observed_trains_on_observed_representation_and_ranks_inputs():
    ds = load_dataset("breast_cancer")
    X, _ = ampute(ds.X, "mcar", 0.3, random_state=0)
    Xs = make_representation("observed").fit_transform(X)
    est = SparseMLPClassifier(hidden_layer_sizes=(64,), algorithm="set-observed", epsilon=5, max_epochs=15,
                              random_state=0, learning_rate=0.005).fit(Xs, ds.y)
    assert est.score(Xs, ds.y) > 0.9
    imp = est.feature_importances_
    first = next(m for m in est.module_.modules() if isinstance(m, SparseLinear))
    brute = np.zeros(30)
    np.add.at(brute, first.col_idx.numpy(), np.abs(first.values.detach().numpy()))
    np.testing.assert_allclose(imp, brute / brute.sum(), rtol=1e-5)


@pytest.mark.parametrize("rate", [0.3, 0.6])
def test_first_layer_flops_fall_with_the_observed_fraction(rate):
    ds = load_dataset("breast_cancer")
    params = dict(hidden_layer_sizes=(200,), algorithm="static", epsilon=10, max_epochs=1, random_state=0)
    full = make_representation("observed").fit_transform(ds.X)
    X_missing, _ = ampute(ds.X, "mcar", rate, random_state=1)
    part = make_representation("observed").fit_transform(X_missing)
    est_full = SparseMLPClassifier(**params).fit(full, ds.y)
    est_part = SparseMLPClassifier(**params).fit(part, ds.y)
    first = next(m for m in est_full.module_.modules() if isinstance(m, SparseLinear))
    saved = est_full.flops_["inference_per_sample"] - est_part.flops_["inference_per_sample"]
    fraction_saved = saved / (2 * first.nnz)
    assert fraction_saved == pytest.approx(rate, abs=0.05)
    assert est_part.flops_["train"] < est_full.flops_["train"]
