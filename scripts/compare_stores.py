"""Compare two results stores row for row: every table, every column but timing and host ones.

    python scripts/compare_stores.py OLD.sqlite NEW.sqlite

Rows are matched by their key (``run_key``, plus the table's own key columns); values must be
equal exactly (floats to the last digit, JSON text character for character, after dropping the
excluded fields from ``metrics``/``continual`` JSON). Exits 1 and lists the differences otherwise.
Used to check that a refactoring changes nothing for users (issue 11, point 6).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys

# wall-clock, memory and host columns: they differ between any two runs of the same spec
EXCLUDED_COLUMNS = {
    "runs": {"fit_time_s", "predict_time_s", "represent_time_s", "wall_time_s", "peak_memory_mb",
             "memory_increase_mb", "host", "started_at", "finished_at"},
    "continual": {"train_time_s"},
    "experiments": {"registered_at", "updated_at"},
    "failures": {"last_at", "traceback"},
}
# timing entries inside the runs' metrics JSON
EXCLUDED_METRICS = {"tracker_time_s", "grand_time_s"}
KEYS = {"runs": ("run_key",), "examples": ("run_key", "example"), "epochs": ("run_key", "tracked_epoch"),
        "subsets": ("run_key",), "continual": ("run_key",), "experiments": ("name",), "failures": ("run_key",),
        "meta": ("key",)}


def _rows(conn, table):
    cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    keep = [c for c in cols if c not in EXCLUDED_COLUMNS.get(table, set())]
    key = KEYS.get(table, tuple(keep))
    out = {}
    for values in conn.execute(f"SELECT {', '.join(keep)} FROM {table}"):
        row = dict(zip(keep, values))
        if table == "runs" and row.get("metrics"):
            m = {k: v for k, v in json.loads(row["metrics"]).items() if k not in EXCLUDED_METRICS}
            row["metrics"] = json.dumps(m, sort_keys=True)
        out[tuple(row[k] for k in key)] = row
    return keep, out


def compare(old_path, new_path, limit=20) -> list[str]:
    old, new = sqlite3.connect(old_path), sqlite3.connect(new_path)
    tables = lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}  # noqa: E731
    problems = []
    t_old, t_new = tables(old), tables(new)
    if t_old != t_new:
        problems.append(f"tables differ: only old {sorted(t_old - t_new)}, only new {sorted(t_new - t_old)}")
    for table in sorted(t_old & t_new):
        cols_old, rows_old = _rows(old, table)
        cols_new, rows_new = _rows(new, table)
        if cols_old != cols_new:
            problems.append(f"{table}: columns differ: {cols_old} vs {cols_new}")
        if set(rows_old) != set(rows_new):
            problems.append(f"{table}: {len(set(rows_old) - set(rows_new))} rows only in old, "
                            f"{len(set(rows_new) - set(rows_old))} only in new")
        n_diff = 0
        for key in sorted(set(rows_old) & set(rows_new), key=str):
            a, b = rows_old[key], rows_new[key]
            diff = [c for c in a if c in b and a[c] != b[c] and not (a[c] != a[c] and b[c] != b[c])]
            if diff:
                n_diff += 1
                if n_diff <= limit:
                    problems.append(f"{table} {key}: " + "; ".join(f"{c}: {a[c]!r} != {b[c]!r}" for c in diff[:4]))
        if n_diff > limit:
            problems.append(f"{table}: {n_diff} differing rows in all")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    args = parser.parse_args(argv)
    problems = compare(args.old, args.new)
    for p in problems:
        print(p)
    old = sqlite3.connect(args.old)
    n = {t: old.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
         for (t,) in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    print(("DIFFERENT" if problems else "IDENTICAL") + f": {args.old} vs {args.new} ({', '.join(f'{t} {c}' for t, c in sorted(n.items()))}); "
          f"excluded columns: {', '.join(f'{t}.{c}' for t, cs in sorted(EXCLUDED_COLUMNS.items()) for c in sorted(cs))}; "
          f"excluded metrics entries: {', '.join(sorted(EXCLUDED_METRICS))}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
