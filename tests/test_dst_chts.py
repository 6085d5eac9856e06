"""CHTs: CH2-L3n link prediction, soft removal and sampled regrowth, checked against dense references."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits

from dualsparse import SparseMLPClassifier
from dualsparse.dst import CHTs, algorithm_info
from dualsparse.dst.chts import CH2L3n, _chain_removal, ch2_l3n_scores, sample_growth, soft_keep
from dualsparse.sparse import SparseLinear


def authors_ch2_l3n(mask: torch.Tensor) -> torch.Tensor:
    """The CH2_L3n score as the authors' dst_scheduler.py writes it, on a dense 0/1 (out x in) mask."""
    DT = mask.double()
    TD = DT.T
    DD, TT = DT @ TD, TD @ DT
    BDD, BTT = (DD != 0).double(), (TT != 0).double()
    elcl_DT = (DT.sum(1) - DD) * BDD  # broadcasting: [u, v] = deg(v) - cn(u, v)
    elcl_TD = (TD.sum(1) - TT) * BTT
    elcl_DT[elcl_DT == 0] = 1
    elcl_TD[elcl_TD == 0] = 1
    elcl_DT -= 1
    elcl_TD -= 1
    elcl_DT = 1 / (elcl_DT + 1) * (DD + BDD)
    elcl_TD = 1 / (elcl_TD + 1) * (TT + BTT)
    scores = elcl_DT @ DT + (elcl_TD @ TD).T
    return scores * (mask == 0)


def random_mask(n_out, n_in, density, seed):
    rng = np.random.default_rng(seed)
    return rng.random((n_out, n_in)) < density


def inclusion_probabilities(weights, n):
    """Exact P(i drawn) for n sequential draws without replacement with P ∝ weights (brute force)."""
    weights = np.asarray(weights, dtype=float)
    p = np.zeros(weights.size)
    for seq in itertools.permutations(np.flatnonzero(weights > 0), n):
        prob, left = 1.0, weights.sum()
        for i in seq:
            prob *= weights[i] / left
            left -= weights[i]
        p[list(seq)] += prob
    return p


@pytest.mark.parametrize("density", [0.08, 0.2, 0.5])
def test_ch2_l3n_scores_equal_the_authors_dense_formula(density):
    mask = random_mask(20, 30, density, seed=int(density * 100))
    expected = authors_ch2_l3n(torch.from_numpy(mask)).numpy()
    got = ch2_l3n_scores(sp.csr_matrix(mask.astype(float))).toarray()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # the same scores block by block (rows of 2 inputs' worth of elements at a time)
    scorer = CH2L3n(sp.csr_matrix(mask.astype(float)), block_elements=60)
    stacked = sp.vstack([block for _, _, block in scorer.blocks()]).toarray()
    np.testing.assert_allclose(stacked, expected, rtol=1e-12, atol=1e-12)


def test_soft_removal_keeps_with_probability_proportional_to_magnitude_power():
    magnitude = np.array([0.1, 0.5, 1.0, 0.3, 0.0, 0.8])
    rng = np.random.default_rng(0)
    runs = 20000
    counts = np.zeros(magnitude.size)
    for _ in range(runs):
        counts += soft_keep(magnitude, 2, 2.0, rng)
    expected = inclusion_probabilities(magnitude ** 2.0, 2)
    assert counts[4] == 0  # a zero weight is never kept while others can be
    np.testing.assert_allclose(counts / runs, expected, atol=0.012)


def test_growth_is_drawn_proportionally_to_the_scores():
    mask = random_mask(6, 7, 0.3, seed=1)
    scorer = CH2L3n(sp.csr_matrix(mask.astype(float)))
    scores = authors_ch2_l3n(torch.from_numpy(mask)).numpy().ravel()
    assert (scores > 0).sum() >= 3
    rng = np.random.default_rng(0)
    runs = 6000
    counts = np.zeros(scores.size)
    for _ in range(runs):
        counts[sample_growth(scorer, 2, rng)] += 1
    assert counts[scores == 0].sum() == 0  # enough scored candidates: no zero-scored growth
    np.testing.assert_allclose(counts / runs, inclusion_probabilities(scores, 2), atol=0.025)


def test_too_few_scored_candidates_fall_back_to_the_authors_eps_weights():
    mask = np.zeros((4, 5), dtype=bool)
    mask[0, 0] = mask[0, 1] = mask[1, 0] = True  # one length-3 path family: (1, 1) is the only scored pair
    scores = authors_ch2_l3n(torch.from_numpy(mask)).numpy().ravel()
    assert (scores > 0).sum() == 1
    scorer = CH2L3n(sp.csr_matrix(mask.astype(float)))
    eps = 0.5  # large, so the zero-scored positions' share is measurable
    rng = np.random.default_rng(1)
    runs = 6000
    counts = np.zeros(scores.size)
    for _ in range(runs):
        got = sample_growth(scorer, 3, rng, eps=eps)
        assert got.size == 3 and not np.isin(got, np.flatnonzero(mask.ravel())).any()
        counts[got] += 1
    weights = np.where(mask.ravel(), 0.0, scores + eps)
    np.testing.assert_allclose(counts / runs, inclusion_probabilities(weights, 3), atol=0.025)


