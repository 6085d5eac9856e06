"""Experiment configs: the grid, run keys, and clear errors for bad input before anything runs."""

import textwrap

import pytest

from dualsparse.experiments import ConfigError, load_config, loads_config, run_key

BASE = """
[experiment]
name = "t"
seeds = 2

[data]
datasets = ["breast_cancer"]

[split]
test_size = 0.3
validation_size = 0.2

[missingness]
mechanisms = ["mcar", "mar"]
rates = [0.0, 0.2, 0.4]

[representations]
names = ["impute-mean", "observed"]

[models]
names = ["dense", "static", "set", "hgb", "logreg"]
sparsities = [0.8, 0.9]

[models.hgb]
representations = ["native-nan"]
max_iter = 10

[mlp]
hidden_layer_sizes = [8]
max_epochs = 2
"""


def cfg(text=BASE):
    return loads_config(textwrap.dedent(text), source="test.toml")


def errors(text):
    with pytest.raises(ConfigError) as info:
        cfg(text)
    return str(info.value)


def test_grid_count_and_rate_zero_shared_by_mechanisms():
    c = cfg()
    runs = c.runs()
    # per (mechanism-or-none, rate, seed): dense 2 reps + static 2x2 + set 2x2 + hgb 1 + logreg 2 = 13
    per_point = 2 + 4 + 4 + 1 + 2
    n_points = 1 + 2 * 2  # rate 0 once ("none"), rates 0.2 and 0.4 for mcar and mar
    assert len(runs) == per_point * n_points * 2
    assert len({r.key for r in runs}) == len(runs)
    assert {r.mechanism for r in runs if r.rate == 0} == {"none"}
    assert {r.representation for r in runs if r.model == "hgb"} == {"native-nan"}
    assert {r.sparsity for r in runs if r.model in ("dense", "hgb", "logreg")} == {None}
    assert {r.sparsity for r in runs if r.model == "set"} == {0.8, 0.9}
    # experiments keep rows that amputation emptied
    assert all(r.representation_options.get("allow_empty_rows") is True for r in runs)


def test_native_nan_skipped_for_models_that_cannot_take_nan():
    c = cfg(BASE.replace('names = ["impute-mean", "observed"]', 'names = ["impute-mean", "native-nan"]'))
    assert not [r for r in c.runs() if r.model == "dense" and r.representation == "native-nan"]
    assert any("dense x native-nan" in s for s in c.skipped)


def test_kfold_runs_each_fold():
    text = BASE.replace("test_size = 0.3\n", 'method = "kfold"\nfolds = 3\n')
    runs = cfg(text).runs()
    assert {r.fold for r in runs} == {0, 1, 2}
    assert len(runs) == 3 * len(cfg().runs())


def test_run_key_is_deterministic_and_sensitive():
    a, b = cfg().runs(), cfg().runs()
    assert [r.key for r in a] == [r.key for r in b]
    changed = cfg(BASE.replace("max_epochs = 2", "max_epochs = 3")).runs()
    assert {r.key for r in changed if r.model == "set"}.isdisjoint({r.key for r in a if r.model == "set"})
    # baselines do not read [mlp]: their keys do not change
    assert {r.key for r in changed if r.model == "logreg"} == {r.key for r in a if r.model == "logreg"}
    assert run_key({"b": 1, "a": [1, 2]}) == run_key({"a": [1, 2], "b": 1})


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("[split]", "[splits]", "unknown key 'splits' in the config"),
        ("test_size = 0.3", "test_frac = 0.3", "unknown key 'test_frac' in [split] (did you mean 'test_size'?)"),
        ("test_size = 0.3", "test_size = 1.5", "[split] test_size must be a number in (0, 1), got 1.5"),
        ("rates = [0.0, 0.2, 0.4]", "rates = [0.0, 1.2]", "[missingness] rates: 1.2 is not a valid missing rate"),
        ("rates = [0.0, 0.2, 0.4]", "rates = [0.2, 0.2]", "[missingness] rates has duplicates"),
        ("seeds = 2", "seeds = 0", "[experiment] seeds must be >= 1"),
        ("seeds = 2", 'seeds = "two"', "[experiment] seeds must be a positive integer"),
        ('datasets = ["breast_cancer"]', 'datasets = ["breast_cancr"]', "unknown dataset 'breast_cancr'"),
        ('datasets = ["breast_cancer"]', "datasets = []", "[data] datasets is empty"),
        ('mechanisms = ["mcar", "mar"]', 'mechanisms = ["mcar", "nmar"]', "unknown mechanism 'nmar'"),
        ('names = ["impute-mean", "observed"]', 'names = ["impute-mean", "observd"]', "unknown representation 'observd'"),
        ('names = ["dense", "static", "set", "hgb", "logreg"]', 'names = ["dense", "sett"]', "unknown model 'sett' in [models] names (did you mean 'set'?)"),
        ("sparsities = [0.8, 0.9]", "", "give their sparsity levels, e.g. sparsities = [0.9]"),
        ("sparsities = [0.8, 0.9]", "sparsities = [0.9]\nepsilons = [10]", "either sparsities or epsilons, not both"),
        ("sparsities = [0.8, 0.9]", "sparsities = [1.0]", "[models] sparsities: 1.0 is not a valid sparsity"),
        ("max_epochs = 2", "max_epoch = 2", "unknown key 'max_epoch' in [mlp] (did you mean 'max_epochs'?)"),
        ("max_epochs = 2", "max_epochs = 0", "max_epochs must be a positive integer"),
        ("max_epochs = 2", 'activation = "relux"', "unknown activation 'relux'"),
        ("max_epochs = 2", 'algorithm = "set"', "[mlp] algorithm cannot be set here"),
        ("max_epochs = 2", "random_state = 3", "[mlp] random_state cannot be set here"),
        ("max_iter = 10", "max_iters = 10", "unknown key 'max_iters' in [models.hgb]"),
        ("max_iter = 10", "max_iter = -1", "[models.hgb]"),
        ("[models.hgb]", "[models.rigl]", "[models.rigl] configures model 'rigl', which is not in [models] names"),
    ],
)
def test_bad_config_names_the_key(old, new, expected):
    assert old in BASE
    message = errors(BASE.replace(old, new))
    assert expected in message, message


