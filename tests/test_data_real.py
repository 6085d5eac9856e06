"""Real data sets as fetched from the registries: shapes, class counts and real missing cells.

Each test is skipped, with the command that would enable it, unless its data set is in the cache
(``$DUALSPARSE_DATA`` or the user cache folder): the suite never downloads. The expected numbers
are the sources' own (MNIST's standard split, UCI's documented class counts and missing cells).
Missing cells are counted per *source column* (a missing category is one missing cell, not one
per one-hot column).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dualsparse.data import ampute, cache, load_dataset


def cached(name):
    if not cache.is_cached(name):
        pytest.skip(f"{name} is not cached in {cache.cache_dir()}: run `dualsparse data fetch {name}` to test it")
    return load_dataset(name)


def source_missing(ds) -> int:
    """Missing cells per source column: one-hot columns 'col=value' grouped back into 'col'."""
    columns = [n.split("=")[0] if c else n for n, c in zip(ds.feature_names, ds.categorical)]
    return int(pd.DataFrame(ds.missing, columns=columns).T.groupby(level=0, sort=False).any().T.to_numpy().sum())


def test_mnist():
    ds = cached("mnist")
    assert ds.shape == (70_000, 784) and ds.X.min() == 0 and ds.X.max() == 255
    assert ds.test_mask.sum() == 10_000 and not ds.test_mask[:60_000].any()
    np.testing.assert_array_equal(np.bincount(ds.y[ds.test_mask]), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    np.testing.assert_array_equal(np.bincount(ds.y[~ds.test_mask]), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])


def test_fashion_mnist():
    ds = cached("fashion_mnist")
    assert ds.shape == (70_000, 784)
    np.testing.assert_array_equal(np.bincount(ds.y), [7000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y[ds.test_mask]), [1000] * 10)
    assert ds.target_names[1] == "Trouser" and (ds.X.sum(axis=1) > 0).all()


@pytest.mark.parametrize("name, shape, classes, missing_cells", [
    ("adult", (32_561, 105), [24_720, 7_841], 4_262),            # workclass 1,836 + occupation 1,843 + country 583
    ("horse_colic", (366, 57), [89, 52, 225], 1_911),            # Orange flags age, hospital and lesion codes ignored
    ("voting", (435, 32), [267, 168], 392),
    ("crx", (690, 46), [307, 383], 67),
    ("heart_disease", (303, 25), [164, 139], 6),
    ("breast_cancer_ljubljana", (286, 41), [201, 85], 9),
    ("hypothyroid", (3_163, 55), [151, 3_012], 5_329),
    ("hepatitis", (155, 19), [32, 123], 167),
])
def test_tables_with_real_missing_values(name, shape, classes, missing_cells):
    ds = cached(name)
    assert ds.shape == shape
    np.testing.assert_array_equal(np.bincount(ds.y), classes)
    assert source_missing(ds) == missing_cells
    np.testing.assert_array_equal(ds.missing, np.isnan(ds.X))  # categorical ones included


def test_adult_is_sparse_and_incomplete_at_once():
    """The showcase: one-hot columns are mostly zero and some rows miss values."""
    from dualsparse.data import make_representation

    ds = cached("adult")
    onehot = ds.X[:, ds.categorical]
    assert np.nanmean(onehot == 1) < 0.1  # naturally sparse
    assert ds.missing.any(axis=1).sum() == 2_399  # genuinely incomplete rows
    Z = make_representation("observed", allow_empty_rows=True).fit_transform(ds.X[:2000])
    assert Z.nnz == int((~np.isnan(ds.X[:2000])).sum())


def test_ampute_adds_to_the_real_missing_values():
    ds = cached("hepatitis")
    X_missing, mask = ampute(ds.X, "mcar", 0.2, random_state=0)
    assert not (mask & ds.missing).any()  # only observed cells are removed
    assert np.isnan(X_missing).sum() == round(0.2 * ds.X.size)  # the rate counts the real ones too
    assert (np.isnan(X_missing) == (ds.missing | mask)).all()


def test_hiva():
    ds = cached("hiva")
    assert sp.issparse(ds.X) and ds.shape == (3_845, 1_617)
    assert ds.X.nnz / (3_845 * 1_617) == pytest.approx(0.092, abs=0.001)
    np.testing.assert_array_equal(np.bincount(ds.y), [3_710, 135])
