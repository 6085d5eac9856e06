"""The fused SGD step (train/fused_step.py) trains exactly like the autograd path it replaces."""

import numpy as np
import pytest
import torch

from dualsparse import Callback, SparseMLPClassifier, SparseMLPRegressor
from dualsparse.sparse import step_kernels as K
from dualsparse.train import fused_step


@pytest.fixture(autouse=True)
def per_step_paths(monkeypatch):
    """These tests compare the per-step paths: whole compiled epochs (train/compiled_epoch.py,
    tested in test_compiled_epoch.py) are off."""
    from dualsparse.train import compiled_epoch

    monkeypatch.setenv(compiled_epoch.ENV_VAR, "0")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 20)).astype(np.float32)
    y_cls = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    y_reg = np.stack([X[:, 0] - 2 * X[:, 3], X[:, 1] * X[:, 2]], axis=1)
    return X, y_cls, y_reg


def _fit(cls, X, y, fused, **kw):
    params = dict(hidden_layer_sizes=(30, 30), sparsity=0.6, optimizer="sgd", learning_rate=0.01, momentum=0.9,
                  batch_size=2, max_epochs=3, random_state=0, activation="relu")
    params.update(kw)
    est = cls(**params)
    est._use_fused_step = fused
    return est.fit(X, y)


def _assert_same(a, b, rtol=1e-5, atol=1e-6):
    pa, pb = dict(a.module_.named_parameters()), dict(b.module_.named_parameters())
    assert pa.keys() == pb.keys()
    for name in pa:
        va, vb = pa[name].detach(), pb[name].detach()
        torch.testing.assert_close(va, vb, rtol=rtol, atol=atol, msg=name)
        sa, sb = a.optimizer_.state.get(pa[name], {}), b.optimizer_.state.get(pb[name], {})
        assert sa.keys() == sb.keys(), name
        if "momentum_buffer" in sa:
            torch.testing.assert_close(sa["momentum_buffer"], sb["momentum_buffer"], rtol=rtol, atol=atol, msg=name)
    for la, lb in zip(a.module_.modules(), b.module_.modules()):
        if hasattr(la, "col_idx"):
            assert torch.equal(la.col_idx, lb.col_idx) and torch.equal(la.row_ptr, lb.row_ptr)
    np.testing.assert_allclose([h["loss"] for h in a.history_], [h["loss"] for h in b.history_], rtol=rtol)


@pytest.mark.parametrize("cls", ["classifier", "regressor"])
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 1e-3), (0.0, 1e-3)])
@pytest.mark.parametrize("activation", ["relu", "allrelu"])
def test_fused_matches_autograd(data, cls, momentum, weight_decay, activation):
    X, y_cls, y_reg = data
    est_cls, y = (SparseMLPClassifier, y_cls) if cls == "classifier" else (SparseMLPRegressor, y_reg)
    kw = dict(momentum=momentum, weight_decay=weight_decay, activation=activation)
    a = _fit(est_cls, X, y, True, **kw)  # 3 epochs: two SET updates in between
    b = _fit(est_cls, X, y, False, **kw)
    _assert_same(a, b)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 64])
def test_fused_matches_autograd_batch_sizes(data, batch_size):
    X, y, _ = data  # 48 rows: the last batch is smaller for 5 and all rows for 64
    kw = dict(batch_size=batch_size, activation="allrelu", weight_decay=1e-4)
    _assert_same(_fit(SparseMLPClassifier, X, y, True, **kw), _fit(SparseMLPClassifier, X, y, False, **kw))


def test_fused_path_is_used_and_reproducible(data, monkeypatch):
    X, y, _ = data
    calls = []
    original = fused_step.FusedStep.__call__

    def spy(self, xb, yb):
        calls.append(xb.shape[0])
        return original(self, xb, yb)

    monkeypatch.setattr(fused_step.FusedStep, "__call__", spy)
    a = _fit(SparseMLPClassifier, X, y, True)
    assert len(calls) == 3 * 24
    b = _fit(SparseMLPClassifier, X, y, True)
    for pa, pb in zip(a.module_.parameters(), b.module_.parameters()):
        assert torch.equal(pa, pb)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_wide_batches_with_much_work_keep_the_autograd_path(data, monkeypatch):
    X, y, _ = data
    monkeypatch.setattr(fused_step, "FUSED_MAX_WORK", 1000)  # this net: ~500 live weights
    loss = torch.nn.CrossEntropyLoss()
    small = _fit(SparseMLPClassifier, X, y, True, batch_size=fused_step.FUSED_MAX_BATCH)
    assert fused_step.make_fused_step(small, X, loss) is not None  # small batches: always fused
    wide = _fit(SparseMLPClassifier, X, y, True, batch_size=16)
    assert 16 * sum(m.nnz for m in wide.module_.modules() if hasattr(m, "nnz")) > 1000
    assert fused_step.make_fused_step(wide, X, loss) is None
    monkeypatch.setattr(fused_step, "FUSED_MAX_WORK", 10**9)
    assert fused_step.make_fused_step(wide, X, loss) is not None


