"""Dense vs sparse: rank agreement, hardest-k overlap, noise floor, compression-identified exemplars."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from dualsparse import SparseMLPClassifier
from dualsparse.dynamics import ExampleTracker, compare, compression_identified, hardness, modal_prediction, noise_floor


pytestmark = pytest.mark.usefixtures("one_thread")


def frame(forgetting, never, confidence, el2n, in_train=None):
    n = len(forgetting)
    return pd.DataFrame({
        "in_train": np.ones(n, bool) if in_train is None else in_train,
        "label": np.zeros(n, int),
        "forgetting_events": pd.array(forgetting, dtype="Int64"),
        "never_learned": pd.array(never, dtype="boolean"),
        "confidence": np.asarray(confidence, float),
        "el2n": np.asarray(el2n, float),
    })


def test_compare_on_handmade_statistics():
    a = frame([0, 3, 1, 0, 2, 0, 0, 5, 0, 1], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
              [.9, .3, .6, .1, .5, .95, .8, .2, .85, .7], np.arange(10) / 10)
    same = compare(a, a.copy(), k=20)
    assert same["n_examples"] == 10
    assert same["spearman_forgetting"] == pytest.approx(1.0) and same["spearman_el2n"] == pytest.approx(1.0)
    assert same["overlap_forgetting"] == 1.0 and same["overlap_el2n"] == 1.0
    # hardest 20 % by forgetting: the never-learned row 3 first, then the most forgotten row 7
    order = np.argsort(-hardness(a, "forgetting"))
    assert order[:3].tolist() == [3, 7, 1]
    b = a.copy()
    b["el2n"] = b["el2n"].to_numpy()[::-1]  # reversed ranking
    out = compare(a, b, k=20)
    assert out["spearman_el2n"] == pytest.approx(-1.0) and out["overlap_el2n"] == 0.0
    b["el2n"] = [0, .1, .2, .3, .4, .5, .6, .7, .95, .9]  # top-2 sets {8, 9} vs {9, 8}
    assert compare(a, b, k=20)["overlap_el2n"] == 1.0
    # rows out of training in either run are left out
    c = a.copy()
    c["in_train"] = [True] * 8 + [False] * 2
    assert compare(a, c)["n_examples"] == 8


def test_compare_and_noise_floor_errors():
    a = frame([0, 1, 2], [0, 0, 0], [.5, .6, .7], [.1, .2, .3])
    with pytest.raises(ValueError, match="same X"):
        compare(a, frame([0, 1], [0, 0], [.5, .6], [.1, .2]))
    with pytest.raises(ValueError, match="k must be a percentage"):
        compare(a, a, k=0)
    with pytest.raises(ValueError, match="k must be a percentage"):
        compare(a, a, k=150)
    with pytest.raises(TypeError, match="DataFrame"):
        compare(np.zeros(3), a)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        noise_floor([a])


def test_dense_vs_sparse_against_the_noise_floor():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)[:600]
    y = y[:600]
    runs = {}
    for name, algorithm, seed in (("dense0", "dense", 0), ("dense1", "dense", 1), ("set0", "set", 0)):
        tracker = ExampleTracker(el2n_epoch=2)
        SparseMLPClassifier(hidden_layer_sizes=(32,), algorithm=algorithm, epsilon=8, max_epochs=6,
                            random_state=seed, callbacks=[tracker]).fit(X, y)
        runs[name] = tracker
    stats = {k: t.example_stats_ for k, t in runs.items()}
    floor = noise_floor([stats["dense0"], stats["dense1"]], k=10)
    cross = compare(stats["dense0"], stats["set0"], k=10)
    print("noise floor", floor, "\ndense vs SET", cross)
    assert floor["n_pairs"] == 1
    for key in ("spearman_forgetting", "spearman_el2n", "spearman_confidence", "overlap_el2n", "overlap_forgetting"):
        assert -1 <= cross[key] <= 1 and -1 <= floor[key] <= 1
    # two seeds of one model agree on which rows are hard well above chance (overlap 0.1, rho 0);
    # on digits that agreement is modest (about 0.3): most rows are easy and rank by noise
    assert floor["spearman_el2n"] > 0.1 and floor["overlap_el2n"] > 0.2 and floor["overlap_forgetting"] > 0.2
    # per-epoch forgetting, aligned with SET's topology updates
    ep = runs["set0"].epoch_stats_
    assert len(runs["set0"].forgetting_per_epoch_) == 6
    assert ep["topology_update"].tolist() == [True] * 5 + [False]  # none after the last epoch


def test_compression_identified_exemplars():
    sparse = np.array([[0, 1, 2, 3, 4], [0, 1, 2, 0, 4], [0, 2, 2, 0, 1]])
    dense = np.array([[0, 1, 1, 3, 4], [0, 1, 1, 3, 4], [1, 1, 2, 3, 4]])
    assert modal_prediction(sparse).tolist() == [0, 1, 2, 0, 4]
    assert compression_identified(sparse, dense).tolist() == [False, False, True, True, False]
    # a tie goes to the smallest label
    assert modal_prediction(np.array([[5], [3]])).tolist() == [3]
    labels = np.array([["cat", "dog"], ["dog", "dog"], ["cat", "cat"]])  # modes: cat, dog
    assert compression_identified(labels, labels[:, ::-1]).tolist() == [True, True]
    assert compression_identified(labels, labels[[1, 0, 2]]).tolist() == [False, False]
    with pytest.raises(ValueError, match="2-D"):
        compression_identified(np.zeros(5), dense)
    with pytest.raises(ValueError, match="same X"):
        compression_identified(sparse, dense[:, :3])
