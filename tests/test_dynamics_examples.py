"""The shipped dynamics configs: they pass the experiments validator with the documented number of
runs, every key maps onto the dualsparse.dynamics API, and a miniature of each study runs end to
end through that mapping."""

import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from dualsparse import SparseMLPClassifier
from dualsparse.data import load_dataset
from dualsparse.dynamics import (
    SCENARIOS, STRATEGIES, ExampleTracker, compare, make_task_sequence, run_continual, select_subset, train_on_subset,
)
from dualsparse.experiments import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _coil20_available():
    try:
        load_dataset("coil20")
    except FileNotFoundError:
        return False
    return True


@pytest.mark.parametrize("name, kinds", [
    ("forgetting_digits.toml", {"grid": 15, "subset": 480}),
    ("continual_split_digits.toml", {"continual": 1395}),
    pytest.param("forgetting_coil20.toml", {"grid": 15, "subset": 180},
                 marks=pytest.mark.skipif(not _coil20_available(), reason="COIL20.mat not found")),
])
def test_shipped_configs_pass_the_experiments_validator(name, kinds):
    runs = load_config(EXAMPLES / name).runs()
    counts = {}
    for r in runs:
        counts[r.kind] = counts.get(r.kind, 0) + 1
    assert counts == kinds
    assert len({r.seed for r in runs}) >= 5


pytestmark = pytest.mark.usefixtures("one_thread")


def load(name):
    with open(EXAMPLES / name, "rb") as fh:
        return tomllib.load(fh)


def mlp(cfg, model, **override):
    params = dict(cfg["mlp"], algorithm=model, epsilon=cfg["models"]["epsilons"][0], random_state=0)
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    params.update(override)
    return SparseMLPClassifier(**params)


def test_forgetting_config_maps_onto_the_api():
    cfg = load("forgetting_digits.toml")
    dyn = cfg["dynamics"]
    assert cfg["data"]["datasets"] == ["digits"] and 0 < dyn["label_noise"] < 1
    assert set(dyn["subsets"]["strategies"]) <= set(STRATEGIES)
    assert dyn["reference"] in cfg["models"]["names"] and dyn["subsets"]["stats_from"] in cfg["models"]["names"]
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32) / 16
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=cfg["split"]["test_size"], random_state=0, stratify=y)
    X_tr, y_tr = X_tr[:500], y_tr[:500].copy()
    rng = np.random.default_rng(0)
    flip = rng.choice(len(y_tr), int(dyn["label_noise"] * len(y_tr)), replace=False)
    y_tr[flip] = (y_tr[flip] + rng.integers(1, 10, flip.size)) % 10
    stats, fitted = {}, {}
    for model in cfg["models"]["names"]:
        tracker = ExampleTracker(**dyn["tracking"])
        fitted[model] = mlp(cfg, model, max_epochs=4, callbacks=[tracker]).fit(X_tr, y_tr)
        stats[model] = tracker.example_stats_
    out = compare(stats["set"], stats[dyn["reference"]], k=dyn["k"])
    assert out["n_examples"] == len(y_tr) and "spearman_grand" in out
    sub = dyn["subsets"]
    for strategy in sub["strategies"]:
        for fraction in sub["fractions"]:
            idx = select_subset(stats[sub["stats_from"]], strategy, fraction, stratify=sub["stratify"], random_state=0)
            assert abs(len(idx) - fraction * len(y_tr)) <= 10
    # dense_reference = "measured": the dense model's own fit on all rows (the experiments runner
    # takes it from the store); "estimate" scales the subset run's dense-equivalent count
    reference = fitted["dense"] if sub["dense_reference"] == "measured" else sub["dense_reference"]
    res = train_on_subset(mlp(cfg, sub["train_models"][-1], max_epochs=4), X_tr, y_tr, idx, X_te, y_te,
                          dense_reference=reference)
    assert 0 < res["flops_ratio"] < 1


def test_continual_config_maps_onto_the_api():
    cfg = load("continual_split_digits.toml")
    c = cfg["continual"]
    assert set(c["scenarios"]) <= set(SCENARIOS)
    assert all(r == "none" or r in STRATEGIES for r in c["replay"])
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32) / 16
    for scenario in c["scenarios"]:
        tasks = make_task_sequence(X, y, scenario, c["n_tasks"], test_size=c["test_size"],
                                   class_order=c["class_order"], random_state=0)
        assert len(tasks) == c["n_tasks"]
    replay = [r for r in c["replay"] if r != "none"][1]
    tasks = make_task_sequence(X[:800], y[:800], c["scenarios"][0], c["n_tasks"], test_size=c["test_size"],
                               class_order=c["class_order"], random_state=0)
    result = run_continual(mlp(cfg, "set"), tasks, replay=replay, buffer_size=min(c["buffer_sizes"]),
                           epochs_per_task=2, stats_source=c["stats_source"], probe_epochs=c.get("probe_epochs", 5),
                           random_state=0)
    assert result.accuracy_matrix.shape == (c["n_tasks"], c["n_tasks"])
