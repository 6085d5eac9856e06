"""Continual learning: task sequences, training task after task, replay buffers, the standard metrics.

Scenarios (van de Ven & Tolias 2019):

* ``class-incremental`` — classes split into ``n_tasks`` groups (split digits: {0,1}, {2,3}, ...);
  one output head over all classes, and at test time the model must pick among *all* classes.
* ``task-incremental`` — the same split, but at test time the task is known: the prediction is
  the best class *of that task* (the logits of the other classes are masked). Training is the
  same as class-incremental (one shared head; the estimator trains on all outputs).
* ``domain-incremental`` — every task has all classes and all rows, with a fixed random
  permutation of the features per task (permuted-MNIST style).

:func:`run_continual` trains with ``partial_fit`` (one epoch per call, all classes announced on
the first call). With ``replay`` set to a subset strategy (:data:`~.subsets.STRATEGIES`), a buffer
of ``buffer_size`` rows is kept: after each task it is refilled, class-balanced, from the rows seen
so far that are still available (the current task and the previous buffer), ranked by that
strategy; while training the next task the buffer rows are mixed into every epoch.

Metrics on the accuracy matrix R (R[i, j]: accuracy on task j after training task i; T tasks):
average accuracy = mean_j R[T-1, j]; backward transfer (Lopez-Paz & Ranzato 2017) =
mean_{j<T-1} (R[T-1, j] - R[j, j]); forgetting (Chaudhry et al. 2018) =
mean_{j<T-1} (max_{l<T-1} R[l, j] - R[T-1, j]).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import clone, is_classifier
from sklearn.model_selection import train_test_split

from ..utils import check_random_state, derive_seed
from ._common import check_positive_int, n_rows, stack_rows, take_rows
from .subsets import STRATEGIES, check_strategy, class_counts, select_subset
from .tracker import ExampleTracker

SCENARIOS = ("class-incremental", "task-incremental", "domain-incremental")
STATS_SOURCES = ("tracking", "probe")


@dataclass
class Task:
    """One task of a sequence: its training and test rows and the classes it contains."""

    task_id: int
    scenario: str
    classes: np.ndarray
    X_train: object = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_test: object = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    permutation: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_train(self) -> int:
        return n_rows(self.y_train)


def _as_matrix(X, name):
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    if sp.issparse(X):
        return sp.csr_matrix(X)
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x features), got shape {X.shape}")
    return X


def make_task_sequence(X, y, scenario: str, n_tasks: int, *, test_size: float = 0.25, X_test=None, y_test=None,
                       class_order=None, random_state=None) -> list[Task]:
    """Split (X, y) into a sequence of ``n_tasks`` tasks of the given scenario.

    Parameters
    ----------
    scenario : "class-incremental", "task-incremental" or "domain-incremental".
    n_tasks : at least 2; for the class-based scenarios at most the number of classes (classes
        are split into ``n_tasks`` consecutive groups of ``class_order``).
    test_size : share of rows held out as each task's test set (stratified by class), unless
        ``X_test``/``y_test`` are given.
    class_order : None or "sorted" (sorted labels), "random" (shuffled by ``random_state``) or a list
        of all labels.
    random_state : seeds the split, the class order and the permutations.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, (int, np.integer)) or n_tasks < 2:
        raise ValueError(f"n_tasks must be an integer >= 2 (a sequence of tasks), got {n_tasks!r}")
    X = _as_matrix(X, "X")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be 1-D with one label per row of X ({X.shape[0]}), got shape {y.shape}")
    rng = check_random_state(random_state)
    classes = np.unique(y)
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither (then test_size rows are held out)")
    if X_test is None:
        if not 0.0 < float(test_size) < 1.0:
            raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
        index = np.arange(X.shape[0])
        counts = np.bincount(np.unique(y, return_inverse=True)[1])
        stratify = y if counts.min() >= 2 else None
        tr, te = train_test_split(index, test_size=test_size, stratify=stratify, random_state=derive_seed(rng))
        tr, te = np.sort(tr), np.sort(te)
        X_tr, y_tr, X_te, y_te = take_rows(X, tr), y[tr], take_rows(X, te), y[te]
    else:
        X_tr, y_tr = X, y
        X_te, y_te = _as_matrix(X_test, "X_test"), np.asarray(y_test)
        if X_te.shape[1] != X.shape[1] or y_te.shape[0] != X_te.shape[0]:
            raise ValueError("X_test must have X's columns and y_test one label per row of X_test")
    tasks = []
    if scenario == "domain-incremental":
        for t in range(n_tasks):
            perm = rng.permutation(X.shape[1])
            tasks.append(Task(t, scenario, classes, X_tr[:, perm], y_tr, X_te[:, perm], y_te, perm))
        return tasks
    if n_tasks > classes.size:
        raise ValueError(
            f"n_tasks={n_tasks} is more than the {classes.size} classes of y; a {scenario} task needs at least one "
            f"class of its own: use n_tasks <= {classes.size}, or scenario='domain-incremental'"
        )
    if class_order is None or (isinstance(class_order, str) and class_order == "sorted"):
        order = classes
    elif isinstance(class_order, str) and class_order == "random":
        order = classes[rng.permutation(classes.size)]
    elif isinstance(class_order, str):
        raise ValueError(f"class_order must be 'sorted', 'random' or a list of labels, got {class_order!r}")
    else:
        order = np.asarray(class_order)
        if order.size != classes.size or not np.array_equal(np.sort(order), classes):
            raise ValueError(
                f"class_order must list every label of y exactly once ({classes.tolist()}), got {order.tolist()}"
            )
    for t, group in enumerate(np.array_split(order, n_tasks)):
        tr_rows = np.flatnonzero(np.isin(y_tr, group))
        te_rows = np.flatnonzero(np.isin(y_te, group))
        tasks.append(Task(t, scenario, np.sort(group), take_rows(X_tr, tr_rows), y_tr[tr_rows],
                          take_rows(X_te, te_rows), y_te[te_rows]))
    return tasks


