"""The run record, declared once: what identifies a run (:class:`RunSpec`, hence its key) and what
the store keeps of it (:data:`COLUMNS`, hence the ``runs`` table, its upgrades and its rows).

* A :class:`RunSpec` field is part of the key; one marked ``optional`` is left out of the key
  while it holds its default, so that adding such a field keeps every stored key (a plain grid
  run's key has no ``kind``, ``dynamics``, ``subset``, ``continual`` or ``study``).
* A :class:`Column` names a column of ``runs``, its SQLite type, where its value comes from (the
  spec, the metrics, the FLOP counts or the result itself) and, for a column added after stores
  existed, how an older store fills it when it is upgraded (``backfill``). Adding a column is
  one entry here; :class:`~dualsparse.experiments.store.ResultsStore` adds it to older stores.
* :data:`METRICS` lists the test metrics (each also stored with a ``val_`` prefix), with the
  names and directions reports use.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field

from .seeding import run_key


def _optional(default=None):
    return field(default=default, metadata={"optional": True})


@dataclass(frozen=True)
class RunSpec:
    """One run: everything that determines its result (and so its key in the store)."""

    experiment: str
    dataset: str
    dataset_options: dict
    task: str
    split: dict
    fold: int | None
    mechanism: str
    mechanism_options: dict
    apply_to: str
    per_feature: bool
    rate: float
    representation: str
    representation_options: dict
    model: str
    model_params: dict
    sparsity: float | None
    epsilon: float | None
    seed: int
    # what a study kind adds (absent from the key of a plain grid run, so old keys hold):
    kind: str = _optional("grid")  # the run kind: "grid", "subset", "continual", or a plug-in kind's
    dynamics: dict | None = _optional()  # {data_seed, label_noise, tracking} of a [dynamics] config
    subset: dict | None = _optional()  # subset runs: reference run key, strategy, fraction, ...
    continual: dict | None = _optional()  # continual runs: scenario, replay, buffer_size, ...
    study: dict | None = _optional()  # a plug-in study kind's own settings

    def to_dict(self) -> dict:
        """The spec as a plain dict (what travels to workers and into the store): every field,
        less the optional ones at their default."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("optional") and value == f.default:
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        return cls(**{f.name: copy.deepcopy(d[f.name]) for f in dataclasses.fields(cls)
                      if f.name in d or not f.metadata.get("optional")})

    def replace(self, **changes) -> "RunSpec":
        return dataclasses.replace(self, **changes)

    @property
    def key(self) -> str:
        return run_key(self.to_dict())

    @property
    def level(self) -> str:
        """`` s=0.9`` or `` eps=10`` (empty for a dense model)."""
        if self.sparsity is not None:
            return f" s={self.sparsity:g}"
        return f" eps={self.epsilon:g}" if self.epsilon is not None else ""

    @property
    def label(self) -> str:
        """A one-line description for progress bars and messages."""
        fold = f" fold {self.fold}" if self.fold is not None else ""
        study = ""
        if self.kind == "subset":
            study = f" subset {self.subset['strategy']} {self.subset['fraction']:g} of {self.subset['stats_from']}'s stats"
        elif self.kind == "continual":
            c = self.continual
            study = f" {c['scenario']} replay {c['replay']}" + (f" {c['buffer_size']} rows" if c["replay"] != "none" else "")
            return f"{self.dataset} {self.representation} {self.model}{self.level}{study} seed {self.seed}"
        elif self.kind != "grid":
            study = f" {self.kind}"
        return (f"{self.dataset} {self.mechanism} {self.rate:g} {self.representation} {self.model}{self.level} "
                f"seed {self.seed}{fold}{study}")


_SPEC_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunSpec) if f.metadata.get("optional")}


# ---------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class Metric:
    name: str
    display: str
    higher_is_better: bool
    task: str


METRICS = (
    Metric("accuracy", "accuracy", True, "classification"),
    Metric("balanced_accuracy", "balanced accuracy", True, "classification"),
    Metric("roc_auc", "ROC AUC", True, "classification"),
    Metric("log_loss", "log loss", False, "classification"),
    Metric("rmse", "RMSE", False, "regression"),
    Metric("mae", "MAE", False, "regression"),
    Metric("r2", "R²", True, "regression"),
)
METRIC_COLUMNS = tuple(m.name for m in METRICS)


def task_metrics(task: str) -> list[tuple]:
    """``(name, display name, higher is better)`` of a task's metrics, the primary one (what
    headlines compare) first: accuracy for classification, R² for regression."""
    primary = {"classification": "accuracy", "regression": "r2"}[task]
    ms = [m for m in METRICS if m.task == task]
    ms.sort(key=lambda m: m.name != primary)
    return [(m.name, m.display, m.higher_is_better) for m in ms]


