"""SET's small-layer update path gives exactly the general path's result, draw for draw."""

import numpy as np
import pytest
import torch

from dualsparse.dst import SET
from dualsparse.sparse import SparseLinear, small_swap
from dualsparse.sparse.topology import csr_of_keys, evolve_csr, random_keys, sample_absent_csr


def _case(seed):
    r = np.random.default_rng(seed)
    n_out, n_in = int(r.integers(1, 120)), int(r.integers(2, 120))
    nnz = int(r.integers(1, max(2, n_out * n_in // 2)))
    ptr, col = csr_of_keys(random_keys(n_out, n_in, nnz, r), n_out, n_in)
    dtype = np.float32 if seed % 2 else np.float64
    vals = r.standard_normal(nnz).astype(dtype)
    if seed % 3 == 0:
        vals[r.random(nnz) < 0.5] = 0.0  # many ties at the threshold
        vals[r.random(nnz) < 0.1] *= -0.0
    n = max(1, min(int(r.integers(1, nnz + 1)), n_out * n_in - nnz))
    return ptr, col, vals, n_in, n


@pytest.mark.parametrize("seed", range(60))
def test_same_draws_same_topology_as_sample_then_evolve(seed):
    ptr, col, vals, n_in, n = _case(seed)
    a, b = np.random.default_rng(seed + 1000), np.random.default_rng(seed + 1000)
    g_ptr, g_col = sample_absent_csr(ptr, col, n_in, n, a)
    bits = vals.view(np.uint32 if vals.dtype == np.float32 else np.uint64)
    expected = evolve_csr(ptr, col, vals, bits, True, n, g_ptr, g_col, np.zeros(n, vals.dtype))
    got = small_swap.random_swap_small(ptr, col, vals, n_in, n, b)
    for want, have in zip(expected, got):
        assert want.dtype == have.dtype
        np.testing.assert_array_equal(want, have)
    assert a.random() == b.random()  # the Generator is left in the same state


def test_dropped_set_is_the_stable_argsort_prefix():
    """Written out densely: the kept connections are all but argsort(|w|, stable)[:n]."""
    r = np.random.default_rng(3)
    n_out, n_in, nnz, n = 30, 40, 300, 90
    ptr, col = csr_of_keys(random_keys(n_out, n_in, nnz, r), n_out, n_in)
    vals = np.round(r.standard_normal(nnz), 1).astype(np.float32)  # ties
    new_ptr, new_col, new_vals, old_pos = small_swap.random_swap_small(ptr, col, vals, n_in, n, r)
    dropped = set(np.argsort(np.abs(vals), kind="stable")[:n].tolist())
    kept = sorted(set(range(nnz)) - dropped)
    np.testing.assert_array_equal(np.sort(old_pos[old_pos >= 0]), kept)
    assert (old_pos < 0).sum() == n and (new_vals[old_pos < 0] == 0).all()
    np.testing.assert_array_equal(new_vals[old_pos >= 0], vals[old_pos[old_pos >= 0]])
    dense_old = np.zeros((n_out, n_in), bool)
    dense_old[np.repeat(np.arange(n_out), np.diff(ptr)), col] = True
    rows = np.repeat(np.arange(n_out), np.diff(new_ptr))
    assert not dense_old[rows[old_pos < 0], new_col[old_pos < 0]].any()  # grown = absent before
    assert len(set(zip(rows.tolist(), new_col.tolist()))) == nnz  # no duplicate positions


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_layer_update_matches_the_general_path(monkeypatch, optimizer):
    """The same SET update with the fast path and with it switched off: same layer, same state."""
    def run(fast):
        monkeypatch.setattr(small_swap, "SMALL_SWAP_MAX", 1 << 16 if fast else 0)
        torch.manual_seed(0)
        model = torch.nn.Sequential(SparseLinear(50, 80, density=0.2, random_state=1), torch.nn.ReLU(),
                                    SparseLinear(80, 3, density=0.3, random_state=2))
        opt = (torch.optim.Adam(model.parameters(), lr=0.01) if optimizer == "adam"
               else torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
        x, y = torch.randn(16, 50), torch.randint(0, 3, (16,))
        rng = np.random.default_rng(7)
        for epoch in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            SET(zeta=0.3).update(model, opt, epoch, 0, rng)
        layers = [m for m in model if isinstance(m, SparseLinear)]
        return [(m.row_ptr.clone(), m.col_idx.clone(), m.values.detach().clone(),
                 {k: v.clone() for k, v in opt.state[m.values].items()}) for m in layers]

    for fast, slow in zip(run(True), run(False)):
        for a, b in zip(fast[:3], slow[:3]):
            assert torch.equal(a, b)
        assert fast[3].keys() == slow[3].keys()
        for key in fast[3]:
            assert torch.equal(fast[3][key], slow[3][key]), key
