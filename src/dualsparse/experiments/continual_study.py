"""The ``[continual]`` study: :func:`~dualsparse.dynamics.run_continual` for scenarios x models x
replay strategy x buffer size x seeds, instead of the grid.

It owns the section's checks, the expansion into ``"continual"`` runs, one run (split,
representation fitted on the training rows of every task, task sequence, continual training),
the ``continual`` table (accuracy matrix and ACC/BWT/forgetting of a run) and the report's
continual-learning sections (:mod:`.continual_report`).
"""

from __future__ import annotations

import time

import numpy as np

from ..data import make_representation
from ..dynamics import SCENARIOS, STRATEGIES, make_task_sequence, run_continual
from .checks import check_table, choice, int_value, is_int, is_number, name_list, number_value
from .config import model_params, sparsity_levels
from .continual_report import continual_sections
from .models import make_estimator, mlp_models, model_info
from .record import RunSpec
from .rundata import load, mlp_density, mlp_flops, split_indices
from .seeding import stable_seed
from .study import StudyKind, StudyTable

CONTINUAL_KEYS = ("scenarios", "n_tasks", "test_size", "class_order", "epochs_per_task", "replay", "buffer_sizes",
                  "stats_source", "probe_epochs")
CLASS_ORDERS = ("sorted", "random")
STATS_SOURCES = ("tracking", "probe")
CONTINUAL_COLUMNS = (
    ("run_key", "TEXT PRIMARY KEY"),
    ("scenario", "TEXT NOT NULL"),
    ("replay", "TEXT NOT NULL"),  # "none" or a subset strategy
    ("buffer_size", "INTEGER NOT NULL"),
    ("n_tasks", "INTEGER"),
    ("epochs_per_task", "INTEGER"),
    ("n_train", "INTEGER"),  # training rows over all tasks
    ("average_accuracy", "REAL"),
    ("backward_transfer", "REAL"),
    ("forgetting", "REAL"),
    ("accuracy_matrix", "TEXT"),  # JSON: R[i][j] accuracy on task j after training task i
    ("task_classes", "TEXT"),
    ("buffer_class_counts", "TEXT"),
    ("train_time_s", "TEXT"),
)


# ---------------------------------------------------------------------- validation
def validate_continual(section, ctx, problems) -> dict:
    """Check ``[continual]`` statically; a normalised dict."""
    raw = ctx.raw
    section = check_table(section, "[continual]", problems)
    problems.unknown_keys("[continual]", section, CONTINUAL_KEYS)
    if "dynamics" in raw:
        problems.append("[continual] and [dynamics] cannot share a config: a continual study is its own sweep "
                        "(put the tracking study in a config of its own)")
    if "split" in raw:
        problems.append("[split] does not apply to a continual study: each task's test rows are set by [continual] "
                        "test_size (remove [split])")
    miss = raw.get("missingness", {})
    if isinstance(miss, dict) and any(is_number(r) and r > 0 for r in (miss.get("rates") or [])):
        problems.append("[missingness] rates above 0 are not supported in a continual study; remove [missingness]")
    not_mlp = [m for m in ctx.models if model_info(m).family != "mlp"]
    if not_mlp:
        problems.append(f"[continual] trains dualsparse MLPs with partial_fit; remove {', '.join(not_mlp)} from "
                        f"[models] names (valid: {', '.join(mlp_models())})")
    scenarios = name_list(section, "scenarios", "[continual]", problems, SCENARIOS, default=["class-incremental"])
    n_tasks = int_value(section, "n_tasks", "[continual]", problems, 5, 2)
    test_size = number_value(section, "test_size", "[continual]", problems, 0.25, what="a test share")
    class_order = choice(section, "class_order", "[continual]", problems, CLASS_ORDERS, "sorted")
    epochs_per_task = int_value(section, "epochs_per_task", "[continual]", problems, 5, 1)
    replay = name_list(section, "replay", "[continual]", problems, STRATEGIES, default=["none", "random"], extra=("none",))
    stats_source = choice(section, "stats_source", "[continual]", problems, STATS_SOURCES, "tracking")
    probe_epochs = int_value(section, "probe_epochs", "[continual]", problems, 5, 1)
    buffers = section.get("buffer_sizes", None)
    uses_buffer = any(r != "none" for r in replay)
    buffer_sizes = []
    if buffers is None:
        if uses_buffer:
            problems.append("[continual] buffer_sizes is missing: the replay buffer sizes to sweep (rows), e.g. "
                            "buffer_sizes = [20, 50, 100, 200]")
    else:
        if is_int(buffers):
            buffers = [buffers]
        if not isinstance(buffers, list) or not buffers or not all(is_int(b) and b >= 1 for b in buffers):
            problems.append(f"[continual] buffer_sizes must be a positive integer or a list of them (rows), got {buffers!r}")
        else:
            if len(set(buffers)) != len(buffers):
                problems.append(f"[continual] buffer_sizes has duplicates: {buffers}; give each once")
            buffer_sizes = sorted(set(int(b) for b in buffers))
            if not uses_buffer:
                problems.append("[continual] buffer_sizes is given but replay is only \"none\"; add a replay strategy "
                                f"({', '.join(STRATEGIES)}) or remove buffer_sizes")
    return {"scenarios": scenarios, "n_tasks": n_tasks, "test_size": test_size, "class_order": class_order,
            "epochs_per_task": epochs_per_task, "replay": replay, "buffer_sizes": buffer_sizes,
            "stats_source": stats_source, "probe_epochs": probe_epochs}