# ---------------------------------------------------------------------- the runs table
@dataclass(frozen=True)
class Column:
    """A column of the ``runs`` table: its type, how its value is read from a finished run's
    result, and (for a column added to an existing schema) how an upgraded store fills it."""

    name: str
    sql: str
    read: object  # (config dict, result dict) -> value
    backfill: str | None = None  # SQL expression for older rows, or None (they keep NULL / the default)
    doc: str = ""


def _spec(name, sql):
    return Column(name, sql, lambda cfg, res: cfg.get(name, _SPEC_DEFAULTS.get(name)))


def _result(name, sql, **kw):
    return Column(name, sql, lambda cfg, res: res.get(name), **kw)


def _metric(name):
    return Column(name, "REAL", lambda cfg, res: res["metrics"].get(name))


def _flops(name, key):
    return Column(name, "REAL", lambda cfg, res: res.get("flops", {}).get(key))


def _json(name, sql, default):
    return Column(name, sql, lambda cfg, res: json.dumps(res.get(name, default), **({"sort_keys": True} if isinstance(default, dict) else {})))


COLUMNS = (
    Column("run_key", "TEXT PRIMARY KEY", lambda cfg, res: res["run_key"]),
    _spec("experiment", "TEXT NOT NULL"),
    _spec("dataset", "TEXT NOT NULL"),
    _spec("task", "TEXT NOT NULL"),
    _spec("mechanism", "TEXT NOT NULL"),
    _spec("rate", "REAL NOT NULL"),  # nominal: the rate asked for
    # the runner reports it; results without it (other kinds, older code): the same measurement
    Column("realised_rate", "REAL", lambda cfg, res: res.get("realised_rate", res.get("missing_fraction_train")),
           backfill="missing_fraction_train",
           doc="realised overall rate: the share of all cells of the training rows (every raw feature, before the "
               "representation) missing after amputation, NaN already in the data included; the share `rate` asks "
               "for, so equal to it up to rounding for runs stored since amputation counted all cells (MAR runs "
               "stored before that hold about 0.7 x rate with the default drivers)"),
    _spec("representation", "TEXT NOT NULL"),
    _spec("model", "TEXT NOT NULL"),
    _spec("sparsity", "REAL"),
    _spec("epsilon", "REAL"),
    _spec("seed", "INTEGER NOT NULL"),
    _spec("fold", "INTEGER"),
    _spec("kind", "TEXT NOT NULL DEFAULT 'grid'"),  # a store from before run kinds: every run a grid run
    *[_metric(m) for m in METRIC_COLUMNS],
    *[_metric(f"val_{m}") for m in METRIC_COLUMNS],
    _flops("flops_train", "train"),
    _flops("flops_train_dense", "train_dense"),
    _flops("flops_inference", "inference_per_sample"),
    _flops("flops_inference_dense", "inference_per_sample_dense"),
    *[_result(c, t) for c, t in (
        ("density", "REAL"), ("epochs", "INTEGER"), ("n_train", "INTEGER"), ("n_val", "INTEGER"), ("n_test", "INTEGER"),
        ("n_features", "INTEGER"), ("missing_fraction_train", "REAL"), ("missing_fraction_test", "REAL"),
        ("fit_time_s", "REAL"), ("predict_time_s", "REAL"), ("represent_time_s", "REAL"), ("wall_time_s", "REAL"),
        ("peak_memory_mb", "REAL"), ("memory_increase_mb", "REAL"))],
    Column("config", "TEXT NOT NULL", lambda cfg, res: json.dumps(cfg, sort_keys=True)),
    Column("metrics", "TEXT NOT NULL", lambda cfg, res: json.dumps(res["metrics"], sort_keys=True)),
    _json("warnings", "TEXT", []),
    _json("versions", "TEXT", {}),
    _result("host", "TEXT"),
    _result("started_at", "TEXT"),
    _result("finished_at", "TEXT"),
)
RUN_COLUMNS = tuple((c.name, c.sql) for c in COLUMNS)  # (name, SQLite type), in table order
RUN_NAMES = [c.name for c in COLUMNS]
# a run's identity columns, joined onto the rows of the study tables
IDENTITY = ("experiment", "kind", "dataset", "mechanism", "rate", "representation", "model", "sparsity", "epsilon",
            "seed", "fold")


def run_row(result: dict) -> dict:
    """The ``runs`` row of a finished run's result (``result["config"]`` is its spec as a dict)."""
    cfg = result["config"]
    return {c.name: c.read(cfg, result) for c in COLUMNS}
