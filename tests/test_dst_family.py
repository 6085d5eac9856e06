"""The DST family's rules against dense masked references written out here, on layers of a few
hundred weights: the same drop set, growth set and densities (ties as documented)."""

import math

import numpy as np
import pytest
import torch

from dualsparse.dst import (GMP, MEST, SNFS, SNIP, CubicDensity, GraNet, LayerIOCapture, ResizingAlgorithm,
                            lowest_per_layer, make_algorithm, redistribute)
from dualsparse.dst.rules import MagnitudeDrop, RandomGrow
from dualsparse.sparse import SparseLinear

pytestmark = pytest.mark.usefixtures("one_thread")


def net(density=(0.4, 0.6), opt="sgd", steps=3, seed=0):
    """Two sparse layers (30 -> 20 -> 5: 600 and 100 positions) trained a few steps."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(SparseLinear(30, 20, density=density[0], random_state=seed), torch.nn.ReLU(),
                                SparseLinear(20, 5, density=density[1], random_state=seed + 1))
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt == "sgd"
                 else torch.optim.Adam(model.parameters(), lr=0.01))
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(24, 30, generator=gen), torch.randint(0, 5, (24,), generator=gen)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer, x, y


def layers_of(model):
    return [m for m in model if isinstance(m, SparseLinear)]


def snapshot(model, optimizer, key):
    out = []
    for layer in layers_of(model):
        st = optimizer.state[layer.values]
        out.append((layer.keys(), layer.values.detach().clone().numpy(), st[key].clone().numpy()))
    return out


def dense_grads(model, batches):
    """Dense weight gradients of each layer, per batch, from a dense masked copy of the network."""
    ws = [layer.to_dense().requires_grad_(True) for layer in layers_of(model)]
    grads = []
    for x, y in batches:
        h = torch.relu(torch.nn.functional.linear(x, ws[0], layers_of(model)[0].bias))
        out = torch.nn.functional.linear(h, ws[1], layers_of(model)[1].bias)
        g = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), ws)
        grads.append([gi.detach().numpy() for gi in g])
    return grads


def capture(model, batches):
    cap = LayerIOCapture(model)
    for x, y in batches:
        with cap:
            torch.nn.functional.cross_entropy(model(x), y).backward()
    for p in model.parameters():
        p.grad = None
    return cap


def stable_lowest(scores, n):
    return np.sort(np.argsort(scores, kind="stable")[:n])


def check_carried(before, layer, optimizer, key, dropped_positions):
    """Survivors keep value and optimiser state; new weights have zero state; nothing else moved."""
    keys0, vals0, st0 = before
    keys1 = layer.keys()
    survivors = np.setdiff1d(np.arange(keys0.size), dropped_positions)
    np.testing.assert_array_equal(np.intersect1d(keys0, keys1), keys0[survivors])
    grown = ~np.isin(keys1, keys0)
    pos = np.searchsorted(keys0, keys1[~grown])
    st1 = optimizer.state[layer.values][key].numpy()
    np.testing.assert_array_equal(layer.values.detach().numpy()[~grown], vals0[pos])
    np.testing.assert_array_equal(st1[~grown], st0[pos])
    assert np.all(st1[grown] == 0) and np.all(layer.values.detach().numpy()[grown] == 0)
    assert st1.shape == layer.values.shape
    return keys1[grown]


# ---------------------------------------------------------------------------- framework
class Resize(ResizingAlgorithm):
    name = "resize-test"

    def __init__(self, counts):
        super().__init__(MagnitudeDrop(), RandomGrow())
        self.counts = counts

    def plan(self, layers, optimizer, epoch, step, context):
        return self.counts

    def due(self, epoch, step, end_of_epoch):
        return True


@pytest.mark.parametrize("opt, key", [("sgd", "momentum_buffer"), ("adam", "exp_avg_sq")])
@pytest.mark.parametrize("counts", [[(70, 25), (9, 0)], [(0, 40), (30, 35)], [(100, 100), (0, 0)]],
                         ids=["prune-more", "grow-more", "swap"])
def test_resizing_drops_and_grows_different_counts(opt, key, counts):
    model, optimizer, x, y = net(opt=opt)
    before = snapshot(model, optimizer, key)
    params = [layer.values for layer in layers_of(model)]
    stale = torch.nn.functional.cross_entropy(model(x), y)  # a graph still referenced across the update
    stale.backward()
    info = Resize(counts).update(model, optimizer, rng=0)
    for layer, b, (n_drop, n_grow), param, d in zip(layers_of(model), before, counts, params, info):
        keys0, vals0, _ = b
        assert layer.nnz == keys0.size - n_drop + n_grow == d["nnz"]
        # the layer's Parameter is the optimiser's (a new one when the count changed)
        assert (layer.values is param) == (n_drop == n_grow)
        held = [p for g in optimizer.param_groups for p in g["params"]]
        assert any(p is layer.values for p in held) and (layer.values is param or not any(p is param for p in held))
        dropped = stable_lowest(np.abs(vals0), n_drop)
        grown = check_carried(b, layer, optimizer, key, dropped)
        assert grown.size == n_grow and not np.isin(grown, keys0).any()
        rows = np.diff(layer.row_ptr.numpy())
        assert rows.sum() == layer.nnz and np.all(np.diff(layer.keys()) > 0)
    # training continues: a step through autograd with the optimiser as it is (``stale`` alive)
    assert stale.grad_fn is not None
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cubic_density_is_zhu_gupta_and_rejects_bad_schedules():
    c = CubicDensity(1.0, 0.1, start=2, end=12)
    for t in [0, 2, 3, 7, 11, 12, 20]:
        p = min(max((t - 2) / 10, 0), 1)
        assert math.isclose(c.density(t), 0.1 + 0.9 * (1 - p) ** 3)
    assert CubicDensity([1.0, 0.5], [0.2, 0.5], 0, 4).density(2) == pytest.approx([0.2 + 0.8 / 8, 0.5])
    with pytest.raises(ValueError, match="final density 0.5 > initial density 0.3.*initial_density"):
        CubicDensity(0.3, 0.5, 0, 10)
    with pytest.raises(ValueError, match="ends .*before or when it starts.*end > start"):
        CubicDensity(1.0, 0.1, 5, 5)
    with pytest.raises(ValueError, match="final density .* > initial density"):
        GMP(initial_density=0.2, final_density=0.5)
    with pytest.raises(ValueError, match="end > start"):
        GraNet(start=10, end=3)
    with pytest.raises(ValueError, match="not accepted; it takes: initial_density, final_density"):
        make_algorithm("gmp", zeta=0.3)


def test_redistribute_is_proportional_capped_and_exact():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        w = rng.random(n) * (rng.random(n) > 0.2)
        cap = rng.integers(0, 50, size=n)
        total = int(rng.integers(0, 120))
        out = redistribute(total, w, cap)
        assert out.sum() == min(total, cap.sum()) and np.all(out <= cap) and np.all(out >= 0)
        # brute force water-filling: uncapped layers get (almost) equal shares per unit weight
        free = (out < cap) & (w > 0)
        if free.sum() >= 2:
            ratio = out[free] / w[free]
            assert ratio.max() - ratio.min() <= 1.0 / w[free].min() + 1e-9
        full = out == cap
        if free.any() and full.any() and (w[full] > 0).any():
            assert np.all(cap[full & (w > 0)] / w[full & (w > 0)] <= (out[free] + 1).max() / w[free].min() + 1e-9)
    assert redistribute(10, [1, 3], [100, 100]).tolist() == [2, 8] or redistribute(10, [1, 3], [100, 100]).tolist() == [3, 7]
    assert redistribute(10, [1, 3], [100, 2]).tolist() == [8, 2]


def test_lowest_per_layer_is_the_global_stable_order():
    rng = np.random.default_rng(1)
    for _ in range(100):
        scores = [rng.integers(0, 5, size=int(rng.integers(1, 30))).astype(np.float32) for _ in range(3)]
        flat = np.concatenate(scores)
        n = int(rng.integers(0, flat.size))
        counts = lowest_per_layer(scores, n, keep_min=0)
        layer_of = np.repeat(np.arange(3), [s.size for s in scores])
        expected = np.bincount(layer_of[np.argsort(flat, kind="stable")[:n]], minlength=3)
        np.testing.assert_array_equal(counts, expected)
    # a layer keeps at least one connection: the rest is taken from the others, in order
    counts = lowest_per_layer([np.zeros(3), np.ones(4)], 5)
    assert counts.tolist() == [2, 3]


# ---------------------------------------------------------------------------- GMP
def test_gmp_prunes_each_layer_to_the_cubic_density_by_magnitude():
    model, optimizer, _, _ = net(density=(1.0, 1.0))
    gmp = GMP(initial_density=1.0, final_density=[0.1, 0.3], start=1, end=5)
    for epoch in range(6):
        before = snapshot(model, optimizer, "momentum_buffer")
        if not gmp.due(epoch, 0, True):
            assert epoch + 1 <= 1 or epoch + 1 > 5
            continue
        gmp.update(model, optimizer, epoch=epoch, rng=0)
        p = min(max((epoch + 1 - 1) / 4, 0), 1)
        for layer, b, d_f in zip(layers_of(model), before, [0.1, 0.3]):
            d_t = d_f + (1 - d_f) * (1 - p) ** 3
            n_t = round(d_t * layer.in_features * layer.out_features)
            assert layer.nnz == n_t
            dropped = stable_lowest(np.abs(b[1]), b[0].size - n_t)
            assert check_carried(b, layer, optimizer, "momentum_buffer", dropped).size == 0  # never regrows
    assert [layer.nnz for layer in layers_of(model)] == [60, 30]
    assert not gmp.due(5, 0, True)


# ---------------------------------------------------------------------------- GraNet
def test_granet_global_prune_then_gradient_regrowth():
    model, optimizer, x, y = net(density=(0.5, 0.9))
    batches = [(x, y)]
    granet = GraNet(zeta=0.3, initial_density=[0.5, 0.9], final_density=[0.1, 0.3], start=0, end=4, decay="constant")
    cap = capture(model, batches)
    grads = dense_grads(model, batches)[0]
    before = snapshot(model, optimizer, "momentum_buffer")
    epoch = 1  # t = 2 of 4: half-way in time
    granet.update(model, optimizer, epoch=epoch, rng=0, context=cap)
    # reference: the cubic targets' total, reached with one magnitude threshold over both layers
    d_t = [f + (i - f) * (1 - 2 / 4) ** 3 for i, f in ((0.5, 0.1), (0.9, 0.3))]
    target = round(d_t[0] * 600) + round(d_t[1] * 100)
    flat = np.concatenate([np.abs(b[1]) for b in before])
    layer_of = np.repeat([0, 1], [b[0].size for b in before])
    n_prune = np.bincount(layer_of[np.argsort(flat, kind="stable")[: flat.size - target]], minlength=2)
    for i, (layer, b) in enumerate(zip(layers_of(model), before)):
        left = b[0].size - n_prune[i]
        n_swap = round(0.3 * left)
        dropped = stable_lowest(np.abs(b[1]), n_prune[i] + n_swap)
        grown = check_carried(b, layer, optimizer, "momentum_buffer", dropped)
        score = np.abs(grads[i]).ravel()
        score[b[0]] = -1  # present before the update: not a growth candidate
        np.testing.assert_array_equal(grown, np.sort(np.argsort(-score, kind="stable")[:n_swap]))
        assert layer.nnz == left
    assert sum(layer.nnz for layer in layers_of(model)) == target


# ---------------------------------------------------------------------------- SNIP
def test_snip_keeps_the_globally_most_sensitive_connections():
    model, optimizer, x, y = net(density=(1.0, 1.0), steps=0)
    batches = [(x, y)]
    grads = dense_grads(model, batches)[0]
    dense_w = [layer.to_dense().numpy() for layer in layers_of(model)]
    cap = capture(model, batches)
    SNIP(final_density=[0.1, 0.4]).update(model, optimizer, rng=0, context=cap)
    keep = 60 + 40
    score = np.concatenate([np.abs(g * w).ravel() for g, w in zip(grads, dense_w)])
    kept = np.sort(np.argsort(score, kind="stable")[score.size - keep:])
    got = np.concatenate([layers_of(model)[0].keys(), 600 + layers_of(model)[1].keys()])
    # float32 dense gradients vs the sampled product may differ in the last bits: compare sets,
    # allowing a swap only between scores equal to rounding
    assert sum(layer.nnz for layer in layers_of(model)) == keep
    diff = np.setxor1d(kept, got)
    assert diff.size == 0 or np.ptp(score[diff]) < 1e-6 * score.max()
    assert not SNIP().due(0, 1, True) and not SNIP().due(0, 1, False)


# ---------------------------------------------------------------------------- SNFS
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_snfs_drops_by_magnitude_and_regrows_by_momentum_redistributed(opt):
    model, optimizer, x, y = net(density=(0.3, 0.5), opt=opt)
    gen = torch.Generator().manual_seed(5)
    batches = [(torch.randn(16, 30, generator=gen), torch.randint(0, 5, (16,), generator=gen)) for _ in range(3)]
    snfs = SNFS(zeta=0.4, window=3, decay="constant")
    cap = capture(model, batches)
    grads = dense_grads(model, batches)
    key = "momentum_buffer" if opt == "sgd" else "exp_avg"
    before = snapshot(model, optimizer, key)
    # reference mean momentum magnitude of each layer's live weights
    means = []
    for layer in layers_of(model):
        st = optimizer.state[layer.values]
        m = st["momentum_buffer"] if opt == "sgd" else st["exp_avg"] / (st["exp_avg_sq"].sqrt() + 1e-8)
        means.append(float(m.abs().mean()))
    snfs.update(model, optimizer, epoch=0, rng=0, context=cap)
    drops = [round(0.4 * b[0].size) for b in before]
    share = np.array(means) / sum(means)
    capacity = [600 - before[0][0].size, 100 - before[1][0].size]
    # two layers: each gets its momentum share of the total; one that has too few absent
    # positions is filled and the other gets the rest
    want = sum(drops) * share
    over = [i for i in range(2) if want[i] > capacity[i]]
    if over:
        expected_counts = [0, 0]
        expected_counts[over[0]] = capacity[over[0]]
        expected_counts[1 - over[0]] = min(capacity[1 - over[0]], sum(drops) - capacity[over[0]])
    else:
        expected_counts = [round(want[0]), sum(drops) - round(want[0])]
    for i, (layer, b) in enumerate(zip(layers_of(model), before)):
        dropped = stable_lowest(np.abs(b[1]), drops[i])
        grown = check_carried(b, layer, optimizer, key, dropped)
        assert grown.size == expected_counts[i]
        # grown where the windowed momentum of the dense gradient is largest
        if opt == "sgd":
            mom = sum(0.9 ** (2 - k) * grads[k][i] for k in range(3))
            score = np.abs(mom).ravel()
        else:
            m = sum(0.1 * 0.9 ** (2 - k) * grads[k][i] for k in range(3))
            v = sum(0.001 * 0.999 ** (2 - k) * grads[k][i] ** 2 for k in range(3))
            score = (np.abs(m) / (np.sqrt(v) + 1e-8)).ravel()
        score[b[0]] = -1
        expected = np.sort(np.argsort(-score, kind="stable")[: grown.size])
        np.testing.assert_array_equal(grown, expected)
    assert sum(layer.nnz for layer in layers_of(model)) == sum(b[0].size for b in before)


def test_snfs_needs_momentum():
    model, _, x, y = net()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    sgd.step()
    cap = capture(model, [(x, y)])
    with pytest.raises(RuntimeError, match="momentum=0: use SGD with momentum > 0"):
        SNFS().update(model, sgd, rng=0, context=cap)


# ---------------------------------------------------------------------------- MEST
def test_mest_drops_by_magnitude_plus_gradient_and_grows_at_random():
    model, optimizer, x, y = net()
    cap = capture(model, [(x, y)])
    grads = dense_grads(model, [(x, y)])[0]
    before = snapshot(model, optimizer, "momentum_buffer")
    MEST(zeta=0.3, gamma=2.0).update(model, optimizer, rng=0, context=cap)
    for i, (layer, b) in enumerate(zip(layers_of(model), before)):
        g = grads[i].ravel()[b[0]]
        score = np.abs(b[1]) + 2.0 * np.abs(g)
        n = round(0.3 * b[0].size)
        grown = check_carried(b, layer, optimizer, "momentum_buffer", stable_lowest(score, n))
        assert grown.size == n and layer.nnz == b[0].size
    # gamma = 0 is SET's magnitude rule and captures nothing
    assert not MEST(gamma=0).needs_gradient and MEST().needs_gradient


@pytest.mark.parametrize("algorithm", ["mest", "granet", "snip", "snfs", "rigl"])
def test_gradient_rules_without_a_capture_name_the_fix(algorithm):
    model, optimizer, _, _ = net(density=(1.0, 1.0) if algorithm == "snip" else (0.4, 0.6))
    alg = make_algorithm(algorithm, **({"final_density": 0.2} if algorithm in ("snip", "granet") else {}))
    if algorithm == "granet":
        alg.set_targets([0.2, 0.2], horizon=10)
    with pytest.raises(RuntimeError, match="LayerIOCapture"):
        alg.update(model, optimizer, epoch=0, step=100, rng=0)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_snfs_sampled_growth_covering_every_absent_position_is_the_exhaustive_rule(opt):
    results = []
    for candidates in (None, 1e9):
        model, optimizer, x, y = net(density=(0.3, 0.5), opt=opt)
        gen = torch.Generator().manual_seed(5)
        batches = [(torch.randn(16, 30, generator=gen), torch.randint(0, 5, (16,), generator=gen)) for _ in range(3)]
        cap = capture(model, batches)
        SNFS(zeta=0.4, window=3, decay="constant", candidates=candidates).update(model, optimizer, rng=0, context=cap)
        results.append([layer.keys() for layer in layers_of(model)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    # a small sample grows only sampled positions, as many as asked
    model, optimizer, x, y = net(density=(0.3, 0.5), opt=opt)
    cap = capture(model, [(x, y)])
    nnz = [layer.nnz for layer in layers_of(model)]
    SNFS(zeta=0.4, window=1, decay="constant", candidates=2).update(model, optimizer, rng=0, context=cap)
    assert sum(layer.nnz for layer in layers_of(model)) == sum(nnz)


def test_a_large_layer_built_fully_connected_holds_every_position():
    """GMP's and SNIP's dense start: filling every position skips rejection sampling (which would
    need ~n log n draws); small layers keep their draws (seeded results unchanged)."""
    layer = SparseLinear(1100, 1000, density=1.0, random_state=0)
    np.testing.assert_array_equal(layer.keys(), np.arange(1100 * 1000))
    small = SparseLinear(30, 20, density=1.0, random_state=0)
    np.testing.assert_array_equal(small.keys(), np.arange(600))
