"""Learning-dynamics studies in the experiments system: [dynamics] (tracking, subsets) and [continual].

Validation of the new sections, a tiny tracked grid with subset runs (per-example rows in the
store, Parquet export, report sections), a tiny continual sweep (stored accuracy matrices,
resume, report), and that a run and its study rows are stored together or not at all.
"""

import json
import sqlite3
import textwrap

import pandas as pd
import pytest

from dualsparse.cli import main
from dualsparse.experiments import ConfigError, ResultsStore, loads_config, run_sweep, write_report

TRACK = """
[experiment]
name = "track"
seeds = 2

[data]
datasets = ["digits"]

[split]
test_size = 0.25
validation_size = 0.0

[models]
names = ["dense", "set"]
epsilons = [10]

[mlp]
hidden_layer_sizes = [16]
max_epochs = 3
batch_size = 64
learning_rate = 0.05

[dynamics]
label_noise = 0.1
k = 10

[dynamics.tracking]
el2n_epoch = 1

[dynamics.subsets]
strategies = ["random", "forgetting"]
fractions = [0.5]
train_models = ["set"]
"""

CONTINUAL = """
[experiment]
name = "cont"
seeds = 2

[data]
datasets = ["digits"]

[models]
names = ["dense", "set"]
epsilons = [10]

[mlp]
hidden_layer_sizes = [16]
batch_size = 64
learning_rate = 0.05

[continual]
scenarios = ["class-incremental"]
n_tasks = 5
epochs_per_task = 1
replay = ["none", "random", "forgetting"]
buffer_sizes = [10, 30]
"""


def cfg(text, name="t"):
    return loads_config(textwrap.dedent(text), source="t.toml", default_name=name)


def errors(text):
    with pytest.raises(ConfigError) as info:
        cfg(text)
    return str(info.value)


# ---------------------------------------------------------------------- validation
def test_dynamics_grid_counts_kinds_and_keeps_plain_run_keys():
    c = cfg(TRACK)
    runs = c.runs()
    grid = [r for r in runs if r.kind == "grid"]
    subsets = [r for r in runs if r.kind == "subset"]
    assert len(grid) == 4 and len(subsets) == 2 * 1 * 1 * 2  # strategies x fractions x train models x seeds
    assert all(r.dynamics["tracking"]["el2n_epoch"] == 1 and r.dynamics["label_noise"] == 0.1 for r in grid)
    refs = {r.key: r for r in grid}
    for s in subsets:  # the reference is the dense run of the same seed
        ref = refs[s.subset["reference"]]
        assert ref.model == "dense" and ref.seed == s.seed and s.model == "set"
    # a config without study sections keeps the keys it had (no new field in the hashed spec)
    plain = cfg(TRACK.split("[dynamics]")[0]).runs()
    assert all(set(r.to_dict()) == {"experiment", "dataset", "dataset_options", "task", "split", "fold", "mechanism",
                                    "mechanism_options", "apply_to", "per_feature", "rate", "representation",
                                    "representation_options", "model", "model_params", "sparsity", "epsilon", "seed"}
               for r in plain)
    assert {r.key for r in plain}.isdisjoint({r.key for r in grid})  # tracking and noise change the runs


def test_continual_grid_counts():
    runs = cfg(CONTINUAL).runs()
    # per model and seed: naive once + 2 strategies x 2 buffers
    assert len(runs) == 2 * 2 * (1 + 2 * 2) and {r.kind for r in runs} == {"continual"}
    naive = [r for r in runs if r.continual["replay"] == "none"]
    assert {r.continual["buffer_size"] for r in naive} == {0}
    assert "stats_source" not in next(r for r in runs if r.continual["replay"] == "random").continual


