"""The ``[dynamics]`` study: per-example tracking of the grid's dualsparse MLP runs, and subset runs.

* Grid runs of a config with ``[dynamics]`` are tracked: every dualsparse MLP run gets an
  :class:`~dualsparse.dynamics.ExampleTracker` (a plain callback) and its per-example statistics
  are stored (table ``examples``, keyed by run and dataset row; per-epoch ones in ``epochs``).
  The split, label noise and amputation of such a config depend on ``data_seed`` only, so every
  seed trains on the same rows and the statistics of different seeds and models line up row by row.
* ``"subset"`` runs (``[dynamics.subsets]``): a model trained on the rows a strategy keeps from
  the statistics of a *reference* run (the ``stats_from`` model at the same grid point and seed,
  on all training rows). They run in a second phase, after the runs they depend on; the driver
  chooses their rows from the store (:meth:`TrackingStudy.prepare`) and sends them with the spec.

Everything is validated like the rest of a config: unknown keys and bad values are reported
with their section and the valid choices, before anything runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dynamics import STRATEGIES, ExampleTracker, select_subset, topology_forgetting
from ..train import SparseMLPClassifier
from .checks import check_table, int_value, is_int, name_list, number_value, share_list, unknown
from .grid_study import fit_and_score, make_run_estimator, prepare_rows
from .models import mlp_models, model_info
from .seeding import stable_seed
from .study import StudyKind, StudyTable
from .tracking_report import dynamics_sections, subset_sections

DYNAMICS_KEYS = ("label_noise", "reference", "k", "data_seed", "tracking", "subsets")
TRACKING_KEYS = ("el2n_epoch", "grand_epoch", "eval_every", "track_topology", "eval_batch_size", "grand_batch_size")
TRACKING_EXCLUDED = {"history": "the per-epoch matrices are not stored by experiments (use ExampleTracker(history=True) by hand)"}
SUBSET_KEYS = ("strategies", "fractions", "stratify", "stats_from", "train_models", "dense_reference")
DENSE_REFERENCES = ("estimate", "measured")
STRATIFY_CHOICES = (True, False, "proportional", "balanced")
TRACKING_DEFAULTS = {"el2n_epoch": 2, "grand_epoch": None, "eval_every": 1, "track_topology": True}

# per-example statistics of a tracked run: one row per training row (split "train", statistics
# from dualsparse.dynamics.ExampleTracker) and one per test row (split "test": label and the final
# prediction only, for compression-identified exemplars)
EXAMPLE_COLUMNS = (
    ("run_key", "TEXT NOT NULL"),
    ("example", "INTEGER NOT NULL"),  # row of the dataset
    ("split", "TEXT NOT NULL"),  # "train" or "test"
    ("position", "INTEGER NOT NULL"),  # row of the X given to fit (train) or of the test set
    ("label", "INTEGER"),  # the label trained on (after label noise) / the test label
    ("true_label", "INTEGER"),
    ("noisy", "INTEGER"),  # 1 where label noise flipped the training label
    ("prediction", "INTEGER"),  # the fitted model's prediction
    ("presentations", "INTEGER"),
    ("forgetting_events", "INTEGER"),
    ("learning_events", "INTEGER"),
    ("first_learned_epoch", "INTEGER"),
    ("never_learned", "INTEGER"),
    ("unforgettable", "INTEGER"),
    ("evaluations", "INTEGER"),
    ("forgetting_events_eval", "INTEGER"),
    ("confidence", "REAL"),
    ("variability", "REAL"),
    ("correctness", "REAL"),
    ("el2n", "REAL"),
    ("grand", "REAL"),
    ("topology_forgetting", "INTEGER"),
    ("correct_last", "INTEGER"),
    ("p_true_last", "REAL"),
)
EPOCH_COLUMNS = (
    ("run_key", "TEXT NOT NULL"),
    ("tracked_epoch", "INTEGER NOT NULL"),
    ("epoch", "INTEGER"),
    ("presentations", "INTEGER"),
    ("forgetting_events", "INTEGER"),
    ("learning_events", "INTEGER"),
    ("accuracy_presented", "REAL"),
    ("evaluated", "INTEGER"),
    ("forgotten_eval", "INTEGER"),
    ("learned_eval", "INTEGER"),
    ("accuracy_eval", "REAL"),
    ("mean_confidence", "REAL"),
    ("topology_update", "INTEGER"),
    ("dropped", "INTEGER"),
    ("grown", "INTEGER"),
    ("forgotten_by_update", "INTEGER"),
    ("learned_by_update", "INTEGER"),
    ("accuracy_after_update", "REAL"),
    ("step_topology_updates", "INTEGER"),
    ("step_dropped", "INTEGER"),
    ("step_grown", "INTEGER"),
)
SUBSET_COLUMNS = (
    ("run_key", "TEXT PRIMARY KEY"),
    ("reference_key", "TEXT NOT NULL"),  # the tracked run whose statistics chose the rows
    ("stats_from", "TEXT"),
    ("strategy", "TEXT NOT NULL"),
    ("fraction", "REAL NOT NULL"),  # asked for
    ("stratify", "TEXT"),
    ("n_all", "INTEGER"),
    ("n_subset", "INTEGER"),
    ("flops_ratio", "REAL"),  # training FLOPs of this run / the dense model's on all rows
    ("flops_saving", "REAL"),
    ("dense_full_train_flops", "REAL"),
    ("dense_full_accuracy", "REAL"),
    ("dense_full_source", "TEXT"),
    ("noisy_kept", "INTEGER"),  # flipped labels among the kept rows
    ("examples", "TEXT"),  # JSON list of the dataset rows trained on
)


def _levels(sparsities, epsilons, sparse: bool) -> list:
    if not sparse:
        return [None]
    return list(sparsities or []) + list(epsilons or [])


# ---------------------------------------------------------------------- validation
def validate_dynamics(section, ctx, problems) -> dict:
    """Check ``[dynamics]`` (with ``[dynamics.tracking]`` and ``[dynamics.subsets]``); a normalised dict."""
    models, model_params, sparsities, epsilons = ctx.models, ctx.model_params, ctx.sparsities, ctx.epsilons
    section = check_table(section, "[dynamics]", problems)
    problems.unknown_keys("[dynamics]", section, DYNAMICS_KEYS)
    mlps = [m for m in models if model_info(m).family == "mlp"]
    if not mlps:
        problems.append(f"[dynamics] tracks dualsparse MLPs ({', '.join(mlp_models())}), but [models] names has none")
    for m in mlps:
        if model_params.get(m, {}).get("early_stopping"):
            problems.append(f"[dynamics] needs statistics of every training row, but model {m!r} sets early_stopping = true "
                            "(which holds rows out); remove it")
    label_noise = number_value(section, "label_noise", "[dynamics]", problems, 0.0, lo_open=False,
                               what="a share of training labels to flip")
    data_seed = int_value(section, "data_seed", "[dynamics]", problems, 0, 0)
    k = number_value(section, "k", "[dynamics]", problems, 10.0, hi_open=False, hi=100.0, what="a percentage")
    default_ref = "dense" if "dense" in mlps else (mlps[0] if mlps else None)
    reference = section.get("reference", default_ref)
    if reference is not None and reference not in mlps:
        problems.append(unknown(f"[dynamics] reference {reference!r} (a dualsparse MLP in [models] names)", reference, mlps))
        reference = default_ref
    elif reference is not None and model_info(reference).sparse and len(_levels(sparsities, epsilons, True)) > 1:
        problems.append(f"[dynamics] reference {reference!r} has {len(_levels(sparsities, epsilons, True))} sparsity levels; "
                        "the reference must be one configuration (use dense, or one level)")
    tracking = _validate_tracking(section, mlps, model_params, problems)
    subsets = None
    if "subsets" in section:
        subsets = _validate_subsets(section["subsets"], tracking, reference, mlps, sparsities, epsilons, problems)
    return {"label_noise": label_noise, "data_seed": data_seed, "k": k, "reference": reference,
            "tracking": dict(sorted(tracking.items())), "subsets": subsets}


def _validate_tracking(section, mlps, model_params, problems) -> dict:
    """``[dynamics.tracking]``: ExampleTracker options (experiments' defaults under the user's)."""
    tracking = dict(check_table(section.get("tracking", {}), "[dynamics.tracking]", problems))
    for key in list(tracking):
        if key in TRACKING_EXCLUDED:
            problems.append(f"[dynamics.tracking] {key} cannot be set: {TRACKING_EXCLUDED[key]}")
            tracking.pop(key)
        elif key not in TRACKING_KEYS:
            problems.append(unknown(f"key {key!r} in [dynamics.tracking]", key, TRACKING_KEYS))
            tracking.pop(key)
    tracking = {**TRACKING_DEFAULTS, **tracking}
    try:
        ExampleTracker(**tracking)
    except (TypeError, ValueError) as err:
        problems.append(f"[dynamics.tracking]: {err}")
    for m in mlps:
        epochs = int(model_params.get(m, {}).get("max_epochs", SparseMLPClassifier().max_epochs))
        for key in ("el2n_epoch", "grand_epoch"):
            v = tracking.get(key)
            if is_int(v) and v >= epochs:
                problems.append(f"[dynamics.tracking] {key} = {v} is not reached: model {m!r} trains {epochs} epochs "
                                f"(epochs count from 0; use {key} <= {epochs - 1})")
    return tracking


def _validate_subsets(value, tracking, reference, mlps, sparsities, epsilons, problems) -> dict:
    """``[dynamics.subsets]``: strategies x fractions of which model's statistics, trained by which models."""
    sub = check_table(value, "[dynamics.subsets]", problems)
    problems.unknown_keys("[dynamics.subsets]", sub, SUBSET_KEYS)
    strategies = name_list(sub, "strategies", "[dynamics.subsets]", problems, STRATEGIES, required=True)
    if "grand" in strategies and tracking.get("grand_epoch") is None:
        problems.append("[dynamics.subsets] strategy 'grand' needs GraNd scores: set [dynamics.tracking] grand_epoch "
                        "(e.g. 2, or -1 for at initialisation)")
    fractions = share_list(sub, "fractions", "[dynamics.subsets]", problems)
    stratify = sub.get("stratify", True)
    if stratify not in STRATIFY_CHOICES or (isinstance(stratify, (int, float)) and not isinstance(stratify, bool)):
        problems.append(unknown(f"[dynamics.subsets] stratify {stratify!r}", stratify, STRATIFY_CHOICES))
        stratify = True
    stats_from = sub.get("stats_from", reference)
    if stats_from not in mlps:
        problems.append(unknown(f"[dynamics.subsets] stats_from {stats_from!r} (a tracked dualsparse MLP in [models] names)",
                                stats_from, mlps))
    elif model_info(stats_from).sparse and len(_levels(sparsities, epsilons, True)) > 1:
        problems.append(f"[dynamics.subsets] stats_from {stats_from!r} has several sparsity levels; use one configuration "
                        "(e.g. dense)")
    default_train = [m for m in mlps if model_info(m).sparse] or mlps
    train_models = name_list(sub, "train_models", "[dynamics.subsets]", problems, mlps, default=default_train)
    dense_reference = sub.get("dense_reference", "estimate")
    if dense_reference not in DENSE_REFERENCES:
        problems.append(unknown(f"[dynamics.subsets] dense_reference {dense_reference!r}", dense_reference, DENSE_REFERENCES)
                        + " (estimate: the subset run's dense-equivalent FLOPs scaled to all rows; measured: the "
                          "dense model's own run on all rows, which needs dense in [models] names)")
        dense_reference = "estimate"
    elif dense_reference == "measured" and "dense" not in mlps:
        problems.append("[dynamics.subsets] dense_reference = \"measured\" uses the dense model's run on all rows: "
                        "add dense to [models] names, or use \"estimate\"")
    return {"strategies": strategies, "fractions": fractions, "stratify": stratify, "stats_from": stats_from,
            "train_models": train_models, "dense_reference": dense_reference}