def chain_reference(masks, keeps):
    """The authors' chain removal on dense 0/1 keep masks (out x in), last layer back then forward."""
    keeps = [k.copy() for k in keeps]
    for i in reversed(range(len(keeps) - 1)):
        keeps[i] &= (keeps[i + 1].sum(axis=0) > 0)[:, None]
    for i in range(1, len(keeps)):
        keeps[i] &= (keeps[i - 1].sum(axis=1) > 0)[None, :]
    return keeps


def three_layer_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(SparseLinear(12, 10, density=0.15, random_state=0), torch.nn.ReLU(),
                                SparseLinear(10, 8, density=0.15, random_state=1), torch.nn.ReLU(),
                                SparseLinear(8, 3, density=0.4, random_state=2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 12), torch.randint(0, 3, (16,))
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer


def dense_mask(layer):
    m = np.zeros(layer.out_features * layer.in_features, dtype=bool)
    m[layer.keys()] = True
    return m.reshape(layer.out_features, layer.in_features)


def test_chain_removal_equals_the_authors_rule_on_dense_masks():
    model, _ = three_layer_model()
    layers = [model[0], model[2], model[4]]
    rng = np.random.default_rng(4)
    for _ in range(20):
        keeps = [rng.random(l.nnz) < 0.5 for l in layers]
        dense = []
        for layer, keep in zip(layers, keeps):
            d = np.zeros(layer.out_features * layer.in_features, dtype=bool)
            d[layer.keys()[keep]] = True
            dense.append(d.reshape(layer.out_features, layer.in_features))
        patterns = [(l.row_ptr.numpy(), l.col_idx.numpy()) for l in layers]
        _chain_removal(layers, patterns, keeps)
        for layer, keep, want in zip(layers, keeps, chain_reference(None, dense)):
            np.testing.assert_array_equal(want.ravel()[layer.keys()], keep)


def test_chts_update_removes_by_magnitude_then_chain_and_regrows_scored_links():
    model, optimizer = three_layer_model()
    layers = [model[0], model[2], model[4]]
    masks = [dense_mask(l) for l in layers]
    weights = [l.to_dense().abs().numpy() for l in layers]
    values = [l.values.detach().clone().numpy() for l in layers]
    keys = [l.keys() for l in layers]
    keeps = []
    for layer, mask, w in zip(layers, masks, weights):
        n_swap = round(0.3 * layer.nnz)
        live = np.flatnonzero(mask.ravel())
        keep = np.zeros(mask.size, dtype=bool)
        keep[live[np.argsort(w.ravel()[live], kind="stable")[n_swap:]]] = True
        keeps.append(keep.reshape(mask.shape))
    keeps = chain_reference(masks, keeps)
    removed = sum((m & ~k).sum() for m, k in zip(masks, keeps))
    assert removed > sum(round(0.3 * l.nnz) for l in layers)  # chain removal took some more

    info = CHTs(zeta=0.3, soft_removal=False).update(model, optimizer, rng=0)
    for layer, mask, keep, vals, old_keys, d in zip(layers, masks, keeps, values, keys, info):
        after = dense_mask(layer)
        assert layer.nnz == mask.sum()
        assert np.all(after[keep])  # every kept link is still there
        regrown = after & ~keep
        scores = authors_ch2_l3n(torch.from_numpy(keep)).numpy()
        n_grow = (mask & ~keep).sum()
        if (scores > 0).sum() >= n_grow:
            assert np.all(scores[regrown] > 0)  # links are predicted, never placed at random
        new_keys = layer.keys()
        was = np.isin(new_keys, old_keys)
        old_pos = np.searchsorted(old_keys, new_keys[was])
        np.testing.assert_array_equal(layer.values.detach().numpy()[was], vals[old_pos])
        assert np.all(layer.values.detach().numpy()[~was] == 0)
        assert np.all(optimizer.state[layer.values]["momentum_buffer"].numpy()[~was] == 0)
        assert d["grown"] == (~was).sum()


def test_temperature_rises_to_the_end_and_registry_and_bad_input():
    algo = CHTs(end=10)
    assert algo.temperature(0, 0) == 1.0 and algo.temperature(5, 0) == 2.0 and algo.temperature(20, 0) == 3.0
    assert CHTs().temperature(7, 0) == 1.0
    info = algorithm_info("chts")
    assert not info.needs_gradient and info.accepts("zeta") and info.display_name.startswith("CHTs")
    with pytest.raises(ValueError, match="temperature_start"):
        CHTs(temperature_start=-1)
    with pytest.raises(ValueError, match="zeta"):
        CHTs(zeta=1.2)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("sparse_input", [False, True])
def test_chts_through_the_estimator_is_reproducible(optimizer, sparse_input):
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16, y[:400]
    if sparse_input:
        X = sp.csr_matrix(X)
    fits = [SparseMLPClassifier(hidden_layer_sizes=(48, 48), algorithm="chts", zeta=0.3, sparsity=0.8,
                                optimizer=optimizer, learning_rate=0.1 if optimizer == "sgd" else 0.01,
                                max_epochs=4, random_state=3).fit(X, y) for _ in range(2)]
    a, b = fits
    updates = [h["topology"] for h in a.history_ if "topology" in h]
    assert len(updates) == 3 and all(sum(d["grown"] for d in u) > 0 for u in updates)
    assert a.density_["nnz"] == b.density_["nnz"]
    for la, lb in zip(a.module_[0::2], b.module_[0::2]):
        np.testing.assert_array_equal(la.keys(), lb.keys())
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.score(X, y) > 0.5
