"""Sanity checks that cannot be faked: rows with flipped labels must stand out in the statistics."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from dualsparse import SparseMLPClassifier
from dualsparse.dynamics import ExampleTracker, hardness


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def noisy_digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), size=len(y) // 10, replace=False)  # a known 10 %
    y_noisy = y.copy()
    y_noisy[flipped] = (y[flipped] + rng.integers(1, 10, size=flipped.size)) % 10  # always another class
    is_flipped = np.zeros(len(y), dtype=bool)
    is_flipped[flipped] = True
    assert (y_noisy != y).sum() == flipped.size
    return X, y, y_noisy, is_flipped


@pytest.mark.parametrize("algorithm, sparse_input",
                         [("dense", False), ("static", False), ("set", False), ("set", True)])
def test_flipped_labels_are_separated(noisy_digits, algorithm, sparse_input):
    X, y, y_noisy, is_flipped = noisy_digits
    if sparse_input:  # the same data as a CSR matrix of its non-zeros (sparse-input first layer)
        X = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    tracker = ExampleTracker(el2n_epoch=3)
    est = SparseMLPClassifier(hidden_layer_sizes=(64,), algorithm=algorithm, epsilon=10, max_epochs=12, batch_size=64,
                              random_state=0, callbacks=[tracker]).fit(X, y_noisy)
    stats = tracker.example_stats_
    auc_confidence = roc_auc_score(is_flipped, -stats["confidence"])
    auc_forgetting = roc_auc_score(is_flipped, hardness(stats, "forgetting"))  # never-learned ranked first
    auc_raw_counts = roc_auc_score(is_flipped, stats["forgetting_events"].astype(float))
    auc_el2n = roc_auc_score(is_flipped, stats["el2n"])
    name = algorithm + (" (CSR input)" if sparse_input else "")
    print(f"{name}: clean accuracy {est.score(X, y):.3f}; AUC low confidence {auc_confidence:.3f}, "
          f"forgetting (never-learned first) {auc_forgetting:.3f}, raw forgetting counts {auc_raw_counts:.3f}, "
          f"EL2N {auc_el2n:.3f}")
    assert auc_confidence >= 0.95
    assert auc_forgetting >= 0.9
    assert auc_el2n >= 0.8
    # flipped rows are mostly never learned: that, not many forgetting events, is what sets them apart
    assert stats.loc[is_flipped, "never_learned"].mean() > 0.5 > stats.loc[~is_flipped, "never_learned"].mean()
