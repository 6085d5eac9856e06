"""Whole compiled epochs (train/compiled_epoch.py) train exactly like the autograd path they replace."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from dualsparse import Callback, SparseMLPClassifier, SparseMLPRegressor
from dualsparse.dst import RigL
from dualsparse.train import compiled_epoch, input_rows
from dualsparse.train.compiled_epoch import CompiledEpoch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(70, 12)).astype(np.float32)
    y_cls = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    y_reg = np.stack([X[:, 0] - 2 * X[:, 3], X[:, 1] * X[:, 2]], axis=1)
    return X, y_cls, y_reg


def _fit(cls, X, y, compiled, **kw):
    params = dict(hidden_layer_sizes=(24, 16), sparsity=0.5, batch_size=16, max_epochs=3, random_state=0)
    params.update(kw)
    est = cls(**params)
    est._use_compiled_epoch = compiled
    est._use_fused_step = False  # the reference is the plain autograd step
    return est.fit(X, y)


def _assert_same(a, b, rtol=1e-4, atol=1e-5):
    pa, pb = dict(a.module_.named_parameters()), dict(b.module_.named_parameters())
    assert pa.keys() == pb.keys()
    for name in pa:
        torch.testing.assert_close(pa[name].detach(), pb[name].detach(), rtol=rtol, atol=atol, msg=name)
        sa, sb = a.optimizer_.state.get(pa[name], {}), b.optimizer_.state.get(pb[name], {})
        assert sa.keys() == sb.keys(), name
        for key in sa:
            torch.testing.assert_close(sa[key], sb[key], rtol=rtol, atol=atol, msg=f"{name} {key}")
    for la, lb in zip(a.module_.modules(), b.module_.modules()):
        if hasattr(la, "col_idx"):
            assert torch.equal(la.col_idx, lb.col_idx) and torch.equal(la.row_ptr, lb.row_ptr)
    np.testing.assert_allclose([h["loss"] for h in a.history_], [h["loss"] for h in b.history_], rtol=rtol)
    assert a.flops_ == b.flops_
    assert a.n_iter_ == b.n_iter_ and a._step == b._step


def _spy(monkeypatch):
    calls = []
    original = CompiledEpoch.run

    def run(self, order, record=False):
        calls.append(len(order))
        return original(self, order, record)

    monkeypatch.setattr(CompiledEpoch, "run", run)
    return calls


OPTIMIZERS = [
    dict(optimizer="adam"),
    dict(optimizer="adam", weight_decay=1e-3, learning_rate=3e-3),
    dict(optimizer="sgd", momentum=0.0, learning_rate=0.05),
    dict(optimizer="sgd", momentum=0.9, weight_decay=1e-3, learning_rate=0.02),
]


@pytest.mark.parametrize("cls", ["classifier", "regressor"])
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=["adam", "adam-wd", "sgd", "sgd-momentum-wd"])
def test_matches_autograd(data, cls, opt, monkeypatch):
    X, y_cls, y_reg = data
    est_cls, y = (SparseMLPClassifier, y_cls) if cls == "classifier" else (SparseMLPRegressor, y_reg)
    calls = _spy(monkeypatch)
    a = _fit(est_cls, X, y, True, **opt)  # 3 epochs: two SET updates in between
    assert calls == [70, 70, 70]  # the compiled path really ran, one call per epoch
    b = _fit(est_cls, X, y, False, **opt)
    _assert_same(a, b)


@pytest.mark.parametrize("activation", ["relu", "allrelu", "leaky_relu", "identity", "tanh", "logistic"])
def test_activations_match_autograd(data, activation, monkeypatch):
    X, y, _ = data
    calls = _spy(monkeypatch)
    a = _fit(SparseMLPClassifier, X, y, True, activation=activation)
    assert calls
    _assert_same(a, _fit(SparseMLPClassifier, X, y, False, activation=activation))


@pytest.mark.parametrize("batch_size", [1, 2, 7, 32, 200])
def test_batch_sizes_match_autograd(data, batch_size):
    X, y, _ = data  # 70 rows: a short last batch for 32, one batch of all rows for 200
    kw = dict(batch_size=batch_size, optimizer="sgd", momentum=0.9, learning_rate=0.01)
    _assert_same(_fit(SparseMLPClassifier, X, y, True, **kw), _fit(SparseMLPClassifier, X, y, False, **kw))


@pytest.mark.parametrize("keep,densify", [(0.03, True), (0.6, False), (0.6, True)],
                         ids=["walked", "scattered", "densified"])
def test_sparse_input_matches_autograd(data, keep, densify, monkeypatch):
    """CSR input: walked per stored value below SPARSE_WALK_BELOW, scattered into the dense
    loops above it, or (small inputs) expanded to dense rows once; each against the autograd
    path on the same CSR input."""
    X, y, _ = data
    rng = np.random.default_rng(1)
    Xs = sp.csr_matrix(np.where(rng.random(X.shape) < keep, X, 0).astype(np.float32))
    monkeypatch.setattr(compiled_epoch, "SPARSE_WALK_BELOW", 0.2)
    monkeypatch.setattr(input_rows, "MAX_CELLS", 1 << 22 if densify else 0)
    walk = Xs.nnz < 0.2 * X.size
    assert walk == (keep < 0.2)
    calls = _spy(monkeypatch)
    kw = dict(optimizer="adam", hidden_layer_sizes=(24,))
    a = _fit(SparseMLPClassifier, Xs, y, True, **kw)
    assert calls
    _assert_same(a, _fit(SparseMLPClassifier, Xs, y, False, **kw))


@pytest.mark.parametrize("densify", [True, False])
def test_sparse_input_first_layer_flops_follow_the_stored_values(data, densify, monkeypatch):
    monkeypatch.setattr(input_rows, "MAX_CELLS", 1 << 22 if densify else 0)
    X, y, _ = data
    D = np.where(np.abs(X) > 1.2, X, 0).astype(np.float32)
    D[[0, 1, -1]] = 0  # rows with nothing stored, the last one too
    Xs = sp.csr_matrix(D)
    est = _fit(SparseMLPClassifier, Xs, y, True, hidden_layer_sizes=(24,), max_epochs=1)
    first = est.module_[0]
    deg = np.bincount(first.col_idx.numpy(), minlength=first.in_features)
    products = int(deg[Xs.indices].sum())  # brute force: every stored value times its fan-out
    second = est.module_[2].nnz * Xs.shape[0]
    expected = (2 * products + 24 * Xs.shape[0] + 2 * products) + (2 * second + 3 * Xs.shape[0] + 4 * second)
    assert est.flops_["train"] == expected


def test_rigl_capture_steps_split_the_epoch(data, monkeypatch):
    """RigL captures a batch's gradient every 3 steps: those steps run through autograd, the
    batches between them in compiled runs, and the result is the autograd-only one."""
    X, y, _ = data
    calls = _spy(monkeypatch)
    kw = dict(algorithm=RigL(zeta=0.3, every=3), optimizer="sgd", momentum=0.9, learning_rate=0.01, batch_size=8)
    a = _fit(SparseMLPClassifier, X, y, True, **kw)
    # 9 batches per epoch, 27 steps: captures at steps 3, 6, ..., 27 leave runs of 2 batches
    assert len(calls) == 9 and set(calls) == {16}
    b = _fit(SparseMLPClassifier, X, y, False, **kw)
    _assert_same(a, b)


@pytest.mark.parametrize("algorithm", ["set", "rigl"])
def test_small_csr_read_as_dense_rows_trains_and_counts_like_csr(data, algorithm, monkeypatch):
    """A small CSR input is read as dense rows (input_rows) by the compiled runs and by the
    autograd steps between them (RigL's captures split every epoch): the same training as the
    CSR input read per step, and FLOPs, epoch after epoch of topology changes, still exactly
    those of the stored values."""
    X, y, _ = data
    rng = np.random.default_rng(2)
    Xs = sp.csr_matrix(np.where(rng.random(X.shape) < 0.6, X, 0).astype(np.float32))
    alg = RigL(zeta=0.3, every=3) if algorithm == "rigl" else algorithm
    kw = dict(algorithm=alg, optimizer="sgd", momentum=0.9, learning_rate=0.01, batch_size=8, max_epochs=4)
    read = []
    original = input_rows.dense_rows

    def spy(X, sparse_layers):
        out = original(X, sparse_layers)
        read.append(out is not None)
        return out

    monkeypatch.setattr("dualsparse.train.estimators.dense_rows", spy)
    a = _fit(SparseMLPClassifier, Xs, y, True, **kw)
    assert read == [True]
    monkeypatch.setattr(input_rows, "MAX_CELLS", 0)  # the reference: CSR batches, autograd steps
    b = _fit(SparseMLPClassifier, Xs, y, False, **kw)
    assert read == [True, False]
    _assert_same(a, b)
    # b counted every CSR batch from its stored values, one step at a time
    assert a.flops_["train"] == b.flops_["train"] and a.flops_["train_ratio"] < 0.6


def test_switching_paths_and_partial_fit_continue_one_run(data):
    """Compiled epochs, then autograd epochs (and back) give the autograd-only result: the
    optimiser state (Adam's step count and moments) is torch's own."""
    X, y, _ = data
    kw = dict(hidden_layer_sizes=(24, 16), sparsity=0.5, batch_size=16, random_state=0, weight_decay=1e-4)
    classes = np.unique(y)
    mixed, ref = SparseMLPClassifier(**kw), SparseMLPClassifier(**kw)
    ref._use_compiled_epoch = ref._use_fused_step = False
    for epoch in range(4):
        mixed._use_compiled_epoch = epoch % 2 == 0
        mixed.partial_fit(X, y, classes=classes)
        ref.partial_fit(X, y, classes=classes)
    _assert_same(mixed, ref)
    step = mixed.optimizer_.state[mixed.module_[0].values]["step"]
    assert float(step) == 4 * 5  # 5 batches of 16 rows per epoch


def test_warm_start_continues(data):
    X, y, _ = data
    a = _fit(SparseMLPClassifier, X, y, True, warm_start=True, max_epochs=2)
    b = _fit(SparseMLPClassifier, X, y, False, warm_start=True, max_epochs=2)
    _assert_same(a.fit(X, y), b.fit(X, y))


def test_defaults_take_the_compiled_path(data, monkeypatch):
    """What a new user meets first: default parameters train through whole compiled epochs."""
    X, y, _ = data
    calls = _spy(monkeypatch)
    SparseMLPClassifier(max_epochs=2, random_state=0).fit(X, y)
    SparseMLPRegressor(max_epochs=2, random_state=0).fit(X, y)
    assert len(calls) == 4


class _BatchRecorder(Callback):
    def __init__(self):
        self.n = 0

    def on_batch_end(self, est, epoch, batch_index, outputs, y_batch, loss):
        self.n += 1


class _ArgumentsRecorder(Callback):
    on_batch_end_reads_model = False  # reads only the hook's arguments: replayed after compiled runs

    def __init__(self):
        self.seen = []

    def on_batch_end(self, est, epoch, batch_index, outputs, y_batch, loss):
        self.seen.append((epoch, batch_index.copy(), outputs.clone(), y_batch.clone(), loss))


class _EpochRecorder(Callback):
    def on_epoch_end(self, est, epoch, logs):
        pass


@pytest.mark.parametrize("kw,eligible", [
    (dict(), True),
    (dict(callbacks=[_EpochRecorder()]), True),
    (dict(callbacks=[_BatchRecorder()]), False),   # its on_batch_end may read the model mid-epoch
    (dict(callbacks=[_ArgumentsRecorder()]), True),
    (dict(dropout=0.2), False),
    (dict(activation="gelu"), False),
    (dict(algorithm="dense"), False),
])
def test_eligibility(data, kw, eligible):
    X, y, _ = data
    est = SparseMLPClassifier(hidden_layer_sizes=(24,), sparsity=0.5, max_epochs=2, random_state=0, **kw).fit(X, y)
    made = CompiledEpoch.make(est, X, y, est._loss_fn(), est.callbacks)
    assert (made is not None) == eligible
    assert np.isfinite(est.history_[-1]["loss"])


def test_batch_callbacks_still_see_every_batch(data):
    X, y, _ = data
    rec = _BatchRecorder()
    SparseMLPClassifier(hidden_layer_sizes=(24,), sparsity=0.5, max_epochs=2, batch_size=16, callbacks=[rec],
                        random_state=0).fit(X, y)
    assert rec.n == 2 * 5


def test_argument_only_batch_callbacks_see_what_the_per_step_path_shows(data, monkeypatch):
    """Every batch, in order, with the outputs it met and its loss, also around RigL's capture steps."""
    X, y, _ = data
    calls = _spy(monkeypatch)
    kw = dict(algorithm=RigL(zeta=0.3, every=3), optimizer="adam", batch_size=8, max_epochs=2)
    a, b = _ArgumentsRecorder(), _ArgumentsRecorder()
    _assert_same(_fit(SparseMLPClassifier, X, y, True, callbacks=[a], **kw),
                 _fit(SparseMLPClassifier, X, y, False, callbacks=[b], **kw))
    assert calls and len(a.seen) == len(b.seen) == 2 * 9
    for (ea, ia, oa, ya, la), (eb, ib, ob, yb, lb) in zip(a.seen, b.seen):
        assert ea == eb and np.array_equal(ia, ib) and torch.equal(ya, yb)
        assert oa.shape == ob.shape == (ia.size, 3)
        torch.testing.assert_close(oa, ob, rtol=1e-4, atol=1e-5)
        assert la == pytest.approx(lb, rel=1e-4)


def test_one_or_two_row_sgd_batches_keep_the_fused_step(data, monkeypatch):
    X, y, _ = data
    calls = _spy(monkeypatch)
    kw = dict(hidden_layer_sizes=(24,), sparsity=0.5, max_epochs=1, random_state=0)
    SparseMLPClassifier(optimizer="sgd", batch_size=2, **kw).fit(X, y)
    assert calls == []  # the fused step's batch-2 kernels are faster
    SparseMLPClassifier(optimizer="sgd", batch_size=4, **kw).fit(X, y)
    SparseMLPClassifier(optimizer="adam", batch_size=2, **kw).fit(X, y)  # no fused step for Adam
    assert calls == [70, 70]


def test_env_var_and_work_limit(data, monkeypatch):
    X, y, _ = data
    est = _fit(SparseMLPClassifier, X, y, True, max_epochs=1)
    loss = est._loss_fn()
    assert CompiledEpoch.make(est, X, y, loss, None) is not None
    monkeypatch.setenv(compiled_epoch.ENV_VAR, "0")
    assert CompiledEpoch.make(est, X, y, loss, None) is None
    monkeypatch.delenv(compiled_epoch.ENV_VAR)
    monkeypatch.setattr(compiled_epoch, "MAX_WORK", 10)
    monkeypatch.setattr(compiled_epoch.kernels, "num_threads", lambda: 2)
    assert CompiledEpoch.make(est, X, y, loss, None) is None  # big work, several threads: per step
    monkeypatch.setattr(compiled_epoch.kernels, "num_threads", lambda: 1)
    assert CompiledEpoch.make(est, X, y, loss, None) is not None  # one thread: always compiled


def test_divergence_is_reported(data):
    X, y, _ = data
    with pytest.raises(FloatingPointError, match="lower learning_rate"):
        _fit(SparseMLPRegressor, X * 1e4, np.stack([y, y], 1) * 1e6, True, optimizer="sgd", learning_rate=10.0,
             momentum=0.9)


def test_dense_network_on_csr_input_trains_as_on_the_same_dense_rows(data):
    """A dense network reads CSR input as dense rows (expanded once per fit): same weights and
    FLOPs as when the same rows are given dense."""
    X, y, _ = data
    rng = np.random.default_rng(3)
    D = np.where(rng.random(X.shape) < 0.6, X, 0).astype(np.float32)
    kw = dict(algorithm="dense", hidden_layer_sizes=(16,), optimizer="sgd", momentum=0.9, max_epochs=3,
              batch_size=8, random_state=0)
    a = SparseMLPClassifier(**kw).fit(sp.csr_matrix(D), y)
    b = SparseMLPClassifier(**kw).fit(D, y)
    for p, q in zip(a.module_.parameters(), b.module_.parameters()):
        assert torch.equal(p, q)
    assert a.flops_["train"] == b.flops_["train"]
