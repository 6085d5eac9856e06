"""Issue 3, point 6: bad input raises a clear error naming the problem and the fix."""

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

import dualsparse.data.datasets as datasets
from dualsparse.data import ampute, ampute_split, load_dataset, make_representation

REPRESENTATIONS = [
    "impute-mean",
    "impute-median",
    "impute-knn",
    "impute-iterative",
    "observed",
    "observed+indicator",
    "native-nan",
]


def data(n=50, d=4):
    return np.random.default_rng(0).standard_normal((n, d))


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_label_in_an_array_file(tmp_path, bad):
    y = np.arange(10.0)
    y[4] = bad
    np.savez(tmp_path / "d.npz", X=data(10), y=y)
    with pytest.raises(ValueError, match=r"(missing|infinite) label.*rows \[4\]"):
        load_dataset(tmp_path / "d.npz")


def test_missing_label_in_a_csv(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,yes\n3,4,\n5,6,no\n")
    with pytest.raises(ValueError, match=r"1 missing label.*rows \[1\].*drop those rows"):
        load_dataset(tmp_path / "d.csv")


# ---------------------------------------------------------------- all-missing column or row


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_all_missing_column_at_fit(name):
    X = data()
    X[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"feature\(s\) \[2\] have no observed value.*drop"):
        make_representation(name).fit(X)


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_all_missing_row_at_fit_and_transform(name):
    X = data()
    X[7] = np.nan
    with pytest.raises(ValueError, match=r"1 row\(s\) have no observed value \(rows \[7\]\)"):
        make_representation(name).fit(X)
    rep = make_representation(name).fit(data())
    with pytest.raises(ValueError, match="allow_empty_rows=True"):
        rep.transform(X)
    make_representation(name, allow_empty_rows=True).fit(X).transform(X)  # opted in: accepted


# ---------------------------------------------------------------- non-numeric columns


def test_non_numeric_column_in_a_csv(tmp_path):
    (tmp_path / "d.csv").write_text("a,colour,y\n1,red,0\n2,blue,1\n")
    with pytest.raises(TypeError, match=r"non-numeric feature column\(s\) \['colour'\].*onehot"):
        load_dataset(tmp_path / "d.csv")


def test_numeric_column_with_a_stray_string_in_a_csv(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n?,3,1\n")
    with pytest.raises(TypeError, match=r"\['a'\]"):
        load_dataset(tmp_path / "d.csv")


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_non_numeric_input_to_a_representation(name):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    with pytest.raises(TypeError, match=r"non-numeric column\(s\) \['b'\]"):
        make_representation(name).fit(frame)
    with pytest.raises(TypeError, match="non-numeric"):
        make_representation(name).fit(np.array([[1.0, "x"], [2.0, "y"]], dtype=object))


def test_non_numeric_input_to_ampute():
    with pytest.raises(TypeError, match=r"non-numeric column\(s\) \['b'\]"):
        ampute(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), "mcar", 0.1, 0)
    with pytest.raises(TypeError, match="non-numeric"):
        ampute(np.array([["1", "a"], ["2", "b"]]), "mcar", 0.1, 0)


# ---------------------------------------------------------------- lengths of X and y


def test_mismatched_lengths_npz(tmp_path):
    np.savez(tmp_path / "d.npz", X=data(10), y=np.arange(9))
    with pytest.raises(ValueError, match="X has 10 rows but y has 9 labels"):
        load_dataset(tmp_path / "d.npz")


def test_mismatched_lengths_mat(tmp_path):
    scipy.io.savemat(tmp_path / "d.mat", {"X": data(10), "Y": np.arange(12)[:, None]})
    with pytest.raises(ValueError, match="X has 10 rows but y has 12 labels"):
        load_dataset(tmp_path / "d.mat")


def test_two_dimensional_labels(tmp_path):
    np.savez(tmp_path / "d.npz", X=data(10), y=np.eye(10)[:, :3])
    with pytest.raises(ValueError, match="must be 1-D.*argmax"):
        load_dataset(tmp_path / "d.npz")


# ---------------------------------------------------------------- rate


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, np.nan])
def test_rate_outside_zero_one(rate):
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        ampute(data(), "mcar", rate, 0)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        ampute_split(data(), data(), "mcar", rate, 0)


