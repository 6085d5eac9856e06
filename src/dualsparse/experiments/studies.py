"""The learning-dynamics sections of a config: ``[dynamics]`` (tracking and subsets) and ``[continual]``.

Three kinds of run come out of them (``RunSpec.kind``):

* ``"grid"`` runs of a config with a ``[dynamics]`` section are tracked: every dualsparse MLP
  run gets a :class:`~dualsparse.dynamics.ExampleTracker` and its per-example statistics are
  stored (table ``examples``, keyed by run and dataset row). The split, label noise and
  amputation of such a config depend on ``data_seed`` only, so every seed trains on the same rows
  and the per-example statistics of different seeds and models line up row by row.
* ``"subset"`` runs (``[dynamics.subsets]``): a model trained on the rows a strategy keeps from
  the statistics of a *reference* run (the ``stats_from`` model at the same grid point and seed,
  on all training rows). They run after the grid runs they depend on.
* ``"continual"`` runs (``[continual]``): :func:`~dualsparse.dynamics.run_continual` for
  scenarios x models x replay strategy x buffer size x seeds.

Everything is validated like the rest of a config: unknown keys and bad values are reported
with their section and the valid choices, before anything runs.
"""

from __future__ import annotations

import math

from .models import model_info

DYNAMICS_KEYS = ("label_noise", "reference", "k", "data_seed", "tracking", "subsets")
TRACKING_KEYS = ("el2n_epoch", "grand_epoch", "eval_every", "track_topology", "eval_batch_size", "grand_batch_size")
TRACKING_EXCLUDED = {"history": "the per-epoch matrices are not stored by experiments (use ExampleTracker(history=True) by hand)"}
SUBSET_KEYS = ("strategies", "fractions", "stratify", "stats_from", "train_models", "dense_reference")
DENSE_REFERENCES = ("estimate", "measured")
STRATIFY_CHOICES = (True, False, "proportional", "balanced")
CONTINUAL_KEYS = ("scenarios", "n_tasks", "test_size", "class_order", "epochs_per_task", "replay", "buffer_sizes",
                  "stats_source", "probe_epochs")
CLASS_ORDERS = ("sorted", "random")
STATS_SOURCES = ("tracking", "probe")
TRACKING_DEFAULTS = {"el2n_epoch": 2, "grand_epoch": None, "eval_every": 1, "track_topology": True}


def _dyn():
    from .. import dynamics

    return dynamics


# ---------------------------------------------------------------------- validation helpers
def _is_int(v) -> bool:
    import numbers

    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    import numbers

    return isinstance(v, numbers.Real) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


_SINGULAR = {"strategies": "strategy", "scenarios": "scenario", "train_models": "model", "replay": "replay strategy"}


