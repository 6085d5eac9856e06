"""The grid study: every (dataset, mechanism, rate, representation, model, level, seed, fold) of a
config, each run split, amputed, represented, fitted and scored.

It owns the grid's expansion, the execution of one grid run (in steps other kinds reuse:
:func:`prepare_rows`, :func:`make_run_estimator`, :func:`fit_and_score`), the split-feasibility
check of the data trials, and the report's headline and detail sections (:mod:`.grid_report`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..data import ampute_split, make_representation
from .config import NAN_REPRESENTATIONS, model_params, sparsity_levels
from .grid_report import grid_sections
from .models import baseline_density, baseline_flops, make_estimator, model_info, params_on
from .record import RunSpec
from .rundata import flip_labels, is_sparse, load, missing_fraction, mlp_density, mlp_flops, score, split_indices
from .seeding import stable_seed
from .study import StudyKind


# ---------------------------------------------------------------------- expansion
def grid_runs(cfg) -> list[RunSpec]:
    """Every grid run, in a stable order, each once (rate 0 shared by all mechanisms)."""
    specs, seen = [], set()
    folds = list(range(cfg.split["folds"])) if cfg.split["method"] == "kfold" else [None]
    for dataset in cfg.datasets:
        task = cfg.dataset_tasks[dataset]
        for mechanism in cfg.mechanisms:
            for rate in cfg.rates:
                mech = "none" if rate == 0 else mechanism
                for model in cfg.models:
                    info = model_info(model)
                    if not info.supports(task):
                        continue
                    for representation in cfg.model_representations.get(model, cfg.representations):
                        params = params_on(model, model_params(cfg, model), representation in NAN_REPRESENTATIONS)
                        if params is None:
                            continue
                        for sparsity, epsilon in sparsity_levels(cfg, info):
                            for seed in cfg.seeds:
                                for fold in folds:
                                    spec = RunSpec(
                                        experiment=cfg.name, dataset=dataset,
                                        dataset_options=cfg.dataset_options.get(dataset, {}), task=task,
                                        split=dict(cfg.split), fold=fold, mechanism=mech,
                                        mechanism_options={} if rate == 0 else cfg.mechanism_options.get(mechanism, {}),
                                        apply_to="train" if rate == 0 else cfg.apply_to,
                                        per_feature=False if rate == 0 else cfg.per_feature, rate=float(rate),
                                        representation=representation,
                                        representation_options=cfg.representation_options.get(representation, {}),
                                        model=model, model_params=params, sparsity=sparsity, epsilon=epsilon, seed=seed,
                                    )
                                    if spec.key in seen:
                                        continue
                                    seen.add(spec.key)
                                    specs.append(spec)
    return specs


# ---------------------------------------------------------------------- one run, in steps
@dataclass
class RunRows:
    """A run's rows after split, label noise, amputation and representation."""

    ds: object
    y: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    y_fit: np.ndarray  # training labels as trained on (after label noise)
    noisy: np.ndarray  # which training labels were flipped
    Z_train: object
    Z_val: object
    Z_test: object
    missing_train: float
    missing_test: float
    represent_time: float


def prepare_rows(spec: RunSpec, data_seed=None, label_noise: float = 0.0) -> RunRows:
    """Split (by ``data_seed``, the spec's seed by default), flip labels, ampute the training rows
    (and, with apply_to = "both", validation and test rows), and fit the representation on the
    training rows only."""
    ds = load(spec.dataset, spec.dataset_options)
    X, y = ds.X, np.asarray(ds.y)
    fold = spec.fold
    data_seed = spec.seed if data_seed is None else data_seed
    train, val, test = split_indices(y, spec.task, spec.split, data_seed, fold, spec.dataset)
    X_train, X_val, X_test = X[train], X[val], X[test]
    y_fit = y[train]
    noisy = np.zeros(len(train), dtype=bool)
    if label_noise > 0:
        y_fit, noisy = flip_labels(y_fit, label_noise, stable_seed("label_noise", spec.dataset, data_seed, fold),
                                   classes=np.unique(y))
    if spec.rate > 0:
        X_rest = np.vstack([X_val, X_test])
        amp_seed = stable_seed("ampute", spec.dataset, spec.mechanism, spec.rate, data_seed, fold)
        X_train, X_rest, _, _ = ampute_split(
            X_train, X_rest, spec.mechanism, spec.rate, random_state=amp_seed,
            apply_to=spec.apply_to, per_feature=spec.per_feature, **spec.mechanism_options,
        )
        X_val, X_test = X_rest[: len(val)], X_rest[len(val):]
    missing_train, missing_test = missing_fraction(X_train), missing_fraction(X_test)

    rep = make_representation(spec.representation, **spec.representation_options)
    t_rep = time.perf_counter()
    Z_train = rep.fit_transform(X_train)
    Z_val = rep.transform(X_val) if len(val) else None
    Z_test = rep.transform(X_test)
    represent_time = time.perf_counter() - t_rep
    if not model_info(spec.model).accepts_sparse and is_sparse(Z_train):
        Z_train = Z_train.toarray()
        Z_val = Z_val.toarray() if Z_val is not None else None
        Z_test = Z_test.toarray()
    return RunRows(ds, y, train, val, test, y_fit, noisy, Z_train, Z_val, Z_test, missing_train, missing_test,
                   represent_time)


