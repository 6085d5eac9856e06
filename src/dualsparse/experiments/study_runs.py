"""Executing the learning-dynamics runs: tracked grid runs, subset runs and continual runs.

A tracked run is a grid run with an :class:`~dualsparse.dynamics.ExampleTracker` attached; its
per-example and per-epoch statistics travel back with the result and are stored with it. A subset
run's rows are chosen in the driver (:func:`subset_payload`) from the stored statistics of its
reference run, and sent to the worker with the spec; everything else a run needs comes from its
spec, so it gives the same numbers wherever it runs.
"""

from __future__ import annotations

import json
import time

import numpy as np

from .models import make_estimator, model_info


# ---------------------------------------------------------------------- label noise
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


# ---------------------------------------------------------------------- tracked runs
def _ints(series):
    import pandas as pd

    return [None if pd.isna(v) else int(v) for v in series.astype(object)]


def _floats(series):
    return [None if not np.isfinite(v) else float(v) for v in series.to_numpy(dtype=np.float64, na_value=np.nan)]


def tracked_parts(tracker, est, train, test, y_train_used, y_train_true, noisy, Z_train, Z_test, y_test) -> dict:
    """What a tracked run stores besides its row: ``example_stats`` (columns), ``epoch_stats`` (records) and
    summary metrics (mean forgetting, shares unforgettable / never learned, topology forgetting)."""
    from ..dynamics import topology_forgetting

    stats = tracker.example_stats_
    epochs = tracker.epoch_stats_
    pred_train = np.asarray(est.predict(Z_train))
    pred_test = np.asarray(est.predict(Z_test))
    n_tr, n_te = len(train), len(test)
    examples = {
        "example": [int(i) for i in train] + [int(i) for i in test],
        "split": ["train"] * n_tr + ["test"] * n_te,
        "position": list(range(n_tr)) + list(range(n_te)),
        "label": [_label(v) for v in y_train_used] + [_label(v) for v in y_test],
        "true_label": [_label(v) for v in y_train_true] + [_label(v) for v in y_test],
        "noisy": [bool(v) for v in noisy] + [False] * n_te,
        "prediction": [_label(v) for v in pred_train] + [_label(v) for v in pred_test],
    }
    pad = [None] * n_te
    for c in ("presentations", "forgetting_events", "learning_events", "first_learned_epoch", "evaluations",
              "forgetting_events_eval", "topology_forgetting"):
        examples[c] = _ints(stats[c]) + pad
    import pandas as pd

    for c in ("never_learned", "unforgettable", "correct_last"):
        examples[c] = [None if pd.isna(v) else bool(v) for v in stats[c].astype(object)] + pad
    for c in ("confidence", "variability", "correctness", "el2n", "grand", "p_true_last"):
        examples[c] = _floats(stats[c]) + pad
    records = []
    for rec in epochs.to_dict("records"):
        records.append({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()})
    f = stats["forgetting_events"].to_numpy(dtype=np.float64, na_value=np.nan)
    metrics = {
        "mean_forgetting_events": float(np.nanmean(f)),
        "share_unforgettable": float(np.nanmean(stats["unforgettable"].to_numpy(dtype=np.float64, na_value=np.nan))),
        "share_never_learned": float(np.nanmean(stats["never_learned"].to_numpy(dtype=np.float64, na_value=np.nan))),
        "train_accuracy_final": float(np.mean(pred_train == np.asarray(y_train_used))),
        "label_noise_share": float(np.mean(noisy)) if len(noisy) else 0.0,
        "tracker_time_s": float(tracker.time_s_),
        "grand_time_s": float(tracker.grand_time_s_),
    }
    if noisy.any():  # how many flipped labels does the network end up fitting (memorising)?
        metrics["noisy_fitted"] = float(np.mean(pred_train[noisy] == np.asarray(y_train_used)[noisy]))
    if bool(epochs["topology_update"].any()) and tracker.track_topology:
        try:
            topo = topology_forgetting(epochs)
        except ValueError:
            topo = None
        if topo is not None:
            metrics.update({f"topology_{k}": (None if isinstance(v, float) and np.isnan(v) else v) for k, v in topo.items()})
    return {"example_stats": examples, "epoch_stats": records, "metrics": metrics}


def _label(v):
    if hasattr(v, "item"):
        v = v.item()
    return v


# ---------------------------------------------------------------------- subset runs
def subset_payload(spec, store) -> dict:
    """The rows a subset run trains on, chosen from its reference run's stored statistics (driver side).

    Raises ``LookupError`` when the reference run (or the measured dense run) is not in the store.
    """
    from ..dynamics import select_subset
    from .runner import stable_seed
    from .store import StoreError

    sub = spec.subset
    try:
        stats = store.example_stats(sub["reference"])
    except StoreError:
        raise LookupError(f"its reference run ({sub['stats_from']}, key {sub['reference']}) is not in the store "
                          "(it failed or has not run); it runs again on the next sweep") from None
    seed = stable_seed("subset", sub["reference"], sub["strategy"], sub["fraction"], str(sub["stratify"]))
    positions = select_subset(stats, sub["strategy"], sub["fraction"], stratify=sub["stratify"], random_state=seed)
    payload = {"positions": [int(p) for p in positions],
               "examples": [int(e) for e in stats["example"].to_numpy()[positions]]}
    if sub.get("dense_run"):
        rows = [r for r in store.rows_by_key([sub["dense_run"]])]
        if not rows:
            raise LookupError(f"the dense run on all rows (key {sub['dense_run']}) is not in the store; it runs again "
                              "on the next sweep")
        payload["dense_full"] = {"train_flops": rows[0]["flops_train"], "accuracy": rows[0]["accuracy"]}
    return payload


