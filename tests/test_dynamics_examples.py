"""The shipped dynamics configs: every key maps onto the dualsparse.dynamics API, and a miniature
of each study runs end to end through that mapping."""

import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from dualsparse import SparseMLPClassifier
from dualsparse.dynamics import (
    SCENARIOS, STRATEGIES, ExampleTracker, compare, make_task_sequence, run_continual, select_subset, train_on_subset,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    import numba

    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    numba.set_num_threads(numba_threads)


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
    stats = {}
    for model in cfg["models"]["names"]:
        tracker = ExampleTracker(**dyn["tracking"])
        mlp(cfg, model, max_epochs=4, callbacks=[tracker]).fit(X_tr, y_tr)
        stats[model] = tracker.example_stats_
    out = compare(stats["set"], stats[dyn["reference"]], k=dyn["k"])
    assert out["n_examples"] == len(y_tr) and "spearman_grand" in out
    sub = dyn["subsets"]
    for strategy in sub["strategies"]:
        for fraction in sub["fractions"]:
            idx = select_subset(stats[sub["stats_from"]], strategy, fraction, stratify=sub["stratify"], random_state=0)
            assert abs(len(idx) - fraction * len(y_tr)) <= 10
    res = train_on_subset(mlp(cfg, sub["train_models"][0], max_epochs=3), X_tr, y_tr, idx, X_te, y_te,
                          dense_reference=sub["dense_reference"])
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
    result = run_continual(mlp(cfg, "set"), tasks, replay=replay, buffer_size=c["buffer_size"] // 4,
                           epochs_per_task=2, stats_source=c["stats_source"], probe_epochs=c["probe_epochs"],
                           random_state=0)
    assert result.accuracy_matrix.shape == (c["n_tasks"], c["n_tasks"])