@pytest.mark.parametrize("edit, message", [
    (("[dynamics]\n", "[dynamics]\nlabel_nosie = 0.1\n"), "unknown key 'label_nosie' in [dynamics] (did you mean 'label_noise'?)"),
    (("el2n_epoch = 1", "el2n_epoch = 1\nhistory = true"), "[dynamics.tracking] history cannot be set"),
    (("el2n_epoch = 1", "el2n_epochs = 1"), "unknown key 'el2n_epochs' in [dynamics.tracking] (did you mean 'el2n_epoch'?)"),
    (("el2n_epoch = 1", "el2n_epoch = 3"), "el2n_epoch = 3 is not reached: model 'dense' trains 3 epochs"),
    (('"forgetting"]', '"forgeting"]'), "unknown strategy 'forgeting' in [dynamics.subsets] strategies (did you mean 'forgetting'?); valid: random,"),
    (("fractions = [0.5]", "fractions = [1.5]"), "[dynamics.subsets] fractions: 1.5 is not a share of rows in (0, 1)"),
    (('train_models = ["set"]', 'train_models = ["rigl"]'), "unknown model 'rigl' in [dynamics.subsets] train_models"),
    (('"forgetting"]', '"grand"]'), "strategy 'grand' needs GraNd scores: set [dynamics.tracking] grand_epoch"),
    (("label_noise = 0.1", "label_noise = 1.0"), "[dynamics] label_noise must be a share of training labels to flip in [0, 1)"),
    (("k = 10", "reference = \"logreg\""), "unknown [dynamics] reference 'logreg'"),
])
def test_dynamics_section_errors_name_the_key_and_choices(edit, message):
    old, new = edit
    assert old in TRACK
    assert message in errors(TRACK.replace(old, new, 1))


@pytest.mark.parametrize("edit, message", [
    (("epochs_per_task = 1", "epochs_per_tasks = 1"), "unknown key 'epochs_per_tasks' in [continual] (did you mean 'epochs_per_task'?)"),
    (('"class-incremental"', '"class-incrementl"'), "unknown scenario 'class-incrementl' in [continual] scenarios"),
    (('"forgetting"]', '"forgotten"]'), "unknown replay strategy 'forgotten' in [continual] replay"),
    (("buffer_sizes = [10, 30]", "buffer_sizes = [5, 30]"), "5 rows is below the 10 classes of dataset 'digits'"),
    (("n_tasks = 5", "n_tasks = 11"), "n_tasks = 11 is more than the 10 classes"),
    (("[continual]", "[split]\ntest_size = 0.3\n\n[continual]"), "[split] does not apply to a continual study"),
    (('names = ["dense", "set"]', 'names = ["dense", "set", "logreg"]'), "remove logreg from [models] names"),
    (("buffer_sizes = [10, 30]\n", ""), "[continual] buffer_sizes is missing"),
])
def test_continual_section_errors_name_the_key_and_choices(edit, message):
    old, new = edit
    assert old in CONTINUAL
    assert message in errors(CONTINUAL.replace(old, new, 1))


def test_dynamics_and_continual_exclusive_and_all_problems_at_once():
    text = CONTINUAL + "\n[dynamics]\nlabel_noise = 0.1\nbogus = 1\n"
    msg = errors(text)
    assert "[continual] and [dynamics] cannot share a config" in msg and "unknown key 'bogus' in [dynamics]" in msg


def test_track_examples_is_not_an_mlp_setting():
    assert "track_examples cannot be set here: add a [dynamics] section" in errors(
        TRACK.replace("max_epochs = 3", "max_epochs = 3\ntrack_examples = true"))


# ---------------------------------------------------------------------- a tiny tracking + subset study
@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    d = tmp_path_factory.mktemp("track")
    (d / "track.toml").write_text(textwrap.dedent(TRACK))
    store = d / "r.sqlite"
    assert main(["run", str(d / "track.toml"), "--store", str(store), "--quiet"]) == 0
    return d, store


