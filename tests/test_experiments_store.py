"""The SQLite results store: round trip, no duplicates, failures, export; a real run's row."""

import json
import sqlite3
import textwrap

import pandas as pd
import pytest

from dualsparse.experiments import ResultsStore, StoreError, execute_run, export_results, loads_config

TINY = """
[experiment]
name = "store"
seeds = 1

[data]
datasets = ["breast_cancer"]

[missingness]
mechanisms = ["mcar"]
rates = [0.3]

[representations]
names = ["observed"]

[models]
names = ["set", "hgb"]
sparsities = [0.8]

[models.hgb]
representations = ["native-nan"]
max_iter = 5

[mlp]
hidden_layer_sizes = [8]
max_epochs = 2
"""


def fake_result(key="k1", model="set", seed=0, accuracy=0.9):
    config = {"experiment": "e", "dataset": "d", "dataset_options": {}, "task": "classification",
              "split": {"method": "holdout"}, "fold": None, "mechanism": "mcar", "mechanism_options": {},
              "apply_to": "train", "per_feature": False, "rate": 0.1, "representation": "observed",
              "representation_options": {}, "model": model, "model_params": {}, "sparsity": 0.9,
              "epsilon": None, "seed": seed}
    return {"status": "ok", "run_key": key, "config": config,
            "metrics": {"accuracy": accuracy, "balanced_accuracy": accuracy, "roc_auc": 0.95, "log_loss": 0.3,
                        "val_accuracy": accuracy, "extra_metric": 7.0},
            "flops": {"train": 1e6, "train_dense": 1e7, "inference_per_sample": 10.0, "inference_per_sample_dense": 100.0},
            "density": 0.1, "epochs": 2, "n_train": 10, "n_val": 2, "n_test": 3, "n_features": 4,
            "missing_fraction_train": 0.1, "missing_fraction_test": 0.0, "fit_time_s": 0.5, "predict_time_s": 0.01,
            "represent_time_s": 0.01, "wall_time_s": 0.6, "peak_memory_mb": 100.0, "memory_increase_mb": 1.0,
            "versions": {"dualsparse": "0.1.0"}, "warnings": [], "host": "h", "started_at": "t0", "finished_at": "t1"}


def test_round_trip_wal_and_no_duplicates(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        assert store.write_result(fake_result("a"))
        assert not store.write_result(fake_result("a", accuracy=0.1))  # same key: ignored, first kept
        assert store.write_result(fake_result("b", seed=1, accuracy=0.8))
    with ResultsStore(path, create=False) as store:
        rows = store.rows()
        assert [r["run_key"] for r in rows] == ["a", "b"]
        assert rows[0]["accuracy"] == 0.9 and rows[0]["val_accuracy"] == 0.9
        assert rows[0]["flops_train"] == 1e6 and rows[0]["flops_train_dense"] == 1e7
        assert json.loads(rows[0]["config"])["model"] == "set"
        assert store.existing_keys(["a", "zzz"]) == {"a"}
        frame = store.dataframe()
        assert frame.loc[0, "metric_extra_metric"] == 7.0
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_failure_recorded_then_cleared_by_success(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        failed = {"status": "failed", "run_key": "a", "config": fake_result()["config"], "error": "ValueError: boom",
                  "traceback": "tb"}
        store.write_failure(failed)
        store.write_failure(failed)
        [f] = store.failures()
        assert f["attempts"] == 2 and "boom" in f["error"]
        store.write_result(fake_result("a"))
        assert store.failures() == []


def test_missing_store_and_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="no results store"):
        ResultsStore(tmp_path / "none.sqlite", create=False)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a dualsparse results store"):
        ResultsStore(junk)


def test_export_csv_and_parquet(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        store.write_result(fake_result("a"))
        store.write_result(fake_result("b", seed=1))
    assert export_results(path, "csv", tmp_path / "o.csv") == 2
    assert export_results(path, "parquet", tmp_path / "o.parquet") == 2
    csv = pd.read_csv(tmp_path / "o.csv")
    pq = pd.read_parquet(tmp_path / "o.parquet")
    assert list(csv["run_key"]) == ["a", "b"] and list(pq["accuracy"]) == [0.9, 0.9]
    with pytest.raises(ValueError, match="--out"):
        export_results(path, "parquet", None)


def test_real_run_row_has_metrics_flops_time_memory_versions(tmp_path):
    cfg = loads_config(textwrap.dedent(TINY))
    store = ResultsStore(tmp_path / "r.sqlite")
    for spec in cfg.runs():
        result = execute_run(spec.to_dict())
        assert result["status"] == "ok", result.get("traceback")
        store.write_result(result)
    rows = {r["model"]: r for r in store.rows()}
    assert set(rows) == {"set", "hgb"}
    s = rows["set"]
    for column in ("accuracy", "balanced_accuracy", "roc_auc", "log_loss", "val_accuracy", "flops_train",
                   "flops_train_dense", "flops_inference", "flops_inference_dense", "wall_time_s", "fit_time_s",
                   "peak_memory_mb"):
        assert s[column] is not None and s[column] == s[column], column
    assert s["flops_train"] < s["flops_train_dense"] and 0 < s["density"] < 1
    assert abs(s["missing_fraction_train"] - 0.3) < 0.01 and s["missing_fraction_test"] == 0.0
    versions = json.loads(s["versions"])
    assert {"dualsparse", "torch", "numpy", "scikit-learn"} <= set(versions)
    assert json.loads(s["config"])["sparsity"] == 0.8
    assert rows["hgb"]["flops_train"] is None  # trees: no FLOP count, stated in the docs
