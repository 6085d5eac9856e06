"""GSE: growth by |gradient| among a uniform sample of absent positions, checked against the dense gradient."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits

from dualsparse import SparseMLPClassifier
from dualsparse.dst import GSE, RigL, SampledGradientGrow, algorithm_info
from dualsparse.dst.capture import LayerIOCapture
from dualsparse.dst.gse import sampled_gradient
from dualsparse.sparse import SparseLinear


def model_and_capture(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(SparseLinear(40, 25, density=0.2, random_state=seed), torch.nn.ReLU(),
                                SparseLinear(25, 4, density=0.5, random_state=seed + 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 40), torch.randint(0, 4, (16,))
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    with LayerIOCapture(model) as cap:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return model, optimizer, x, y, cap


def dense_gradient(model, x, y):
    """|dL/dW| of the first layer by autograd on its dense weight (the brute-force reference)."""
    layer = model[0]
    w = layer.to_dense().requires_grad_(True)
    h = torch.relu(torch.nn.functional.linear(x, w, layer.bias))
    torch.nn.functional.cross_entropy(model[2](h), y).backward()
    return w.grad.abs().flatten().numpy()


def test_sampled_gradient_is_the_dense_gradient_at_those_positions():
    model, _, x, y, cap = model_and_capture()
    layer = model[0]
    grad = dense_gradient(model, x, y)
    rows = np.random.default_rng(0).integers(0, 25, 300)
    cols = np.random.default_rng(1).integers(0, 40, 300)
    xb, g = cap.layer_io[layer]
    got = sampled_gradient(xb, g, rows, cols, chunk_elements=64)  # many chunks
    np.testing.assert_allclose(got, grad[rows * 40 + cols], rtol=1e-5, atol=1e-7)


def test_gse_grows_the_top_gradient_positions_of_its_uniform_sample():
    model, optimizer, x, y, cap = model_and_capture()
    layer = model[0]
    grad = dense_gradient(model, x, y)
    before = layer.keys()
    n_swap = round(0.3 * layer.nnz)
    # the sample GSE draws with this seed (its first random draws)
    rows, cols = SampledGradientGrow(1.0).candidates(layer, n_swap, np.random.default_rng(5))
    sample = rows.astype(np.int64) * 40 + cols
    assert sample.size == layer.nnz and not np.isin(sample, before).any()
    expected = np.sort(sample[np.argsort(-grad[sample], kind="stable")[:n_swap]])

    GSE(zeta=0.3, every=1, subset_fraction=1.0).update(model, optimizer, rng=5, context=cap)
    after = layer.keys()
    np.testing.assert_array_equal(np.sort(np.setdiff1d(after, before)), expected)
    assert layer.nnz == before.size


def test_sampling_every_absent_position_grows_rigls_set():
    grown = []
    for algo in (GSE(zeta=0.3, every=1, subset_fraction=100.0), RigL(zeta=0.3, every=1)):
        model, optimizer, x, y, cap = model_and_capture(3)
        before = model[0].keys()
        algo.update(model, optimizer, rng=0, context=cap)
        grown.append(np.setdiff1d(model[0].keys(), before))
    np.testing.assert_array_equal(*grown)


def test_sample_is_uniform_over_absent_positions():
    layer = SparseLinear(6, 5, density=0.3, random_state=0)
    present = layer.keys()
    counts = np.zeros(30)
    rule = SampledGradientGrow(0.5)
    rng = np.random.default_rng(0)
    for _ in range(3000):
        rows, cols = rule.candidates(layer, 2, rng)
        counts[rows * 6 + cols] += 1
    free = np.setdiff1d(np.arange(30), present)
    assert np.all(counts[present] == 0)
    expected = counts.sum() / free.size
    assert np.abs(counts[free] - expected).max() < 0.1 * expected


def test_registry_and_bad_input():
    info = algorithm_info("gse")
    assert info.needs_gradient and info.accepts("zeta") and info.accepts("subset_fraction")
    with pytest.raises(ValueError, match="subset_fraction"):
        GSE(subset_fraction=0)
    with pytest.raises(ValueError, match="every N optimiser steps"):
        GSE(every="epoch")
    model, optimizer, *_ = model_and_capture()
    with pytest.raises(RuntimeError, match="LayerIOCapture"):
        GSE(every=1).update(model, optimizer, rng=0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("sparse_input", [False, True])
def test_gse_through_the_estimator_is_reproducible(optimizer, sparse_input, topology_log):
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16, y[:400]
    if sparse_input:
        X = sp.csr_matrix(X)
    runs = []
    for _ in range(2):
        updates = topology_log()
        est = SparseMLPClassifier(hidden_layer_sizes=(48,), algorithm="gse", zeta=0.3, sparsity=0.8,
                                  optimizer=optimizer, learning_rate=0.1 if optimizer == "sgd" else 0.01,
                                  max_epochs=5, batch_size=16, callbacks=[updates], random_state=7).fit(X, y)
        runs.append((est, updates))
    (a, ua), (b, _) = runs
    assert len(ua.infos) >= 1 and all(sum(d["grown"] for d in info) > 0 for info in ua.infos)
    assert a.density_["nnz"] == b.density_["nnz"]
    np.testing.assert_array_equal(a.module_[0].keys(), b.module_[0].keys())
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.score(X, y) > 0.5