@dataclass
class ContinualResult:
    """Outcome of :func:`run_continual`. ``to_dict`` / ``to_frame`` give storable forms."""

    accuracy_matrix: np.ndarray
    scenario: str
    replay: str | None
    buffer_size: int
    epochs_per_task: int
    task_classes: list
    buffer_class_counts: list
    train_time_s: list
    flops: dict
    example_stats: list | None = field(default=None, repr=False)
    estimator: object = field(default=None, repr=False)

    @property
    def n_tasks(self) -> int:
        return self.accuracy_matrix.shape[0]

    @property
    def average_accuracy(self) -> float:
        return float(self.accuracy_matrix[-1].mean())

    @property
    def backward_transfer(self) -> float:
        R, T = self.accuracy_matrix, self.n_tasks
        return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))

    @property
    def forgetting(self) -> float:
        R, T = self.accuracy_matrix, self.n_tasks
        return float(np.mean([R[: T - 1, j].max() - R[T - 1, j] for j in range(T - 1)]))

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario, "replay": self.replay, "buffer_size": self.buffer_size,
            "epochs_per_task": self.epochs_per_task, "n_tasks": self.n_tasks,
            "accuracy_matrix": self.accuracy_matrix.tolist(), "average_accuracy": self.average_accuracy,
            "backward_transfer": self.backward_transfer, "forgetting": self.forgetting,
            "task_classes": [np.asarray(c).tolist() for c in self.task_classes],
            "buffer_class_counts": self.buffer_class_counts, "train_time_s": list(self.train_time_s),
            "flops": dict(self.flops),
        }

    def to_frame(self) -> pd.DataFrame:
        """Long form: one row per (trained_task, eval_task) with the accuracy."""
        T = self.n_tasks
        i, j = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
        return pd.DataFrame({"trained_task": i.ravel(), "eval_task": j.ravel(),
                             "accuracy": self.accuracy_matrix.ravel()})


def _task_accuracy(est, task: Task) -> float:
    if task.scenario == "task-incremental":
        scores = est.predict_proba(task.X_test)  # (n, C) for any C; argmax as over the logits
        cols = np.searchsorted(est.classes_, task.classes)
        pred = task.classes[np.argmax(scores[:, cols], axis=1)]
    else:
        pred = est.predict(task.X_test)
    return float(np.mean(pred == task.y_test)) if task.y_test.size else float("nan")


