"""SRigL: constant fan-in RigL with unit ablation, checked against the rule written densely."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits

from dualsparse import SparseMLPClassifier
from dualsparse.dst import SRigL, algorithm_info, make_algorithm
from dualsparse.sparse import SparseLinear


class Captured:
    """A hand-made capture: what LayerIOCapture records, with gradients chosen by the test."""

    def __init__(self, layer_io):
        self.layer_io = layer_io


def srigl_reference(weight, mask, grad, n_swap, gamma_sal, ablate):
    """The SRigL update of one layer on dense arrays (authors' rule; no ties in the data)."""
    n_out, n_in = mask.shape
    live = np.flatnonzero(mask.ravel())  # row-major = CSR order
    nnz = live.size
    flat_w = np.abs(weight.ravel())
    kept = np.zeros(mask.size, dtype=bool)
    kept[live[np.argsort(flat_w[live], kind="stable")[n_swap:]]] = True
    grad_salient = np.zeros(mask.size, dtype=bool)
    grad_salient[np.argsort(-np.abs(grad.ravel()), kind="stable")[:n_swap]] = True
    salient = (kept | grad_salient).reshape(n_out, n_in).sum(axis=1)
    ablated = np.zeros(n_out, dtype=bool)
    if ablate and gamma_sal > 0:
        threshold = max(1, int(gamma_sal * (nnz // n_out)))
        ranked = sorted(salient, reverse=True)
        if ranked[nnz // n_in] < threshold:
            threshold = ranked[nnz // n_in]
        ablated = salient < threshold
    active = np.flatnonzero(~ablated)
    k, extra = divmod(nnz, active.size)
    fan_in = np.zeros(n_out, dtype=int)
    fan_in[active] = k
    for i in sorted(active, key=lambda i: (-salient[i], i))[:extra]:
        fan_in[i] += 1
    live_active = live[~ablated[live // n_in]]  # the n_keep largest |w| among the active units stay
    kept = np.zeros(mask.size, dtype=bool)
    kept[live_active[np.argsort(flat_w[live_active], kind="stable")[max(0, live_active.size - (nnz - n_swap)):]]] = True
    kept = kept.reshape(n_out, n_in)
    new = np.zeros((n_out, n_in), dtype=bool)
    for i in range(n_out):
        cols = np.flatnonzero(kept[i])
        if cols.size > fan_in[i]:  # the largest |w| stay (first stored lose ties)
            cols = cols[np.argsort(np.abs(weight[i, cols]), kind="stable")[cols.size - fan_in[i]:]]
        new[i, cols] = True
        candidates = np.flatnonzero(~new[i])
        need = fan_in[i] - cols.size
        new[i, candidates[np.argsort(-np.abs(grad[i, candidates]), kind="stable")[:need]]] = True
    return new, ablated, fan_in


def mask_of(layer):
    mask = np.zeros(layer.out_features * layer.in_features, dtype=bool)
    mask[layer.keys()] = True
    return mask.reshape(layer.out_features, layer.in_features)


def two_layer_model(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(SparseLinear(30, 20, density=0.25, random_state=seed), torch.nn.ReLU(),
                                SparseLinear(20, 6, density=0.5, random_state=seed + 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 30), torch.randint(0, 6, (16,))
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer


def test_srigl_update_matches_the_dense_rule_with_ablation():
    model, optimizer = two_layer_model()
    first, last = model[0], model[2]
    with torch.no_grad():  # three units with one strong weight, the rest and their gradients negligible:
        first.values[(first.row_indices() < 3)] *= 1e-4  # one salient weight each, to be ablated
        first.values[first.row_ptr[:3]] = 5.0
    gen = torch.Generator().manual_seed(3)
    x0, g0 = torch.randn(8, 30, generator=gen), torch.randn(8, 20, generator=gen)
    g0[:, :3] *= 1e-4
    x1, g1 = torch.randn(8, 20, generator=gen), torch.randn(8, 6, generator=gen)
    context = Captured({first: (x0, g0), last: (x1, g1)})
    before = {}
    for name, layer, (x, g) in (("first", first, (x0, g0)), ("last", last, (x1, g1))):
        before[name] = (layer.to_dense().numpy(), mask_of(layer), (g.T @ x).abs().numpy(),
                        layer.keys(), layer.values.detach().clone().numpy(),
                        optimizer.state[layer.values]["momentum_buffer"].clone().numpy())
    algo = SRigL(zeta=0.3, every=1, gamma_sal=0.3)
    info = algo.update(model, optimizer, rng=0, context=context)

    for index, (name, layer) in enumerate((("first", first), ("last", last))):
        weight, mask, grad, keys, values, momentum = before[name]
        n_swap = round(0.3 * mask.sum())
        expected, ablated, fan_in = srigl_reference(weight, mask, grad, n_swap, 0.3, ablate=name == "first")
        np.testing.assert_array_equal(mask_of(layer), expected)
        assert layer.nnz == mask.sum() and info[index]["ablated"] == ablated.sum()
        np.testing.assert_array_equal(np.diff(layer.row_ptr.numpy()), fan_in)
        # survivors (including a dropped-and-regrown one) keep value and momentum; new ones start at 0
        new_keys = layer.keys()
        was = np.isin(new_keys, keys)
        old_pos = np.searchsorted(keys, new_keys[was])
        np.testing.assert_array_equal(layer.values.detach().numpy()[was], values[old_pos])
        state = optimizer.state[layer.values]["momentum_buffer"].numpy()
        np.testing.assert_array_equal(state[was], momentum[old_pos])
        assert np.all(layer.values.detach().numpy()[~was] == 0) and np.all(state[~was] == 0)
    assert info[0]["ablated"] >= 3  # the scenario exercises ablation...
    assert info[1]["ablated"] == 0  # ...which never touches the output layer
    np.testing.assert_array_equal(np.diff(first.row_ptr.numpy())[:3], 0)


def test_without_ablation_every_unit_gets_the_same_fan_in():
    model, optimizer = two_layer_model(1)
    layer = model[0]
    gen = torch.Generator().manual_seed(0)
    context = Captured({m: (torch.randn(8, m.in_features, generator=gen), torch.randn(8, m.out_features, generator=gen))
                        for m in (model[0], model[2])})
    nnz = layer.nnz
    SRigL(zeta=0.3, every=1, gamma_sal=0.0).update(model, optimizer, rng=0, context=context)
    fan_in = np.diff(layer.row_ptr.numpy())
    k, extra = divmod(nnz, layer.out_features)
    assert layer.nnz == nnz and set(fan_in) <= {k, k + 1} and (fan_in == k + 1).sum() == extra


def test_zero_gradient_units_grow_at_random_columns_not_the_first():
    grown_cols = set()
    for seed in range(6):
        model, optimizer = two_layer_model(2)
        layer = model[0]
        x, g = torch.randn(8, 30), torch.zeros(8, 20)  # no gradient anywhere: every growth is a tie
        context = Captured({layer: (x, g), model[2]: (torch.randn(8, 20), torch.randn(8, 6))})
        before = layer.keys()
        SRigL(zeta=0.3, every=1, gamma_sal=0.0).update(model, optimizer, rng=seed, context=context)
        new = np.setdiff1d(layer.keys(), before)
        grown_cols |= set((new % 30).tolist())
    assert len(grown_cols) > 20  # ties are drawn over the whole row, not taken from its first columns


def test_registry_and_bad_input():
    info = algorithm_info("srigl")
    assert info.needs_gradient and info.accepts("zeta") and info.accepts("gamma_sal")
    assert isinstance(make_algorithm("srigl", gamma_sal=0.5), SRigL)
    with pytest.raises(ValueError, match="gamma_sal"):
        SRigL(gamma_sal=1.5)
    with pytest.raises(ValueError, match="every N optimiser steps"):
        SRigL(every="epoch")
    model, optimizer = two_layer_model()
    with pytest.raises(RuntimeError, match="LayerIOCapture"):
        SRigL(every=1).update(model, optimizer, rng=0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("sparse_input", [False, True])
def test_srigl_through_the_estimator_is_reproducible(optimizer, sparse_input, topology_log):
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16, y[:400]
    if sparse_input:
        X = sp.csr_matrix(X)
    runs = []
    for _ in range(2):
        updates = topology_log()
        est = SparseMLPClassifier(hidden_layer_sizes=(48,), algorithm=SRigL(zeta=0.3, every=6), sparsity=0.8,
                                  optimizer=optimizer, learning_rate=0.1 if optimizer == "sgd" else 0.01,
                                  max_epochs=3, batch_size=32, callbacks=[updates],
                                  random_state=7).fit(X, y)
        runs.append((est, updates))
    (a, ua), (b, ub) = runs
    assert len(ua.infos) >= 5 and all(sum(d["grown"] for d in info) > 0 for info in ua.infos)
    hidden = a.module_[0]
    fan_in = np.diff(hidden.row_ptr.numpy())
    active = fan_in[fan_in > 0]
    assert active.max() - active.min() <= 1  # one fan-in (up to the remainder unit) per active unit
    assert a.density_["nnz"] == b.density_["nnz"]
    np.testing.assert_array_equal(hidden.keys(), b.module_[0].keys())
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.score(X, y) > 0.5