def test_env_var_forces_autograd(data, monkeypatch):
    X, y, _ = data
    est = SparseMLPClassifier(optimizer="sgd")
    est.module_, est.optimizer_ = None, None
    monkeypatch.setenv(fused_step.ENV_VAR, "0")
    assert fused_step.make_fused_step(est, X, torch.nn.CrossEntropyLoss()) is None


def test_switching_paths_and_partial_fit_stay_consistent(data):
    """Fused epochs, then autograd epochs (and back) give the autograd-only result."""
    X, y, _ = data
    kw = dict(hidden_layer_sizes=(30, 30), sparsity=0.6, optimizer="sgd", learning_rate=0.01, momentum=0.9,
              batch_size=3, random_state=0, activation="allrelu", weight_decay=1e-4)
    classes = np.unique(y)
    mixed, ref = SparseMLPClassifier(**kw), SparseMLPClassifier(**kw)
    ref._use_fused_step = False
    for epoch in range(4):
        mixed._use_fused_step = epoch % 2 == 0
        mixed.partial_fit(X, y, classes=classes)
        ref.partial_fit(X, y, classes=classes)
    _assert_same(mixed, ref)


def test_warm_start_continues_from_momentum(data):
    X, y, _ = data
    a = _fit(SparseMLPClassifier, X, y, True, warm_start=True, max_epochs=2)
    b = _fit(SparseMLPClassifier, X, y, False, warm_start=True, max_epochs=2)
    a.fit(X, y)
    b.fit(X, y)
    _assert_same(a, b)


def test_callbacks_get_logits_and_flops_are_counted(data):
    X, y, _ = data
    seen = {True: [], False: []}

    class Record(Callback):
        def __init__(self, key):
            self.key = key

        def on_batch_end(self, est, epoch, batch_index, outputs, y_batch, loss):
            seen[self.key].append((outputs.clone(), loss))

    a = _fit(SparseMLPClassifier, X, y, True, callbacks=[Record(True)], max_epochs=1)
    b = _fit(SparseMLPClassifier, X, y, False, callbacks=[Record(False)], max_epochs=1)
    assert len(seen[True]) == len(seen[False]) == 24
    for (oa, la), (ob, lb) in zip(seen[True], seen[False]):
        assert oa.shape == ob.shape == (2, 3)
        torch.testing.assert_close(oa, ob, rtol=1e-5, atol=1e-6)
        assert la == pytest.approx(lb, rel=1e-5)
    assert a.flops_ == b.flops_ and a.flops_["samples_seen"] == 48


@pytest.mark.parametrize("kw", [dict(optimizer="adam"), dict(dropout=0.2), dict(activation="tanh"),
                                dict(optimizer="sgd", algorithm="dense")])
def test_fallbacks_still_train(data, kw):
    X, y, _ = data
    params = dict(hidden_layer_sizes=(30, 30), sparsity=0.6, learning_rate=0.01, batch_size=4, max_epochs=3,
                  random_state=0, optimizer="sgd")
    params.update(kw)
    est = SparseMLPClassifier(**params).fit(X, y)
    assert fused_step.make_fused_step(est, X, est._loss_fn()) is None
    assert np.isfinite(est.history_[-1]["loss"]) and est.history_[-1]["loss"] < est.history_[0]["loss"] * 1.5


def test_sparse_input_falls_back(data):
    import scipy.sparse as sp

    X, y, _ = data
    Xs = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0))
    kw = dict(hidden_layer_sizes=(30,), sparsity=0.6, optimizer="sgd", learning_rate=0.01, batch_size=4,
              max_epochs=2, random_state=0)
    est = SparseMLPClassifier(**kw).fit(Xs, y)
    assert fused_step.make_fused_step(est, Xs, est._loss_fn()) is None
    dense = SparseMLPClassifier(**kw)
    dense._use_fused_step = True
    dense.fit(Xs.toarray(), y)
    assert np.isfinite(est.history_[-1]["loss"])