def test_all_problems_reported_at_once():
    text = BASE.replace("test_size = 0.3", "test_size = 2").replace("max_epochs = 2", "max_epoch = 2")
    message = errors(text)
    assert "2 problems" in message and "test_size" in message and "max_epoch" in message


def test_mechanism_option_checked_against_the_data():
    text = BASE.replace("[mlp]", '[missingness.options.mnar]\nkind = "bogus"\n\n[mlp]')
    assert "gives options for mechanism 'mnar', which is not in [missingness] mechanisms" in errors(text)
    text = BASE.replace('["mcar", "mar"]', '["mcar", "mnar"]').replace("[mlp]", '[missingness.options.mnar]\nkind = "bogus"\n\n[mlp]')
    assert "unknown MNAR kind 'bogus'" in errors(text)


def test_epsilon_too_large_for_the_network_is_rejected():
    text = BASE.replace("sparsities = [0.8, 0.9]", "epsilons = [1000]")
    assert "epsilon=1000" in errors(text)


def test_empty_grid_is_an_error():
    text = BASE.replace('names = ["dense", "static", "set", "hgb", "logreg"]', 'names = ["dense"]').replace(
        'names = ["impute-mean", "observed"]', 'names = ["native-nan"]').replace("sparsities = [0.8, 0.9]", "").replace(
        "[models.hgb]\nrepresentations = [\"native-nan\"]\nmax_iter = 10\n", "")
    message = errors(text)
    assert "the grid is empty" in message and "dense cannot take NaN" in message


def test_regression_only_model_with_classification_data():
    text = BASE.replace('names = ["dense", "static", "set", "hgb", "logreg"]', 'names = ["dense", "ridge"]').replace(
        "sparsities = [0.8, 0.9]", "").replace("[models.hgb]\nrepresentations = [\"native-nan\"]\nmax_iter = 10\n", "")
    assert "model 'ridge' supports ('regression',) only" in errors(text)


def test_kfold_rejects_test_size_and_holdout_rejects_folds():
    assert "test_size applies to method = \"holdout\" only" in errors(BASE.replace("test_size = 0.3", 'method = "kfold"\ntest_size = 0.3'))
    assert "folds applies to method = \"kfold\" only" in errors(BASE.replace("test_size = 0.3", "folds = 3"))


def test_missing_file_invalid_toml_and_relative_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\nname = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    good = tmp_path / "good.toml"
    good.write_text(BASE.replace('name = "t"\n', ""))
    assert load_config(good).name == "good"  # default name: the file's stem


def test_default_representation_is_impute_mean():
    text = BASE.replace('[representations]\nnames = ["impute-mean", "observed"]\n', "")
    runs = cfg(text).runs()
    assert {r.representation for r in runs if r.model != "hgb"} == {"impute-mean"}


def test_sparse_matrix_dataset_is_rejected_with_the_reason():
    message = errors(BASE.replace('datasets = ["breast_cancer"]', 'datasets = ["synthetic"]'))
    assert "dataset 'synthetic' is a sparse matrix" in message
    assert "representation 'impute-mean' cannot take dataset 'synthetic'" in message


SPARSE_DATA = """
[experiment]
name = "sparse"
seeds = 2

[data]
datasets = ["synthetic"]

[data.options.synthetic]
n_samples = 200
n_features = 400
density = 0.03

[missingness]
rates = [0.0]

[representations]
names = ["sparse-input"]

[models]
names = ["dense", "set", "logreg"]
sparsities = [0.9]

[mlp]
hidden_layer_sizes = [16]
max_epochs = 2
"""


