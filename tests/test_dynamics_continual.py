"""Continual learning on split digits: task sequences, naive fine-tuning forgets, replay recovers."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from dualsparse import SparseMLPClassifier
from dualsparse.dynamics import ContinualResult, make_task_sequence, run_continual


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def net(algorithm, **kw):
    # SGD with momentum, set explicitly: the forgetting thresholds below are calibrated for it
    params = dict(hidden_layer_sizes=(64,), algorithm=algorithm, epsilon=10, optimizer="sgd", learning_rate=0.01,
                  momentum=0.9, random_state=0)
    params.update(kw)
    return SparseMLPClassifier(**params)


def test_class_and_task_incremental_sequences(digits):
    X, y = digits
    tasks = make_task_sequence(X, y, "class-incremental", 5, random_state=0)
    assert [t.classes.tolist() for t in tasks] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    total_train = sum(t.n_train for t in tasks)
    total_test = sum(t.y_test.size for t in tasks)
    assert total_train + total_test == len(y) and abs(total_test / len(y) - 0.25) < 0.01
    for t in tasks:
        assert set(np.unique(t.y_train)) == set(t.classes) == set(np.unique(t.y_test))
    # training and test rows do not overlap (compare rows as bytes)
    train_rows = {r.tobytes() for t in tasks for r in t.X_train}
    assert not any(r.tobytes() in train_rows for t in tasks for r in t.X_test if (X == r).all(1).sum() == 1)
    rand = make_task_sequence(X, y, "task-incremental", 3, class_order="random", random_state=1)
    assert sorted(np.concatenate([t.classes for t in rand]).tolist()) == list(range(10))
    assert [len(t.classes) for t in rand] == [4, 3, 3]
    given = make_task_sequence(X, y, "class-incremental", 2, class_order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    assert given[0].classes.tolist() == [5, 6, 7, 8, 9]


def test_domain_incremental_permutes_features_per_task(digits):
    X, y = digits
    Xs = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0))
    for data in (X, Xs):
        tasks = make_task_sequence(data, y, "domain-incremental", 3, random_state=0)
        assert all(t.classes.tolist() == list(range(10)) for t in tasks)
        base = tasks[0]
        inverse = np.argsort(base.permutation)
        for t in tasks[1:]:
            assert not np.array_equal(t.permutation, base.permutation)
            # undoing each permutation gives back the same rows
            a = t.X_train[:, np.argsort(t.permutation)]
            b = base.X_train[:, inverse]
            a, b = (a.toarray(), b.toarray()) if sp.issparse(a) else (a, b)
            np.testing.assert_array_equal(a, b)
    tasks = make_task_sequence(X, y, "domain-incremental", 3, random_state=0)
    r = run_continual(net("dense"), tasks, epochs_per_task=2)
    assert r.accuracy_matrix.shape == (3, 3) and np.all((r.accuracy_matrix >= 0) & (r.accuracy_matrix <= 1))
    assert r.accuracy_matrix[0, 0] > 0.8  # the first domain is learned


def test_metrics_on_a_handmade_matrix():
    R = np.array([[0.9, 0.1, 0.0], [0.5, 0.8, 0.1], [0.3, 0.6, 0.95]])
    r = ContinualResult(R, "class-incremental", None, 0, 1, [[0], [1], [2]], [], [0, 0, 0], {})
    assert r.average_accuracy == pytest.approx((0.3 + 0.6 + 0.95) / 3)
    assert r.backward_transfer == pytest.approx(((0.3 - 0.9) + (0.6 - 0.8)) / 2)
    assert r.forgetting == pytest.approx(((0.9 - 0.3) + (0.8 - 0.6)) / 2)
    frame = r.to_frame()
    assert len(frame) == 9 and frame.query("trained_task == 2 and eval_task == 1")["accuracy"].item() == 0.6
    json.dumps(r.to_dict())


@pytest.mark.parametrize("algorithm", ["dense", "static", "set"])
def test_naive_forgets_and_replay_recovers(digits, algorithm):
    X, y = digits
    tasks = make_task_sequence(X, y, "class-incremental", 5, random_state=0)
    est = net(algorithm)
    naive = run_continual(est, tasks, replay=None, epochs_per_task=5, random_state=0)
    lines = [f"{algorithm} naive: ACC {naive.average_accuracy:.3f} BWT {naive.backward_transfer:.3f}"]
    assert naive.backward_transfer < -0.3 and naive.forgetting > 0.3
    assert np.diag(naive.accuracy_matrix).min() > 0.8  # each task is learned when trained
    for replay in ("random", "forgetting"):
        r = run_continual(est, tasks, replay=replay, buffer_size=200, epochs_per_task=5, random_state=0)
        lines.append(f"{algorithm} replay={replay}: ACC {r.average_accuracy:.3f} BWT {r.backward_transfer:.3f}")
        # replay recovers most of what naive fine-tuning forgets
        assert r.backward_transfer - naive.backward_transfer > 0.5 * abs(naive.backward_transfer)
        assert r.average_accuracy > naive.average_accuracy + 0.3
        counts = r.buffer_class_counts
        assert len(counts) == 4 and sum(counts[-1].values()) == 200 and len(counts[-1]) == 8
        assert max(counts[-1].values()) - min(counts[-1].values()) <= 1  # class-balanced
        json.dumps(r.to_dict())
    print("\n".join(lines))


def test_task_incremental_evaluation_uses_the_task_labels(digits):
    X, y = digits
    kw = dict(replay=None, epochs_per_task=3, random_state=0)
    ci = run_continual(net("dense"), make_task_sequence(X, y, "class-incremental", 5, random_state=0), **kw)
    ti = run_continual(net("dense"), make_task_sequence(X, y, "task-incremental", 5, random_state=0), **kw)
    # same training; knowing the task turns a 2-way choice among the task's classes into an easy one
    assert ti.average_accuracy > 0.8 > 0.4 > ci.average_accuracy


def test_replay_from_a_probe_and_user_callbacks_are_kept(digits):
    from dualsparse import Callback

    class Count(Callback):
        epochs = 0

        def on_epoch_end(self, est, epoch, logs):
            Count.epochs += 1

    X, y = digits
    tasks = make_task_sequence(X, y, "class-incremental", 3, random_state=0)
    r = run_continual(net("set", callbacks=[Count()]), tasks, replay="el2n", buffer_size=60, epochs_per_task=2,
                      stats_source="probe", probe_epochs=2, keep_stats=True, random_state=0)
    assert Count.epochs >= 3 * 2  # the user's callback saw every epoch of the run
    assert len(r.example_stats) == 3 and r.example_stats[0]["el2n"].notna().all()
    assert r.estimator.callbacks is not None and len(r.estimator.callbacks) == 1


def test_bad_input(digits):
    X, y = digits
    with pytest.raises(ValueError, match="unknown scenario 'class-il'; choose one of class-incremental"):
        make_task_sequence(X, y, "class-il", 5)
    with pytest.raises(ValueError, match="n_tasks=11 is more than the 10 classes.*n_tasks <= 10"):
        make_task_sequence(X, y, "class-incremental", 11)
    with pytest.raises(ValueError, match="n_tasks must be an integer >= 2"):
        make_task_sequence(X, y, "domain-incremental", 1)
    with pytest.raises(ValueError, match="class_order must list every label"):
        make_task_sequence(X, y, "class-incremental", 2, class_order=[0, 1, 2])
    with pytest.raises(ValueError, match="one label per row"):
        make_task_sequence(X, y[:-1], "class-incremental", 2)
    tasks = make_task_sequence(X, y, "class-incremental", 5, random_state=0)
    with pytest.raises(ValueError, match=r"buffer_size=5 is below the number of classes.*\(10\).*buffer_size >= 10"):
        run_continual(net("dense"), tasks, replay="random", buffer_size=5)
    with pytest.raises(ValueError, match="unknown strategy 'fifo'"):
        run_continual(net("dense"), tasks, replay="fifo")
    with pytest.raises(ValueError, match="unknown stats_source"):
        run_continual(net("dense"), tasks, replay="el2n", stats_source="oracle")
    with pytest.raises(ValueError, match="at least 2 Task"):
        run_continual(net("dense"), tasks[:1])
    # partial_fit with labels outside the announced classes: the estimator names the fix
    est = net("dense")
    est.partial_fit(tasks[0].X_train, tasks[0].y_train, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"labels \[4, 5\] not in classes.*classes=\.\.\."):
        est.partial_fit(tasks[2].X_train, tasks[2].y_train)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        net("dense").partial_fit(tasks[0].X_train, tasks[0].y_train)


def test_any_scikit_learn_classifier_with_partial_fit(digits):
    from sklearn.linear_model import SGDClassifier

    X, y = digits
    tasks = make_task_sequence(X, y, "class-incremental", 5, random_state=0)
    naive = run_continual(SGDClassifier(loss="log_loss", random_state=0), tasks, epochs_per_task=3)
    replay = run_continual(SGDClassifier(loss="log_loss", random_state=0), tasks, replay="random", buffer_size=100,
                           epochs_per_task=3, random_state=0)
    assert naive.backward_transfer < -0.5 < replay.backward_transfer and naive.flops == {}