def test_tracked_runs_store_one_row_per_training_example(tracked):
    _, store = tracked
    conn = sqlite3.connect(store)
    runs = conn.execute("SELECT run_key, model, n_train, n_test FROM runs WHERE kind = 'grid'").fetchall()
    assert len(runs) == 4
    for key, model, n_train, n_test in runs:
        count = dict(conn.execute("SELECT split, COUNT(*) FROM examples WHERE run_key = ? GROUP BY split", (key,)).fetchall())
        assert count == {"train": n_train, "test": n_test}
        noisy = conn.execute("SELECT SUM(noisy) FROM examples WHERE run_key = ? AND split = 'train'", (key,)).fetchone()[0]
        assert noisy == round(0.1 * n_train)
        assert conn.execute("SELECT COUNT(*) FROM epochs WHERE run_key = ?", (key,)).fetchone()[0] == 3
    # the same training rows and flipped labels for every seed and model
    per_run = conn.execute("SELECT run_key, group_concat(example || ':' || label) FROM "
                           "(SELECT * FROM examples WHERE split = 'train' ORDER BY run_key, example) GROUP BY run_key").fetchall()
    assert len({rows for _, rows in per_run}) == 1
    # SET's topology forgetting is summarised in its metrics
    metrics = json.loads(conn.execute("SELECT metrics FROM runs WHERE model = 'set' AND kind = 'grid'").fetchone()[0])
    assert metrics["topology_updates"] == 2 and "mean_forgetting_events" in metrics


def test_subset_runs_train_on_the_chosen_rows(tracked):
    _, store = tracked
    with ResultsStore(store, create=False) as s:
        sub = s.table("subsets")
        grid = s.dataframe(expand=False)
    assert len(sub) == 4 and set(sub["strategy"]) == {"random", "forgetting"}
    n_all = int(grid[grid["kind"] == "grid"]["n_train"].iloc[0])
    assert (sub["n_all"] == n_all).all() and (abs(sub["n_subset"] - n_all / 2) <= 10).all()
    assert ((0 < sub["flops_ratio"]) & (sub["flops_ratio"] < 0.5)).all()  # half the rows, sparse weights
    runs = grid.set_index("run_key")
    assert (runs.loc[sub["run_key"], "n_train"].to_numpy() == sub["n_subset"].to_numpy()).all()
    # same reference and strategy -> the same rows for every train model; different strategies differ
    rows = {(r.strategy, r.seed): tuple(json.loads(r.examples)) for r in sub.itertuples()}
    assert rows[("random", 0)] != rows[("forgetting", 0)]
    # the forgetting strategy keeps the most forgotten rows first: more flipped labels than random
    assert sub[sub["strategy"] == "forgetting"]["noisy_kept"].mean() > sub[sub["strategy"] == "random"]["noisy_kept"].mean()


