"""The results store: one SQLite file, one row per finished run.

Durability and resume. The file runs in WAL mode with ``synchronous=FULL``; a finished run is
written in a single transaction (its row in ``runs``, and the removal of any earlier failure
record), keyed by the run's deterministic key (a hash of its full config). A sweep killed at any
moment (even ``kill -9``) leaves every committed run intact and no partial row; started again,
it skips the keys already present and redoes the rest. ``INSERT OR IGNORE`` on the primary key
means a run can never be stored twice, even if two sweeps race on one file.

Tables: ``runs`` (results; ``kind`` is "grid", "subset" or "continual"), ``failures`` (runs that
raised, with the traceback; retried on the next sweep), ``experiments`` (the config of each
experiment that wrote here), ``meta``; and, for the learning-dynamics studies, ``examples``
(per-example statistics of tracked runs, keyed by (run_key, example) where ``example`` is the row
of the dataset), ``epochs`` (per-epoch statistics of tracked runs), ``subsets`` (what a subset run
trained on and its joint FLOP saving) and ``continual`` (accuracy matrix and ACC/BWT/forgetting of
a continual run). A run's rows in these tables are written in the same transaction as its row in
``runs``, so a run is stored completely or not at all. Older stores are upgraded in place when
opened: schema version 1 gets the ``kind`` column (every old run being a grid run), version 2
the ``realised_rate`` column, filled from ``missing_fraction_train`` (which is exactly what it
measures; see :data:`RUN_COLUMNS`). Their runs keep their keys, so a sweep resumes over them.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_STORE = "dualsparse-results.sqlite"
SCHEMA_VERSION = 3

METRIC_COLUMNS = ("accuracy", "balanced_accuracy", "roc_auc", "log_loss", "rmse", "mae", "r2")
RUN_COLUMNS = (
    ("run_key", "TEXT PRIMARY KEY"),
    ("experiment", "TEXT NOT NULL"),
    ("dataset", "TEXT NOT NULL"),
    ("task", "TEXT NOT NULL"),
    ("mechanism", "TEXT NOT NULL"),
    ("rate", "REAL NOT NULL"),  # nominal: the rate asked for
    # realised overall rate: the share of all cells of the training rows (every raw feature, before
    # the representation) missing after amputation, NaN already in the data included; the share
    # `rate` asks for, so equal to it up to rounding for runs stored since amputation counted all
    # cells (MAR runs stored before that hold about 0.7 x rate with the default drivers)
    ("realised_rate", "REAL"),
    ("representation", "TEXT NOT NULL"),
    ("model", "TEXT NOT NULL"),
    ("sparsity", "REAL"),
    ("epsilon", "REAL"),
    ("seed", "INTEGER NOT NULL"),
    ("fold", "INTEGER"),
    ("kind", "TEXT NOT NULL DEFAULT 'grid'"),
    *[(m, "REAL") for m in METRIC_COLUMNS],
    *[(f"val_{m}", "REAL") for m in METRIC_COLUMNS],
    ("flops_train", "REAL"),
    ("flops_train_dense", "REAL"),
    ("flops_inference", "REAL"),
    ("flops_inference_dense", "REAL"),
    ("density", "REAL"),
    ("epochs", "INTEGER"),
    ("n_train", "INTEGER"),
    ("n_val", "INTEGER"),
    ("n_test", "INTEGER"),
    ("n_features", "INTEGER"),
    ("missing_fraction_train", "REAL"),
    ("missing_fraction_test", "REAL"),
    ("fit_time_s", "REAL"),
    ("predict_time_s", "REAL"),
    ("represent_time_s", "REAL"),
    ("wall_time_s", "REAL"),
    ("peak_memory_mb", "REAL"),
    ("memory_increase_mb", "REAL"),
    ("config", "TEXT NOT NULL"),
    ("metrics", "TEXT NOT NULL"),
    ("warnings", "TEXT"),
    ("versions", "TEXT"),
    ("host", "TEXT"),
    ("started_at", "TEXT"),
    ("finished_at", "TEXT"),
)
_RUN_NAMES = [c for c, _ in RUN_COLUMNS]

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
STUDY_TABLES = {
    "examples": (EXAMPLE_COLUMNS, ("run_key", "example")),
    "epochs": (EPOCH_COLUMNS, ("run_key", "tracked_epoch")),
    "subsets": (SUBSET_COLUMNS, None),
    "continual": (CONTINUAL_COLUMNS, None),
}
TABLES = ("runs", *STUDY_TABLES)
# identity columns of a run joined onto the rows of the study tables
IDENTITY = ("experiment", "kind", "dataset", "mechanism", "rate", "representation", "model", "sparsity", "epsilon",
            "seed", "fold")


class StoreError(RuntimeError):
    pass


class ResultsStore:
    """Open (creating if needed) a results store at ``path``."""

    def __init__(self, path=DEFAULT_STORE, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(f"no results store at {str(self.path)!r}; run a sweep first "
                             "(dualsparse run CONFIG.toml) or pass --store PATH")
        if self.path.is_dir():
            raise StoreError(f"{str(self.path)!r} is a folder; --store must be a file path (e.g. results.sqlite)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=60)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=60000")
            self._create()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{str(self.path)!r} is not a dualsparse results store ({err})") from None

    def _create(self):
        with self._conn:
            self._conn.execute(f"CREATE TABLE IF NOT EXISTS runs ({', '.join(f'{c} {t}' for c, t in RUN_COLUMNS)})")
            have = {r[1] for r in self._conn.execute("PRAGMA table_info(runs)")}
            for column, kind in RUN_COLUMNS:  # upgrade an older store in place
                if column not in have:
                    self._conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
            if "realised_rate" not in have:  # schema 2: the training rows' missing share is the realised rate
                self._conn.execute("UPDATE runs SET realised_rate = missing_fraction_train WHERE realised_rate IS NULL")
            self._conn.execute("CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment)")
            for name, (columns, key) in STUDY_TABLES.items():
                pk = f", PRIMARY KEY ({', '.join(key)})" if key else ""
                self._conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(f'{c} {t}' for c, t in columns)}{pk})")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS failures (run_key TEXT PRIMARY KEY, experiment TEXT, config TEXT, "
                "error TEXT, traceback TEXT, attempts INTEGER, last_at TEXT)")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS experiments (name TEXT PRIMARY KEY, source TEXT, config TEXT, "
                "n_runs INTEGER, registered_at TEXT, updated_at TEXT)")
            self._conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self):
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ writing
    def register_experiment(self, config) -> None:
        now = _now()
        with self._conn:
            self._conn.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "source=excluded.source, config=excluded.config, n_runs=excluded.n_runs, updated_at=excluded.updated_at",
                (config.name, config.source, json.dumps(config.raw, sort_keys=True, default=str), len(config.runs()), now, now),
            )

    def write_result(self, result: dict) -> bool:
        """Store one finished run in one transaction; False if its key was already there."""
        row = _row(result)
        key = result["run_key"]
        with self._conn:
            cur = self._conn.execute(
                f"INSERT OR IGNORE INTO runs ({', '.join(_RUN_NAMES)}) VALUES ({', '.join('?' * len(_RUN_NAMES))})",
                [row[c] for c in _RUN_NAMES])
            inserted = cur.rowcount == 1
            if inserted:  # the study rows of a run go in with its row, in the same transaction
                if result.get("example_stats") is not None:
                    self._insert_columns("examples", EXAMPLE_COLUMNS, key, result["example_stats"])
                if result.get("epoch_stats") is not None:
                    self._insert_records("epochs", EPOCH_COLUMNS, key, result["epoch_stats"])
                if result.get("subset") is not None:
                    self._insert_records("subsets", SUBSET_COLUMNS, key, [result["subset"]])
                if result.get("continual") is not None:
                    self._insert_records("continual", CONTINUAL_COLUMNS, key, [result["continual"]])
            self._conn.execute("DELETE FROM failures WHERE run_key = ?", (key,))
        return inserted

    def _insert_columns(self, table, columns, key, data: dict):
        names = [c for c, _ in columns]
        n = len(data[names[1]])
        cols = [[key] * n if c == "run_key" else [_plain(v) for v in data.get(c, [None] * n)] for c in names]
        self._conn.executemany(
            f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", zip(*cols))

    def _insert_records(self, table, columns, key, records):
        names = [c for c, _ in columns]
        rows = [[key if c == "run_key" else _plain(r.get(c)) for c in names] for r in records]
        self._conn.executemany(
            f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", rows)

    def write_failure(self, result: dict) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO failures VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT(run_key) DO UPDATE SET "
                "error=excluded.error, traceback=excluded.traceback, attempts=attempts+1, last_at=excluded.last_at",
                (result["run_key"], result["config"]["experiment"], json.dumps(result["config"], sort_keys=True),
                 result["error"], result.get("traceback"), _now()))

    # ------------------------------------------------------------------ reading
    def existing_keys(self, keys=None) -> set:
        if keys is None:
            return {k for (k,) in self._conn.execute("SELECT run_key FROM runs")}
        keys = list(keys)
        found = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            found |= {k for (k,) in self._conn.execute(
                f"SELECT run_key FROM runs WHERE run_key IN ({', '.join('?' * len(chunk))})", chunk)}
        return found

    def count(self, experiment: str | None = None) -> int:
        if experiment is None:
            return self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return self._conn.execute("SELECT COUNT(*) FROM runs WHERE experiment = ?", (experiment,)).fetchone()[0]

    def experiments(self) -> list[str]:
        return [n for (n,) in self._conn.execute("SELECT DISTINCT experiment FROM runs ORDER BY experiment")]

    def failures(self, experiment: str | None = None) -> list[dict]:
        sql = "SELECT run_key, experiment, config, error, attempts, last_at FROM failures"
        args = ()
        if experiment is not None:
            sql += " WHERE experiment = ?"
            args = (experiment,)
        cols = ("run_key", "experiment", "config", "error", "attempts", "last_at")
        return [dict(zip(cols, r)) for r in self._conn.execute(sql, args)]

    def rows(self, experiment: str | None = None) -> list[dict]:
        sql = f"SELECT {', '.join(_RUN_NAMES)} FROM runs"
        args = ()
        if experiment is not None:
            sql += " WHERE experiment = ?"
            args = (experiment,)
        sql += " ORDER BY experiment, dataset, mechanism, rate, model, representation, sparsity, epsilon, seed, fold"
        with closing(self._conn.execute(sql, args)) as cur:
            return [dict(zip(_RUN_NAMES, r)) for r in cur]

    def experiment_configs(self) -> dict:
        """{experiment name: its config as parsed from TOML} for every experiment registered here."""
        out = {}
        for name, config in self._conn.execute("SELECT name, config FROM experiments"):
            try:
                out[name] = json.loads(config) if config else {}
            except json.JSONDecodeError:
                out[name] = {}
        return out

    def rows_by_key(self, keys) -> list[dict]:
        keys = list(keys)
        out = []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            with closing(self._conn.execute(
                    f"SELECT {', '.join(_RUN_NAMES)} FROM runs WHERE run_key IN ({', '.join('?' * len(chunk))})", chunk)) as cur:
                out.extend(dict(zip(_RUN_NAMES, r)) for r in cur)
        return out

    def dataframe(self, experiment: str | None = None, expand: bool = True):
        """All rows as a pandas DataFrame; ``expand`` adds every metric of the JSON as a column."""
        import pandas as pd

        rows = self.rows(experiment)
        frame = pd.DataFrame(rows, columns=_RUN_NAMES)
        if expand and len(frame):
            extra = pd.DataFrame([json.loads(m) for m in frame["metrics"]])
            extra = extra[[c for c in extra.columns if c not in frame.columns]]
            frame = pd.concat([frame, extra.add_prefix("metric_")], axis=1)
        return frame

    def table(self, name: str, experiment: str | None = None, run_keys=None):
        """Rows of a study table (examples, epochs, subsets, continual) as a DataFrame, each with its
        run's identity columns (experiment, kind, dataset, ..., model, sparsity, epsilon, seed, fold)."""
        import pandas as pd

        if name == "runs":
            return self.dataframe(experiment)
        if name not in STUDY_TABLES:
            raise ValueError(f"unknown table {name!r}; choose one of {', '.join(TABLES)}")
        columns, key = STUDY_TABLES[name]
        names = [c for c, _ in columns]
        sql = (f"SELECT {', '.join(f't.{c}' for c in names)}, {', '.join(f'r.{c}' for c in IDENTITY)} "
               f"FROM {name} t JOIN runs r ON r.run_key = t.run_key")
        args = []
        where = []
        if experiment is not None:
            where.append("r.experiment = ?")
            args.append(experiment)
        if run_keys is not None:
            run_keys = list(run_keys)
            if not run_keys:
                return pd.DataFrame(columns=[*names, *IDENTITY])
            where.append(f"t.run_key IN ({', '.join('?' * len(run_keys))})")
            args.extend(run_keys)
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = ", ".join(f"t.{c}" for c in (key or ("run_key",)))
        sql += f" ORDER BY r.experiment, r.dataset, r.model, r.seed, {order}"
        with closing(self._conn.execute(sql, args)) as cur:
            rows = cur.fetchall()
        return pd.DataFrame(rows, columns=[*names, *IDENTITY])

    def count_rows(self, name: str, run_key: str | None = None) -> int:
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; choose one of {', '.join(TABLES)}")
        if run_key is None:
            return self._conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
        return self._conn.execute(f"SELECT COUNT(*) FROM {name} WHERE run_key = ?", (run_key,)).fetchone()[0]

    def example_stats(self, run_key: str):
        """The training rows' statistics of a tracked run, shaped like ``ExampleTracker.example_stats_``
        (one row per row of the X given to fit, in order), with the dataset row in ``example``."""
        import numpy as np
        import pandas as pd

        names = [c for c, _ in EXAMPLE_COLUMNS]
        with closing(self._conn.execute(
                f"SELECT {', '.join(names)} FROM examples WHERE run_key = ? AND split = 'train' ORDER BY position",
                (run_key,))) as cur:
            frame = pd.DataFrame(cur.fetchall(), columns=names)
        if frame.empty:
            raise StoreError(f"run {run_key} has no per-example statistics in the store")
        frame.insert(0, "in_train", np.ones(len(frame), dtype=bool))
        for c in ("never_learned", "unforgettable", "correct_last", "noisy"):
            frame[c] = frame[c].astype("boolean")
        for c in ("confidence", "variability", "correctness", "el2n", "grand", "p_true_last"):
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
        return frame.drop(columns=["run_key"]).reset_index(drop=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _row(result: dict) -> dict:
    cfg = result["config"]
    metrics = result["metrics"]
    flops = result.get("flops", {})
    row = {
        "run_key": result["run_key"],
        "experiment": cfg["experiment"],
        "dataset": cfg["dataset"],
        "task": cfg["task"],
        "mechanism": cfg["mechanism"],
        "rate": cfg["rate"],
        "representation": cfg["representation"],
        "model": cfg["model"],
        "sparsity": cfg["sparsity"],
        "epsilon": cfg["epsilon"],
        "seed": cfg["seed"],
        "fold": cfg["fold"],
        "kind": cfg.get("kind", "grid"),
        # the runner reports it; results without it (other kinds, older code): the same measurement
        "realised_rate": result.get("realised_rate", result.get("missing_fraction_train")),
        "flops_train": flops.get("train"),
        "flops_train_dense": flops.get("train_dense"),
        "flops_inference": flops.get("inference_per_sample"),
        "flops_inference_dense": flops.get("inference_per_sample_dense"),
        "config": json.dumps(cfg, sort_keys=True),
        "metrics": json.dumps(metrics, sort_keys=True),
        "versions": json.dumps(result.get("versions", {}), sort_keys=True),
        "warnings": json.dumps(result.get("warnings", [])),
    }
    for m in METRIC_COLUMNS:
        row[m] = metrics.get(m)
        row[f"val_{m}"] = metrics.get(f"val_{m}")
    for c in ("density", "epochs", "n_train", "n_val", "n_test", "n_features", "missing_fraction_train",
              "missing_fraction_test", "fit_time_s", "predict_time_s", "represent_time_s", "wall_time_s",
              "peak_memory_mb", "memory_increase_mb", "host", "started_at", "finished_at"):
        row[c] = result.get(c)
    return row


def _plain(v):
    """A value SQLite can bind: numpy scalars to Python, NaN / NA to NULL, containers to JSON."""
    import math

    if v is None:
        return None
    if isinstance(v, (list, dict, tuple)):
        return json.dumps(v, sort_keys=True, default=_json_default)
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    try:
        import pandas as pd

        if v is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _json_default(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if hasattr(v, "item"):
        return v.item()
    return str(v)
