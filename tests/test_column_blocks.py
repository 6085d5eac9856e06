"""The tiled copy of a wide layer (sparse/column_blocks.py) computes what the CSR kernels compute,
and the fused step hands its state back to the model whenever something else reads it."""

import numpy as np
import pytest
import torch

from dualsparse import Callback, SparseMLPClassifier
from dualsparse.sparse import column_blocks as CB
from dualsparse.sparse import step_kernels as K
from dualsparse.sparse import vector_choice
from dualsparse.train import fused_step

F = np.float32


def _layer(n_out=150, n_in=3 * CB.BLOCK_COLS + 5, per_row=12, seed=0):
    """A random CSR layer with empty rows, a row on a block boundary and one in the last, partial block."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_out):
        k = 0 if i % 17 == 3 else rng.integers(1, 2 * per_row)
        rows.append(np.sort(rng.choice(n_in, k, replace=False)))
    rows[5] = np.array([CB.BLOCK_COLS - 1, CB.BLOCK_COLS, 2 * CB.BLOCK_COLS])
    rows[6] = np.array([n_in - 1])
    row_ptr = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    col = np.concatenate(rows).astype(np.uint32)
    values = rng.normal(0, 0.3, col.size).astype(F)
    return row_ptr, col, values, rng


@pytest.mark.parametrize("vector", [False, True])
@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_forward_is_exactly_the_csr_forward(batch, threads, vector):
    row_ptr, col, values, rng = _layer()
    n_out, n_in = row_ptr.size - 1, 3 * CB.BLOCK_COLS + 5
    bias = rng.normal(size=n_out).astype(F)
    x = rng.normal(size=(n_in, 2 * batch)).astype(F)[:, :batch]  # strided, as between layers
    blocks = CB.ColumnBlocks(row_ptr, col, values, np.empty(0, F), n_in, threads)
    blocks.vector = vector  # the vector intrinsics compile (as scalar code) on any CPU
    assert blocks.n_cb == 4
    z0, a0 = np.empty((n_out, batch), F), np.empty((n_out, batch), F)
    z1, a1 = np.full_like(z0, np.nan), np.full_like(a0, np.nan)
    K.forward(row_ptr, col, values, bias, x, z0, a0, F(0.3), True)
    blocks.forward(bias, x, z1, a1, F(0.3), True, threads)
    np.testing.assert_array_equal(z1, z0)
    np.testing.assert_array_equal(a1, a0)


def test_forward_of_tiles_holding_one_row():
    """A tile whose weights all belong to one row (the batch-2 walk's first half is then empty)."""
    n_in = 2 * CB.BLOCK_COLS
    cols = [np.array([1, 7, CB.BLOCK_COLS + 3]), np.array([CB.BLOCK_COLS + 1, CB.BLOCK_COLS + 9]), np.array([2])]
    row_ptr = np.array([0, 3, 5, 6], dtype=np.int64)
    col = np.concatenate(cols).astype(np.uint32)
    rng = np.random.default_rng(3)
    values, bias = rng.normal(size=col.size).astype(F), rng.normal(size=3).astype(F)
    x = rng.normal(size=(n_in, 2)).astype(F)
    z0, z1, a = np.empty((3, 2), F), np.empty((3, 2), F), np.empty((3, 2), F)
    K.forward(row_ptr, col, values, bias, x, z0, a, F(0), False)
    CB.ColumnBlocks(row_ptr, col, values, np.empty(0, F), n_in, 1).forward(bias, x, z1, a, F(0), False, 1)
    np.testing.assert_array_equal(z1, z0)


def test_tiles_taller_than_sixteen_bits_of_rows():
    """A key holds 32 - BLOCK_SHIFT bits of row: a tile of more than 65,536 rows (one thread on a
    layer of 300,000 outputs) still finds every row, forward and backward."""
    n_out, n_in = 300_000, 2 * CB.BLOCK_COLS + 1
    rows = np.array([0, 65_535, 65_536, 70_001, 131_072, 200_000, n_out - 1])
    row_ptr = np.zeros(n_out + 1, dtype=np.int64)
    row_ptr[rows + 1] = 2
    row_ptr = np.cumsum(row_ptr)
    rng = np.random.default_rng(4)
    col = np.concatenate([np.sort(rng.choice(n_in, 2, replace=False)) for _ in rows]).astype(np.uint32)
    values = rng.normal(size=col.size).astype(F)
    blocks = CB.ColumnBlocks(row_ptr, col, values, np.empty(0, F), n_in, 1)
    assert blocks.R > 1 << 16
    x = rng.normal(size=(n_in, 2)).astype(F)
    bias = np.zeros(n_out, F)
    z, a = np.empty((n_out, 2), F), np.empty((n_out, 2), F)
    blocks.forward(bias, x, z, a, F(0), False, 1)
    want = np.zeros((n_out, 2), F)
    for i in rows:
        ks = slice(row_ptr[i], row_ptr[i + 1])
        want[i] = values[ks] @ x[col[ks]]
    np.testing.assert_allclose(z, want, rtol=1e-6)
    # backward: the input gradient W.T g, and SGD without momentum
    gt = rng.normal(size=(n_out, 2)).astype(F)
    xg = np.concatenate([x, np.zeros_like(x)], axis=1)
    got = values.copy()
    blocks = CB.ColumnBlocks(row_ptr, col, got, np.empty(0, F), n_in, 1)
    blocks.backward_update(np.empty(0, F), np.empty(0, F), xg, gt, np.ones_like(x), F(1), F(0.1), F(0), F(0),
                           K.NO_MOMENTUM, K.NO_MOMENTUM, 1)
    blocks.flush()
    grad_in = np.zeros((n_in, 2), F)
    step = np.empty_like(values)
    for i in rows:
        for k in range(row_ptr[i], row_ptr[i + 1]):
            grad_in[col[k]] += values[k] * gt[i]
            step[k] = gt[i] @ x[col[k]]
    np.testing.assert_allclose(xg[:, 2:], grad_in, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got, values - F(0.1) * step, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("vector", [False, True])
@pytest.mark.parametrize("mode", [K.NO_MOMENTUM, K.FIRST_STEP, K.MOMENTUM])
@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_backward_update_and_update_match_the_csr_kernels(mode, batch, threads, vector):
    row_ptr, col, values, rng = _layer(seed=1)
    n_out, n_in = row_ptr.size - 1, 3 * CB.BLOCK_COLS + 5
    buf = rng.normal(0, 0.1, values.size).astype(F) if mode != K.NO_MOMENTUM else np.empty(0, F)
    bias, bbuf = rng.normal(size=n_out).astype(F), rng.normal(size=n_out).astype(F)
    xg = rng.normal(size=(n_in, 2 * batch)).astype(F)
    gt = rng.normal(size=(n_out, batch)).astype(F)
    zprev = rng.normal(size=(n_in, batch)).astype(F)
    hyper = (F(0.4), F(0.05), F(0.9), F(1e-3), mode, mode)  # slope, lr, momentum, weight decay, modes

    ref = [values.copy(), buf.copy(), bias.copy(), bbuf.copy(), xg.copy()]
    K.backward_update(row_ptr, col, ref[0], ref[1], ref[2], ref[3], ref[4], gt, zprev, *hyper, np.empty((0, 0), F))
    got = [values.copy(), buf.copy(), bias.copy(), bbuf.copy(), xg.copy()]
    blocks = CB.ColumnBlocks(row_ptr, col, got[0], got[1], n_in, threads)
    blocks.vector = vector
    blocks.backward_update(got[2], got[3], got[4], gt, zprev, *hyper, threads)
    # the same step with the input staged from a contiguous copy into a spoiled xg, gradient copied out
    staged = [values.copy(), buf.copy(), bias.copy(), bbuf.copy(), np.full_like(xg, np.nan)]
    gcopy = np.full((n_in, batch), np.nan, F)
    staged_blocks = CB.ColumnBlocks(row_ptr, col, staged[0], staged[1], n_in, threads)
    staged_blocks.vector = vector
    staged_blocks.backward_update(staged[2], staged[3], staged[4], np.ascontiguousarray(gt), zprev, *hyper, threads,
                                  xin=np.ascontiguousarray(xg[:, :batch]), gcopy=gcopy)
    blocks.flush()  # into got[0], got[1]
    staged_blocks.flush()
    # the update may contract to FMAs differently in the two kernels (a few float32 ulps)
    for name, r, g in zip(["values", "momentum", "bias", "bias momentum"], ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-7, err_msg=name)
    # each input's gradient adds its rows in the tiles' (rank-major) order, not CSR's
    np.testing.assert_allclose(got[4], ref[4], rtol=1e-6, atol=1e-7)
    for name, g, s in zip(["values", "momentum", "bias", "bias momentum", "input and gradient"], got, staged):
        np.testing.assert_array_equal(s, g, err_msg=name)
    np.testing.assert_array_equal(gcopy, got[4][:, batch:])

    # the first layer: no input gradient
    x = rng.normal(size=(n_in, batch)).astype(F)
    ref = [values.copy(), buf.copy(), bias.copy(), bbuf.copy()]
    K.update(row_ptr, col, ref[0], ref[1], ref[2], ref[3], x, gt, *hyper[1:])
    got = [values.copy(), buf.copy(), bias.copy(), bbuf.copy()]
    blocks = CB.ColumnBlocks(row_ptr, col, got[0], got[1], n_in, threads)
    blocks.vector = vector
    blocks.update(got[2], got[3], x, gt, *hyper[1:], threads)
    blocks.flush()
    for name, r, g in zip(["values", "momentum", "bias", "bias momentum"], ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-7, err_msg=name)


def test_flush_restores_csr_order_and_splits_cover_every_row_tile():
    row_ptr, col, values, rng = _layer(n_out=700, seed=2)
    buf = rng.normal(size=values.size).astype(F)
    v, b = values.copy(), buf.copy()
    blocks = CB.ColumnBlocks(row_ptr, col, v, b, 3 * CB.BLOCK_COLS + 5, threads=3)
    assert blocks.n_rt > 3 and blocks.R < 700
    v[:], b[:] = 0, 0
    blocks.flush()
    np.testing.assert_array_equal(v, values)
    np.testing.assert_array_equal(b, buf)
    for threads in (1, 2, 3, 8):
        s = blocks.split(threads)
        assert s[0] == 0 and s[-1] == blocks.n_rt and np.all(np.diff(s) >= 0) and s.size == threads + 1
        s = blocks.block_split(threads)
        assert s[0] == 0 and s[-1] == blocks.n_cb and np.all(np.diff(s) >= 0) and s.size == threads + 1


def test_only_wide_sparse_layers_are_tiled():
    wide = CB.TILED_ABOVE + 1
    assert CB.wanted(600_000, 600_000, 24_000_000)
    assert CB.wanted(600_000, wide, 10_000)
    assert not CB.wanted(600_000, CB.TILED_ABOVE, 10_000)  # the CSR kernels' gathers fit L2 already
    assert not CB.wanted(5, wide, 5 * wide)  # dense: rows stream their inputs


# ---------------------------------------------------------------------------- in the estimator
@pytest.fixture(autouse=False)
def per_step(monkeypatch):
    from dualsparse.train import compiled_epoch

    monkeypatch.setenv(compiled_epoch.ENV_VAR, "0")


class ReadsValues(Callback):
    """Reads the model at every batch end, as a user's callback may."""

    def __init__(self):
        self.sums = []

    def on_batch_end(self, est, epoch, idx, outputs, targets, loss):
        self.sums.append([float(p.detach().double().sum()) for p in est.module_.parameters()])


def _wide_fit(tiles, monkeypatch, algorithm="set", callbacks=None, inputs=12, hidden=(CB.TILED_ABOVE + 4000, 300)):
    monkeypatch.setenv(fused_step.TILES_ENV_VAR, "1" if tiles else "0")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(26, inputs)).astype(F)
    y = (X[:, 0] > 0).astype(int)
    est = SparseMLPClassifier(hidden_layer_sizes=hidden, sparsity=0.9995, algorithm=algorithm,
                              optimizer="sgd", learning_rate=0.05, momentum=0.9, weight_decay=1e-4, batch_size=2,
                              max_epochs=3, random_state=0, callbacks=callbacks)
    return est.fit(X, y)


@pytest.mark.parametrize("reading_callback", [True, False])
def test_fits_with_tiles_equal_fits_without(monkeypatch, per_step, reading_callback):
    """With a callback that reads the model the copy is written back after every step; without,
    at the end of every epoch, before validation and SET's evolution."""
    built = []
    real = CB.ColumnBlocks.__init__
    vector_choice.tiles()  # its timing builds a layer of its own once per process: not counted here

    def counting(self, *a, **k):
        built.append(a[4])
        real(self, *a, **k)

    monkeypatch.setattr(CB.ColumnBlocks, "__init__", counting)
    cb_t, cb_c = ReadsValues(), ReadsValues()
    tiled = _wide_fit(True, monkeypatch, callbacks=[cb_t] if reading_callback else None)
    assert built and set(built) == {CB.TILED_ABOVE + 4000}  # the 300-unit layer's inputs are tiled
    csr = _wide_fit(False, monkeypatch, callbacks=[cb_c] if reading_callback else None)
    # a callback that reads the model sees the tiled copy's state, written back before it runs
    np.testing.assert_allclose(cb_t.sums, cb_c.sums, rtol=1e-5)
    for (name, p), q in zip(tiled.module_.named_parameters(), csr.module_.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(tiled.optimizer_.state[p]["momentum_buffer"],
                                   csr.optimizer_.state[q]["momentum_buffer"], rtol=1e-5, atol=1e-6, msg=name)
    np.testing.assert_allclose([h["loss"] for h in tiled.history_], [h["loss"] for h in csr.history_], rtol=1e-5)


def test_tiled_layers_in_a_row_equal_the_csr_fit(monkeypatch, per_step):
    """A tiled first layer (update only) under a tiled hidden layer: the hidden layer's backward
    stages its input from the contiguous activations and writes the first layer's gradient into
    the contiguous copy that layer's tiles read (fused_step._contiguous)."""
    shape = dict(inputs=CB.TILED_ABOVE + 100, hidden=(CB.TILED_ABOVE + 200, 300))
    built = []
    real = CB.ColumnBlocks.__init__
    vector_choice.tiles()

    def counting(self, *a, **k):
        built.append(a[4])
        real(self, *a, **k)

    monkeypatch.setattr(CB.ColumnBlocks, "__init__", counting)
    tiled = _wide_fit(True, monkeypatch, **shape)
    assert set(built) == {CB.TILED_ABOVE + 100, CB.TILED_ABOVE + 200}
    csr = _wide_fit(False, monkeypatch, **shape)
    # the input gradients add in the tiles' order: float32 rounding apart, which this steep fit (65,636
    # unscaled inputs, three epochs) carries to ~2e-6 of each tensor's largest value
    for (name, p), q in zip(tiled.module_.named_parameters(), csr.module_.parameters()):
        scale = float(q.detach().abs().max())
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-5 * scale, msg=name)
    np.testing.assert_allclose([h["loss"] for h in tiled.history_], [h["loss"] for h in csr.history_], rtol=1e-5)


def test_mid_epoch_topology_updates_see_the_tiled_state(monkeypatch, per_step):
    """RigL captures gradients through autograd and updates every few steps, mid-epoch."""
    from dualsparse.dst import RigL

    a = _wide_fit(True, monkeypatch, algorithm=RigL(zeta=0.3, every=4))
    b = _wide_fit(False, monkeypatch, algorithm=RigL(zeta=0.3, every=4))
    for p, q in zip(a.module_.parameters(), b.module_.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    for la, lb in zip(a.module_.modules(), b.module_.modules()):
        if hasattr(la, "col_idx"):
            assert torch.equal(la.col_idx, lb.col_idx)


def test_an_error_mid_epoch_leaves_the_model_with_the_trained_values(monkeypatch, per_step):
    class Stop(Callback):
        on_batch_end_reads_model = False  # no flush for it: the error path must write back

        def __init__(self):
            self.n = 0

        def on_batch_end(self, est, epoch, idx, outputs, targets, loss):
            self.n += 1
            if self.n == 5:
                raise KeyboardInterrupt

    monkeypatch.setenv(fused_step.TILES_ENV_VAR, "1")
    flushed = []
    real = fused_step.FusedStep.flush
    monkeypatch.setattr(fused_step.FusedStep, "flush", lambda self: (flushed.append(self.live), real(self))[1])
    with pytest.raises(KeyboardInterrupt):
        _wide_fit(True, monkeypatch, callbacks=[Stop()])
    assert flushed and flushed[-1] is True  # the live copy was written back on the way out


def test_rows_longer_than_the_cursor_budget_build_by_counted_runs():
    """A row tile whose longest row times its blocks exceeds the build's cursor budget counts each
    row's longest run per block first; the tiles are the same layer (forward equal, flush exact)."""
    n_in = 135 * CB.BLOCK_COLS
    rng = np.random.default_rng(5)
    rows = [np.sort(rng.choice(n_in, 9000, replace=False)), 7 * CB.BLOCK_COLS + np.arange(0, 600, 2),
            np.array([3, n_in - 1])]
    assert 135 * min(CB.BLOCK_COLS, 9000) > CB._CURSOR_CELLS
    row_ptr = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    col = np.concatenate(rows).astype(np.int32)
    values = rng.normal(size=col.size).astype(F)
    x = rng.normal(size=(n_in, 2)).astype(F)
    blocks = CB.ColumnBlocks(row_ptr, col, values.copy(), np.empty(0, F), n_in, 1)
    z0, z1, a = np.empty((3, 2), F), np.empty((3, 2), F), np.empty((3, 2), F)
    K.forward(row_ptr, col, values, np.zeros(3, F), x, z0, a, F(0), False)
    blocks.forward(np.zeros(3, F), x, z1, a, F(0), False, 1)
    np.testing.assert_array_equal(z1, z0)
    out = np.zeros_like(values)
    blocks._csr = (row_ptr, col, out, np.empty(0, F))
    blocks.flush()
    np.testing.assert_array_equal(out, values)
