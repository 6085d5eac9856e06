"""The data side of a run, shared by every study kind: datasets (loaded once per process), splits,
label noise, and the metrics a fitted model is scored by. Every random choice is seeded from the
spec through :func:`~.seeding.stable_seed`, so a run gives the same numbers wherever it runs."""

from __future__ import annotations

import functools
import json

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, log_loss, mean_absolute_error,
                             mean_squared_error, r2_score, roc_auc_score)
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from ..data import load_dataset
from ..sparse import SparseLinear
from .seeding import stable_seed


@functools.lru_cache(maxsize=16)
def _load(name: str, options_json: str):
    return load_dataset(name, **json.loads(options_json))


def load(name: str, options: dict):
    """The dataset of a run (cached per process: a sweep's runs share it)."""
    return _load(name, json.dumps(options, sort_keys=True))


def split_indices(y, task: str, split: dict, seed: int, fold, dataset: str):
    """(train, validation, test) row indices; stratified for classification when asked."""
    n = len(y)
    index = np.arange(n)
    stratify = split["stratify"] and task == "classification"
    rs = stable_seed("split", dataset, seed)
    if split["method"] == "kfold":
        cv = (StratifiedKFold if stratify else KFold)(n_splits=split["folds"], shuffle=True, random_state=rs)
        train, test = list(cv.split(index, y if stratify else None))[fold]
    else:
        train, test = train_test_split(index, test_size=split["test_size"], random_state=rs,
                                       stratify=y if stratify else None)
    val = np.empty(0, dtype=np.int64)
    if split["validation_size"] > 0:
        train, val = train_test_split(train, test_size=split["validation_size"], random_state=stable_seed("validation", dataset, seed, fold),
                                      stratify=y[train] if stratify else None)
    return np.sort(train), np.sort(val), np.sort(test)


def flip_labels(y, rate: float, seed: int, classes=None):
    """``y`` with round(rate * n) labels changed to another class, uniformly; and the flip mask."""
    y = np.asarray(y).copy()
    n = y.size
    noisy = np.zeros(n, dtype=bool)
    if rate <= 0 or n == 0:
        return y, noisy
    classes = np.unique(y) if classes is None else np.asarray(classes)
    if classes.size < 2:
        return y, noisy
    rng = np.random.default_rng(seed)
    flip = rng.choice(n, int(round(rate * n)), replace=False)
    codes = np.searchsorted(classes, y[flip])
    y[flip] = classes[(codes + rng.integers(1, classes.size, flip.size)) % classes.size]
    noisy[flip] = True
    return y, noisy


def is_sparse(X) -> bool:
    return sp.issparse(X)


def missing_fraction(X) -> float:
    if is_sparse(X) or X.size == 0:
        return 0.0
    return float(np.isnan(X).mean())


def classification_metrics(y_true, proba, classes_model, n_classes: int, prefix: str = "") -> dict:
    """accuracy, balanced accuracy, ROC AUC (binary; one-vs-rest macro otherwise), log loss."""
    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(classes_model, dtype=np.int64)] = proba
    pred = full.argmax(axis=1)
    out = {f"{prefix}accuracy": float(accuracy_score(y_true, pred)),
           f"{prefix}balanced_accuracy": float(balanced_accuracy_score(y_true, pred))}
    labels = np.arange(n_classes)
    try:
        if n_classes == 2:
            auc = roc_auc_score(y_true, full[:, 1])
        else:
            auc = roc_auc_score(y_true, full, multi_class="ovr", labels=labels)
        out[f"{prefix}roc_auc"] = float(auc)
    except ValueError:  # a class absent from y_true
        out[f"{prefix}roc_auc"] = None
    clipped = np.clip(full, 1e-15, 1.0)
    out[f"{prefix}log_loss"] = float(log_loss(y_true, clipped / clipped.sum(axis=1, keepdims=True), labels=labels))
    return out


def regression_metrics(y_true, pred, prefix: str = "") -> dict:
    return {f"{prefix}rmse": float(np.sqrt(mean_squared_error(y_true, pred))),
            f"{prefix}mae": float(mean_absolute_error(y_true, pred)),
            f"{prefix}r2": float(r2_score(y_true, pred))}


def score(est, task, Z, y_true, ds, prefix="") -> dict:
    """The task's metrics of a fitted model on rows ``Z`` (``prefix`` "val_" for validation rows)."""
    if task == "classification":
        n_classes = len(ds.target_names) if ds.target_names is not None else int(np.max(ds.y)) + 1
        return classification_metrics(y_true, est.predict_proba(Z), est.classes_, n_classes, prefix)
    return regression_metrics(y_true, est.predict(Z), prefix)


FLOP_KEYS = ("train", "train_dense", "inference_per_sample", "inference_per_sample_dense")


def mlp_flops(est) -> dict:
    f = est.flops_
    return {k: float(f[k]) for k in FLOP_KEYS}


def mlp_density(est) -> float:
    """Live weights / dense weights over the network's sparse layers (1.0 without any)."""
    layers = [m for m in est.module_.modules() if isinstance(m, SparseLinear)]
    if not layers:
        return 1.0
    return sum(m.nnz for m in layers) / sum(m.in_features * m.out_features for m in layers)
