"""Loading data sets by name and from files (round trips through tmp_path)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file

from dualsparse.data import Dataset, list_datasets, load_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the repository (CI, here); shared/data inside it (device machines)
COIL20_PLACES = [REPO_ROOT.parent / "shared/data/COIL20.mat", REPO_ROOT / "shared/data/COIL20.mat"]
COIL20 = next((p for p in COIL20_PLACES if p.is_file()), None)
needs_coil20 = pytest.mark.skipif(
    COIL20 is None, reason=f"COIL20.mat not found in {REPO_ROOT.parent / 'shared/data'}"
)

BUNDLED = {
    "breast_cancer": ("classification", 2),
    "wine": ("classification", 3),
    "digits": ("classification", 10),
    "iris": ("classification", 3),
    "diabetes": ("regression", None),
}


def is_csr(X):
    return sp.issparse(X) and X.format == "csr"


def test_list_datasets_names_every_named_set():
    from dualsparse.data.sources import real_names

    assert set(list_datasets()) == set(BUNDLED) | {"penguins", "coil20", "synthetic"} | set(real_names())


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_sklearn_sets(name):
    data = load_dataset(name)
    task, n_classes = BUNDLED[name]
    assert isinstance(data, Dataset) and data.name == name and data.task == task
    assert data.X.dtype == np.float64 and data.X.ndim == 2
    assert data.y.shape == (data.X.shape[0],)
    assert len(data.feature_names) == data.X.shape[1]
    assert data.description
    if task == "classification":
        assert data.y.dtype == np.int64
        assert set(data.y) == set(range(n_classes)) and len(data.target_names) == n_classes
    else:
        assert data.y.dtype == np.float64 and data.target_names is None


def test_penguins_keeps_genuine_missing_values_and_one_hot_encodes_categories():
    from palmerpenguins import load_penguins

    raw = load_penguins()
    data = load_dataset("penguins")
    assert data.task == "classification"
    assert data.target_names == sorted(raw["species"].unique())
    np.testing.assert_array_equal(np.asarray(data.target_names)[data.y], raw["species"])
    names = data.feature_names
    for column in ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]:
        values = data.X[:, names.index(column)]
        np.testing.assert_array_equal(np.isnan(values), raw[column].isna())
        np.testing.assert_array_equal(values[~np.isnan(values)], raw[column].dropna())
    for column in ["island", "sex"]:
        block = data.X[:, [i for i, n in enumerate(names) if n.startswith(column + "=")]]
        known = raw[column].notna().to_numpy()
        assert block.shape[1] == raw[column].nunique()
        assert np.isnan(block[~known]).all()  # unknown category: missing, not zeros
        np.testing.assert_array_equal(block[known].sum(axis=1), 1.0)
    assert "species" not in " ".join(names)


def test_penguins_with_another_target_and_categorical_error():
    with pytest.raises(ValueError, match="missing label"):
        load_dataset("penguins", target="body_mass_g")  # two penguins lack it
    with pytest.raises(TypeError, match="non-numeric"):
        load_dataset("penguins", categorical="error")


@needs_coil20
def test_coil20_from_shared_data_by_path_and_by_name():
    for data in (load_dataset(COIL20), load_dataset(str(COIL20)), load_dataset("coil20")):
        assert data.X.shape == (1440, 1024) and data.X.dtype == np.float64
        assert data.task == "classification"
        assert data.target_names == list(range(1, 21))
        np.testing.assert_array_equal(np.bincount(data.y), np.full(20, 72))
        assert 0.0 <= data.X.min() and data.X.max() <= 1.0
    raw = scipy.io.loadmat(COIL20)
    np.testing.assert_array_equal(data.X, raw["X"])
    np.testing.assert_array_equal(np.asarray(data.target_names)[data.y], raw["Y"].ravel())


def test_synthetic_by_name_takes_generator_options():
    data = load_dataset(
        "synthetic", n_samples=50, n_features=300, n_informative=5, density=0.1, random_state=0
    )
    assert is_csr(data.X) and data.X.shape == (50, 300)
    assert data.task == "classification" and data.target_names == [0, 1]
    again = load_dataset(
        "synthetic", n_samples=50, n_features=300, n_informative=5, density=0.1, random_state=0
    )
    assert (data.X != again.X).nnz == 0


def frame_with_missing_values():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((30, 3)), columns=["a", "b", "c"])
    frame.iloc[[1, 5, 7], 0] = np.nan
    frame.iloc[[2, 5], 2] = np.nan
    frame["label"] = np.where(rng.random(30) < 0.5, "yes", "no")
    return frame


def check_frame_round_trip(data, frame):
    features = frame.drop(columns="label")
    np.testing.assert_array_equal(np.isnan(data.X), features.isna())
    np.testing.assert_allclose(data.X[~np.isnan(data.X)], features.to_numpy()[features.notna()])
    assert data.feature_names == ["a", "b", "c"]
    assert data.task == "classification" and data.target_names == ["no", "yes"]
    np.testing.assert_array_equal(np.asarray(data.target_names)[data.y], frame["label"])


def test_csv_keeps_missing_values_target_defaults_to_last_column(tmp_path):
    frame = frame_with_missing_values()
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_dataset(tmp_path / "d.csv")
    check_frame_round_trip(data, frame)
    assert data.name == "d"


def test_csv_named_target_column_and_tsv(tmp_path):
    frame = frame_with_missing_values()
    frame[["label", "a", "b", "c"]].to_csv(tmp_path / "d.csv", index=False)
    check_frame_round_trip(load_dataset(tmp_path / "d.csv", target="label"), frame)
    frame.to_csv(tmp_path / "d.tsv", index=False, sep="\t")
    check_frame_round_trip(load_dataset(tmp_path / "d.tsv"), frame)


def test_csv_reader_options_pass_to_pandas(tmp_path):
    (tmp_path / "d.csv").write_text("a;b;y\n1;?;0\n2;3;1\n")
    data = load_dataset(tmp_path / "d.csv", sep=";", na_values=["?"])
    assert np.isnan(data.X[0, 1]) and data.X[1, 1] == 3.0


def test_parquet_round_trip(tmp_path):
    frame = frame_with_missing_values()
    frame.to_parquet(tmp_path / "d.parquet")
    check_frame_round_trip(load_dataset(tmp_path / "d.parquet"), frame)


def test_csv_categorical_onehot(tmp_path):
    frame = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0], "colour": ["red", None, "blue", "red"], "y": [0, 1, 0, 1]}
    )
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_dataset(tmp_path / "d.csv", categorical="onehot")
    assert data.feature_names == ["x", "colour=blue", "colour=red"]
    np.testing.assert_array_equal(data.X[[0, 2, 3], 1:], [[0, 1], [1, 0], [0, 1]])
    assert np.isnan(data.X[1, 1:]).all()


def test_task_inference_and_override(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.standard_normal(200), "y": rng.standard_normal(200)})
    frame.to_csv(tmp_path / "r.csv", index=False)
    regression = load_dataset(tmp_path / "r.csv")
    assert regression.task == "regression" and regression.target_names is None
    np.testing.assert_allclose(regression.y, frame["y"])
    frame["y"] = rng.integers(0, 3, 200).astype(float)  # whole numbers, few values
    frame.to_csv(tmp_path / "c.csv", index=False)
    assert load_dataset(tmp_path / "c.csv").task == "classification"
    forced = load_dataset(tmp_path / "c.csv", task="regression")
    assert forced.task == "regression"
    np.testing.assert_array_equal(forced.y, frame["y"])


def test_svmlight_round_trip_is_sparse(tmp_path):
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.random((40, 25)) * (rng.random((40, 25)) < 0.2))
    y = rng.integers(0, 3, 40)
    dump_svmlight_file(X, y, str(tmp_path / "d.svm"))
    data = load_dataset(tmp_path / "d.svm", n_features=25)
    assert is_csr(data.X) and data.X.shape == (40, 25)
    np.testing.assert_allclose(data.X.toarray(), X.toarray())
    assert data.task == "classification"
    np.testing.assert_array_equal(np.asarray(data.target_names)[data.y], y)
    dump_svmlight_file(X, y, str(tmp_path / "d.txt"))
    assert load_dataset(tmp_path / "d.txt", format="svmlight").X.shape[0] == 40


def test_npz_round_trip_with_default_and_custom_keys(tmp_path):
    X = np.random.default_rng(0).standard_normal((20, 4))
    X[3, 1] = np.nan
    y = np.arange(20) % 2
    np.savez(tmp_path / "d.npz", X=X, y=y)
    data = load_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(data.X, X)  # NaN in the same place
    np.testing.assert_array_equal(data.y, y)
    np.savez(tmp_path / "e.npz", features=X, labels=y * 10)
    data = load_dataset(tmp_path / "e.npz", x_key="features", y_key="labels")
    assert data.target_names == [0, 10]


def test_mat_round_trip_dense_sparse_and_keys(tmp_path):
    X = np.random.default_rng(0).random((30, 6))
    X[0, 0] = np.nan
    Y = (np.arange(30) % 3 + 1).astype(np.uint8)[:, None]  # column vector, as in COIL20
    scipy.io.savemat(tmp_path / "d.mat", {"X": X, "Y": Y})
    data = load_dataset(tmp_path / "d.mat")
    np.testing.assert_array_equal(data.X, X)
    assert data.target_names == [1, 2, 3] and data.task == "classification"
    scipy.io.savemat(tmp_path / "s.mat", {"data": sp.csc_matrix(np.nan_to_num(X)), "gnd": Y.T})
    data = load_dataset(tmp_path / "s.mat", x_key="data")
    assert is_csr(data.X)
    np.testing.assert_allclose(data.X.toarray(), np.nan_to_num(X))
    np.testing.assert_array_equal(np.asarray(data.target_names)[data.y], Y.ravel())
