"""The results store: one SQLite file, one row per finished run.

Durability and resume. The file runs in WAL mode with ``synchronous=FULL``; a finished run is
written in a single transaction (its row in ``runs``, and the removal of any earlier failure
record), keyed by the run's deterministic key (a hash of its full config). A sweep killed at any
moment (even ``kill -9``) leaves every committed run intact and no partial row; started again,
it skips the keys already present and redoes the rest. ``INSERT OR IGNORE`` on the primary key
means a run can never be stored twice, even if two sweeps race on one file.

Tables: ``runs`` (results), ``failures`` (runs that raised, with the traceback; retried on the
next sweep), ``experiments`` (the config of each experiment that wrote here), ``meta``.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_STORE = "dualsparse-results.sqlite"
SCHEMA_VERSION = 1

METRIC_COLUMNS = ("accuracy", "balanced_accuracy", "roc_auc", "log_loss", "rmse", "mae", "r2")
RUN_COLUMNS = (
    ("run_key", "TEXT PRIMARY KEY"),
    ("experiment", "TEXT NOT NULL"),
    ("dataset", "TEXT NOT NULL"),
    ("task", "TEXT NOT NULL"),
    ("mechanism", "TEXT NOT NULL"),
    ("rate", "REAL NOT NULL"),
    ("representation", "TEXT NOT NULL"),
    ("model", "TEXT NOT NULL"),
    ("sparsity", "REAL"),
    ("epsilon", "REAL"),
    ("seed", "INTEGER NOT NULL"),
    ("fold", "INTEGER"),
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
            self._conn.execute("CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment)")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS failures (run_key TEXT PRIMARY KEY, experiment TEXT, config TEXT, "
                "error TEXT, traceback TEXT, attempts INTEGER, last_at TEXT)")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS experiments (name TEXT PRIMARY KEY, source TEXT, config TEXT, "
                "n_runs INTEGER, registered_at TEXT, updated_at TEXT)")
            self._conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

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
        with self._conn:
            cur = self._conn.execute(
                f"INSERT OR IGNORE INTO runs ({', '.join(_RUN_NAMES)}) VALUES ({', '.join('?' * len(_RUN_NAMES))})",
                [row[c] for c in _RUN_NAMES])
            self._conn.execute("DELETE FROM failures WHERE run_key = ?", (result["run_key"],))
        return cur.rowcount == 1

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
