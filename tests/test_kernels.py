"""Every Numba kernel against a dense NumPy reference, and the paths that pick between them."""

import numpy as np
import pytest
import torch

from dualsparse.sparse import SparseLinear, functional as F, kernels as K, topology as T

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def pattern(n_out, n_in, density, seed, empty_rows=(), empty_cols=()):
    """A random CSR pattern (row_ptr int64, col_idx int32) with the given empty rows/columns."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_out, n_in)) < density
    mask[list(empty_rows), :] = False
    mask[:, list(empty_cols)] = False
    rows, cols = np.nonzero(mask)
    row_ptr = np.zeros(n_out + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_out), out=row_ptr[1:])
    return row_ptr, cols.astype(np.int32), rows


def dense(row_ptr, col_idx, rows, values, shape):
    w = np.zeros(shape, values.dtype)
    w[rows, col_idx] = values
    return w


def nan_like(shape, dtype):
    """Outputs start as NaN: kernels must write every entry, not accumulate into zeros."""
    return np.full(shape, np.nan, dtype)


def close(a, b, dtype):
    scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * scale)


CASES = [  # n_out, n_in, density, batch
    (37, 300, 0.15, 1),
    (37, 300, 0.15, 2),
    (37, 300, 0.15, 3),
    (64, 257, 0.05, 7),
    (50, 200, 0.3, 16),
    (41, 203, 0.2, 130),
    (300, 250, 0.012, 9),  # ~0.1 %-like: most rows and columns hold 0-4 weights (every block size)
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_out, n_in, density, batch", CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_dense_input_kernels_match_reference(dtype, n_out, n_in, density, batch, with_bias):
    rng = np.random.default_rng(batch)
    row_ptr, col_idx, rows = pattern(n_out, n_in, density, batch, empty_rows=(0, 5, n_out - 1), empty_cols=(1, 7, n_in - 1))
    values = rng.standard_normal(col_idx.size).astype(dtype)
    bias = rng.standard_normal(n_out).astype(dtype) if with_bias else np.empty(0, dtype)
    W = dense(row_ptr, col_idx, rows, values, (n_out, n_in))
    xt = rng.standard_normal((n_in, batch)).astype(dtype)
    gt = rng.standard_normal((n_out, batch)).astype(dtype)
    ref_y = W @ xt + (bias[:, None] if with_bias else 0)
    ref_gx = W.T @ gt
    ref_gv = (gt @ xt.T)[rows, col_idx]
    ref_gb = gt.sum(1)

    yt = nan_like((n_out, batch), dtype)
    K.csr_forward(row_ptr, col_idx, values, bias, xt, yt)
    close(yt, ref_y, dtype)

    gv, gb = nan_like(values.shape, dtype), nan_like(n_out, dtype)
    K.csr_value_grad(row_ptr, col_idx, xt, gt, gv, gb)
    close(gv, ref_gv, dtype)
    close(gb, ref_gb, dtype)
    gv = nan_like(values.shape, dtype)
    K.csr_value_grad(row_ptr, col_idx, xt, gt, gv, np.empty(0, dtype))  # no bias gradient asked
    close(gv, ref_gv, dtype)

    col_ptr, row_idx, perm = K.csr_to_csc(n_in, row_ptr, col_idx)
    assert row_idx.dtype == perm.dtype == np.int32 and col_ptr.dtype == np.int64
    gxt, gv = nan_like(xt.shape, dtype), nan_like(values.shape, dtype)
    K.csc_backward(col_ptr, row_idx, perm, values, xt, gt, gxt, gv, np.empty(0, dtype))
    close(gxt, ref_gx, dtype)
    close(gv, ref_gv, dtype)
    gxt, gv, gb = nan_like(xt.shape, dtype), nan_like(values.shape, dtype), nan_like(n_out, dtype)
    K.csc_backward(col_ptr, row_idx, perm, values, xt, gt, gxt, gv, gb)  # bias gradient fused in
    close(gxt, ref_gx, dtype)
    close(gv, ref_gv, dtype)
    close(gb, ref_gb, dtype)

    for threads in (1, 2, 3):
        gxt, gv, gb = nan_like(xt.shape, dtype), nan_like(values.shape, dtype), nan_like(n_out, dtype)
        K.csr_backward(row_ptr, col_idx, values, xt, gt, gxt, gv, gb, threads)
        close(gxt, ref_gx, dtype)
        close(gv, ref_gv, dtype)
        close(gb, ref_gb, dtype)


def test_csr_backward_splits_inputs_between_threads_without_races():
    # n_in large enough for 3 input ranges; the result must not depend on the split
    row_ptr, col_idx, rows = pattern(90, 700, 0.1, 3)
    rng = np.random.default_rng(0)
    values = rng.standard_normal(col_idx.size)
    xt, gt = rng.standard_normal((700, 2)), rng.standard_normal((90, 2))
    out = []
    for threads in (1, 2, 3, 5):
        gxt, gv = nan_like(xt.shape, np.float64), nan_like(values.shape, np.float64)
        K.csr_backward(row_ptr, col_idx, values, xt, gt, gxt, gv, np.empty(0), threads)
        out.append((gxt, gv))
    W = dense(row_ptr, col_idx, rows, values, (90, 700))
    for gxt, gv in out:
        close(gxt, W.T @ gt, np.float64)
        close(gv, (gt @ xt.T)[rows, col_idx], np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 2, 9])
def test_sparse_input_kernels_match_reference(dtype, batch):
    rng = np.random.default_rng(batch)
    n_out, n_in = 33, 120
    row_ptr, col_idx, rows = pattern(n_out, n_in, 0.2, 1, empty_rows=(3,), empty_cols=(0, 4))
    values = rng.standard_normal(col_idx.size).astype(dtype)
    bias = rng.standard_normal(n_out).astype(dtype)
    W = dense(row_ptr, col_idx, rows, values, (n_out, n_in))
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    x[rng.random(x.shape) < 0.8] = 0
    x[0] = 0  # a sample with nothing stored
    xs = torch.from_numpy(x).to_sparse_csr()
    x_ptr, x_idx, x_val = xs.crow_indices().numpy(), xs.col_indices().numpy(), xs.values().numpy()
    g = rng.standard_normal((batch, n_out)).astype(dtype)
    col_ptr, row_idx, perm = K.csr_to_csc(n_in, row_ptr, col_idx)

    y = nan_like((batch, n_out), dtype)
    K.sparse_input_forward(x_ptr, x_idx, x_val, col_ptr, row_idx, perm, values, bias, y)
    close(y, x @ W.T + bias, dtype)
    xc_ptr, xc_row, xc_val = K.csr_by_column(n_in, x_ptr, x_idx, x_val)
    gv = nan_like(values.shape, dtype)
    K.sparse_input_value_grad(xc_ptr, xc_row, xc_val, col_ptr, row_idx, perm, g, gv)
    close(gv, (g.T @ x)[rows, col_idx], dtype)

    xt = nan_like((n_in, batch), dtype)
    K.densify_t(x_ptr, x_idx, x_val, xt)
    np.testing.assert_array_equal(xt, x.T)


def test_pattern_helpers():
    row_ptr, col_idx, rows = pattern(20, 30, 0.3, 0, empty_rows=(2,), empty_cols=(5,))
    col_ptr, row_idx, perm = K.csr_to_csc(30, row_ptr, col_idx)
    assert np.array_equal(np.diff(col_ptr), np.bincount(col_idx, minlength=30))
    assert np.array_equal(row_idx, rows[perm]) and np.array_equal(col_idx[perm], np.sort(col_idx, kind="stable"))
    a = np.arange(37 * 53, dtype=np.float32).reshape(37, 53)
    out = np.empty((53, 37), np.float32)
    K.transpose(a, out)
    np.testing.assert_array_equal(out, a.T)


# ---------------------------------------------------------------------------- through the layer
def _layer(n_in, n_out, density, dtype=torch.float64, backend="numba", seed=0):
    layer = SparseLinear(n_in, n_out, density=density, dtype=dtype, random_state=seed)
    layer.backend = backend
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
    return layer


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("batch", [1, 2, 5, 12])
@pytest.mark.parametrize("x_density", [0.005, 0.3, 1.0])  # per-sample sparse walk, densified, dense
def test_layer_float32_matches_dense_masked_reference(backend, batch, x_density):
    torch.manual_seed(batch)
    layer = _layer(400, 90, 0.05, torch.float32, backend)
    W = layer.to_dense().double().requires_grad_(True)
    mask = W.detach() != 0
    b = layer.bias.detach().double().requires_grad_(True)
    x = torch.randn(batch, 400)
    x[torch.rand(batch, 400) >= x_density] = 0
    x[0, :] = 0 if batch > 1 else x[0, :]
    g = torch.randn(batch, 90)
    sparse_in = x_density < 1.0
    xin = x.to_sparse_csr() if sparse_in else x.clone().requires_grad_(True)
    (layer(xin) * g).sum().backward()
    xr = x.double().requires_grad_(not sparse_in)
    (torch.nn.functional.linear(xr, W * mask, b) * g.double()).sum().backward()
    assert (layer(xin).double() - torch.nn.functional.linear(x.double(), W * mask, b)).abs().max() < 1e-5
    gv_ref = W.grad[layer.row_indices(), layer.col_idx.long()]
    assert (layer.values.grad.double() - gv_ref).abs().max() < 1e-5
    assert (layer.bias.grad.double() - b.grad).abs().max() < 1e-5
    if not sparse_in:
        assert (xin.grad.double() - xr.grad).abs().max() < 1e-5


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("batch", [1, 2, 10])
def test_gradcheck_every_path(backend, batch):
    layer = _layer(150, 40, 0.1, backend=backend)
    x = torch.randn(batch, 150, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, v, b: layer(x), (x, layer.values, layer.bias))
    for density in (0.004, 0.4):  # per-sample walk / densified
        xs = torch.randn(batch, 150, dtype=torch.float64)
        xs[torch.rand(batch, 150) >= density] = 0
        xs = xs.to_sparse_csr()
        assert torch.autograd.gradcheck(lambda v, b: layer(xs), (layer.values, layer.bias))


def test_big_layer_small_batch_uses_csr_backward_and_matches():
    # > PARALLEL_MIN_WORK multiply-adds and > 2**20 weights: the parallel CSR backward at batch 4
    layer = _layer(3000, 2000, 0.2, torch.float32)
    assert K.use_csr_backward(4, layer.nnz)
    x = torch.randn(4, 3000, requires_grad=True)
    g = torch.randn(4, 2000)
    (layer(x) * g).sum().backward()
    rows, cols = layer.row_indices(), layer.col_idx.long()
    W = layer.to_dense().double()
    assert (x.grad.double() - g.double() @ W).abs().max() < 1e-4
    assert (layer.values.grad.double() - (g.double().T @ x.detach().double())[rows, cols]).abs().max() < 1e-4


def test_no_bias_and_bias_untouched():
    layer = SparseLinear(300, 50, density=0.1, bias=False, random_state=0)
    x = torch.randn(1, 300)
    torch.testing.assert_close(layer(x), x @ layer.to_dense().T)
    layer = _layer(300, 50, 0.1, torch.float32)
    before = layer.bias.detach().clone()
    for batch in (1, 2, 1):
        layer(torch.randn(batch, 300))
    assert torch.equal(layer.bias.detach(), before)


def test_value_gradient_memory_is_recycled_only_when_free():
    layer = _layer(2000, 1000, 0.05, torch.float32)  # > _RECYCLE_MIN weights
    x = torch.randn(3, 2000)
    layer(x).sum().backward()
    first = layer.values.grad
    ptr = first.data_ptr()
    kept = first.clone()
    # still referenced by `first`: a second backward must not overwrite it
    layer.values.grad = None
    layer(2 * x).sum().backward()
    assert layer.values.grad.data_ptr() != ptr and torch.equal(first, kept)
    del first
    layer.values.grad = None
    layer(x).sum().backward()  # `first`'s memory is free again
    torch.testing.assert_close(layer.values.grad, kept)
    # accumulation without zeroing still adds up
    layer(x).sum().backward()
    torch.testing.assert_close(layer.values.grad, 2 * kept)


def test_activation_buffers_are_recycled_only_when_free():
    # batch-last input copy, output and input gradient reuse per-layer memory across steps, but
    # never while anything still refers to it (a kept output or gradient)
    torch.manual_seed(0)
    l1 = _layer(600, 500, 0.003, torch.float32)  # 0.1 %-like: rows and columns with 0-4 weights
    l2 = _layer(500, 10, 0.004, torch.float32)  # few products, every input-gradient row written
    net = torch.nn.Sequential(l1, torch.nn.ReLU(), l2)
    batch = 160  # 600 x 160 > _RECYCLE_MIN: the recycled buffers are used
    W1, W2 = l1.to_dense().double(), l2.to_dense().double()
    b1, b2 = l1.bias.detach().double(), l2.bias.detach().double()

    def reference(x, g):
        xr = x.double().requires_grad_(True)
        w1 = W1.clone().requires_grad_(True)
        h = torch.relu(xr @ w1.T + b1)
        out = h @ W2.T + b2
        (out * g.double()).sum().backward()
        return out, xr.grad, w1.grad[l1.row_indices(), l1.col_idx.long()]

    kept = []
    for step in range(3):
        x = torch.randn(batch, 600, requires_grad=True)
        g = torch.randn(batch, 10)
        l1.values.grad = None
        out = net(x)
        (out * g).sum().backward()
        ref_out, ref_gx, ref_gv = reference(x.detach(), g)
        assert (out.double() - ref_out).abs().max() < 1e-4
        assert (x.grad.double() - ref_gx).abs().max() < 1e-4
        assert (l1.values.grad.double() - ref_gv).abs().max() < 1e-4
        with torch.no_grad():
            y1 = l1(x)  # 500 x 160: l1's recycled output buffer, kept
        kept.append((y1, y1.clone(), x.grad, x.grad.clone()))
    for y1, y1_copy, gx, gx_copy in kept:  # later steps did not write into kept tensors
        assert torch.equal(y1, y1_copy) and torch.equal(gx, gx_copy)
    ptrs = {t.data_ptr() for y1, _, gx, _ in kept for t in (y1, gx)}
    assert len(ptrs) == 2 * len(kept)
    # free again: the same memory is handed out (no page faults), results still right
    del kept, y1, gx, y1_copy, gx_copy
    with torch.no_grad():
        a = net(x.detach()).clone()
        b = net(x.detach())
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------- topology
def test_topology_fast_paths_match_numpy():
    rng = np.random.default_rng(0)
    n_in = 7919
    keys = np.unique(rng.integers(0, 5000 * n_in, 400_000))
    rows, cols = T.split_keys(keys, n_in)
    assert np.array_equal(rows, keys // n_in) and np.array_equal(cols, keys % n_in)
    assert np.array_equal(T.keys_of(rows, cols.astype(np.int32), n_in), keys)
    q = np.concatenate([keys[::3], rng.integers(0, 5000 * n_in, 300_000)])
    expected = np.isin(q, keys)
    assert np.array_equal(T.contains(keys, q), expected)
    assert np.array_equal(T.contains(keys, np.sort(q)), np.isin(np.sort(q), keys))
    new = T.sample_absent(5000 * n_in, keys, 300_000, rng)
    assert new.size == 300_000 and np.all(np.diff(new) > 0) and not np.isin(new, keys).any()


def test_flush_to_zero_stays_inside_the_kernels():
    # the kernels flush denormals (speed); the caller's floating-point mode must be untouched
    layer = _layer(300, 50, 0.1, torch.float32)
    K.run(lambda: None, 0)
    x = torch.full((2, 300), 1e-30)
    layer(x).sum().backward()  # runs on this thread (small work)
    tiny = np.float32(1e-30) * np.float32(1e-10)
    assert tiny != 0 and torch.tensor(1e-30) * torch.tensor(1e-10) != 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_is_bitwise_independent_of_batch_size_and_input_format(dtype):
    # scikit-learn's subset invariance: a sample's output must not depend on its batch
    layer = _layer(300, 70, 0.2, dtype)
    x = torch.randn(37, 300, dtype=dtype)
    x[torch.rand(37, 300) < 0.5] = 0
    with torch.no_grad():
        full = layer(x)
        for size in (1, 2, 3, 5, 8):
            parts = torch.cat([layer(x[s : s + size]) for s in range(0, 37, size)])
            assert torch.equal(parts, full), size
        assert torch.equal(layer(x.to_sparse_csr()), full)  # densified path
        xs = x.clone()
        xs[:, 3:] = 0
        assert torch.equal(layer(xs.to_sparse_csr()), layer(xs))  # per-sample sparse walk
