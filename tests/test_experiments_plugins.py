"""What plugs into experiments from outside the package: a study kind of one's own, and a topology
algorithm of one's own, which becomes a model usable in configs, --dry-run and reports."""

import textwrap
from pathlib import Path

import pytest

from dualsparse.dst import SET, register_algorithm, unregister_algorithm
from dualsparse.experiments import (ConfigError, ResultsStore, StudyKind, StudyTable, describe, export_results,
                                    list_models, loads_config, model_info, register_study_kind, run_sweep,
                                    unregister_study_kind, write_report)
from dualsparse.experiments.checks import is_int
from dualsparse.experiments.study import kind_for

BASE = """
[experiment]
name = "plug"
seeds = 1

[data]
datasets = ["iris"]

[split]
validation_size = 0.0

[models]
names = ["dense", "logreg"]

[mlp]
hidden_layer_sizes = [8]
max_epochs = 2
batch_size = 16
"""


# ---------------------------------------------------------------------- a toy study kind
class ToyStudy(StudyKind):
    """Repeats every dense run ``repeats`` times as toy runs, each storing three rows of its own table."""

    name = "toy"
    section = "toy"
    tables = {"toy_rows": StudyTable((("run_key", "TEXT NOT NULL"), ("i", "INTEGER NOT NULL"), ("value", "REAL")),
                                     ("run_key", "i"), "toy_rows", "records")}

    def validate(self, section, ctx, problems):
        problems.unknown_keys("[toy]", section, ("repeats",))
        repeats = section.get("repeats", 2)
        if not is_int(repeats) or repeats < 1:
            problems.append(f"[toy] repeats must be a positive integer, got {repeats!r}")
            repeats = 1
        return {"repeats": repeats}

    def expand(self, cfg, settings, runs):
        return runs + [r.replace(kind="toy", study={"repeat": i})
                       for r in runs if r.model == "dense" for i in range(settings["repeats"])]

    def describe(self, cfg, settings, runs):
        return [f"  toy             {settings['repeats']} repeats of every dense run"]

    def execute(self, spec, callbacks=None, payload=None):
        i = spec.study["repeat"]
        return {"metrics": {"accuracy": i / 10}, "n_train": 3,
                "toy_rows": [{"i": j, "value": float(i * j)} for j in range(3)]}

    def report(self, store, frame, out_dir, plots, experiment=None):
        rows = store.table("toy_rows", experiment)
        if rows.empty:
            return {}
        return {"head": [("h", 2, "Toy study"), ("p", f"{len(rows)} toy rows, values summing to {rows['value'].sum():g}.")],
                "methods": ["Toy runs: repeats of the dense runs."]}


@pytest.fixture
def toy():
    kind = register_study_kind(ToyStudy())
    yield kind
    unregister_study_kind("toy")


def test_a_study_kind_from_outside_plugs_into_config_runs_store_and_report(toy, tmp_path):
    cfg = loads_config(textwrap.dedent(BASE) + "\n[toy]\nrepeats = 3\n", default_name="plug")
    runs = cfg.runs()
    assert [r.kind for r in runs] == ["grid", "grid", "toy", "toy", "toy"]
    assert all(kind_for(r) is toy for r in runs if r.kind == "toy")
    text = describe(cfg)
    assert "toy             3 repeats of every dense run" in text and "run kinds       grid 2, toy 3" in text
    with ResultsStore(tmp_path / "r.sqlite") as store:
        summary = run_sweep(cfg, store, quiet=True)
        assert summary.failed == 0 and summary.ran == 5
        assert store.count_rows("toy_rows") == 9
        assert sorted(store.table("toy_rows")["value"]) == sorted(float(i * j) for i in range(3) for j in range(3))
        assert run_sweep(cfg, store, quiet=True).ran == 0  # resumes like any run
    md = Path(write_report(tmp_path / "r.sqlite", tmp_path / "rep", plots=False)["markdown"]).read_text()
    assert "## Toy study" in md and "9 toy rows, values summing to 9." in md and "Toy runs: repeats" in md
    assert export_results(tmp_path / "r.sqlite", "csv", out=tmp_path / "toy.csv", table="toy_rows") == 9


def test_a_plug_in_kind_runs_in_worker_processes_too(toy, tmp_path):
    """Spawned workers import only the built-in kinds: the driver sends the kind with each run."""
    cfg = loads_config(textwrap.dedent(BASE) + "\n[toy]\nrepeats = 2\n", default_name="plug")
    with ResultsStore(tmp_path / "r.sqlite") as store:
        summary = run_sweep(cfg, store, jobs=2, quiet=True)
        assert summary.failed == 0 and summary.ran == 4
        assert store.count_rows("toy_rows") == 6