def _name_list(table, key, where, problems, valid, default=None, required=False, extra=()):
    """A list of names from ``valid`` (+ ``extra``); reports unknown names with the choices."""
    from .config import _unknown

    if key not in table:
        if required:
            problems.append(f"{where} {key} is missing; choose from {', '.join(map(str, [*valid, *extra]))}")
            return []
        return list(default) if default is not None else None
    value = table[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(f"{where} {key} must be a non-empty list of names, got {value!r}; "
                        f"choose from {', '.join(map(str, [*valid, *extra]))}")
        return []
    out = []
    for v in value:
        if v not in valid and v not in extra:
            problems.append(_unknown(f"{_SINGULAR.get(key, key)} {v!r} in {where} {key}", v, [*valid, *extra]))
        elif v in out:
            problems.append(f"{where} {key} lists {v!r} more than once; give each once")
        else:
            out.append(v)
    return out


def _int(table, key, where, problems, default, lo, hi=None):
    value = table.get(key, default)
    if value is None:
        return None
    if not _is_int(value) or value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        problems.append(f"{where} {key} must be an integer {bound}, got {value!r}")
        return default
    return int(value)


def _fraction(table, key, where, problems, default, lo_open=True, hi_open=True, lo=0.0, hi=1.0, what="a number"):
    value = table.get(key, default)
    if not _is_number(value) or value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        problems.append(f"{where} {key} must be {what} in {interval}, got {value!r}")
        return default
    return float(value)


def _check_table(value, where, problems) -> dict:
    if not isinstance(value, dict):
        problems.append(f"{where} must be a table (a {where} section), got {type(value).__name__}")
        return {}
    return value


def _mlp_max_epochs(params: dict) -> int:
    from ..train import SparseMLPClassifier

    return int(params.get("max_epochs", SparseMLPClassifier().max_epochs))


def _levels(sparsities, epsilons, sparse: bool) -> list:
    if not sparse:
        return [None]
    return list(sparsities or []) + list(epsilons or [])


# ---------------------------------------------------------------------- [dynamics]
def validate_dynamics(section, *, models, model_params, dataset_tasks, loaded, sparsities, epsilons, problems) -> dict:
    """Check ``[dynamics]`` (with ``[dynamics.tracking]`` and ``[dynamics.subsets]``); a normalised dict."""
    from .config import _unknown

    dyn = _dyn()
    section = _check_table(section, "[dynamics]", problems)
    problems.unknown_keys("[dynamics]", section, DYNAMICS_KEYS)
    regression = [d for d, t in dataset_tasks.items() if t != "classification"]
    if regression:
        problems.append(f"[dynamics] tracks per-example correctness, so it needs classification datasets; "
                        f"{', '.join(regression)} {'is' if len(regression) == 1 else 'are'} regression")
    mlps = [m for m in models if model_info(m).family == "mlp"]
    if not mlps:
        problems.append("[dynamics] tracks dualsparse MLPs (dense, static, set, rigl), but [models] names has none")
    for m in mlps:
        if model_params.get(m, {}).get("early_stopping"):
            problems.append(f"[dynamics] needs statistics of every training row, but model {m!r} sets early_stopping = true "
                            "(which holds rows out); remove it")
    label_noise = _fraction(section, "label_noise", "[dynamics]", problems, 0.0, lo_open=False,
                            what="a share of training labels to flip")
    data_seed = _int(section, "data_seed", "[dynamics]", problems, 0, 0)
    k = _fraction(section, "k", "[dynamics]", problems, 10.0, hi_open=False, hi=100.0, what="a percentage")
    default_ref = "dense" if "dense" in mlps else (mlps[0] if mlps else None)
    reference = section.get("reference", default_ref)
    if reference is not None and reference not in mlps:
        problems.append(_unknown(f"[dynamics] reference {reference!r} (a dualsparse MLP in [models] names)", reference, mlps))
        reference = default_ref
    elif reference is not None and model_info(reference).sparse and len(_levels(sparsities, epsilons, True)) > 1:
        problems.append(f"[dynamics] reference {reference!r} has {len(_levels(sparsities, epsilons, True))} sparsity levels; "
                        "the reference must be one configuration (use dense, or one level)")

    # [dynamics.tracking]
    tracking = dict(_check_table(section.get("tracking", {}), "[dynamics.tracking]", problems))
    for key in list(tracking):
        if key in TRACKING_EXCLUDED:
            problems.append(f"[dynamics.tracking] {key} cannot be set: {TRACKING_EXCLUDED[key]}")
            tracking.pop(key)
        elif key not in TRACKING_KEYS:
            problems.append(_unknown(f"key {key!r} in [dynamics.tracking]", key, TRACKING_KEYS))
            tracking.pop(key)
    tracking = {**TRACKING_DEFAULTS, **tracking}
    try:
        dyn.ExampleTracker(**tracking)
    except (TypeError, ValueError) as err:
        problems.append(f"[dynamics.tracking]: {err}")
    for m in mlps:
        epochs = _mlp_max_epochs(model_params.get(m, {}))
        for key in ("el2n_epoch", "grand_epoch"):
            v = tracking.get(key)
            if _is_int(v) and v >= epochs:
                problems.append(f"[dynamics.tracking] {key} = {v} is not reached: model {m!r} trains {epochs} epochs "
                                f"(epochs count from 0; use {key} <= {epochs - 1})")

    # [dynamics.subsets]
    subsets = None
    if "subsets" in section:
        sub = _check_table(section["subsets"], "[dynamics.subsets]", problems)
        problems.unknown_keys("[dynamics.subsets]", sub, SUBSET_KEYS)
        strategies = _name_list(sub, "strategies", "[dynamics.subsets]", problems, dyn.STRATEGIES, required=True)
        if "grand" in strategies and tracking.get("grand_epoch") is None:
            problems.append("[dynamics.subsets] strategy 'grand' needs GraNd scores: set [dynamics.tracking] grand_epoch "
                            "(e.g. 2, or -1 for at initialisation)")
        fractions = _fraction_list(sub, "fractions", "[dynamics.subsets]", problems)
        stratify = sub.get("stratify", True)
        if stratify not in STRATIFY_CHOICES or (isinstance(stratify, (int, float)) and not isinstance(stratify, bool)):
            problems.append(_unknown(f"[dynamics.subsets] stratify {stratify!r}", stratify, STRATIFY_CHOICES))
            stratify = True
        stats_from = sub.get("stats_from", reference)
        if stats_from not in mlps:
            problems.append(_unknown(f"[dynamics.subsets] stats_from {stats_from!r} (a tracked dualsparse MLP in [models] names)",
                                     stats_from, mlps))
        elif model_info(stats_from).sparse and len(_levels(sparsities, epsilons, True)) > 1:
            problems.append(f"[dynamics.subsets] stats_from {stats_from!r} has several sparsity levels; use one configuration "
                            "(e.g. dense)")
        default_train = [m for m in mlps if model_info(m).sparse] or mlps
        train_models = _name_list(sub, "train_models", "[dynamics.subsets]", problems, mlps, default=default_train)
        dense_reference = sub.get("dense_reference", "estimate")
        if dense_reference not in DENSE_REFERENCES:
            problems.append(_unknown(f"[dynamics.subsets] dense_reference {dense_reference!r}", dense_reference, DENSE_REFERENCES)
                            + " (estimate: the subset run's dense-equivalent FLOPs scaled to all rows; measured: the "
                              "dense model's own run on all rows, which needs dense in [models] names)")
            dense_reference = "estimate"
        elif dense_reference == "measured" and "dense" not in mlps:
            problems.append("[dynamics.subsets] dense_reference = \"measured\" uses the dense model's run on all rows: "
                            "add dense to [models] names, or use \"estimate\"")
        subsets = {"strategies": strategies, "fractions": fractions, "stratify": stratify, "stats_from": stats_from,
                   "train_models": train_models, "dense_reference": dense_reference}
    return {"label_noise": label_noise, "data_seed": data_seed, "k": k, "reference": reference,
            "tracking": dict(sorted(tracking.items())), "subsets": subsets}


def _fraction_list(table, key, where, problems):
    if key not in table:
        problems.append(f"{where} {key} is missing: the shares of training rows to keep, e.g. {key} = [0.3, 0.5]")
        return []
    value = table[key]
    if _is_number(value):
        value = [value]
    if not isinstance(value, list) or not value:
        problems.append(f"{where} {key} must be a non-empty list of numbers in (0, 1), got {value!r}")
        return []
    out = []
    for v in value:
        if not _is_number(v) or not 0 < v < 1:
            problems.append(f"{where} {key}: {v!r} is not a share of rows in (0, 1) (the full data is the grid run itself)")
        elif float(v) in out:
            problems.append(f"{where} {key} lists {v!r} more than once; give each once")
        else:
            out.append(float(v))
    return sorted(out)


# ---------------------------------------------------------------------- [continual]
def validate_continual(section, *, raw, models, dataset_tasks, loaded, problems) -> dict:
    """Check ``[continual]``; a normalised dict."""
    import numpy as np

    dyn = _dyn()
    section = _check_table(section, "[continual]", problems)
    problems.unknown_keys("[continual]", section, CONTINUAL_KEYS)
    if "dynamics" in raw:
        problems.append("[continual] and [dynamics] cannot share a config: a continual study is its own sweep "
                        "(put the tracking study in a config of its own)")
    if "split" in raw:
        problems.append("[split] does not apply to a continual study: each task's test rows are set by [continual] "
                        "test_size (remove [split])")
    miss = raw.get("missingness", {})
    if isinstance(miss, dict) and any(_is_number(r) and r > 0 for r in (miss.get("rates") or [])):
        problems.append("[missingness] rates above 0 are not supported in a continual study; remove [missingness]")
    regression = [d for d, t in dataset_tasks.items() if t != "classification"]
    if regression:
        problems.append(f"[continual] splits classes into tasks, so it needs classification datasets; "
                        f"{', '.join(regression)} {'is' if len(regression) == 1 else 'are'} regression")
    not_mlp = [m for m in models if model_info(m).family != "mlp"]
    if not_mlp:
        problems.append(f"[continual] trains dualsparse MLPs with partial_fit; remove {', '.join(not_mlp)} from "
                        "[models] names (valid: dense, static, set, rigl)")
    scenarios = _name_list(section, "scenarios", "[continual]", problems, dyn.SCENARIOS, default=["class-incremental"])
    n_tasks = _int(section, "n_tasks", "[continual]", problems, 5, 2)
    test_size = _fraction(section, "test_size", "[continual]", problems, 0.25, what="a test share")
    class_order = section.get("class_order", "sorted")
    if class_order not in CLASS_ORDERS:
        from .config import _unknown

        problems.append(_unknown(f"[continual] class_order {class_order!r}", class_order, CLASS_ORDERS))
        class_order = "sorted"
    epochs_per_task = _int(section, "epochs_per_task", "[continual]", problems, 5, 1)
    replay = _name_list(section, "replay", "[continual]", problems, dyn.STRATEGIES, default=["none", "random"], extra=("none",))
    stats_source = section.get("stats_source", "tracking")
    if stats_source not in STATS_SOURCES:
        from .config import _unknown

        problems.append(_unknown(f"[continual] stats_source {stats_source!r}", stats_source, STATS_SOURCES))
        stats_source = "tracking"
    probe_epochs = _int(section, "probe_epochs", "[continual]", problems, 5, 1)
    buffers = section.get("buffer_sizes", None)
    uses_buffer = any(r != "none" for r in replay)
    buffer_sizes = []
    if buffers is None:
        if uses_buffer:
            problems.append("[continual] buffer_sizes is missing: the replay buffer sizes to sweep (rows), e.g. "
                            "buffer_sizes = [20, 50, 100, 200]")
    else:
        if _is_int(buffers):
            buffers = [buffers]
        if not isinstance(buffers, list) or not buffers or not all(_is_int(b) and b >= 1 for b in buffers):
            problems.append(f"[continual] buffer_sizes must be a positive integer or a list of them (rows), got {buffers!r}")
        else:
            if len(set(buffers)) != len(buffers):
                problems.append(f"[continual] buffer_sizes has duplicates: {buffers}; give each once")
            buffer_sizes = sorted(set(int(b) for b in buffers))
            if not uses_buffer:
                problems.append("[continual] buffer_sizes is given but replay is only \"none\"; add a replay strategy "
                                f"({', '.join(dyn.STRATEGIES)}) or remove buffer_sizes")
    for name, ds in loaded.items():
        if ds.task != "classification":
            continue
        y = np.asarray(ds.y)
        n_classes = np.unique(y).size
        counts = np.unique(y, return_counts=True)[1]
        if counts.min() < 2:
            problems.append(f"dataset {name!r}: a class has {counts.min()} row(s), too few for a stratified test split")
        class_based = [s for s in scenarios if s != "domain-incremental"]
        if class_based and n_tasks is not None and n_tasks > n_classes:
            problems.append(f"[continual] n_tasks = {n_tasks} is more than the {n_classes} classes of dataset {name!r}; "
                            f"{class_based[0]} needs a class per task (use n_tasks <= {n_classes})")
        if uses_buffer and buffer_sizes and min(buffer_sizes) < n_classes:
            problems.append(f"[continual] buffer_sizes: {min(buffer_sizes)} rows is below the {n_classes} classes of dataset "
                            f"{name!r}; a class-balanced buffer needs at least one row per class")
    return {"scenarios": scenarios, "n_tasks": n_tasks, "test_size": test_size, "class_order": class_order,
            "epochs_per_task": epochs_per_task, "replay": replay, "buffer_sizes": buffer_sizes,
            "stats_source": stats_source, "probe_epochs": probe_epochs}


# ---------------------------------------------------------------------- expansion into runs
def tracked_dynamics(cfg, model: str) -> dict:
    """The ``dynamics`` field of a grid run of a ``[dynamics]`` config (tracking for MLPs only)."""
    d = cfg.dynamics
    return {"data_seed": d["data_seed"], "label_noise": d["label_noise"],
            "tracking": d["tracking"] if model_info(model).family == "mlp" else None}


def subset_runs(cfg, grid_specs) -> list:
    """Subset runs: for every grid run of a train model, one per strategy x fraction, with the
    reference (``stats_from``) run of the same grid point and seed."""
    from .config import RunSpec

    sub = cfg.dynamics.get("subsets")
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
                d = s.to_dict()
                d["dynamics"] = dict(d["dynamics"], tracking=None)
                d["kind"] = "subset"
                d["subset"] = {"reference": ref.key, "stats_from": ref.model, "strategy": strategy, "fraction": fraction,
                               "stratify": sub["stratify"], "dense_reference": sub["dense_reference"]}
                if sub["dense_reference"] == "measured":
                    d["subset"]["dense_run"] = dense[point(s)].key
                out.append(RunSpec.from_dict(d))
    return out


def continual_runs(cfg) -> list:
    """Continual runs: datasets x scenarios x representations x models x levels x replay x buffer x seeds."""
    from .config import RunSpec, _model_params, _sparsity_levels

    c = cfg.continual
    split = {"method": "holdout", "test_size": c["test_size"], "validation_size": 0.0, "stratify": True}
    out = []
    for dataset in cfg.datasets:
        for scenario in c["scenarios"]:
            for model in cfg.models:
                info = model_info(model)
                params = _model_params(cfg, model)
                for representation in cfg.model_representations.get(model, cfg.representations):
                    for sparsity, epsilon in _sparsity_levels(cfg, info):
                        for replay in c["replay"]:
                            buffers = [0] if replay == "none" else c["buffer_sizes"]
                            for buffer_size in buffers:
                                cont = {"scenario": scenario, "n_tasks": c["n_tasks"], "class_order": c["class_order"],
                                        "epochs_per_task": c["epochs_per_task"], "replay": replay,
                                        "buffer_size": int(buffer_size)}
                                if replay not in ("none", "random"):
                                    cont["stats_source"] = c["stats_source"]
                                    if c["stats_source"] == "probe":
                                        cont["probe_epochs"] = c["probe_epochs"]
                                for seed in cfg.seeds:
                                    out.append(RunSpec(
                                        experiment=cfg.name, dataset=dataset,
                                        dataset_options=cfg.dataset_options.get(dataset, {}),
                                        task=cfg.dataset_tasks[dataset], split=dict(split), fold=None,
                                        mechanism="none", mechanism_options={}, apply_to="train", per_feature=False,
                                        rate=0.0, representation=representation,
                                        representation_options=cfg.representation_options.get(representation, {}),
                                        model=model, model_params=params, sparsity=sparsity, epsilon=epsilon, seed=seed,
                                        kind="continual", continual=cont,
                                    ))
    return out


def describe_lines(cfg, runs) -> list[str]:
    """Extra --dry-run lines for the study sections."""
    lines = []
    if cfg.dynamics is not None:
        d = cfg.dynamics
        tr = ", ".join(f"{k}={v}" for k, v in d["tracking"].items())
        lines.append(f"  dynamics        tracking every MLP run ({tr}); label noise {d['label_noise']:g}; "
                     f"data seed {d['data_seed']} for every seed; reference {d['reference']}; hardest {d['k']:g} %")
        if d["subsets"]:
            s = d["subsets"]
            lines.append(f"  subsets         {', '.join(s['train_models'])} on {', '.join(s['strategies'])} x fractions "
                         f"{', '.join(f'{f:g}' for f in s['fractions'])} of {s['stats_from']}'s statistics "
                         f"(stratify={s['stratify']}, dense reference {s['dense_reference']})")
    if cfg.continual is not None:
        c = cfg.continual
        lines.append(f"  continual       {', '.join(c['scenarios'])}; {c['n_tasks']} tasks x {c['epochs_per_task']} epochs; "
                     f"replay {', '.join(c['replay'])}"
                     + (f"; buffers {', '.join(map(str, c['buffer_sizes']))} rows" if c["buffer_sizes"] else ""))
    kinds = {}
    for r in runs:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    if set(kinds) - {"grid"}:
        lines.append("  run kinds       " + ", ".join(f"{k} {n}" for k, n in kinds.items()))
    return lines