def run_continual(estimator, tasks, replay=None, buffer_size: int = 200, epochs_per_task: int = 5,
                  random_state=None, *, stats_source: str = "tracking", probe_epochs: int = 5,
                  tracker_params: dict | None = None, keep_stats: bool = False) -> ContinualResult:
    """Train a clone of ``estimator`` on ``tasks`` in order; return the accuracy matrix and metrics.

    Parameters
    ----------
    estimator : an unfitted classifier with ``partial_fit`` (e.g. SparseMLPClassifier); cloned.
        Statistics-based replay needs a SparseMLPClassifier (it is tracked); naive fine-tuning and
        random replay work with any scikit-learn classifier that has ``partial_fit``.
    tasks : list of :class:`Task` from :func:`make_task_sequence`.
    replay : None (naive fine-tuning) or a subset strategy ranking which rows enter the buffer.
    buffer_size : rows kept in the replay buffer (class-balanced); at least the number of classes.
    epochs_per_task : ``partial_fit`` calls (epochs) per task.
    stats_source : where a non-random strategy gets its statistics: ``"tracking"`` (an
        ExampleTracker attached while the task trains, over the task's rows and the buffer) or
        ``"probe"`` (a fresh copy of the estimator trained ``probe_epochs`` epochs on those rows).
    tracker_params : ExampleTracker options (default: EL2N at the third epoch or the last one if
        fewer; GraNd at the last epoch when ``replay="grand"``).
    keep_stats : keep each task's ``example_stats_`` in the result.
    """
    if not (is_classifier(estimator) and hasattr(estimator, "partial_fit")):
        raise TypeError(f"run_continual needs a classifier with partial_fit, got {type(estimator).__name__}")
    tasks = list(tasks)
    if len(tasks) < 2 or not all(isinstance(t, Task) for t in tasks):
        raise ValueError("tasks must be a list of at least 2 Task objects from make_task_sequence")
    if replay is not None:
        check_strategy(replay)
    if stats_source not in STATS_SOURCES:
        raise ValueError(f"unknown stats_source {stats_source!r}; choose one of {', '.join(STATS_SOURCES)}")
    epochs_per_task = check_positive_int(epochs_per_task, "epochs_per_task")
    probe_epochs = check_positive_int(probe_epochs, "probe_epochs")
    classes = np.unique(np.concatenate([np.asarray(t.y_train) for t in tasks]))
    if replay is not None:
        buffer_size = check_positive_int(buffer_size, "buffer_size")
        if buffer_size < classes.size:
            raise ValueError(
                f"buffer_size={buffer_size} is below the number of classes seen over the tasks ({classes.size}); a "
                f"class-balanced replay buffer needs at least one row per class: use buffer_size >= {classes.size}"
            )
    rng = check_random_state(random_state)
    est = clone(estimator)
    user_callbacks = list(getattr(est, "callbacks", None) or [])
    T = len(tasks)
    R = np.full((T, T), np.nan)
    buf_X, buf_y = None, None
    buffer_counts, times, all_stats = [], [], []
    for t, task in enumerate(tasks):
        if buf_X is not None:
            X_tr, y_tr = stack_rows([task.X_train, buf_X]), np.concatenate([task.y_train, buf_y])
        else:
            X_tr, y_tr = task.X_train, np.asarray(task.y_train)
        needs_stats = replay is not None and replay != "random"
        track_now = needs_stats and stats_source == "tracking"
        tracker = ExampleTracker(**_tracker_options(tracker_params, epochs_per_task, replay)) if track_now else None
        if tracker is not None:
            est.set_params(callbacks=user_callbacks + [tracker])
        t0 = time.perf_counter()
        try:
            for _ in range(epochs_per_task):
                est.partial_fit(X_tr, y_tr, classes=classes)
        finally:
            if tracker is not None:
                est.set_params(callbacks=user_callbacks or None)
        times.append(time.perf_counter() - t0)
        for j, other in enumerate(tasks):
            R[t, j] = _task_accuracy(est, other)
        stats = None
        if needs_stats:
            if tracker is not None:
                stats = tracker.example_stats_
            else:
                stats = _probe_stats(estimator, X_tr, y_tr, classes, probe_epochs, tracker_params, replay, rng)
            if keep_stats:
                all_stats.append(stats)
        if replay is not None and t < T - 1:
            if stats is None:
                stats = pd.DataFrame({"in_train": np.ones(y_tr.size, dtype=bool), "label": y_tr})
            frac = min(1.0, buffer_size / y_tr.size)
            keep = select_subset(stats, replay, frac, stratify="balanced", random_state=rng, n_samples=y_tr.size)
            buf_X, buf_y = take_rows(X_tr, keep), y_tr[keep]
            buffer_counts.append(class_counts(buf_y))
    return ContinualResult(
        accuracy_matrix=R, scenario=tasks[0].scenario, replay=replay, buffer_size=int(buffer_size) if replay else 0,
        epochs_per_task=epochs_per_task, task_classes=[t.classes for t in tasks], buffer_class_counts=buffer_counts,
        train_time_s=times, flops=dict(getattr(est, "flops_", None) or {}), example_stats=all_stats if keep_stats else None, estimator=est,
    )


def _tracker_options(params, epochs, replay) -> dict:
    opts = {"el2n_epoch": min(2, epochs - 1), "track_topology": False}
    if replay == "grand":
        opts["grand_epoch"] = epochs - 1
    opts.update(params or {})
    return opts


def _probe_stats(estimator, X, y, classes, epochs, params, replay, rng) -> pd.DataFrame:
    """Statistics from a fresh copy of the estimator trained ``epochs`` epochs on (X, y)."""
    tracker = ExampleTracker(**_tracker_options(params, epochs, replay))
    probe = clone(estimator).set_params(callbacks=[tracker], random_state=derive_seed(rng))
    for _ in range(epochs):
        probe.partial_fit(X, y, classes=classes)
    return tracker.example_stats_


__all__ = ["SCENARIOS", "STATS_SOURCES", "STRATEGIES", "ContinualResult", "Task", "make_task_sequence", "run_continual"]
