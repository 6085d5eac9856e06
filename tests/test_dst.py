"""Topology evolution: SET and RigL semantics, exact nnz, optimiser-state reset."""

import numpy as np
import pytest
import torch

from dualsparse.dst import SET, RigL, Schedule, Static, make_algorithm
from dualsparse.dst.capture import LayerIOCapture
from dualsparse.sparse import SparseLinear
from dualsparse.sparse.topology import random_keys, sample_absent


def model_and_optimizer(opt="sgd"):
    torch.manual_seed(0)
    model = torch.nn.Sequential(SparseLinear(40, 30, density=0.2, random_state=0), torch.nn.ReLU(),
                                SparseLinear(30, 4, density=0.5, random_state=1))
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt == "sgd"
                 else torch.optim.Adam(model.parameters(), lr=0.01))
    x, y = torch.randn(16, 40), torch.randint(0, 4, (16,))
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer, x, y


@pytest.mark.parametrize("opt, state_key", [("sgd", "momentum_buffer"), ("adam", "exp_avg")])
def test_set_drops_smallest_grows_new_and_resets_state(opt, state_key):
    model, optimizer, _, _ = model_and_optimizer(opt)
    layer = model[0]
    before_keys = layer.keys()
    before_vals = layer.values.detach().clone().numpy()
    before_state = optimizer.state[layer.values][state_key].clone().numpy()
    nnz = layer.nnz
    n_swap = round(0.3 * nnz)

    info = SET(zeta=0.3).update(model, optimizer, rng=0)

    assert layer.nnz == nnz and info[0]["dropped"] == info[0]["grown"] == n_swap
    after_keys = layer.keys()
    survivors = np.isin(before_keys, after_keys)
    # exactly the n_swap smallest magnitudes were dropped
    assert (~survivors).sum() == n_swap
    assert np.abs(before_vals[~survivors]).max() <= np.abs(before_vals[survivors]).min()
    # grown positions were all absent before
    grown = ~np.isin(after_keys, before_keys)
    assert grown.sum() == n_swap
    state = optimizer.state[layer.values][state_key].numpy()
    assert np.all(state[grown] == 0)
    kept_positions = np.searchsorted(before_keys, after_keys[~grown])
    np.testing.assert_array_equal(state[~grown], before_state[kept_positions])
    np.testing.assert_array_equal(layer.values.detach().numpy()[~grown], before_vals[kept_positions])
    # training continues with the same parameter object in the optimiser
    assert any(p is layer.values for g in optimizer.param_groups for p in g["params"])


def test_static_and_zero_zeta_never_change_topology():
    model, optimizer, _, _ = model_and_optimizer()
    keys = model[0].keys()
    assert not Static().evolves
    assert Static().due(0, 1, True) is False
    Static().update(model, optimizer, rng=0)
    assert np.array_equal(keys, model[0].keys())


def test_rigl_grows_where_dense_gradient_is_largest():
    model, optimizer, x, y = model_and_optimizer()
    layer = model[0]
    with LayerIOCapture(model) as cap:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    # brute-force dense gradient of the first layer
    w = layer.to_dense().requires_grad_(True)
    h = torch.relu(torch.nn.functional.linear(x, w, layer.bias))
    torch.nn.functional.cross_entropy(model[2](h), y).backward()
    dense_grad = w.grad.abs().flatten().numpy()
    before = layer.keys()
    dense_grad[before] = -1
    n_swap = round(0.3 * layer.nnz)
    expected = np.sort(np.argsort(-dense_grad, kind="stable")[:n_swap])

    RigL(zeta=0.3, every=1).update(model, optimizer, rng=0, context=cap)
    after = layer.keys()
    grown = np.sort(after[~np.isin(after, before)])
    # top-|grad| absent positions (ties at the boundary aside)
    assert np.isin(grown, expected).mean() > 0.95
    zero_init = layer.values.detach().numpy()[~np.isin(after, before)]
    assert np.all(zero_init == 0)


def test_sample_absent_is_uniform_and_avoids_present():
    rng = np.random.default_rng(0)
    present = np.array([0, 3, 7, 8, 19], dtype=np.int64)
    counts = np.zeros(20)
    for _ in range(3000):
        s = sample_absent(20, present, 5, rng)
        assert np.unique(s).size == 5 and not np.isin(s, present).any()
        counts[s] += 1
    free = np.setdiff1d(np.arange(20), present)
    expected = 3000 * 5 / free.size
    assert np.all(counts[present] == 0)
    assert np.abs(counts[free] - expected).max() < 0.1 * expected


def test_random_keys_exact_and_dense_fallback():
    rng = np.random.default_rng(1)
    k = random_keys(30, 20, 550, rng)  # > half full: complement branch
    assert k.size == 550 and np.unique(k).size == 550 and k.max() < 600
    with pytest.raises(ValueError, match="only"):
        sample_absent(10, np.arange(8), 3, rng)


def test_schedule_and_registry():
    s = Schedule(0.3, every=10, decay="cosine", end=100)
    assert s.due(0, 10, False) and not s.due(0, 11, False) and not s.due(0, 110, False)
    assert s.fraction(0, 0) == pytest.approx(0.3) and s.fraction(0, 100) == pytest.approx(0.0)
    assert isinstance(make_algorithm("set", zeta=0.2), SET)
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_algorithm("sett")
    with pytest.raises(ValueError, match="zeta"):
        SET(zeta=1.5)


def test_auto_interval_is_rigls_100_steps_or_one_epoch():
    s = Schedule(0.3, every="auto")
    assert s.interval == 100  # unresolved (a plain-PyTorch loop): RigL's ΔT
    s.fit_to(500)
    assert s.due(0, 100, False) and not s.due(0, 150, False)
    s.fit_to(7)  # once per epoch, halfway through (step 3 of 7), from the second epoch on
    assert [t for t in range(1, 29) if s.due(t // 7, t, False)] == [10, 17, 24]
    with pytest.raises(ValueError, match="'auto'"):
        Schedule(0.3, every="often")


@pytest.mark.parametrize("every, expected", [("auto", 9), (100, 0), (3, 10)])
def test_rigl_default_updates_on_small_tables(every, expected):
    """Hepatitis-sized fit (90 rows, batch 32: 3 steps per epoch, 10 epochs): RigL's default
    updates once per epoch; a fixed 100-step interval never fires, leaving a static network."""
    from dualsparse import SparseMLPClassifier
    from dualsparse.train.callbacks import Callback

    class Count(Callback):
        on_batch_end_reads_model = False
        n = 0

        def on_topology_update(self, est, epoch, info):
            self.n += 1

    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 12)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    count = Count()
    options = None if every == "auto" else {"every": every}
    SparseMLPClassifier(algorithm="rigl", algorithm_options=options, hidden_layer_sizes=(32,), sparsity=0.8, max_epochs=10,
                        random_state=0, callbacks=[count]).fit(X, y)
    assert count.n == expected


def test_same_seed_same_evolution():
    outs = []
    for _ in range(2):
        model, optimizer, _, _ = model_and_optimizer()
        SET().update(model, optimizer, rng=5)
        outs.append(model[0].keys())
    assert np.array_equal(*outs)
