"""Issue 13, point 3: every run records its realised overall missing rate; the store upgrade keeps
older stores opening, resuming and reporting; the report shows and plots the realised rate."""

import sqlite3
import textwrap

import pytest

from dualsparse.experiments import ResultsStore, execute_run, loads_config, run_sweep, write_report
from dualsparse.experiments.store import RUN_COLUMNS, SCHEMA_VERSION

CONFIG = """
[experiment]
name = "realised"
seeds = 1

[data]
datasets = ["breast_cancer"]

[missingness]
mechanisms = ["mcar", "mar", "mnar"]
rates = [0.3]

[representations]
names = ["impute-mean"]

[models]
names = ["logreg", "dense"]

[mlp]
hidden_layer_sizes = [8]
max_epochs = 2
"""


def schema_2(path):
    """Make ``path`` look like a store written before the realised rate was recorded (schema 2)."""
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE runs DROP COLUMN realised_rate")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def test_every_mechanism_realises_the_rate_in_a_run():
    # MAR used to remove 0.7 x rate of the cells here (21 % at 0.3), MCAR and MNAR the rate itself
    cfg = loads_config(textwrap.dedent(CONFIG))
    for spec in cfg.runs():
        if spec.model != "logreg":
            continue
        result = execute_run(spec.to_dict())
        assert result["status"] == "ok", result.get("traceback")
        assert abs(result["missing_fraction_train"] - 0.3) <= 0.01, spec.mechanism


def test_the_store_records_the_realised_rate(tmp_path):
    from test_experiments_store import fake_result

    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.write_result(fake_result("a"))  # the runner's measurement: the training rows' missing share
        explicit = fake_result("b", seed=1)
        explicit["realised_rate"] = 0.25
        store.write_result(explicit)
        rows = {r["run_key"]: r for r in store.rows()}
    assert rows["a"]["realised_rate"] == rows["a"]["missing_fraction_train"] == 0.1
    assert rows["b"]["realised_rate"] == 0.25


def test_a_schema_2_store_is_upgraded_and_keeps_its_old_mar_rows_visible(tmp_path):
    from test_experiments_store import fake_result

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    old = [(c, t) for c, t in RUN_COLUMNS if c != "realised_rate"]
    conn.execute(f"CREATE TABLE runs ({', '.join(f'{c} {t}' for c, t in old)})")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    for seed in range(3):  # MAR at 0.3 as the old code amputed it: 21 % of the cells
        for model, acc in (("dense", 0.9), ("set", 0.91)):
            conn.execute(
                "INSERT INTO runs (run_key, experiment, dataset, task, mechanism, rate, representation, model, "
                "sparsity, seed, kind, accuracy, val_accuracy, flops_train, density, fit_time_s, "
                "missing_fraction_train, config, metrics) VALUES (?, 'e', 'd', 'classification', 'mar', 0.3, "
                "'observed', ?, ?, ?, 'grid', ?, ?, 1e6, 0.5, 1.0, 0.21, '{}', '{}')",
                (f"{model}{seed}", model, 0.9 if model == "set" else None, seed, acc + seed / 100, acc))
    conn.commit()
    conn.close()

    with ResultsStore(path) as store:
        rows = store.rows()
        assert len(rows) == 6 and all(r["realised_rate"] == 0.21 for r in rows)
        assert store._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION)
        store.write_result(fake_result("new"))
        assert store.count() == 7
        md = open(write_report(store, tmp_path / "out", plots=False)["markdown"]).read()
    assert "rate 0.3 (realised 0.210)" in md  # detail tables' columns
    assert "**The realised rate is not the nominal one at rate 0.3 (realised 0.210)**" in md
    with ResultsStore(path) as store:  # opening again changes nothing
        assert [r["realised_rate"] for r in store.rows()][:6] == [0.21] * 6


def test_a_store_written_before_the_change_resumes_and_reports(tmp_path):
    cfg = loads_config(textwrap.dedent(CONFIG).replace('["logreg", "dense"]', '["logreg"]'))
    path = tmp_path / "r.sqlite"
    first = run_sweep(cfg, ResultsStore(path), quiet=True)
    assert first.ran == 3 and first.failed == 0
    schema_2(path)
    with ResultsStore(path) as store:
        again = run_sweep(cfg, store, quiet=True)
        assert (again.skipped, again.ran) == (3, 0)  # the keys are unchanged: nothing reruns
        realised = {r["mechanism"]: r["realised_rate"] for r in store.rows()}
        assert set(realised) == {"mcar", "mar", "mnar"}
        assert all(abs(v - 0.3) <= 0.01 for v in realised.values())
        paths = write_report(store, tmp_path / "out")
    md = open(paths["markdown"]).read()
    assert "rates 0.3 (realised 0.300: the share of all cells of the training rows missing" in md
    assert "not the nominal one" not in md


def test_the_rate_plots_use_the_realised_rate(tmp_path, monkeypatch):
    import matplotlib.axes
    from test_experiments_report import result

    import dualsparse.experiments.grid_report as R
    from dualsparse.experiments.record import task_metrics

    xs = []
    errorbar = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar",
                        lambda self, x, y, *a, **k: xs.append([float(v) for v in x]) or errorbar(self, x, y, *a, **k))
    with ResultsStore(tmp_path / "r.sqlite") as store:
        for seed in range(3):
            for model, sparsity, representation in (("dense", None, "impute-mean"), ("set", 0.9, "observed")):
                res = result(model, 0.3, seed, 0.9 + seed / 100, 1e8, representation, sparsity)
                res["missing_fraction_train"] = 0.21  # as an old MAR run would have it
                store.write_result(res)
        summary = R.summarise(R.prepare(store.dataframe(expand=False)), task_metrics("classification"))
    files = R._plots(summary, tmp_path, "s", "accuracy", "accuracy")
    assert any(p.name == "s_accuracy_vs_rate.png" for p, _ in files)
    assert [0.21] in xs and [0.3] not in xs  # the lines vs rate sit at the realised rate


def test_config_with_a_mar_rate_the_non_driver_columns_cannot_hold():
    from dualsparse.experiments.config import ConfigError

    text = textwrap.dedent(CONFIG).replace("rates = [0.3]", "rates = [0.0, 0.8]")
    with pytest.raises(ConfigError, match=r"mar at rate 0\.8 fails on dataset 'breast_cancer'.*at most rate=0\.7.*"
                                          r"lower rate, fewer drivers \(a lower driver_fraction"):
        loads_config(text)
    loads_config(text.replace('["mcar", "mar", "mnar"]', '["mcar", "mnar"]'))  # the others reach 0.8