def make_run_estimator(spec: RunSpec, callbacks=None):
    """The run's unfitted model, seeded from (seed, fold); callbacks reach dualsparse MLPs only."""
    info = model_info(spec.model)
    return make_estimator(spec.model, spec.task, spec.model_params, sparsity=spec.sparsity, epsilon=spec.epsilon,
                          random_state=stable_seed("model", spec.seed, spec.fold),
                          callbacks=callbacks if info.family == "mlp" else None)


def fit_and_score(spec: RunSpec, rows: RunRows, est, fit_rows=None) -> dict:
    """Fit on the training rows (``fit_rows``: positions among them; all by default), score on the
    test (and validation) rows, count FLOPs; the result's fields."""
    if fit_rows is None:
        fit_rows, Z_fit = np.arange(len(rows.train)), rows.Z_train
    else:
        fit_rows = np.asarray(fit_rows, dtype=np.int64)
        Z_fit = rows.Z_train[fit_rows]
    t_fit = time.perf_counter()
    est.fit(Z_fit, rows.y_fit[fit_rows])
    fit_time = time.perf_counter() - t_fit

    t_pred = time.perf_counter()
    metrics = score(est, spec.task, rows.Z_test, rows.y[rows.test], rows.ds)
    predict_time = time.perf_counter() - t_pred
    if rows.Z_val is not None:
        metrics.update(score(est, spec.task, rows.Z_val, rows.y[rows.val], rows.ds, prefix="val_"))

    if model_info(spec.model).family == "mlp":
        flops, density, epochs = mlp_flops(est), mlp_density(est), int(est.n_iter_)
    else:
        flops = baseline_flops(spec.model, est, rows.Z_train.shape[1], len(rows.train))
        density = baseline_density(spec.model)
        epochs = int(np.max(np.atleast_1d(est.n_iter_))) if getattr(est, "n_iter_", None) is not None else None
    return {
        "metrics": metrics, "flops": flops, "density": density, "epochs": epochs,
        "n_train": int(len(fit_rows)), "n_val": int(len(rows.val)), "n_test": int(len(rows.test)),
        "n_features": int(rows.Z_train.shape[1]),
        "missing_fraction_train": rows.missing_train, "missing_fraction_test": rows.missing_test,
        "fit_time_s": fit_time, "predict_time_s": predict_time, "represent_time_s": rows.represent_time,
    }


# ---------------------------------------------------------------------- data trials
def check_split_feasible(name, ds, split, problems):
    """Whether every class has enough rows for the split (stratified folds, validation)."""
    n = ds.X.shape[0]
    if ds.task == "classification" and split["stratify"]:
        counts = np.bincount(np.asarray(ds.y, dtype=np.int64))
        counts = counts[counts > 0]
        need = split["folds"] if split["method"] == "kfold" else 2
        if split["validation_size"] > 0:
            need = max(need, 3 if split["method"] == "holdout" else need + 1)
        if counts.min() < need:
            problems.append(
                f"dataset {name!r}: its smallest class has {counts.min()} rows, too few for a stratified "
                f"{split['method']} split{' with validation' if split['validation_size'] > 0 else ''} (needs {need}); "
                "lower [split] folds, set validation_size = 0.0, or stratify = false"
            )
    if split["method"] == "kfold" and split["folds"] > n:
        problems.append(f"dataset {name!r} has {n} rows, fewer than [split] folds = {split['folds']}")


class GridStudy(StudyKind):
    """The grid: always active, unless a kind that replaces it (a continual study) is."""

    name = "grid"
    section = None

    def check_data(self, settings, ctx, problems):
        for name, ds in ctx.loaded.items():
            check_split_feasible(name, ds, ctx.split, problems)

    def expand(self, cfg, settings, runs):
        return grid_runs(cfg)

    def claims(self, spec):
        return True  # the base kind: any run no later kind claims

    def execute(self, spec, callbacks=None, payload=None):
        rows = prepare_rows(spec)
        return fit_and_score(spec, rows, make_run_estimator(spec, callbacks))

    def report(self, store, frame, out_dir, plots, experiment=None):
        return grid_sections(frame, out_dir, plots)
