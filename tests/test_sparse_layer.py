"""SparseLinear against a dense masked reference, on both backends."""

import numpy as np
import pytest
import torch

from dualsparse.sparse import SparseLinear

BACKENDS = ["numba", "torch"]


def make_layer(n_in=9, n_out=7, density=0.35, backend="numba", dtype=torch.float64, seed=0, bias=True):
    layer = SparseLinear(n_in, n_out, density=density, bias=bias, dtype=dtype, random_state=seed)
    layer.backend = backend
    if bias:
        with torch.no_grad():
            layer.bias.uniform_(-1, 1)
    return layer


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [1, 5])
def test_forward_and_gradients_match_dense_masked_reference(backend, batch):
    layer = make_layer(backend=backend)
    weight = layer.to_dense().clone().requires_grad_(True)
    mask = weight.detach() != 0
    bias = layer.bias.detach().clone().requires_grad_(True)
    x = torch.randn(batch, 9, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    g = torch.randn(batch, 7, dtype=torch.float64)

    (layer(x) * g).sum().backward()
    (torch.nn.functional.linear(x_ref, weight * mask, bias) * g).sum().backward()

    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(layer.bias.grad, bias.grad)
    dense_value_grad = weight.grad[layer.row_indices(), layer.col_idx.long()]
    torch.testing.assert_close(layer.values.grad, dense_value_grad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_is_not_modified_by_forward_with_batch_one(backend):
    layer = make_layer(backend=backend)
    before = layer.bias.detach().clone()
    for _ in range(3):
        layer(torch.randn(1, 9, dtype=torch.float64))
    torch.testing.assert_close(layer.bias.detach(), before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_float64(backend):
    layer = make_layer(backend=backend)
    x = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, v, b: layer(x), (x, layer.values, layer.bias))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_csr_input_matches_dense_and_gradcheck(backend):
    layer = make_layer(backend=backend)
    x = torch.randn(6, 9, dtype=torch.float64)
    x[torch.rand(6, 9, generator=torch.Generator().manual_seed(0)) < 0.6] = 0
    x[2] = 0  # a row with nothing observed
    xs = x.to_sparse_csr()
    torch.testing.assert_close(layer(xs), layer(x).detach())
    assert torch.autograd.gradcheck(lambda v, b: layer(xs), (layer.values, layer.bias))
    # the value gradient equals the dense-input one
    g = torch.randn(6, 7, dtype=torch.float64)
    (layer(xs) * g).sum().backward()
    gv_sparse = layer.values.grad.clone()
    layer.values.grad = None
    (layer(x) * g).sum().backward()
    torch.testing.assert_close(gv_sparse, layer.values.grad)


def test_float32_matches_reference_to_1e5():
    layer = SparseLinear(300, 200, density=0.05, random_state=1)
    x = torch.randn(33, 300)
    ref = x.double() @ layer.to_dense().double().T + layer.bias.double()
    assert (layer(x).double() - ref).abs().max() < 1e-5


def test_stores_only_live_connections():
    layer = SparseLinear(1000, 800, density=0.01, random_state=0)
    assert layer.nnz == round(0.01 * 1000 * 800)
    n_params = sum(p.numel() for p in layer.parameters())
    assert n_params == layer.nnz + 800  # values + bias, nothing of dense size
    assert layer.values.dim() == 1
    assert all(b.numel() <= layer.nnz + 801 for b in layer.buffers())
    keys = layer.keys()
    assert np.all(np.diff(keys) > 0)  # CSR order, no duplicates


def test_from_dense_round_trip():
    w = torch.randn(5, 8)
    w[w.abs() < 0.8] = 0
    b = torch.randn(5)
    layer = SparseLinear.from_dense(w, b)
    assert layer.nnz == int((w != 0).sum())
    torch.testing.assert_close(layer.to_dense(), w)
    x = torch.randn(3, 8)
    torch.testing.assert_close(layer(x), x @ w.T + b)


def test_init_scales_with_actual_fan_in():
    layer = SparseLinear(2000, 50, density=0.02, random_state=0)
    fan_in = np.diff(layer.row_ptr.numpy())
    rows = layer.row_indices().numpy()
    bound = np.sqrt(2.0) * np.sqrt(3.0 / fan_in[rows])
    vals = layer.values.detach().numpy()
    assert np.all(np.abs(vals) <= bound + 1e-6)
    # the spread follows the sparse fan-in (~40), not the dense one (2000)
    assert np.abs(vals).max() > 0.5 * np.sqrt(6.0 / fan_in.max())


def test_same_seed_same_layer_and_different_seed_differs():
    a, b, c = (SparseLinear(50, 40, density=0.1, random_state=s) for s in (3, 3, 4))
    assert np.array_equal(a.keys(), b.keys()) and torch.equal(a.values, b.values)
    assert not np.array_equal(a.keys(), c.keys())


def test_set_connections_returns_old_positions():
    layer = make_layer()
    keys = layer.keys()
    rows, cols = keys // 9, keys % 9
    keep = np.arange(0, keys.size, 2)
    absent = next(k for k in range(63) if k not in keys)
    new_rows = np.concatenate([rows[keep], [absent // 9]])
    new_cols = np.concatenate([cols[keep], [absent % 9]])
    vals = torch.arange(new_rows.size, dtype=torch.float64)
    old = layer.set_connections(new_rows, new_cols, vals)
    new_keys = layer.keys()
    for pos, k in enumerate(new_keys):
        if old[pos] >= 0:
            assert keys[old[pos]] == k
        else:
            assert k not in keys
    assert (old == -1).sum() == 1 and (old >= 0).sum() == keep.size


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_features=5, out_features=5, density=0.0), "density must be in"),
        (dict(in_features=5, out_features=5, density=1.5), "density must be in"),
        (dict(in_features=0, out_features=5, density=0.5), "in_features"),
    ],
)
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparseLinear(**kwargs)


def test_wrong_input_shape_is_a_clear_error():
    layer = make_layer()
    with pytest.raises(ValueError, match=r"shape \(batch, 9\)"):
        layer(torch.randn(3, 4, dtype=torch.float64))


def test_from_dense_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        SparseLinear.from_dense(torch.tensor([[1.0, float("nan")]]))
