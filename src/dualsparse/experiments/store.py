"""The results store: one SQLite file, one row per finished run.

Durability and resume. The file runs in WAL mode with ``synchronous=FULL``; a finished run is
written in a single transaction (its row in ``runs``, its rows in the study tables, and the
removal of any earlier failure record), keyed by the run's deterministic key (a hash of its full
config). A sweep killed at any moment (even ``kill -9``) leaves every committed run intact and no
partial row; started again, it skips the keys already present and redoes the rest. ``INSERT OR
IGNORE`` on the primary key means a run can never be stored twice, even if two sweeps race on
one file.

Tables: ``runs`` (results; its columns are declared once, in :data:`.record.COLUMNS`),
``failures`` (runs that raised, with the traceback; retried on the next sweep), ``experiments``
(the config of each experiment that wrote here), ``meta``; and the study tables of the registered
study kinds (:func:`.study.study_tables`: ``examples``, ``epochs``, ``subsets``, ``continual``),
whose rows a result carries under their ``source`` key. Older stores are upgraded in place when
opened: a column of :data:`.record.COLUMNS` missing from the file is added and filled by its
``backfill`` (schema version 1 got ``kind``, every old run being a grid run; version 2
``realised_rate``, filled from ``missing_fraction_train``, which is exactly what it measures).
Their runs keep their keys, so a sweep resumes over them.
"""

from __future__ import annotations

import json
import math
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .record import COLUMNS, IDENTITY, METRIC_COLUMNS, RUN_COLUMNS, RUN_NAMES, run_row
from .study import study_tables

DEFAULT_STORE = "dualsparse-results.sqlite"
SCHEMA_VERSION = 3

_RUN_NAMES = RUN_NAMES
__all__ = ["DEFAULT_STORE", "IDENTITY", "METRIC_COLUMNS", "RUN_COLUMNS", "SCHEMA_VERSION", "ResultsStore", "StoreError",
           "table_names"]


def table_names() -> tuple:
    """``runs`` and the study tables of every registered study kind."""
    return ("runs", *study_tables())


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
            for column in COLUMNS:  # upgrade an older store in place
                if column.name not in have:
                    self._conn.execute(f"ALTER TABLE runs ADD COLUMN {column.name} {column.sql}")
                    if column.backfill:
                        self._conn.execute(f"UPDATE runs SET {column.name} = {column.backfill} WHERE {column.name} IS NULL")
            self._conn.execute("CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment)")
            for name, table in study_tables().items():
                pk = f", PRIMARY KEY ({', '.join(table.key)})" if table.key else ""
                self._conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(f'{c} {t}' for c, t in table.columns)}{pk})")
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
        row = run_row(result)
        key = result["run_key"]
        with self._conn:
            cur = self._conn.execute(
                f"INSERT OR IGNORE INTO runs ({', '.join(_RUN_NAMES)}) VALUES ({', '.join('?' * len(_RUN_NAMES))})",
                [row[c] for c in _RUN_NAMES])
            inserted = cur.rowcount == 1
            if inserted:  # the study rows of a run go in with its row, in the same transaction
                for name, table in study_tables().items():
                    rows = result.get(table.source)
                    if rows is None:
                        continue
                    if table.layout == "columns":
                        self._insert_columns(name, table.columns, key, rows)
                    else:
                        self._insert_records(name, table.columns, key, [rows] if table.layout == "record" else rows)
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
        if name == "runs":
            return self.dataframe(experiment)
        tables = study_tables()
        if name not in tables:
            raise ValueError(f"unknown table {name!r}; choose one of {', '.join(table_names())}")
        names, key = tables[name].names, tables[name].key
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
        if name not in table_names():
            raise ValueError(f"unknown table {name!r}; choose one of {', '.join(table_names())}")
        if run_key is None:
            return self._conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
        return self._conn.execute(f"SELECT COUNT(*) FROM {name} WHERE run_key = ?", (run_key,)).fetchone()[0]

    def select(self, name: str, run_key: str, where: dict | None = None, order: str | None = None):
        """One run's rows of a study table as a DataFrame (its columns only), those matching ``where``
        ({column: value}), ordered by ``order``."""
        tables = study_tables()
        if name not in tables:
            raise ValueError(f"unknown table {name!r}; choose one of {', '.join(table_names())}")
        names = tables[name].names
        where = dict(where or {})
        for column in [*where, *([order] if order else [])]:
            if column not in names:
                raise ValueError(f"table {name!r} has no column {column!r}; its columns: {', '.join(names)}")
        sql = f"SELECT {', '.join(names)} FROM {name} WHERE run_key = ?" + "".join(f" AND {c} = ?" for c in where)
        if order:
            sql += f" ORDER BY {order}"
        with closing(self._conn.execute(sql, (run_key, *where.values()))) as cur:
            return pd.DataFrame(cur.fetchall(), columns=names)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _plain(v):
    """A value SQLite can bind: numpy scalars to Python, NaN / NA to NULL, containers to JSON."""
    if v is None:
        return None
    if isinstance(v, (list, dict, tuple)):
        return json.dumps(v, sort_keys=True, default=_json_default)
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _json_default(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if hasattr(v, "item"):
        return v.item()
    return str(v)