def test_examples_export_to_parquet(tracked, tmp_path, capsys):
    _, store = tracked
    out = tmp_path / "examples.parquet"
    assert main(["results", "--store", str(store), "--table", "examples", "--format", "parquet", "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    with ResultsStore(store, create=False) as s:
        runs = s.dataframe(expand=False)
    grid = runs[runs["kind"] == "grid"]
    assert len(frame) == int((grid["n_train"] + grid["n_test"]).sum())
    assert {"run_key", "example", "split", "forgetting_events", "el2n", "confidence", "variability", "model", "seed"} <= set(frame)
    assert not frame.duplicated(["run_key", "example"]).any()
    assert main(["results", "--store", str(store), "--table", "subsets", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("run_key,reference_key,stats_from,strategy")


def test_report_has_dynamics_and_subset_sections(tracked, tmp_path):
    _, store = tracked
    paths = write_report(store, tmp_path / "rep")
    md = open(paths["markdown"]).read()
    assert "## Learning dynamics" in md and "## Data subsets" in md and "## Continual learning" not in md
    assert "SET MLP (ε 10), forgetting events: ρ" in md and "noise floor of" in md and "disattenuated" in md
    assert "| model | forgetting events | forgetting between epoch-end evaluations | EL2N | confidence |" in md
    assert "Compression-identified exemplars of SET MLP (ε 10)" in md and "Topology updates of SET MLP (ε 10)" in md
    assert "SET MLP (ε 10), 0.5 of the rows: best strategy" in md
    figures = {p.split("/")[-1] for p in paths["figures"]}
    assert {"track_digits_none_0.0_impute-mean_dynamics_forgetting_hist.png", "track_digits_none_0.0_impute-mean_dynamics_data_map.png",
            "track_digits_none_0.0_impute-mean_subsets_accuracy_vs_fraction.png"} <= figures
    assert set(paths["tables"]) >= {"dynamics_summary", "dynamics_agreement", "subsets_summary"}


# ---------------------------------------------------------------------- a tiny continual study
def test_continual_sweep_resumes_and_reports(tmp_path):
    c = cfg(CONTINUAL, name="cont")
    path = tmp_path / "c.sqlite"
    first = run_sweep(c, path, quiet=True, max_runs=7)  # an interrupted sweep
    assert first.ran == 7 and first.failed == 0
    again = run_sweep(c, path, quiet=True)
    assert (again.skipped, again.ran, again.failed) == (7, 13, 0)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT run_key) FROM runs").fetchone() == (20, 20)
    assert conn.execute("SELECT COUNT(*) FROM continual JOIN runs USING (run_key)").fetchone()[0] == 20
    assert {k for (k,) in conn.execute("SELECT run_key FROM runs")} == {r.key for r in c.runs()}
    matrix, acc, bwt = conn.execute("SELECT accuracy_matrix, average_accuracy, backward_transfer FROM continual "
                                    "WHERE replay = 'none' LIMIT 1").fetchone()
    R = json.loads(matrix)
    assert len(R) == 5 and all(len(r) == 5 for r in R)
    assert acc == pytest.approx(sum(R[-1]) / 5) and bwt == pytest.approx(sum(R[4][j] - R[j][j] for j in range(4)) / 4)
    assert run_sweep(c, path, quiet=True).ran == 0

    paths = write_report(path, tmp_path / "rep")
    md = open(paths["markdown"]).read()
    assert "## Continual learning" in md and "## Learning dynamics" not in md and "## Headline" not in md
    assert "Smallest buffer (rows, share of the training rows) whose mean BWT is ≥ -0.10" in md and "naive fine-tuning ACC" in md
    figures = {p.split("/")[-1] for p in paths["figures"]}
    assert {"cont_digits_impute-mean_class-incremental_continual_bwt_vs_buffer.png",
            "cont_digits_impute-mean_class-incremental_continual_accuracy_matrix.png"} <= figures


# ---------------------------------------------------------------------- store: all or nothing, upgrade
def test_a_run_and_its_study_rows_are_stored_together_or_not_at_all(tmp_path):
    from test_experiments_store import fake_result

    with ResultsStore(tmp_path / "r.sqlite") as store:
        bad = fake_result("a")
        bad["continual"] = {"scenario": "class-incremental", "replay": "none", "buffer_size": 0, "n_tasks": object()}
        with pytest.raises(Exception):
            store.write_result(bad)
        assert store.count() == 0 and store.count_rows("continual") == 0
        good = fake_result("b")
        good["continual"] = {"scenario": "class-incremental", "replay": "none", "buffer_size": 0, "n_tasks": 2,
                             "accuracy_matrix": [[1.0, 0.0], [0.5, 1.0]]}
        assert store.write_result(good)
        assert store.count_rows("continual", "b") == 1
        assert json.loads(store.table("continual")["accuracy_matrix"][0]) == [[1.0, 0.0], [0.5, 1.0]]


def test_version_1_store_is_upgraded_in_place(tmp_path):
    from test_experiments_store import fake_result

    from dualsparse.experiments.store import RUN_COLUMNS

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    old = [(c, t) for c, t in RUN_COLUMNS if c != "kind"]
    conn.execute(f"CREATE TABLE runs ({', '.join(f'{c} {t}' for c, t in old)})")
    conn.execute("INSERT INTO runs (run_key, experiment, dataset, task, mechanism, rate, representation, model, seed, "
                 "config, metrics) VALUES ('old', 'e', 'd', 'classification', 'none', 0, 'r', 'dense', 0, '{}', '{}')")
    conn.commit()
    conn.close()
    with ResultsStore(path) as store:
        assert store.rows()[0]["kind"] == "grid"
        store.write_result(fake_result("new"))
        assert store.count() == 2 and store.count_rows("examples") == 0


def test_subset_payload_needs_its_reference(tmp_path):
    from dualsparse.experiments.tracking_study import subset_payload

    spec = next(r for r in cfg(TRACK).runs() if r.kind == "subset")
    with ResultsStore(tmp_path / "empty.sqlite") as store, pytest.raises(LookupError, match="reference run"):
        subset_payload(spec, store)