@pytest.mark.parametrize("rate", ["0.3", None, True])
def test_rate_not_a_number(rate):
    with pytest.raises(TypeError, match="rate must be a number"):
        ampute(data(), "mcar", rate, 0)


def test_rate_below_existing_missingness():
    X = data(100)
    X[:40, 0] = np.nan
    with pytest.raises(ValueError, match="already has 40 missing cells.*higher rate"):
        ampute(X, "mcar", 0.05, 0)
    with pytest.raises(ValueError, match="feature 0 already has 40 missing"):
        ampute(X, "mcar", 0.2, 0, per_feature=True)


@pytest.mark.parametrize(
    ("mechanism", "options", "rate", "message"),
    [
        ("mar", {}, 0.8, r"the 3 amputable column\(s\) \(all 4 but the 1 MAR drivers.*at most rate=0\.75.*"
                         r"lower rate, fewer drivers \(a lower driver_fraction, now 0\.3"),
        ("mar", {"drivers": [0, 1]}, 0.6, r"at most rate=0\.5.*lower rate, fewer `drivers`, or per_feature=True"),
        ("mar", {"drivers": [0], "features": [2]}, 0.3, r"the 1 column\(s\) in `features`.*at most rate=0\.25.*"
                                                        r"more columns in `features`"),
        ("mcar", {"features": [0]}, 0.5, r"rate=0\.5 means 100 of the 200 cells of X missing.*hold only 50 observed"),
    ],
)
def test_rate_beyond_what_the_amputable_columns_hold(mechanism, options, rate, message):
    # the rate is a share of all cells of X; only the amputable columns can make it up
    with pytest.raises(ValueError, match=message):
        ampute(data(), mechanism, rate, 0, **options)
    ampute(data(), mechanism, rate, 0, per_feature=True, **options)  # the fix the message offers


def test_rate_beyond_what_the_amputable_columns_hold_counts_existing_nan():
    X = data()
    X[:20, 3] = np.nan  # 20 of 200 cells missing already
    with pytest.raises(ValueError, match=r"\(20 of them already\).*at most rate=0\.35"):
        ampute(X, "mcar", 0.4, 0, features=[0])


def test_mar_driver_missing_in_the_test_set():
    X_test = data()
    X_test[5, 0] = np.nan
    with pytest.raises(ValueError, match=r"X_test has missing values in MAR driver column\(s\) \[0\].*"
                                         "apply_to='train'"):
        ampute_split(data(), X_test, "mar", 0.1, 0, apply_to="both", drivers=[0])


# ---------------------------------------------------------------- unknown names


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'irsi'.*'iris'.*'penguins'"):
        load_dataset("irsi")


def test_unknown_mechanism_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown mechanism 'mnra'.*\['mcar', 'mar', 'mnar'\]"):
        ampute(data(), "mnra", 0.1, 0)


def test_unknown_representation_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown representation 'observd'.*'observed'"):
        make_representation("observd")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "tail"}, r"unknown MNAR kind 'tail'.*'self-masking', 'quantile'"),
        ({"direction": "up"}, r"unknown direction 'up'.*'upper', 'lower'"),
    ],
)
def test_unknown_mnar_options(options, message):
    with pytest.raises(ValueError, match=message):
        ampute(data(), "mnar", 0.1, 0, **options)


def test_unknown_apply_to():
    with pytest.raises(ValueError, match=r"unknown apply_to 'test'.*'train', 'both'"):
        ampute_split(data(), data(), "mcar", 0.1, 0, apply_to="test")


# ---------------------------------------------------------------- files


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such file.*nowhere.csv"):
        load_dataset("/nowhere/nowhere.csv")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".mat", ".npz", ".svm"])
def test_unreadable_file(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"\x00\xff\xfe garbage \x89PNG\r\n" * 3)
    with pytest.raises(ValueError, match=rf"could not read .*broken\{suffix}"):
        load_dataset(path)


def test_empty_csv(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="could not read"):
        load_dataset(tmp_path / "empty.csv")


