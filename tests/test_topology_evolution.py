"""The O(nnz) CSR topology update (SET's drop / grow / merge) against brute-force NumPy references."""

import numpy as np
import pytest
import torch
from scipy import stats

from dualsparse.dst import SET, ObservedSET
from dualsparse.sparse import SparseLinear
from dualsparse.sparse import topology as T


def reference_dropped(scores, n_drop):
    """The tie rule: the first n_drop of the stable ascending sort of the scores (storage order)."""
    return np.sort(np.argsort(scores, kind="stable")[:n_drop])


def dropped_by_kernels(scores, n_drop, bits=None, absolute=False):
    if bits is None:
        bits, absolute = T.score_bits(scores)
    n = bits.size
    # split the scores over a few rows so that ties cross row boundaries
    row_ptr = np.array([0, n // 3, n // 3, n // 2, n], dtype=np.int64)
    col_idx = np.concatenate([np.arange(b - a) for a, b in zip(row_ptr[:-1], row_ptr[1:])]).astype(np.int32)
    empty = np.zeros(5, dtype=np.int64), np.empty(0, dtype=np.int32)
    _, cols, _, old = T.evolve_csr(row_ptr, col_idx, np.zeros(n, np.float32), bits, absolute, n_drop,
                                   *empty, np.empty(0, np.float32))
    assert cols.size == n - n_drop
    return np.setdiff1d(np.arange(n), old)


@pytest.mark.parametrize("n", [50, 1000, 40_000, 200_000])  # small (partition) and radix-histogram paths
@pytest.mark.parametrize("seed", [0, 1])
def test_drop_set_is_stable_sort_reference_with_many_ties(n, seed):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n).astype(np.float32)
    v[rng.random(n) < 0.3] = 0.0  # zero-initialised regrowth: many exact ties
    v[rng.random(n) < 0.05] = -0.0
    v = np.where(rng.random(n) < 0.2, np.round(v, 1), v).astype(np.float32)  # more ties elsewhere
    for n_drop in sorted({1, n // 10, int(0.3 * n), n // 2, n - 1}):
        expected = reference_dropped(np.abs(v), n_drop)
        got = dropped_by_kernels(None, n_drop, bits=v.view(np.uint32), absolute=True)
        np.testing.assert_array_equal(got, expected)
        # signed float64 scores (a custom drop rule), including negatives and ties
        s = np.round(rng.standard_normal(n), 1)
        np.testing.assert_array_equal(dropped_by_kernels(s, n_drop), reference_dropped(s, n_drop))


def test_drop_counts_ties_across_rows_in_storage_order():
    # 3 rows; all scores tie, so the first n_drop stored connections go
    row_ptr = np.array([0, 4, 4, 9], dtype=np.int64)
    bits = np.zeros(9, dtype=np.float32).view(np.uint32)
    t, ties = T.select_threshold(bits, True, 6)
    dropped, tie_drop = T.drops_per_row(row_ptr, bits, True, t, ties)
    assert (t, ties) == (0, 6)
    np.testing.assert_array_equal(dropped, [4, 0, 2])


def _grown_reference_checks(layer, before_keys, g_ptr, g_col):
    keys = T.keys_from_csr(g_ptr, g_col, layer.in_features)
    assert np.all(np.diff(keys) > 0)  # sorted by (row, col) and distinct
    assert not np.isin(keys, before_keys).any()
    return keys


def test_sample_absent_csr_is_uniform_over_absent_positions():
    rng = np.random.default_rng(0)
    layer = SparseLinear(7, 6, density=0.3, random_state=0)  # 42 positions, 13 present
    row_ptr, col_idx = layer.row_ptr.numpy(), layer.col_idx.numpy()
    present = layer.keys()
    counts = np.zeros(42)
    n, runs = 6, 4000
    for _ in range(runs):
        g_ptr, g_col = T.sample_absent_csr(row_ptr, col_idx, 7, n, rng)
        keys = _grown_reference_checks(layer, present, g_ptr, g_col)
        assert keys.size == n
        counts[keys] += 1
    free = np.setdiff1d(np.arange(42), present)
    assert np.all(counts[present] == 0)
    assert stats.chisquare(counts[free]).pvalue > 1e-3


@pytest.mark.parametrize("shape, density, n", [((3, 4000), 0.01, 3000), ((40, 30), 0.45, 600), ((500, 300), 0.02, 5000)])
def test_sample_absent_csr_exact_count_big_rows_and_dense_rounds(shape, density, n):
    n_out, n_in = shape
    layer = SparseLinear(n_in, n_out, density=density, random_state=1)
    for seed in range(5):
        g_ptr, g_col = T.sample_absent_csr(layer.row_ptr.numpy(), layer.col_idx.numpy(), n_in, n, seed)
        keys = _grown_reference_checks(layer, layer.keys(), g_ptr, g_col)
        assert keys.size == n and g_col.dtype == np.int32
    # rows are hit in proportion to their free positions (big rows: np.sort path)
    if n_out == 3:
        free = n_in - np.diff(layer.row_ptr.numpy())
        per_row = np.zeros(3)
        for seed in range(20):
            per_row += np.diff(T.sample_absent_csr(layer.row_ptr.numpy(), layer.col_idx.numpy(), n_in, n, seed)[0])
        np.testing.assert_allclose(per_row / per_row.sum(), free / free.sum(), atol=0.01)
    with pytest.raises(ValueError, match="only"):
        T.sample_absent_csr(layer.row_ptr.numpy(), layer.col_idx.numpy(), n_in, n_out * n_in, 0)


def model_and_optimizer(opt, sizes=(60, 50, 4), density=(0.2, 0.5), seed=0, zeros=0.0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(SparseLinear(sizes[0], sizes[1], density=density[0], random_state=seed), torch.nn.ReLU(),
                                SparseLinear(sizes[1], sizes[2], density=density[1], random_state=seed + 1))
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt == "sgd"
                 else torch.optim.Adam(model.parameters(), lr=0.01))
    x, y = torch.randn(16, sizes[0]), torch.randint(0, sizes[2], (16,))
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    if zeros:
        g = torch.Generator().manual_seed(seed)
        for layer in (model[0], model[2]):
            mask = torch.rand(layer.nnz, generator=g) < zeros
            layer.values.data[mask] = 0.0
    return model, optimizer


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("zeros", [0.0, 0.5])
def test_set_update_matches_reference(opt, zeros):
    model, optimizer = model_and_optimizer(opt, zeros=zeros)
    layers = [model[0], model[2]]
    before = []
    for layer in layers:
        st = optimizer.state[layer.values]
        before.append((layer.keys(), layer.values.detach().clone().numpy(),
                       {k: v.clone().numpy() for k, v in st.items() if torch.is_tensor(v) and v.dim() == 1},
                       {k: v for k, v in st.items() if not (torch.is_tensor(v) and v.dim() == 1)}))
    SET(zeta=0.3).update(model, optimizer, rng=3)
    for layer, (keys0, vals0, vec0, scalar0) in zip(layers, before):
        n_swap = round(0.3 * keys0.size)
        n_free = layer.in_features * layer.out_features - keys0.size
        n_swap = min(n_swap, keys0.size - 1, n_free)
        keys1 = layer.keys()
        # CSR invariants
        assert layer.col_idx.dtype == torch.int32 and layer.row_ptr.dtype == torch.int64
        assert layer.nnz == keys0.size == keys1.size and int(layer.row_ptr[-1]) == layer.nnz
        assert np.all(np.diff(keys1) > 0)
        # dropped = stable-sort reference on |w| in CSR order
        dropped = np.flatnonzero(~np.isin(keys0, keys1))
        np.testing.assert_array_equal(dropped, reference_dropped(np.abs(vals0), n_swap))
        grown = ~np.isin(keys1, keys0)
        assert grown.sum() == n_swap
        vals1 = layer.values.detach().numpy()
        assert np.all(vals1[grown] == 0)
        old = np.searchsorted(keys0, keys1[~grown])
        np.testing.assert_array_equal(vals1[~grown], vals0[old])
        st = optimizer.state[layer.values]
        for k, v in vec0.items():
            new = st[k].numpy()
            assert np.all(new[grown] == 0)
            np.testing.assert_array_equal(new[~grown], v[old])
        for k, v in scalar0.items():
            assert torch.equal(torch.as_tensor(st[k]), torch.as_tensor(v))
        assert any(p is layer.values for g in optimizer.param_groups for p in g["params"])


def test_same_rng_same_topology_and_different_rng_differs():
    outs = []
    for seed in (7, 7, 8):
        model, optimizer = model_and_optimizer("sgd", sizes=(300, 200, 4), density=(0.05, 0.5))
        SET(zeta=0.3).update(model, optimizer, rng=seed)
        outs.append((model[0].keys(), model[0].values.detach().numpy().copy()))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
    assert not np.array_equal(outs[0][0], outs[2][0])


def test_random_grow_init_and_repeated_updates_keep_nnz():
    model, optimizer = model_and_optimizer("sgd", sizes=(300, 200, 4), density=(0.05, 0.5))
    nnz = [model[0].nnz, model[2].nnz]
    algo = SET(zeta=0.3, grow_init="random")
    rng = np.random.default_rng(0)
    for _ in range(5):
        before = model[0].keys()
        algo.update(model, optimizer, rng=rng)
        assert [model[0].nnz, model[2].nnz] == nnz
        grown = ~np.isin(model[0].keys(), before)
        assert np.all(model[0].values.detach().numpy()[grown] != 0)
    # zero regrowth repeated without training: the zeros (ties) are dropped first, in storage order
    algo = SET(zeta=0.3)
    for _ in range(3):
        algo.update(model, optimizer, rng=rng)
        assert [model[0].nnz, model[2].nnz] == nnz


def test_grown_positions_are_uniform_through_set_update():
    # one small layer: every absent position equally likely to be grown (chi-square over seeds)
    layer0 = SparseLinear(6, 5, density=0.3, random_state=0)
    present = layer0.keys()
    counts = np.zeros(30)
    for seed in range(2000):
        layer = SparseLinear(6, 5, density=0.3, random_state=0)
        SET(zeta=0.3).update(torch.nn.Sequential(layer), None, rng=seed)
        counts[np.setdiff1d(layer.keys(), present)] += 1
    free = np.setdiff1d(np.arange(30), present)
    assert counts[present].sum() == 0
    assert stats.chisquare(counts[free]).pvalue > 1e-3


def test_float64_layer_and_observed_set_use_the_same_path():
    torch.manual_seed(0)
    layer = SparseLinear(40, 30, density=0.2, random_state=0, dtype=torch.float64)
    v0, k0 = layer.values.detach().clone().numpy(), layer.keys()
    SET(zeta=0.3).update(torch.nn.Sequential(layer), None, rng=0)
    n_swap = round(0.3 * k0.size)
    np.testing.assert_array_equal(np.flatnonzero(~np.isin(k0, layer.keys())), reference_dropped(np.abs(v0), n_swap))
    assert layer.values.dtype == torch.float64
    # ObservedSET: a custom score (float64) in the input layer
    algo = ObservedSET(zeta=0.3)
    X = np.random.default_rng(0).random((20, 40))
    X[:, :20] = 0
    algo.prepare(X)
    model, optimizer = model_and_optimizer("sgd", sizes=(40, 30, 4))
    layer = model[0]
    scores = algo.drop.scores(layer, type("C", (), {"layer_index": 0})())
    k0 = layer.keys()
    algo.update(model, optimizer, rng=0)
    np.testing.assert_array_equal(np.flatnonzero(~np.isin(k0, layer.keys())), reference_dropped(scores, round(0.3 * k0.size)))


def test_parallel_and_serial_paths_agree(monkeypatch):
    """Chunked parallel kernels (forced on a small layer) give exactly the serial result, including
    rows whose last connection is dropped and chunk boundaries."""
    layer = SparseLinear(500, 3000, density=0.02, random_state=3)
    rp, ci = layer.row_ptr.numpy(), layer.col_idx.numpy()
    v = layer.values.detach().numpy().copy()
    rng = np.random.default_rng(0)
    v[rng.random(v.size) < 0.3] = 0.0
    v[rp[1:] - 1] = 0.0  # every row's last connection ties at the bottom
    n_drop = int(0.3 * v.size)
    results = []
    for threshold in (1 << 62, 0):
        monkeypatch.setattr(T, "EVOLVE_PARALLEL_MIN", threshold)
        g = T.sample_absent_csr(rp, ci, 500, n_drop, 11)
        out = T.evolve_csr(rp, ci, v, v.view(np.uint32), True, n_drop, *g, np.zeros(n_drop, np.float32))
        results.append((*g, *out))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    new_ptr, new_col, new_vals, old = results[0][2:]
    assert new_ptr[-1] == v.size and new_col.dtype == np.int32 and old.dtype == np.int32
    for i in range(3000):  # sorted unique columns per row
        assert np.all(np.diff(new_col[new_ptr[i]:new_ptr[i + 1]]) > 0)
    np.testing.assert_array_equal(np.setdiff1d(np.arange(v.size), old), reference_dropped(np.abs(v), n_drop))
    kept = old >= 0
    np.testing.assert_array_equal(new_vals[kept], v[old[kept]])