def check_continual_data(c, ctx, problems) -> None:
    """What the datasets must allow: classification, a stratified test split, a class per task and
    per buffer row."""
    regression = [d for d, t in ctx.dataset_tasks.items() if t != "classification"]
    if regression:
        problems.append(f"[continual] splits classes into tasks, so it needs classification datasets; "
                        f"{', '.join(regression)} {'is' if len(regression) == 1 else 'are'} regression")
    uses_buffer = any(r != "none" for r in c["replay"])
    for name, ds in ctx.loaded.items():
        if ds.task != "classification":
            continue
        y = np.asarray(ds.y)
        n_classes = np.unique(y).size
        counts = np.unique(y, return_counts=True)[1]
        if counts.min() < 2:
            problems.append(f"dataset {name!r}: a class has {counts.min()} row(s), too few for a stratified test split")
        class_based = [s for s in c["scenarios"] if s != "domain-incremental"]
        if class_based and c["n_tasks"] is not None and c["n_tasks"] > n_classes:
            problems.append(f"[continual] n_tasks = {c['n_tasks']} is more than the {n_classes} classes of dataset {name!r}; "
                            f"{class_based[0]} needs a class per task (use n_tasks <= {n_classes})")
        if uses_buffer and c["buffer_sizes"] and min(c["buffer_sizes"]) < n_classes:
            problems.append(f"[continual] buffer_sizes: {min(c['buffer_sizes'])} rows is below the {n_classes} classes of dataset "
                            f"{name!r}; a class-balanced buffer needs at least one row per class")


# ---------------------------------------------------------------------- expansion into runs
def continual_runs(cfg, c) -> list:
    """Continual runs: datasets x scenarios x representations x models x levels x replay x buffer x seeds."""
    split = {"method": "holdout", "test_size": c["test_size"], "validation_size": 0.0, "stratify": True}
    out = []
    for dataset in cfg.datasets:
        for scenario in c["scenarios"]:
            for model in cfg.models:
                info = model_info(model)
                params = model_params(cfg, model)
                for representation in cfg.model_representations.get(model, cfg.representations):
                    for sparsity, epsilon in sparsity_levels(cfg, info):
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