def test_rigl_capture_steps_use_autograd(data):
    X, y, _ = data
    from dualsparse.dst import RigL

    kw = dict(algorithm=RigL(zeta=0.3, every=10), hidden_layer_sizes=(30, 30), sparsity=0.6, optimizer="sgd", learning_rate=0.01,
              momentum=0.9, batch_size=2, max_epochs=2, random_state=0)
    a = SparseMLPClassifier(**kw)
    b = SparseMLPClassifier(**kw)
    b._use_fused_step = False
    _assert_same(a.fit(X, y), b.fit(X, y))


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_parallel_kernels_match_autograd(data, monkeypatch, batch_size):
    """Small layers run on one thread; force the multi-threaded kernels (row split, per-thread
    gradient buffers) and compare with autograd."""
    from dualsparse.sparse import kernels

    if kernels.num_threads() < 2:
        pytest.skip("needs 2 Numba threads")
    monkeypatch.setattr(fused_step, "PARALLEL_MIN_WORK", 0)
    X, y, _ = data
    kw = dict(batch_size=batch_size, activation="allrelu", weight_decay=1e-4)
    # the threads' input gradients are summed in another order: float32 rounding, ~1e-6 of the
    # largest momentum after 144 steps
    _assert_same(_fit(SparseMLPClassifier, X, y, True, **kw), _fit(SparseMLPClassifier, X, y, False, **kw),
                 rtol=1e-4, atol=1e-5)


def _long_rows(n_out, n_in, density, seed):
    rng = np.random.default_rng(seed)
    rows = [np.flatnonzero(rng.random(n_in) < density) for _ in range(n_out)]
    rows[1] = np.array([], dtype=np.int64)  # an empty row
    row_ptr = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    return row_ptr, np.concatenate(rows).astype(np.int32), rng


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 2, 3])
def test_column_owned_backward_is_the_one_thread_backward_bit_for_bit(threads, batch):
    """A few long rows (a dense output layer's shape), split unevenly between threads."""
    n_out, n_in = 5, 2000
    row_ptr, col, rng = _long_rows(n_out, n_in, 0.6, seed=batch)
    assert K.wide_rows(n_out, n_in, col.size) and not K.wide_rows(4000, n_in, col.size)
    f = np.float32
    for mode in (K.NO_MOMENTUM, K.FIRST_STEP, K.MOMENTUM):
        values = rng.normal(0, 0.1, col.size).astype(f)
        buf = rng.normal(0, 0.1, col.size).astype(f) if mode != K.NO_MOMENTUM else np.empty(0, f)
        bias, bbuf = rng.normal(size=n_out).astype(f), rng.normal(size=n_out).astype(f)
        xg = rng.normal(size=(n_in, 2 * batch)).astype(f)
        gt = rng.normal(size=(n_out, batch)).astype(f)
        zprev = rng.normal(size=(n_in, batch)).astype(f)
        hyper = (zprev, f(0.4), f(0.05), f(0.9), f(1e-3), mode, mode)
        ref = [values.copy(), buf.copy(), bias.copy(), bbuf.copy(), xg.copy(), np.full((n_in, batch), np.nan, f)]
        K.backward_update(row_ptr, col, *ref[:4], ref[4], gt, *hyper, ref[5])
        got = [values.copy(), buf.copy(), bias.copy(), bbuf.copy(), xg.copy(), np.full((n_in, batch), np.nan, f)]
        K.backward_update_cols(row_ptr, col, *got[:4], got[4], gt, *hyper, got[5], threads)
        assert not np.array_equal(ref[0], values)
        names = ["values", "momentum", "bias", "bias momentum", "input gradient", "its contiguous copy"]
        for name, r, g in zip(names, ref, got):
            np.testing.assert_array_equal(g, r, err_msg=name)
        np.testing.assert_array_equal(got[5], got[4][:, batch:])


def test_activation_derivative_is_the_leaky_relu_derivative_on_its_range_only():
    """The backward's derivative pass (branch-free since it mispredicted on random signs): the
    gradient times 1 where z > 0, else times the slope, also at z = 0, -0, NaN and -inf; the
    contiguous copy equals the result; nothing outside [j0, j1) is touched."""
    from dualsparse.sparse import epoch_kernels as E

    rng = np.random.default_rng(0)
    f = np.float32
    n, batch, j0, j1, slope = 40, 2, 5, 33, f(0.25)
    z = rng.normal(size=(n, batch)).astype(f)
    z[6], z[7], z[8], z[9] = 0.0, -0.0, np.nan, (np.inf, -np.inf)
    xg = rng.normal(size=(n, 2 * batch)).astype(f)
    want = xg.copy()
    g = xg[j0:j1, batch:]
    want[j0:j1, batch:] = np.where(z[j0:j1] > 0, g, g * slope)
    for copy in (np.full((n, batch), np.nan, f), np.empty((0, 0), f)):
        got = xg.copy()
        K._derivative(got, z, slope, j0, j1, copy)
        np.testing.assert_array_equal(got, want)
        if copy.size:
            np.testing.assert_array_equal(copy[j0:j1], want[j0:j1, batch:])
            assert np.isnan(copy[:j0]).all() and np.isnan(copy[j1:]).all()
    # the compiled epoch's version of the same rule (whole arrays, first nb_ columns)
    gx = xg[:, batch:].copy()
    E._times_derivative(gx, z, z, batch, E.ACT_SLOPE, slope)
    np.testing.assert_array_equal(gx, np.where(z > 0, xg[:, batch:], xg[:, batch:] * slope))
