"""The run record: keys and store columns derived from one declaration, a store written before the
refactoring (kept as a fixture) that opens, resumes and reports, and reruns that give the same rows.

None of these tests depends on the numbers training gives (which legitimately change): they check
keys, row counts and that two runs of the same code agree with each other.
"""

import dataclasses
import hashlib
import json
import shutil
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from dualsparse.experiments import ResultsStore, RunSpec, load_config, loads_config, run_key, run_sweep, write_report
from dualsparse.experiments import record, store as store_module

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "store_083d841.sqlite"  # written by commit 083d841 from the two configs below
CONFIGS = (DATA / "fixture_track.toml", DATA / "fixture_continual.toml")
sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
from compare_stores import compare  # noqa: E402


@pytest.fixture
def old_store(tmp_path):
    path = tmp_path / "old.sqlite"
    shutil.copy(FIXTURE, path)
    return path


# ---------------------------------------------------------------------- the key, derived from the fields
def test_key_is_the_hash_of_the_fields_without_optional_defaults():
    spec = next(r for r in load_config(CONFIGS[0]).runs() if r.model == "dense")
    written_out = {f.name: getattr(spec, f.name) for f in dataclasses.fields(RunSpec)
                   if f.name not in ("kind", "dynamics", "subset", "continual", "study")}
    written_out["dynamics"] = spec.dynamics  # a [dynamics] config's runs carry it; kind "grid" is left out
    text = json.dumps(written_out, sort_keys=True, separators=(",", ":"))
    assert spec.key == hashlib.sha256(text.encode()).hexdigest()[:32] == run_key(spec.to_dict())
    assert "kind" not in spec.to_dict() and "study" not in spec.to_dict()
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert spec.replace(study={"x": 1}).key != spec.key  # a plug-in kind's settings are part of the key


def test_every_spec_column_is_a_spec_field_and_rows_follow_the_columns():
    fields = {f.name for f in dataclasses.fields(RunSpec)}
    spec_columns = ["experiment", "dataset", "task", "mechanism", "rate", "representation", "model", "sparsity",
                    "epsilon", "seed", "fold", "kind"]
    assert set(spec_columns) <= fields
    assert [c for c, _ in store_module.RUN_COLUMNS] == record.RUN_NAMES
    from test_experiments_store import fake_result

    row = record.run_row(fake_result("k"))
    assert list(row) == record.RUN_NAMES and row["kind"] == "grid" and row["realised_rate"] == 0.1


# ---------------------------------------------------------------------- a store from before
def test_a_store_written_before_the_refactoring_opens_resumes_and_reports(old_store, tmp_path):
    with ResultsStore(old_store) as store:
        assert store.count() == 24 and store.count_rows("examples") > 0 and store.count_rows("continual") == 4
        for path in CONFIGS:
            cfg = load_config(path)
            keys = {r.key for r in cfg.runs()}
            assert store.existing_keys(keys) == keys  # every run of today's expansion is found: nothing reruns
            summary = run_sweep(cfg, store, quiet=True)
            assert summary.ran == 0 and summary.skipped == summary.total == len(keys)
    paths = write_report(old_store, tmp_path / "report", plots=False)
    md = Path(paths["markdown"]).read_text()
    for section in ("## Headline", "## Learning dynamics", "## Data subsets", "## Continual learning"):
        assert section in md
    assert {"comparisons", "subsets_summary", "continual_summary"} <= set(paths["tables"])


def test_a_missing_run_of_an_old_store_is_run_again(old_store):
    conn = sqlite3.connect(old_store)
    gone = conn.execute("SELECT run_key FROM runs WHERE experiment = 'fixture_track' AND kind = 'grid' "
                        "AND model = 'logreg' LIMIT 1").fetchone()[0]
    conn.execute("DELETE FROM runs WHERE run_key = ?", (gone,))
    conn.commit()
    conn.close()
    with ResultsStore(old_store) as store:
        summary = run_sweep(load_config(CONFIGS[0]), store, quiet=True)
        assert summary.ran == 1 and summary.failed == 0 and gone in store.existing_keys()


def test_adding_a_column_is_one_entry_and_old_stores_are_upgraded(old_store, monkeypatch):
    """A new column declared in record.COLUMNS (with how old rows are filled) reaches an old store."""
    column = record.Column("n_fit_rows_twice", "INTEGER", lambda cfg, res: 2 * res["n_train"], backfill="2 * n_train")
    monkeypatch.setattr(record, "COLUMNS", (*record.COLUMNS, column))
    monkeypatch.setattr(store_module, "COLUMNS", record.COLUMNS)
    names = [*record.RUN_NAMES, column.name]
    monkeypatch.setattr(record, "RUN_NAMES", names)
    monkeypatch.setattr(store_module, "_RUN_NAMES", names)
    with ResultsStore(old_store) as store:
        rows = store.rows()
        assert rows and all(r["n_fit_rows_twice"] == 2 * r["n_train"] for r in rows)
        from test_experiments_store import fake_result

        store.write_result(fake_result("new-run"))
        assert store.rows_by_key(["new-run"])[0]["n_fit_rows_twice"] == 20


# ---------------------------------------------------------------------- the same config twice
TINY = """
[experiment]
name = "twice"
seeds = 2

[data]
datasets = ["iris"]

[split]
validation_size = 0.0

[missingness]
rates = [0.0, 0.3]

[models]
names = ["dense", "static", "logreg"]
sparsities = [0.5]

[mlp]
hidden_layer_sizes = [8]
max_epochs = 3
batch_size = 16

[dynamics]

[dynamics.subsets]
strategies = ["el2n"]
fractions = [0.5]
train_models = ["static"]
"""


def test_the_same_config_twice_gives_the_same_rows(tmp_path):
    cfg = loads_config(textwrap.dedent(TINY), default_name="twice")
    for name in ("a", "b"):
        with ResultsStore(tmp_path / f"{name}.sqlite") as store:
            summary = run_sweep(cfg, store, quiet=True)
            assert summary.failed == 0 and summary.ran == len(cfg.runs()) == 16
    assert compare(tmp_path / "a.sqlite", tmp_path / "b.sqlite") == []
    # and the comparison notices a change of one stored number
    conn = sqlite3.connect(tmp_path / "b.sqlite")
    conn.execute("UPDATE examples SET el2n = el2n + 1e-12 WHERE rowid = (SELECT MIN(rowid) FROM examples WHERE el2n IS NOT NULL)")
    conn.commit()
    conn.close()
    assert any(p.startswith("examples") for p in compare(tmp_path / "a.sqlite", tmp_path / "b.sqlite"))