# ---------------------------------------------------------------------- expansion into runs
def tracked_dynamics(settings, model: str) -> dict:
    """The ``dynamics`` field of a grid run of a ``[dynamics]`` config (tracking for MLPs only)."""
    return {"data_seed": settings["data_seed"], "label_noise": settings["label_noise"],
            "tracking": settings["tracking"] if model_info(model).family == "mlp" else None}


def subset_runs(settings, grid_specs) -> list:
    """Subset runs: for every grid run of a train model, one per strategy x fraction, with the
    reference (``stats_from``) run of the same grid point and seed."""
    sub = settings.get("subsets")
    if not sub:
        return []

    def point(s):
        return (s.dataset, s.mechanism, s.rate, s.representation, s.seed, s.fold)

    refs = {point(s): s for s in grid_specs if s.model == sub["stats_from"]}
    dense = {point(s): s for s in grid_specs if s.model == "dense"}
    out = []
    for s in grid_specs:
        if s.model not in sub["train_models"]:
            continue
        ref = refs.get(point(s))
        if ref is None:
            continue
        for strategy in sub["strategies"]:
            for fraction in sub["fractions"]:
                subset = {"reference": ref.key, "stats_from": ref.model, "strategy": strategy, "fraction": fraction,
                          "stratify": sub["stratify"], "dense_reference": sub["dense_reference"]}
                if sub["dense_reference"] == "measured":
                    subset["dense_run"] = dense[point(s)].key
                out.append(s.replace(dynamics=dict(s.dynamics, tracking=None), kind="subset", subset=subset))
    return out