def test_naturally_sparse_data_runs_through_sparse_input(tmp_path):
    import json

    from dualsparse.experiments import ResultsStore, run_sweep

    config = cfg(SPARSE_DATA)
    summary = run_sweep(config, tmp_path / "r.sqlite", quiet=True)
    assert summary.failed == 0, summary.failures
    with ResultsStore(tmp_path / "r.sqlite", create=False) as store:
        rows = {r["model"]: r for r in store.rows()}
    assert set(rows) == {"dense", "set", "logreg"}
    # the sparse model pays for stored input values only; the dense one for every cell
    assert rows["set"]["flops_train"] < 0.2 * rows["dense"]["flops_train"]
    assert 0.0 <= json.loads(rows["set"]["metrics"])["accuracy"] <= 1.0
    message = errors(SPARSE_DATA.replace("rates = [0.0]", "rates = [0.0, 0.2]"))
    assert "representation 'sparse-input' takes data without missing values" in message


def test_static_checks_come_before_the_data_trials(monkeypatch):
    """Every section is checked statically first; the data trials (loading, trial amputation,
    representations on slices, model parameters) follow, and still report their own problems."""
    from dualsparse.experiments import config as config_module

    loaded = []
    load = config_module.ds_data.load_dataset
    monkeypatch.setattr(config_module.ds_data, "load_dataset", lambda name, **kw: loaded.append(name) or load(name, **kw))
    text = (BASE.replace("test_size = 0.3", "test_size = 0.3\nsize = 2")  # static: an unknown key
            .replace("max_epochs = 2", "max_epochs = 2\nlearning_rate = -1.0")  # a model's own check: needs the data
            .replace("[missingness]", "[missingness.options.mar]\ndriver_fraction = 2.0\n\n[missingness]"))
    with pytest.raises(ConfigError) as info:
        cfg(text)
    problems = info.value.problems
    static = next(i for i, p in enumerate(problems) if "unknown key 'size' in [split]" in p)
    trial = next(i for i, p in enumerate(problems) if p.startswith("[missingness] mar at rate 0.4 fails"))
    params = next(i for i, p in enumerate(problems) if p.startswith("[mlp]/[models.dense]: learning_rate"))
    assert static < trial < params and loaded == ["breast_cancer"]


def test_each_section_has_its_own_validator():
    from dualsparse.experiments.checks import Problems
    from dualsparse.experiments.config import check_missingness, check_split

    problems = Problems()
    assert check_split({"method": "kfold", "test_size": 0.2}, problems) == {
        "method": "kfold", "folds": 5, "validation_size": 0.2, "stratify": True}
    assert problems == ["[split] test_size applies to method = \"holdout\" only; with \"kfold\" each fold is the test "
                        "set once (remove test_size)"]
    problems = Problems()
    miss = check_missingness({"mechanisms": ["mcar", "mcra"], "rates": [0.1, 1.0]}, problems)
    assert miss["rates"] == [0.1] and len(problems) == 2
    assert problems[0].startswith("unknown mechanism 'mcra' in [missingness] mechanisms (did you mean 'mcar'?)")


def test_a_rate_below_the_data_s_own_missing_share_is_caught_before_anything_runs(tmp_path):
    """Rates count the data's own missing cells: real incomplete data already 30 % missing cannot
    be brought to 0.2; validation says so (it used to surface as a failed run per cell)."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    X[rng.random(X.shape) < 0.3] = np.nan
    lines = ["a,b,c,d,e,y"] + [",".join("" if np.isnan(v) else f"{v:.3f}" for v in row) + f",{i % 2}"
                                for i, row in enumerate(X)]
    (tmp_path / "incomplete.csv").write_text("\n".join(lines) + "\n")
    text = BASE.replace('datasets = ["breast_cancer"]', f'datasets = ["{tmp_path / "incomplete.csv"}"]').replace(
        'mechanisms = ["mcar", "mar"]', 'mechanisms = ["mcar"]')
    msg = errors(text.replace("rates = [0.0, 0.2, 0.4]", "rates = [0.0, 0.2, 0.5]"))
    assert "rate 0.2" in msg and "incomplete" in msg and "choose a higher rate" in msg
    assert cfg(text.replace("rates = [0.0, 0.2, 0.4]", "rates = [0.0, 0.4, 0.5]")).rates == [0.0, 0.4, 0.5]


def test_missing_block_lets_mlps_take_native_nan_and_leaves_their_other_runs_as_they_were():
    """[mlp] missing_block = "neumiss": MLPs run on native-nan with the block, and on every other
    representation without it, under the same keys as in a config that never mentions it."""
    plain = BASE.replace('names = ["impute-mean", "observed"]', 'names = ["observed", "native-nan"]')
    with_block = plain.replace("max_epochs = 2\n", 'max_epochs = 2\nmissing_block = "neumiss"\nneumiss_depth = 2\n')
    before, after = cfg(plain), cfg(with_block)
    assert not [r for r in before.runs() if r.model == "set" and r.representation == "native-nan"]
    assert any("set x native-nan" in s and "missing_block" in s for s in before.skipped)
    nan_runs = [r for r in after.runs() if r.model == "set" and r.representation == "native-nan"]
    assert nan_runs and all(r.model_params["missing_block"] == "neumiss" and r.model_params["neumiss_depth"] == 2
                            for r in nan_runs)
    assert {r.key for r in before.runs()} < {r.key for r in after.runs()}
    observed = [r for r in after.runs() if r.representation == "observed"]
    assert observed and all("missing_block" not in r.model_params for r in observed)
