"""ExampleTracker and the streaming counters, checked against brute-force counts."""

import copy

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from dualsparse import Callback, SparseMLPClassifier, SparseMLPRegressor
from dualsparse.dynamics import (
    ExampleTracker, TransitionCounter, grand_scores, sequence_statistics, topology_forgetting,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    return X[:400], y[:400]


def small(algorithm="dense", **kw):
    params = dict(hidden_layer_sizes=(24,), algorithm=algorithm, epsilon=5, max_epochs=5, batch_size=32, random_state=0)
    params.update(kw)
    return SparseMLPClassifier(**params)


# ---------------------------------------------------------------------- brute force references
def brute_force(correct, p=None):
    """Per-example Python loops over a (steps, n) matrix (1, 0, -1 = not observed)."""
    T, n = correct.shape
    out = {k: [] for k in ("forgetting", "learning", "first", "never", "unforgettable", "correctness", "conf", "var")}
    for i in range(n):
        seq = [(t, int(correct[t, i])) for t in range(T) if correct[t, i] >= 0]
        f = sum(1 for (_, a), (_, b) in zip(seq, seq[1:]) if a == 1 and b == 0)
        prev, learn = 0, 0
        for _, c in seq:
            learn += int(prev == 0 and c == 1)
            prev = c
        first = next((t for t, c in seq if c == 1), None)
        out["forgetting"].append(f)
        out["learning"].append(learn)
        out["first"].append(first)
        out["never"].append(first is None)
        out["unforgettable"].append(first is not None and f == 0)
        out["correctness"].append(np.mean([c for _, c in seq]) if seq else np.nan)
        if p is not None:
            vals = [p[t, i] for t in range(T) if correct[t, i] >= 0]
            out["conf"].append(np.mean(vals) if vals else np.nan)
            out["var"].append(np.std(vals) if vals else np.nan)
    return out


def test_counter_on_handmade_sequences():
    # columns: examples; rows: observations in order; -1 = not presented at that step
    seq = np.array([
        [0, 1, 0, 1, 1, -1],
        [1, 1, 0, 0, 1, 1],
        [1, 1, 0, 0, -1, -1],
        [0, 1, 0, 0, 1, 0],
        [1, 1, 0, 0, 1, 0],
        [0, 1, 0, 0, 1, -1],
    ])
    stats = sequence_statistics(seq)
    assert stats["forgetting_events"].tolist() == [2, 0, 0, 1, 0, 1]
    assert stats["learning_events"].tolist() == [2, 1, 0, 1, 1, 1]
    assert stats["first_learned"].tolist() == [1, 0, pd.NA, 0, 0, 1]
    assert stats["never_learned"].tolist() == [False, False, True, False, False, False]
    assert stats["unforgettable"].tolist() == [False, True, False, False, True, False]
    assert stats["observations"].tolist() == [6, 6, 6, 6, 5, 3]


def test_counter_matches_brute_force_on_random_sequences():
    rng = np.random.default_rng(3)
    T, n = 15, 200
    correct = rng.choice([-1, 0, 1], size=(T, n), p=[0.2, 0.35, 0.45])
    p = rng.random((T, n))
    ref = brute_force(correct, p)
    got = sequence_statistics(correct, p)
    assert got["forgetting_events"].tolist() == ref["forgetting"]
    assert got["learning_events"].tolist() == ref["learning"]
    assert [None if x is pd.NA else x for x in got["first_learned"]] == ref["first"]
    assert got["never_learned"].tolist() == ref["never"]
    assert got["unforgettable"].tolist() == ref["unforgettable"]
    np.testing.assert_allclose(got["correctness"], ref["correctness"])
    np.testing.assert_allclose(got["confidence"], ref["conf"])
    np.testing.assert_allclose(got["variability"], ref["var"], atol=1e-7)


def test_counter_reports_events_per_update():
    c = TransitionCounter(4)
    assert c.update(np.array([0, 1, 2, 3]), np.array([1, 1, 0, 0], bool), 0) == (0, 2)
    assert c.update(np.array([0, 1, 2]), np.array([0, 1, 1], bool), 1) == (1, 1)
    assert c.update(np.array([3, 0]), np.array([1, 0], bool), 2) == (0, 1)


# ---------------------------------------------------------------------- tracker end to end
class Snapshot(Callback):
    """Independent check: predict_proba at a given epoch end, and a copy of the initial model."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_fit_begin(self, est, X, y, train_index, validation_index):
        self.X, self.y = X, y
        self.initial = copy.deepcopy(est.module_)

    def on_epoch_end(self, est, epoch, logs):
        if epoch == self.epoch:
            self.proba = est.predict_proba(self.X)


def test_tracker_matches_brute_force_from_history(digits):
    X, y = digits
    tracker = ExampleTracker(el2n_epoch=2, history=True)
    snap = Snapshot(2)
    est = small("dense", max_epochs=6, callbacks=[snap, tracker]).fit(X, y)
    stats, hist = tracker.example_stats_, tracker.history_
    assert len(stats) == len(X) and stats["in_train"].all()
    assert hist["p_true"].shape == hist["correct_presented"].shape == (6, len(X))
    assert (stats["presentations"] == 6).all() and (stats["evaluations"] == 6).all()
    pres = brute_force(hist["correct_presented"])
    assert stats["forgetting_events"].tolist() == pres["forgetting"]
    assert [None if x is pd.NA else x for x in stats["first_learned_epoch"]] == pres["first"]
    assert stats["unforgettable"].tolist() == pres["unforgettable"]
    ev = brute_force(hist["correct_eval"], hist["p_true"].astype(np.float64))
    assert stats["forgetting_events_eval"].tolist() == ev["forgetting"]
    np.testing.assert_allclose(stats["confidence"], ev["conf"], rtol=1e-6)
    np.testing.assert_allclose(stats["variability"], ev["var"], atol=1e-6)
    np.testing.assert_allclose(stats["correctness"], ev["correctness"])
    # EL2N at epoch 2 = ||softmax - onehot|| of the model at that epoch's end, computed independently
    onehot = np.eye(10)[y]
    np.testing.assert_allclose(stats["el2n"], np.linalg.norm(snap.proba - onehot, axis=1), rtol=1e-5, atol=1e-6)
    # the last evaluation is the final model (dense: no topology step after it)
    final = est.predict_proba(X)[np.arange(len(y)), y]
    np.testing.assert_allclose(stats["p_true_last"], final, rtol=1e-5, atol=1e-6)
    # per-epoch forgetting sums to the per-example counts
    epochs = tracker.epoch_stats_
    assert len(epochs) == 6 and tracker.forgetting_per_epoch_.sum() == stats["forgetting_events"].sum()
    assert epochs["forgotten_eval"].sum() == stats["forgetting_events_eval"].sum()
    res = tracker.results()
    assert set(res) == {"example_stats", "epoch_stats", "params"} and res["params"]["tracked_epochs"] == 6


def test_presentation_correctness_uses_pre_update_batch_logits(digits):
    X, y = digits

    class Outputs(Callback):
        def on_fit_begin(self, *a):
            self.rows = []

        def on_batch_end(self, est, epoch, batch_index, outputs, y_batch, loss):
            self.rows.append((epoch, batch_index.copy(), (outputs.argmax(1) == y_batch).numpy()))

    spy, tracker = Outputs(), ExampleTracker(history=True)
    small("static", max_epochs=3, callbacks=[spy, tracker]).fit(X, y)
    pres = tracker.history_["correct_presented"]
    for epoch, rows, correct in spy.rows:
        assert (pres[epoch, rows] == correct).all()


def test_eval_every_and_presentation_only_statistics(digits):
    X, y = digits

    class Probs(Callback):  # softmax of every training batch's logits, recorded independently
        def on_fit_begin(self, *a):
            self.p = np.full((4, len(y)), np.nan)
            self.el2n = np.full(len(y), np.nan)

        def on_batch_end(self, est, epoch, batch_index, outputs, y_batch, loss):
            probs = torch.softmax(outputs, 1).numpy().astype(np.float64)
            self.p[epoch, batch_index] = probs[np.arange(len(batch_index)), y_batch.numpy()]
            if epoch == 1:
                self.el2n[batch_index] = np.linalg.norm(probs - np.eye(10)[y_batch.numpy()], axis=1)

    spy, tracker = Probs(), ExampleTracker(eval_every=None, el2n_epoch=1, history=True)
    small("set", max_epochs=4, callbacks=[spy, tracker]).fit(X, y)
    stats = tracker.example_stats_
    np.testing.assert_allclose(stats["confidence"], spy.p.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["variability"], spy.p.std(0), atol=1e-5)
    np.testing.assert_allclose(stats["el2n"], spy.el2n, rtol=1e-5, atol=1e-6)
    assert (stats["evaluations"] == 0).all() and tracker.results()["params"]["map_source"] == "presentation"
    assert stats["forgetting_events_eval"].isna().all()
    ep = tracker.epoch_stats_
    assert not ep["evaluated"].any() and ep["forgotten_by_update"].isna().all()  # no evaluation passes at all
    assert tracker.history_["p_true"].shape == (0, len(y))

    tracker = ExampleTracker(eval_every=2, el2n_epoch=3, track_topology=True)
    small("set", max_epochs=6, callbacks=[tracker]).fit(X, y)
    ep = tracker.epoch_stats_
    assert ep.loc[ep["evaluated"], "tracked_epoch"].tolist() == [0, 2, 3, 4]  # every 2nd, and the EL2N epoch
    assert (tracker.example_stats_["evaluations"] == 4).all() and tracker.example_stats_["el2n"].notna().all()
    assert ep.loc[ep["evaluated"], "forgotten_by_update"].notna().all()
    assert ep.loc[~ep["evaluated"], "forgotten_by_update"].isna().all()
    assert np.isnan(topology_forgetting(ep)["ratio"])
    with pytest.raises(ValueError, match="eval_every"):
        ExampleTracker(eval_every=0)


def test_tracking_changes_nothing_in_training(digits):
    X, y = digits
    plain = small("set", max_epochs=4).fit(X, y)
    tracked = small("set", max_epochs=4, callbacks=[ExampleTracker(grand_epoch=1, el2n_epoch=1)]).fit(X, y)
    presented = small("set", max_epochs=4, callbacks=[ExampleTracker(eval_every=None)]).fit(X, y)
    for (k, a), (_, b) in zip(plain.module_.state_dict().items(), presented.module_.state_dict().items()):
        assert torch.equal(a, b), k
    for (k, a), (_, b) in zip(plain.module_.state_dict().items(), tracked.module_.state_dict().items()):
        assert torch.equal(a, b), k
    assert [h["loss"] for h in plain.history_] == [h["loss"] for h in tracked.history_]
    assert plain.flops_ == tracked.flops_


def test_validation_rows_are_not_tracked(digits):
    X, y = digits
    tracker = ExampleTracker()
    est = small("dense", max_epochs=3, early_stopping=True, validation_fraction=0.2, callbacks=[tracker]).fit(X, y)
    stats = tracker.example_stats_
    assert (~stats["in_train"]).sum() == est.validation_index_.size
    held = stats.loc[~stats["in_train"]]
    assert held["forgetting_events"].isna().all() and held["confidence"].isna().all()
    assert stats.loc[stats["in_train"], "forgetting_events"].notna().all()
    assert (stats["label"].to_numpy() == y).all()


def test_tracking_continues_over_partial_fit_and_restarts_on_new_data(digits):
    X, y = digits
    tracker = ExampleTracker()
    est = small("dense", callbacks=[tracker])
    for _ in range(3):
        est.partial_fit(X, y, classes=np.arange(10))
    assert (tracker.example_stats_["presentations"] == 3).all()
    assert len(tracker.epoch_stats_) == 3
    est.partial_fit(X[:100], y[:100])
    assert len(tracker.example_stats_) == 100 and (tracker.example_stats_["presentations"] == 1).all()
    est.fit(X, y)  # a fresh fit restarts
    assert (tracker.example_stats_["presentations"] == 5).all()


def test_topology_updates_are_aligned_with_forgetting(digits):
    X, y = digits
    tracker = ExampleTracker(track_topology=True)
    small("set", max_epochs=5, callbacks=[tracker]).fit(X, y)
    full = tracker.epoch_stats_
    # topology evolves between epochs: after epochs 0..3, not after the last one
    assert full["topology_update"].tolist() == [True] * 4 + [False]
    ep = full[full["topology_update"]]
    assert (ep["dropped"] > 0).all() and (ep["dropped"] == ep["grown"]).all()
    assert ep["forgotten_by_update"].notna().all() and (ep["forgotten_by_update"] >= 0).all()
    assert tracker.example_stats_["topology_forgetting"].sum() == ep["forgotten_by_update"].sum()
    assert ((ep["accuracy_eval"] - ep["accuracy_after_update"]).abs() <= 1).all()
    summary = topology_forgetting(full)
    assert summary["updates"] == 4 and summary["forgotten_by_updates"] == ep["forgotten_by_update"].sum()
    assert summary["ratio"] >= 0 and -1 <= summary["accuracy_drop"] <= 1

    static = ExampleTracker()
    small("static", max_epochs=3, callbacks=[static]).fit(X, y)
    ep = static.epoch_stats_
    assert not ep["topology_update"].any() and ep["forgotten_by_update"].isna().all()
    with pytest.raises(ValueError, match="evolving algorithm"):
        topology_forgetting(ep)

    rigl = ExampleTracker()  # step-scheduled updates inside epochs are counted per epoch
    small("rigl", max_epochs=3, batch_size=8, callbacks=[rigl]).fit(X, y)
    assert rigl.epoch_stats_["step_topology_updates"].sum() >= 1


def test_default_tracking_makes_one_evaluation_pass_per_epoch(digits, monkeypatch):
    X, y = digits
    calls = []
    original = ExampleTracker._evaluate

    def counting(self, est, with_probs=False):
        calls.append(est.module_.training)
        return original(self, est, with_probs)

    monkeypatch.setattr(ExampleTracker, "_evaluate", counting)
    tracker = ExampleTracker()
    small("set", max_epochs=4, callbacks=[tracker]).fit(X, y)
    assert len(calls) == 4  # one per epoch: no extra pass after the 3 topology updates unless asked
    ep = tracker.epoch_stats_
    assert ep["topology_update"].sum() == 3 and ep["forgotten_by_update"].isna().all()
    assert (tracker.example_stats_["topology_forgetting"] == 0).all()
    calls.clear()
    small("set", max_epochs=4, callbacks=[ExampleTracker(track_topology=True)]).fit(X, y)
    assert len(calls) == 4 + 3


def test_cached_evaluation_input_gives_the_same_statistics(digits, monkeypatch):
    import dualsparse.dynamics.tracker as tracker_module

    X, y = digits
    for data in (X, sp.csr_matrix(X)):
        frames = []
        for cap in (tracker_module._CACHE_ELEMENTS, 0):  # built once per fit / afresh for every pass
            monkeypatch.setattr(tracker_module, "_CACHE_ELEMENTS", cap)
            tracker = ExampleTracker(el2n_epoch=1)
            small("static", max_epochs=3, early_stopping=True, validation_fraction=0.2,
                  callbacks=[tracker]).fit(data, y)
            assert tracker._eval_input is None  # released at the end of the fit
            frames.append(tracker.example_stats_)
        pd.testing.assert_frame_equal(frames[0], frames[1])


def test_grand_scores_match_per_sample_autograd():
    X, y = load_digits(return_X_y=True)
    X, y = (X[:60] / 16).astype(np.float32), y[:60]

    def brute(module, Xv, sparse_input):
        params = list(module.parameters())
        norms = []
        for i in range(Xv.shape[0]):
            xb = torch.from_numpy(Xv[i : i + 1].toarray() if sp.issparse(Xv) else Xv[i : i + 1])
            if sparse_input:
                xb = xb.to_sparse_csr()
            loss = torch.nn.functional.cross_entropy(module(xb), torch.tensor([y[i]]))
            norms.append(float(sum((g.double() ** 2).sum() for g in torch.autograd.grad(loss, params))) ** 0.5)
        return np.array(norms)

    for algorithm in ("dense", "static"):
        for data in (X, sp.csr_matrix(X)):
            est = small(algorithm, hidden_layer_sizes=(20, 12), epsilon=3, max_epochs=2).fit(data, y)
            est.module_.eval()
            Xv = est._check_X(data, reset=False)
            got = grand_scores(est, Xv, y, batch_size=16)
            want = brute(est.module_, Xv, sp.issparse(data) and algorithm != "dense")
            np.testing.assert_allclose(got, want, rtol=1e-5)


def test_tracker_grand_column_at_an_epoch_and_at_initialisation(digits):
    X, y = digits
    X, y = X[:120], y[:120]

    def brute(module):
        module.eval()
        params = list(module.parameters())
        out = []
        for i in range(len(y)):
            loss = torch.nn.functional.cross_entropy(module(torch.from_numpy(X[i : i + 1])), torch.tensor([y[i]]))
            out.append(float(sum((g.double() ** 2).sum() for g in torch.autograd.grad(loss, params))) ** 0.5)
        return np.array(out)

    tracker = ExampleTracker(grand_epoch=2)
    est = small("static", max_epochs=3, callbacks=[tracker]).fit(X, y)  # static: final model = epoch-2 model
    np.testing.assert_allclose(tracker.example_stats_["grand"], brute(est.module_), rtol=1e-5)
    snap, tracker = Snapshot(-5), ExampleTracker(grand_epoch=-1)
    small("dense", max_epochs=1, callbacks=[snap, tracker]).fit(X, y)
    np.testing.assert_allclose(tracker.example_stats_["grand"], brute(snap.initial), rtol=1e-5)


def test_el2n_is_nan_until_its_epoch(digits):
    X, y = digits
    tracker = ExampleTracker(el2n_epoch=4)
    small("dense", max_epochs=2, callbacks=[tracker]).fit(X, y)
    assert tracker.example_stats_["el2n"].isna().all()
    assert tracker.example_stats_["grand"].isna().all()  # off by default


def test_tracker_errors(digits):
    X, y = digits
    with pytest.raises(TypeError, match="classifier"):
        SparseMLPRegressor(hidden_layer_sizes=(8,), epsilon=2, max_epochs=1,
                           callbacks=[ExampleTracker()]).fit(X, y.astype(float))
    with pytest.raises(RuntimeError, match="tracked nothing"):
        ExampleTracker().example_stats_
    with pytest.raises(ValueError, match="el2n_epoch"):
        ExampleTracker(el2n_epoch=-1)
    with pytest.raises(ValueError, match="grand_epoch"):
        ExampleTracker(grand_epoch=-2)
    tracker = ExampleTracker()
    small(max_epochs=1, callbacks=[tracker]).fit(X, y)
    with pytest.raises(RuntimeError, match="history=True"):
        tracker.history_
    with pytest.raises(ValueError, match="correct"):
        sequence_statistics(np.zeros(5))


# ---------------------------------------------------------------------- the tracker is a plain callback
def test_tracker_is_attached_as_a_callback(digits):
    """callbacks=[ExampleTracker()] is the way to track: one row of statistics per training row, and
    the tracked fit equals an untracked one (the tracker changes no weight)."""
    X, y = digits
    tracker = ExampleTracker()
    tracked = small("set", callbacks=[tracker]).fit(X, y)
    plain = small("set").fit(X, y)
    assert len(tracker.example_stats_) == len(X)
    assert len(tracker.epoch_stats_) == tracked.n_iter_
    np.testing.assert_array_equal(tracked.predict_proba(X), plain.predict_proba(X))


@pytest.mark.parametrize("value", [True, {"grand_epoch": 1}])
def test_track_examples_shortcut_is_deprecated_with_the_fix(digits, value):
    X, y = digits
    with pytest.raises(ValueError, match=r"track_examples is deprecated.*callbacks=\[tracker\]"):
        small(track_examples=value).fit(X, y)


def test_train_never_imports_dynamics():
    """No import from train up into dynamics, and no registry for it: fitting an estimator in a fresh
    interpreter leaves dualsparse.dynamics unimported."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from dualsparse.train import SparseMLPClassifier, callbacks\n"
            "X = np.random.default_rng(0).normal(size=(40, 5)).astype('float32'); y = (X[:, 0] > 0).astype(int)\n"
            "SparseMLPClassifier(hidden_layer_sizes=(8,), max_epochs=2, random_state=0).fit(X, y)\n"
            "assert 'dualsparse.dynamics' not in sys.modules, 'train imported dynamics'\n"
            "assert not hasattr(callbacks, 'register_example_tracker')\n")
    subprocess.run([sys.executable, "-c", code], check=True)