def test_a_study_kinds_section_is_validated_with_the_rest(toy):
    with pytest.raises(ConfigError) as err:
        loads_config(textwrap.dedent(BASE) + "\n[toy]\nrepeats = 0\nrepaets = 2\n")
    assert "[toy] repeats must be a positive integer, got 0" in str(err.value)
    assert "unknown key 'repaets' in [toy] (did you mean 'repeats'?)" in str(err.value)


def test_an_unregistered_section_is_an_unknown_section():
    with pytest.raises(ConfigError, match=r"unknown key 'toy' in the config \(top-level sections\)"):
        loads_config(textwrap.dedent(BASE) + "\n[toy]\nrepeats = 3\n")


def test_register_study_kind_refuses_a_taken_name_or_section(toy):
    with pytest.raises(ValueError, match="already registered"):
        register_study_kind(ToyStudy())  # a new instance under a taken name
    other = type("Other", (ToyStudy,), {"name": "other"})()
    with pytest.raises(ValueError, match=r"section \[toy\] already belongs to study kind 'toy'"):
        register_study_kind(other)


# ---------------------------------------------------------------------- an algorithm of one's own is a model
class HalfSET(SET):
    """SET that rewires half as many connections by default."""

    name = "half-set"
    display_name = "half-zeta SET MLP"

    def __init__(self, zeta: float = 0.15, every="epoch", grow_init: str = "zero"):
        super().__init__(zeta=zeta, every=every, grow_init=grow_init)


@pytest.fixture
def half_set():
    register_algorithm(HalfSET)
    yield HalfSET
    unregister_algorithm("half-set")


def test_a_registered_algorithm_is_a_model_in_configs_dry_run_and_reports(half_set, tmp_path):
    assert list_models().index("half-set") < list_models().index("hgb")  # the MLPs first, then the baselines
    info = model_info("half-set")
    assert (info.family, info.sparse, info.display_name) == ("mlp", True, "half-zeta SET MLP")
    text = textwrap.dedent(BASE).replace('names = ["dense", "logreg"]', 'names = ["dense", "half-set"]\nsparsities = [0.5]')
    cfg = loads_config(text + "\n[models.half-set]\nzeta = 0.2\n", default_name="plug")
    assert {r.model for r in cfg.runs()} == {"dense", "half-set"}
    assert "models          dense, half-set" in describe(cfg)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert run_sweep(cfg, store, quiet=True).failed == 0
    md = Path(write_report(tmp_path / "r.sqlite", tmp_path / "rep", plots=False)["markdown"]).read_text()
    assert "half-zeta SET MLP (impute-mean, sparsity 0.5)" in md


def test_messages_name_the_registered_models(half_set):
    with pytest.raises(ConfigError) as err:
        loads_config(textwrap.dedent(BASE).replace('names = ["dense", "logreg"]', 'names = ["dense", "half-sett"]'))
    assert "unknown model 'half-sett' in [models] names (did you mean 'half-set'?)" in str(err.value)
    with pytest.raises(ConfigError, match=r"\[continual\] trains dualsparse MLPs with partial_fit; remove logreg "
                                          r"from \[models\] names \(valid: dense, static, set, rigl, .*half-set\)"):
        loads_config(textwrap.dedent(BASE) + "\n[continual]\nreplay = [\"none\"]\n")


def test_unregistered_model_is_unknown():
    with pytest.raises(ConfigError, match="unknown model 'half-set'"):
        loads_config(textwrap.dedent(BASE).replace('names = ["dense", "logreg"]', 'names = ["half-set"]'))


def test_every_estimator_parameter_but_the_excluded_may_be_set():
    """What [mlp] and [models.<name>] accept is read from the estimator (so a parameter the estimator
    gains, such as algorithm_options, is accepted and passed on without an edit here)."""
    from dualsparse import SparseMLPClassifier
    from dualsparse.experiments.models import MLP_PARAM_EXCLUDED, make_estimator, mlp_param_names

    assert set(mlp_param_names()) == set(SparseMLPClassifier().get_params()) - set(MLP_PARAM_EXCLUDED)
    est = make_estimator("set", "classification", {"zeta": 0.1, "hidden_layer_sizes": [4, 3]}, sparsity=0.5)
    assert (est.zeta, est.hidden_layer_sizes, est.sparsity, est.algorithm) == (0.1, (4, 3), 0.5, "set")