# ---------------------------------------------------------------------- executing
def _ints(series):
    return [None if pd.isna(v) else int(v) for v in series.astype(object)]


def _floats(series):
    return [None if not np.isfinite(v) else float(v) for v in series.to_numpy(dtype=np.float64, na_value=np.nan)]


def _label(v):
    if hasattr(v, "item"):
        v = v.item()
    return v


def tracked_parts(tracker, est, rows) -> dict:
    """What a tracked run stores besides its row: ``example_stats`` (columns), ``epoch_stats`` (records) and
    summary metrics (mean forgetting, shares unforgettable / never learned, topology forgetting)."""
    stats = tracker.example_stats_
    epochs = tracker.epoch_stats_
    train, test, noisy = rows.train, rows.test, rows.noisy
    y_train_used, y_train_true, y_test = rows.y_fit, rows.y[rows.train], rows.y[rows.test]
    pred_train = np.asarray(est.predict(rows.Z_train))
    pred_test = np.asarray(est.predict(rows.Z_test))
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


def example_stats(store, run_key: str):
    """The training rows' statistics of a tracked run, shaped like ``ExampleTracker.example_stats_``
    (one row per row of the X given to fit, in order), with the dataset row in ``example``;
    ``LookupError`` when the store has none."""
    frame = store.select("examples", run_key, where={"split": "train"}, order="position")
    if frame.empty:
        raise LookupError(f"run {run_key} has no per-example statistics in the store")
    frame.insert(0, "in_train", np.ones(len(frame), dtype=bool))
    for c in ("never_learned", "unforgettable", "correct_last", "noisy"):
        frame[c] = frame[c].astype("boolean")
    for c in ("confidence", "variability", "correctness", "el2n", "grand", "p_true_last"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    return frame.drop(columns=["run_key"]).reset_index(drop=True)


def subset_payload(spec, store) -> dict:
    """The rows a subset run trains on, chosen from its reference run's stored statistics (driver side).

    Raises ``LookupError`` when the reference run (or the measured dense run) is not in the store.
    """
    sub = spec.subset
    try:
        stats = example_stats(store, sub["reference"])
    except LookupError:
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


def subset_parts(spec, payload: dict, est, n_all: int, noisy_kept: int) -> dict:
    """The ``subsets`` row and summary metrics of a finished subset run."""
    sub = spec.subset
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


class TrackingStudy(StudyKind):
    """``[dynamics]``: tracked grid runs and subset runs."""

    name = "dynamics"
    section = "dynamics"
    tables = {
        "examples": StudyTable(EXAMPLE_COLUMNS, ("run_key", "example"), "example_stats", "columns"),
        "epochs": StudyTable(EPOCH_COLUMNS, ("run_key", "tracked_epoch"), "epoch_stats", "records"),
        "subsets": StudyTable(SUBSET_COLUMNS, None, "subset", "record"),
    }

    def validate(self, section, ctx, problems):
        return validate_dynamics(section, ctx, problems)

    def check_data(self, settings, ctx, problems):
        regression = [d for d, t in ctx.dataset_tasks.items() if t != "classification"]
        if regression:
            problems.append(f"[dynamics] tracks per-example correctness, so it needs classification datasets; "
                            f"{', '.join(regression)} {'is' if len(regression) == 1 else 'are'} regression")

    def expand(self, cfg, settings, runs):
        tracked = [s.replace(dynamics=tracked_dynamics(settings, s.model)) for s in runs]
        return tracked + subset_runs(settings, tracked)

    def describe(self, cfg, settings, runs):
        d = settings
        tr = ", ".join(f"{k}={v}" for k, v in d["tracking"].items())
        lines = [f"  dynamics        tracking every MLP run ({tr}); label noise {d['label_noise']:g}; "
                 f"data seed {d['data_seed']} for every seed; reference {d['reference']}; hardest {d['k']:g} %"]
        if d["subsets"]:
            s = d["subsets"]
            lines.append(f"  subsets         {', '.join(s['train_models'])} on {', '.join(s['strategies'])} x fractions "
                         f"{', '.join(f'{f:g}' for f in s['fractions'])} of {s['stats_from']}'s statistics "
                         f"(stratify={s['stratify']}, dense reference {s['dense_reference']})")
        return lines

    def claims(self, spec):
        return spec.dynamics is not None and spec.kind in ("grid", "subset")

    def phase(self, spec):
        return 1 if spec.kind == "subset" else 0

    def prepare(self, spec, store):
        return subset_payload(spec, store) if spec.kind == "subset" else None

    def execute(self, spec, callbacks=None, payload=None):
        # the data (split, label noise, amputation) is fixed by data_seed, so that the seeds differ
        # only in the model's initialisation and batch order
        dyn = spec.dynamics
        rows = prepare_rows(spec, data_seed=dyn["data_seed"], label_noise=dyn.get("label_noise", 0))
        tracker = None
        if spec.kind == "grid" and dyn.get("tracking") is not None and model_info(spec.model).family == "mlp":
            tracker = ExampleTracker(**dyn["tracking"])
            callbacks = [*(callbacks or []), tracker]
        est = make_run_estimator(spec, callbacks)
        fit_rows = payload["positions"] if spec.kind == "subset" else None
        out = fit_and_score(spec, rows, est, fit_rows)
        if tracker is not None:
            parts = tracked_parts(tracker, est, rows)
        elif spec.kind == "subset":
            kept = np.asarray(payload["positions"], dtype=np.int64)
            parts = subset_parts(spec, payload, est, len(rows.train), int(rows.noisy[kept].sum()))
        else:
            return out
        out["metrics"].update(parts.pop("metrics"))
        out.update(parts)
        return out

    def report(self, store, frame, out_dir, plots, experiment=None):
        out = {"head": [], "detail": [], "tables": {}, "methods": []}
        if "kind" not in frame:
            return out
        configs = store.experiment_configs()
        if (frame["kind"] == "grid").any():
            ex = store.table("examples", experiment)
            ex = ex[ex["kind"] == "grid"] if len(ex) else ex
            if len(ex):
                dynamics_sections(ex, frame[frame["kind"] == "grid"], configs, out_dir, plots, out)
                out["methods"].append(
                    "Tracked runs ([dynamics]): per-example statistics from dualsparse.dynamics.ExampleTracker (forgetting "
                    "events over presentations, Toneva et al. 2019; confidence/variability from epoch-end evaluations, "
                    "Swayamdipta et al. 2020; EL2N and GraNd, Paul et al. 2021). The split and the flipped labels depend on "
                    "[dynamics] data_seed only, so the seeds differ in initialisation and batch order, and every model and "
                    "seed is scored on the same training rows.")
        if (frame["kind"] == "subset").any():
            subset_sections(frame, store, experiment, out_dir, plots, out)
            out["methods"].append(
                "Subset runs: rows chosen by dualsparse.dynamics.select_subset from the statistics of the reference run "
                "(same grid point and seed, all rows); the FLOP ratio compares the subset run's training FLOPs with the "
                "dense model's on all rows.")
        return out