def test_unknown_file_format(tmp_path):
    (tmp_path / "d.xyz").write_text("1,2\n")
    with pytest.raises(ValueError, match="cannot tell the format.*format="):
        load_dataset(tmp_path / "d.xyz")


def test_array_file_without_the_expected_keys(tmp_path):
    scipy.io.savemat(tmp_path / "d.mat", {"features": data(5), "Y": np.arange(5)})
    with pytest.raises(ValueError, match=r"no array named \['X', 'x'\].*'features'.*x_key="):
        load_dataset(tmp_path / "d.mat")


def test_target_column_not_found(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"target column 'label' not found.*\['a', 'b'\]"):
        load_dataset(tmp_path / "d.csv", target="label")


def test_coil20_absent_explains_how_to_pass_a_path(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "_coil20_candidates", lambda: [tmp_path / "COIL20.mat"])
    with pytest.raises(FileNotFoundError, match=r"COIL20.mat not found.*load_dataset\('/path"):
        load_dataset("coil20")


# ---------------------------------------------------------------- options that do not apply


def test_options_a_source_does_not_take():
    with pytest.raises(TypeError, match=r"load_dataset\('iris'\) does not take.*\['target'\]"):
        load_dataset("iris", target="species")
    with pytest.raises(TypeError, match="n_feature"):
        load_dataset("synthetic", n_feature=10)


def test_options_a_mechanism_does_not_take():
    with pytest.raises(TypeError, match=r"\['drivers'\] do not apply to mechanism 'mcar'"):
        ampute(data(), "mcar", 0.1, 0, drivers=[0])
    with pytest.raises(TypeError, match="quantile= applies to kind='quantile' only"):
        ampute(data(), "mnar", 0.1, 0, quantile=0.5)


def test_options_a_representation_does_not_take():
    with pytest.raises(TypeError, match="n_neighbours.*takes.*n_neighbors"):
        make_representation("impute-knn", n_neighbours=3)
    with pytest.raises(TypeError, match="fixed by the representation's name"):
        make_representation("impute-mean", strategy="median")
    with pytest.raises(ValueError, match="sparsity_normalization must be"):
        make_representation("observed", sparsity_normalization="log").fit(data())


# ---------------------------------------------------------------- other invalid data


def test_inf_in_features():
    X = data()
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"infinite value.*\(3, 1\).*NaN"):
        ampute(X, "mcar", 0.1, 0)
    with pytest.raises(ValueError, match="infinity"):
        make_representation("observed").fit(X)


def test_sparse_input_is_refused_where_absent_would_mean_missing():
    X = sp.csr_matrix(np.random.default_rng(0).random((20, 5)).round())
    with pytest.raises(TypeError, match="sparse matrix.*absent entry means 0.*toarray"):
        ampute(X, "mcar", 0.1, 0)
    with pytest.raises(TypeError, match="[Ss]parse"):
        make_representation("impute-mean").fit(X)


def test_mar_without_a_fully_observed_driver():
    X = data()
    X[0, :] = np.nan
    X[0, 0] = 1.0
    X[1, 0] = np.nan
    with pytest.raises(ValueError, match="MAR needs at least one fully observed feature"):
        ampute(X, "mar", 0.1, 0)
    with pytest.raises(ValueError, match=r"driver column\(s\) \[0\] have missing values"):
        ampute(X, "mar", 0.1, 0, drivers=[0])


def test_bad_feature_indices():
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        ampute(data(), "mcar", 0.1, 0, features=[5])
    with pytest.raises(ValueError, match="both amputed and MAR drivers"):
        ampute(data(), "mar", 0.1, 0, features=[0, 1], drivers=[1])


def test_bad_random_state():
    with pytest.raises(TypeError, match="random_state must be None, an int or a numpy"):
        ampute(data(), "mcar", 0.1, random_state=0.5)


def test_unknown_format_lists_the_valid_ones(tmp_path):
    (tmp_path / "d.csv").write_text("a,y\n1,0\n")
    with pytest.raises(ValueError, match=r"unknown format 'xls'.*'csv'.*'svmlight'"):
        load_dataset(tmp_path / "d.csv", format="xls")
