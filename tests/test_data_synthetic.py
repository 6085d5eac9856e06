"""The sparse synthetic generator: CSR of any width, labels carried by informative features."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from dualsparse.data import make_sparse_classification


def is_csr(X):
    return sp.issparse(X) and X.format == "csr"


def test_shape_format_density_and_balanced_labels():
    X, y = make_sparse_classification(400, 2000, 20, 0.05, n_classes=4, random_state=0)
    assert is_csr(X) and X.shape == (400, 2000) and X.dtype == np.float64
    assert X.has_canonical_format
    assert abs(X.nnz / (400 * 2000) - 0.05) < 0.005
    assert y.shape == (400,)
    np.testing.assert_array_equal(np.bincount(y), [100, 100, 100, 100])


def test_same_seed_same_data_other_seed_other_data():
    a = make_sparse_classification(100, 500, 10, 0.1, random_state=3)
    b = make_sparse_classification(100, 500, 10, 0.1, random_state=3)
    c = make_sparse_classification(100, 500, 10, 0.1, random_state=4)
    assert (a[0] != b[0]).nnz == 0 and (a[1] == b[1]).all()
    assert (a[0] != c[0]).nnz > 0


def test_wide_data_never_builds_a_dense_array():
    n_samples, n_features = 2000, 250_000  # dense float64 would take 4 GB
    tracemalloc.start()
    X, y, informative = make_sparse_classification(
        n_samples, n_features, 50, 2e-4, random_state=0, return_informative=True
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert X.shape == (n_samples, n_features)
    assert peak < 50e6  # ~100k non-zeros need a few MB; a dense array would need 4 GB
    assert informative.shape == (50,) and (np.diff(informative) > 0).all()


def test_labels_depend_on_the_informative_features_only():
    X, y, informative = make_sparse_classification(
        600, 1000, 20, 0.02, informative_density=0.5, random_state=1, return_informative=True
    )
    noise = np.setdiff1d(np.arange(1000), informative)[:20]
    model = LogisticRegression(max_iter=1000)
    on_informative = cross_val_score(model, X[:, informative], y, cv=3).mean()
    on_noise = cross_val_score(model, X[:, noise], y, cv=3).mean()
    assert on_informative > 0.9
    assert on_noise < 0.6
    # informative columns are denser as asked; noise columns keep `density`
    assert X[:, informative].nnz / (600 * 20) == pytest.approx(0.5, abs=0.03)


def test_multiclass_classes_are_separable_on_informative_features():
    X, y, informative = make_sparse_classification(
        900, 300, 12, 0.05, n_classes=3, informative_density=1.0, random_state=2,
        return_informative=True,
    )
    accuracy = cross_val_score(LogisticRegression(max_iter=1000), X[:, informative], y, cv=3)
    assert accuracy.mean() > 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"density": 0.0}, "density"),
        ({"density": 1.5}, "density"),
        ({"n_informative": 11}, "cannot exceed"),
        ({"n_classes": 1}, "n_classes"),
        ({"n_samples": 0}, "n_samples"),
        ({"n_classes": 5, "n_informative": 2}, "n_informative >= 3"),
        ({"informative_density": 0}, "informative_density"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    arguments = {"n_samples": 10, "n_features": 10, "n_informative": 3, "density": 0.5} | kwargs
    with pytest.raises(ValueError, match=message):
        make_sparse_classification(**arguments)
