"""Serial, --jobs 2 and a Dask cluster store identical results for the same seeds."""

import json
import textwrap

import pytest

from dualsparse.experiments import ResultsStore, loads_config, run_sweep

CONFIG = """
[experiment]
name = "parallel"
seeds = 2

[data]
datasets = ["breast_cancer"]

[missingness]
mechanisms = ["mcar"]
rates = [0.3]

[representations]
names = ["observed"]

[models]
names = ["dense", "set", "hgb", "logreg"]
sparsities = [0.8]

[models.hgb]
representations = ["native-nan"]
max_iter = 10

[mlp]
hidden_layer_sizes = [16]
max_epochs = 3
"""


def results(path):
    with ResultsStore(path, create=False) as store:
        return {r["run_key"]: (json.loads(r["metrics"]), r["flops_train"], r["flops_inference"], r["density"])
                for r in store.rows()}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    path = tmp_path_factory.mktemp("serial") / "r.sqlite"
    cfg = loads_config(textwrap.dedent(CONFIG))
    summary = run_sweep(cfg, path, quiet=True)
    assert summary.failed == 0 and summary.ran == len(cfg.runs()) == 8
    return results(path)


def test_jobs_2_matches_serial(serial, tmp_path):
    cfg = loads_config(textwrap.dedent(CONFIG))
    summary = run_sweep(cfg, tmp_path / "r.sqlite", jobs=2, quiet=True)
    assert summary.failed == 0, summary.failures
    assert results(tmp_path / "r.sqlite") == serial


def test_dask_cluster_matches_serial(serial, tmp_path):
    from distributed import LocalCluster

    cfg = loads_config(textwrap.dedent(CONFIG))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        summary = run_sweep(cfg, tmp_path / "r.sqlite", dask=cluster.scheduler_address, quiet=True)
    assert summary.failed == 0, summary.failures
    assert results(tmp_path / "r.sqlite") == serial