def subset_parts(spec: dict, payload: dict, est, n_all: int, noisy_kept: int) -> dict:
    """The ``subsets`` row and summary metrics of a finished subset run."""
    sub = spec["subset"]
    f = est.flops_
    if payload.get("dense_full"):
        dense_flops, dense_acc, source = payload["dense_full"]["train_flops"], payload["dense_full"]["accuracy"], "measured"
    else:
        dense_flops, dense_acc, source = f["train_dense"] * n_all / len(payload["positions"]), None, "estimated"
    ratio = float(f["train"] / dense_flops) if dense_flops else float("nan")
    row = {"reference_key": sub["reference"], "stats_from": sub["stats_from"], "strategy": sub["strategy"],
           "fraction": sub["fraction"], "stratify": str(sub["stratify"]), "n_all": int(n_all),
           "n_subset": len(payload["positions"]), "flops_ratio": ratio, "flops_saving": 1.0 - ratio,
           "dense_full_train_flops": float(dense_flops), "dense_full_accuracy": dense_acc, "dense_full_source": source,
           "noisy_kept": int(noisy_kept), "examples": payload["examples"]}
    metrics = {"subset_fraction": len(payload["positions"]) / n_all, "flops_ratio_vs_dense_full": ratio,
               "flops_saving_vs_dense_full": 1.0 - ratio}
    return {"subset": row, "metrics": metrics}


# ---------------------------------------------------------------------- continual runs
def execute_continual(spec: dict, load, split_indices, stable_seed) -> dict:
    """One continual run: split, representation fitted on the training rows of every task, task
    sequence, :func:`~dualsparse.dynamics.run_continual`."""
    from ..data import make_representation
    from ..dynamics import make_task_sequence, run_continual

    c = spec["continual"]
    ds = load(spec["dataset"], json.dumps(spec["dataset_options"], sort_keys=True))
    X, y = ds.X, np.asarray(ds.y)
    seed = spec["seed"]
    train, _, test = split_indices(y, spec["task"], spec["split"], seed, None, spec["dataset"])
    rep = make_representation(spec["representation"], **spec["representation_options"])
    t_rep = time.perf_counter()
    Z_train = rep.fit_transform(X[train])
    Z_test = rep.transform(X[test])
    represent_time = time.perf_counter() - t_rep
    info = model_info(spec["model"])
    tasks = make_task_sequence(Z_train, y[train], c["scenario"], c["n_tasks"], X_test=Z_test, y_test=y[test],
                               class_order=c["class_order"],
                               random_state=stable_seed("tasks", spec["dataset"], seed, c["scenario"]))
    est = make_estimator(spec["model"], spec["task"], spec["model_params"], sparsity=spec["sparsity"],
                         epsilon=spec["epsilon"], random_state=stable_seed("model", seed, None))
    replay = None if c["replay"] == "none" else c["replay"]
    t_fit = time.perf_counter()
    result = run_continual(est, tasks, replay=replay, buffer_size=c["buffer_size"] if replay else 200,
                           epochs_per_task=c["epochs_per_task"], random_state=stable_seed("continual", seed),
                           stats_source=c.get("stats_source", "tracking"), probe_epochs=c.get("probe_epochs", 5))
    fit_time = time.perf_counter() - t_fit
    d = result.to_dict()
    fitted = result.estimator
    metrics = {"accuracy": d["average_accuracy"], "average_accuracy": d["average_accuracy"],
               "backward_transfer": d["backward_transfer"], "forgetting": d["forgetting"],
               "final_task_accuracy": float(result.accuracy_matrix[-1, -1]),
               "learning_accuracy": float(np.mean(np.diag(result.accuracy_matrix)))}
    f = fitted.flops_
    flops = {k: float(f[k]) for k in ("train", "train_dense", "inference_per_sample", "inference_per_sample_dense")}
    from ..sparse import SparseLinear

    layers = [m for m in fitted.module_.modules() if isinstance(m, SparseLinear)]
    density = (sum(m.nnz for m in layers) / sum(m.in_features * m.out_features for m in layers)) if layers else 1.0
    n_train_total = int(sum(t.n_train for t in tasks))
    row = {"scenario": c["scenario"], "replay": c["replay"], "buffer_size": int(c["buffer_size"]),
           "n_tasks": d["n_tasks"], "epochs_per_task": d["epochs_per_task"], "n_train": n_train_total,
           "average_accuracy": d["average_accuracy"], "backward_transfer": d["backward_transfer"],
           "forgetting": d["forgetting"], "accuracy_matrix": d["accuracy_matrix"], "task_classes": d["task_classes"],
           "buffer_class_counts": d["buffer_class_counts"], "train_time_s": d["train_time_s"]}
    return {
        "metrics": metrics, "flops": flops, "density": density if info.sparse else 1.0,
        "epochs": int(fitted.n_iter_), "n_train": n_train_total, "n_val": 0, "n_test": int(len(test)),
        "n_features": int(Z_train.shape[1]), "missing_fraction_train": 0.0, "missing_fraction_test": 0.0,
        "fit_time_s": fit_time, "predict_time_s": None, "represent_time_s": represent_time, "continual": row,
    }