# ---------------------------------------------------------------------- one run
def execute_continual(spec: RunSpec) -> dict:
    """One continual run: split, representation fitted on the training rows of every task, task
    sequence, :func:`~dualsparse.dynamics.run_continual`."""
    c = spec.continual
    ds = load(spec.dataset, spec.dataset_options)
    X, y = ds.X, np.asarray(ds.y)
    seed = spec.seed
    train, _, test = split_indices(y, spec.task, spec.split, seed, None, spec.dataset)
    rep = make_representation(spec.representation, **spec.representation_options)
    t_rep = time.perf_counter()
    Z_train = rep.fit_transform(X[train])
    Z_test = rep.transform(X[test])
    represent_time = time.perf_counter() - t_rep
    info = model_info(spec.model)
    tasks = make_task_sequence(Z_train, y[train], c["scenario"], c["n_tasks"], X_test=Z_test, y_test=y[test],
                               class_order=c["class_order"],
                               random_state=stable_seed("tasks", spec.dataset, seed, c["scenario"]))
    est = make_estimator(spec.model, spec.task, spec.model_params, sparsity=spec.sparsity,
                         epsilon=spec.epsilon, random_state=stable_seed("model", seed, None))
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
    n_train_total = int(sum(t.n_train for t in tasks))
    row = {"scenario": c["scenario"], "replay": c["replay"], "buffer_size": int(c["buffer_size"]),
           "n_tasks": d["n_tasks"], "epochs_per_task": d["epochs_per_task"], "n_train": n_train_total,
           "average_accuracy": d["average_accuracy"], "backward_transfer": d["backward_transfer"],
           "forgetting": d["forgetting"], "accuracy_matrix": d["accuracy_matrix"], "task_classes": d["task_classes"],
           "buffer_class_counts": d["buffer_class_counts"], "train_time_s": d["train_time_s"]}
    return {
        "metrics": metrics, "flops": mlp_flops(fitted), "density": mlp_density(fitted) if info.sparse else 1.0,
        "epochs": int(fitted.n_iter_), "n_train": n_train_total, "n_val": 0, "n_test": int(len(test)),
        "n_features": int(Z_train.shape[1]), "missing_fraction_train": 0.0, "missing_fraction_test": 0.0,
        "fit_time_s": fit_time, "predict_time_s": None, "represent_time_s": represent_time, "continual": row,
    }


class ContinualStudy(StudyKind):
    """``[continual]``: a continual-learning sweep instead of the grid."""

    name = "continual"
    section = "continual"
    replaces_grid = True
    tables = {"continual": StudyTable(CONTINUAL_COLUMNS, None, "continual", "record")}

    def validate(self, section, ctx, problems):
        return validate_continual(section, ctx, problems)

    def check_data(self, settings, ctx, problems):
        check_continual_data(settings, ctx, problems)

    def expand(self, cfg, settings, runs):
        return continual_runs(cfg, settings)

    def describe_overrides(self, cfg, settings):
        return {"missingness": None,
                "split": f"per task: test {settings['test_size']:g} (stratified), no validation"}

    def describe(self, cfg, settings, runs):
        c = settings
        return [f"  continual       {', '.join(c['scenarios'])}; {c['n_tasks']} tasks x {c['epochs_per_task']} epochs; "
                f"replay {', '.join(c['replay'])}"
                + (f"; buffers {', '.join(map(str, c['buffer_sizes']))} rows" if c["buffer_sizes"] else "")]

    def execute(self, spec, callbacks=None, payload=None):
        return execute_continual(spec)

    def report(self, store, frame, out_dir, plots, experiment=None):
        out = {"head": [], "detail": [], "tables": {}, "methods": []}
        if "kind" in frame and (frame["kind"] == "continual").any():
            continual_sections(store, experiment, out_dir, plots, out)
            out["methods"].append(
                "Continual runs: dualsparse.dynamics.run_continual (partial_fit, one epoch per call); the representation "
                "is fitted on the training rows of all tasks; the test rows of each task are a stratified holdout.")
        return out
