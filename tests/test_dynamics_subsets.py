"""Subset selection by per-example statistics, and training on the subset (accuracy, joint FLOP saving)."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from dualsparse import SparseMLPClassifier
from dualsparse.dynamics import STRATEGIES, ExampleTracker, select_subset, train_on_subset


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def stats():
    """40 rows, 2 classes (20 each); rows 38-39 not in training. Scores chosen so orders are known."""
    n = 40
    rng = np.random.default_rng(0)
    forgetting = np.zeros(n, int)
    forgetting[[5, 6, 25]] = [3, 1, 2]
    never = np.zeros(n, bool)
    never[[7, 30]] = True
    unforgettable = ~never & (forgetting == 0)
    return pd.DataFrame({
        "in_train": np.arange(n) < 38,
        "label": np.repeat(["a", "b"], 20),
        "forgetting_events": pd.array(forgetting, dtype="Int64"),
        "never_learned": pd.array(never, dtype="boolean"),
        "unforgettable": pd.array(unforgettable, dtype="boolean"),
        "confidence": np.linspace(0.05, 0.95, n),
        "variability": rng.permutation(n) / n,
        "el2n": np.linspace(1.0, 0.0, n),
        "grand": np.linspace(0.0, 2.0, n),
    })


def test_strategies_keep_the_right_rows(stats):
    frac = 5 / 38
    pick = lambda s: select_subset(stats, s, frac, stratify=False, random_state=0)  # noqa: E731
    assert set(pick("forgetting")) == {7, 30, 5, 25, 6}  # never-learned first, then 3, 2, 1 events
    assert set(pick("el2n")) == {0, 1, 2, 3, 4}
    assert set(pick("grand")) == {33, 34, 35, 36, 37}  # rows 38-39 are not training rows
    assert set(pick("hard-to-learn")) == {0, 1, 2, 3, 4}
    assert set(pick("easy-to-learn")) == {33, 34, 35, 36, 37}
    var = stats["variability"].to_numpy()[:38]
    assert set(pick("ambiguous")) == set(np.argsort(-var)[:5])
    assert set(pick("unforgettable-removed")) == {5, 6, 7, 25, 30}
    ten = select_subset(stats, "unforgettable-removed", 10 / 38, stratify=False, random_state=0)
    assert set(ten) > {5, 6, 7, 25, 30}
    r0, r1 = pick("random"), select_subset(stats, "random", frac, stratify=False, random_state=1)
    assert len(r0) == 5 and not np.array_equal(r0, r1)
    assert np.array_equal(r0, pick("random"))  # reproducible
    for s in STRATEGIES:
        out = select_subset(stats, s, 0.5, random_state=0)
        assert out.dtype == np.int64 and np.all(np.diff(out) > 0) and out.max() < 38


def test_stratification(stats):
    labels = stats["label"].to_numpy()
    prop = select_subset(stats, "grand", 0.5, stratify=True, random_state=0)  # 20 'a' and 18 'b' training rows
    assert len(prop) == 19 and (labels[prop] == "a").sum() == 10 and (labels[prop] == "b").sum() == 9
    assert set(prop[labels[prop] == "a"]) == set(range(10, 20))  # the top-grand rows *within* class a
    bal = select_subset(stats, "grand", 10 / 38, stratify="balanced", random_state=0)
    assert (labels[bal] == "a").sum() == 5 == (labels[bal] == "b").sum()
    assert np.array_equal(select_subset(stats, "el2n", 1.0, random_state=0), np.arange(38))
    # balanced quotas are capped by a class's size and the rest goes to other classes
    skew = stats.copy()
    skew.loc[:34, "label"] = "a"
    bal = select_subset(skew, "random", 10 / 38, stratify="balanced", random_state=0)
    assert (skew["label"].to_numpy()[bal] == "b").sum() == 3 and len(bal) == 10


def test_bad_input(stats):
    for bad in (0, 0.0, -0.1, 1.5, True, "half", None):
        with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
            select_subset(stats, "random", bad)
    with pytest.raises(ValueError, match="unknown strategy 'hardest'; choose one of random, forgetting"):
        select_subset(stats, "hardest", 0.5)
    with pytest.raises(ValueError, match="stats describe 40 rows but the data has 50"):
        select_subset(stats, "random", 0.5, n_samples=50)
    with pytest.raises(ValueError, match="stratify must be"):
        select_subset(stats, "random", 0.5, stratify="yes")
    no_el2n = stats.assign(el2n=np.nan)
    with pytest.raises(ValueError, match=r"'el2n' for every training row.*el2n_epoch"):
        select_subset(no_el2n, "el2n", 0.5)
    with pytest.raises(ValueError, match=r"grand_epoch"):
        select_subset(stats.assign(grand=np.nan), "grand", 0.5)
    with pytest.raises(ValueError, match="needs the statistic 'variability'"):
        select_subset(stats.drop(columns="variability"), "ambiguous", 0.5)


def test_train_on_subset_reports_accuracy_and_joint_saving():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    tracker = ExampleTracker(el2n_epoch=1)
    base = dict(hidden_layer_sizes=(48,), epsilon=8, max_epochs=6, random_state=0)
    SparseMLPClassifier(algorithm="dense", callbacks=[tracker], **base).fit(X_tr, y_tr)
    keep = select_subset(tracker.example_stats_, "el2n", 0.4, random_state=0, n_samples=len(X_tr))
    sparse = SparseMLPClassifier(algorithm="set", **base)
    est = train_on_subset(sparse, X_tr, y_tr, keep, X_te, y_te, dense_reference="estimate")
    measured = train_on_subset(sparse, X_tr, y_tr, keep, X_te, y_te, dense_reference="measure")
    assert est["n_subset"] == len(keep) and est["fraction"] == pytest.approx(0.4, abs=0.01)
    # 40 % of the rows, hardest first, 6 epochs of a small SET net: far above chance (0.1), below the
    # full-data accuracy (on a data set this small random subsets do as well; see the report)
    assert 0.3 < est["accuracy"] <= 1 and est["accuracy"] == measured["accuracy"]
    # equal epochs: the estimate of the dense model on all rows is its measured count
    assert est["dense_full_train_flops"] == pytest.approx(measured["dense_full_train_flops"], rel=1e-9)
    assert measured["dense_full_source"] == "measured" and measured["dense_full_accuracy"] > 0.8
    # joint saving = (sparse / dense FLOPs per sample) x (share of the data)
    weight_ratio = est["train_flops"] / est["train_flops_dense_subset"]
    assert est["flops_ratio"] == pytest.approx(weight_ratio * len(keep) / len(X_tr), rel=1e-9)
    assert weight_ratio < 0.5 and est["flops_saving"] > 0.8
    assert est["flops_saving"] == pytest.approx(1 - est["flops_ratio"])
    with pytest.raises(ValueError, match="indices must lie in"):
        train_on_subset(sparse, X_tr, y_tr, np.array([0, len(X_tr)]), X_te, y_te)
    with pytest.raises(ValueError, match="repeated rows"):
        train_on_subset(sparse, X_tr, y_tr, np.array([1, 1]), X_te, y_te)
    with pytest.raises(ValueError, match="early"):
        train_on_subset(SparseMLPClassifier(early_stopping=True), X_tr, y_tr, keep, X_te, y_te,
                        dense_reference="estimate")
