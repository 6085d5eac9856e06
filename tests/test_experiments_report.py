"""Reports: the headline follows the data (and says when sparse loses), tables, plots, statistics."""

import math
import re

import numpy as np
import pytest
from scipy import stats

from dualsparse.experiments import ResultsStore, StoreError, write_report
from dualsparse.experiments.stats import mean_ci, paired, ratio_ci


def result(model, rate, seed, accuracy, flops, representation="impute-mean", sparsity=None, val=None, *,
           fit_time=1.0, dataset="toy", mechanism="mcar"):
    mechanism = "none" if rate == 0 else mechanism
    key = f"{dataset}-{mechanism}-{model}-{representation}-{rate}-{seed}-{sparsity}"
    config = {"experiment": "rep", "dataset": dataset, "dataset_options": {}, "task": "classification",
              "split": {"method": "holdout"}, "fold": None, "mechanism": mechanism,
              "mechanism_options": {}, "apply_to": "train", "per_feature": False, "rate": rate,
              "representation": representation, "representation_options": {}, "model": model, "model_params": {},
              "sparsity": sparsity, "epsilon": None, "seed": seed}
    acc = float(accuracy)
    return {"status": "ok", "run_key": key, "config": config,
            "metrics": {"accuracy": acc, "balanced_accuracy": acc, "roc_auc": min(1.0, acc + 0.02), "log_loss": 1 - acc,
                        "val_accuracy": acc if val is None else val},
            "flops": {"train": flops, "train_dense": 1e9, "inference_per_sample": flops / 1e4,
                      "inference_per_sample_dense": 1e5},
            "density": 1.0 if sparsity is None else 1 - sparsity, "epochs": 10, "n_train": 100, "n_val": 20,
            "n_test": 30, "n_features": 5, "missing_fraction_train": rate, "missing_fraction_test": 0.0,
            "fit_time_s": fit_time, "predict_time_s": 0.1, "represent_time_s": 0.1, "wall_time_s": 1.2,
            "peak_memory_mb": 300.0, "memory_increase_mb": 1.0, "versions": {"dualsparse": "0.1.0"}, "warnings": [],
            "host": "h", "started_at": "a", "finished_at": "b"}


@pytest.fixture()
def store(tmp_path):
    """Five seeds; sparse wins clearly at rate 0, loses clearly at 0.4, ties within noise at 0.2."""
    rng = np.random.default_rng(0)
    s = ResultsStore(tmp_path / "r.sqlite")
    for seed in range(5):
        noise = rng.normal(0, 0.005, size=8)
        s.write_result(result("dense", 0.0, seed, 0.90 + noise[0], 1e9))
        s.write_result(result("set", 0.0, seed, 0.95 + noise[1], 1e8, "observed", 0.9))
        s.write_result(result("dense", 0.2, seed, 0.90 + noise[2], 1e9))
        s.write_result(result("set", 0.2, seed, 0.90 + noise[3], 0.9e8, "observed", 0.9))
        s.write_result(result("dense", 0.4, seed, 0.90 + noise[4], 1e9))
        s.write_result(result("set", 0.4, seed, 0.80 + noise[5], 0.8e8, "observed", 0.9))
        s.write_result(result("hgb", 0.2, seed, 0.97 + noise[6], float("nan"), "native-nan"))
        # a worse sparse configuration that must not be chosen
        s.write_result(result("static", 0.4, seed, 0.50 + noise[7], 1e8, "observed", 0.9))
    return s


def test_headline_follows_the_data(store, tmp_path):
    paths = write_report(store, tmp_path / "out")
    md = open(paths["markdown"]).read()
    html = open(paths["html"]).read()
    head = md.split("## Details")[0]
    assert head.startswith("# dualsparse experiment report") and "## Headline" in head
    assert "significantly better than the best dense MLP at 1 rate (0), significantly worse at 1 rate (0.4), and not significantly different at 1 rate (0.2)" in head
    assert "**Sparse loses at rate 0.4.**" in head
    assert "rate 0.4: **Sparse loses** (significant). Best sparse: SET MLP (observed, sparsity 0.9)" in head
    # (static was worse at 0.4: not chosen)
    assert "rate 0: Sparse wins (significant)" in head
    assert "rate 0.2: No significant difference" in head
    assert "chosen by validation accuracy" in head
    assert "Best baseline: HistGradientBoosting (native-nan), 0.96" in head
    assert "0.1× dense" in head  # FLOP ratio at rate 0
    assert "<strong>Sparse loses</strong>" in html and "<table>" in html
    # tables of mean ± CI per configuration and rate
    assert "### Test accuracy (mean ± 95 % CI over replicates)" in md
    assert "| SET MLP (observed, sparsity 0.9) | 5 |" in md
    assert "### Training FLOPs (mean ± 95 % CI)" in md
    # plots
    names = sorted(p.split("/")[-1] for p in paths["figures"])
    assert names == ["overview_sparse_vs_dense.png", "rep_toy_mcar_accuracy_vs_rate.png", "rep_toy_mcar_accuracy_vs_sparsity.png",
                     "rep_toy_mcar_train_flops_vs_rate.png"]
    for p in paths["figures"]:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert 'src="figures/rep_toy_mcar_accuracy_vs_rate.png"' in html


def test_selection_by_validation_not_test(tmp_path):
    s = ResultsStore(tmp_path / "r.sqlite")
    for seed in range(3):
        s.write_result(result("dense", 0.1, seed, 0.9 + 0.001 * seed, 1e9))
        # high test accuracy but low validation accuracy: must not be selected
        s.write_result(result("set", 0.1, seed, 0.99, 1e8, "observed", 0.9, val=0.5))
        s.write_result(result("set", 0.1, seed, 0.85 + 0.001 * seed, 1e8, "impute-mean", 0.9, val=0.95))
    md = open(write_report(s, tmp_path / "o", plots=False)["markdown"]).read()
    assert "Best sparse: SET MLP (impute-mean, sparsity 0.9)" in md


def test_empty_store_is_a_clear_error(tmp_path):
    ResultsStore(tmp_path / "e.sqlite").close()
    with pytest.raises(StoreError, match="no finished runs"):
        write_report(tmp_path / "e.sqlite", tmp_path / "o")
    with pytest.raises(StoreError, match="no results store"):
        write_report(tmp_path / "missing.sqlite", tmp_path / "o")


def test_mean_ci_is_the_t_interval():
    x = [0.9, 0.92, 0.95, 0.91, 0.93]
    mean, half, n = mean_ci(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert n == 5 and math.isclose(mean, np.mean(x)) and math.isclose(half, (hi - lo) / 2)
    assert math.isnan(mean_ci([0.5])[1])


def test_paired_tests():
    a = [0.9, 0.92, 0.95, 0.91, 0.93]
    b = [0.8, 0.83, 0.84, 0.82, 0.81]
    c = paired(a, b)
    assert c.n == 5 and c.significant and math.isclose(c.p_ttest, stats.ttest_rel(a, b).pvalue)
    assert math.isclose(c.p_wilcoxon, 0.0625)  # the smallest two-sided Wilcoxon p with 5 pairs
    same = paired(a, a)
    assert same.note == "identical on every seed" and not same.significant
    const = paired([2.0, 3.0], [1.0, 2.0])
    assert const.note == "constant difference on every seed" and const.p_ttest is None


def test_ratio_ci_is_the_geometric_mean_with_a_log_scale_interval():
    a, b = [2.0, 2.4, 1.8, 2.2], [1.0, 1.1, 0.95, 1.05]
    logs = np.log(np.divide(a, b))
    half = stats.t.ppf(0.975, 3) * logs.std(ddof=1) / math.sqrt(4)
    rc = ratio_ci(a, b)
    assert rc.n == 4 and math.isclose(rc.ratio, math.exp(logs.mean()))
    assert math.isclose(rc.low, math.exp(logs.mean() - half)) and math.isclose(rc.high, math.exp(logs.mean() + half))
    assert rc.direction == "higher" and ratio_ci(b, a).direction == "lower"
    assert ratio_ci([1.0, 2.0], [2.0, 1.0]).direction == "unclear"
    one = ratio_ci([3.0, float("nan")], [1.0, 1.0])  # one usable pair: a point estimate, no interval
    assert one.n == 1 and math.isclose(one.ratio, 3.0) and math.isnan(one.low) and one.direction == "higher"
    assert ratio_ci([], []).direction == "none"


@pytest.fixture()
def timed_store(tmp_path):
    """Sparse needs 10x fewer FLOPs everywhere; its fits take about 2x longer at rate 0 and half as long at 0.3."""
    rng = np.random.default_rng(1)
    s = ResultsStore(tmp_path / "t.sqlite")
    for seed in range(5):
        jitter = rng.normal(0, 0.02, size=4)
        s.write_result(result("dense", 0.0, seed, 0.90 + jitter[0] / 10, 1e9, fit_time=1.0 + jitter[0]))
        s.write_result(result("set", 0.0, seed, 0.90 + jitter[1] / 10, 1e8, "observed", 0.9, fit_time=2.0 + jitter[1]))
        s.write_result(result("dense", 0.3, seed, 0.90 + jitter[2] / 10, 1e9, fit_time=1.0 + jitter[2]))
        s.write_result(result("set", 0.3, seed, 0.90 + jitter[3] / 10, 1e8, "observed", 0.9, fit_time=0.5 + jitter[3] / 4))
    return s


def test_headline_gives_the_fit_time_ratio_beside_the_flop_ratio(timed_store, tmp_path):
    paths = write_report(timed_store, tmp_path / "out", plots=False)
    md = open(paths["markdown"]).read()
    head = md.split("## Details")[0]
    header = next(line for line in head.splitlines() if line.startswith("| rate |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[-2:] == ["FLOP ratio", "fit-time ratio [95 % CI]"]
    rows = {line.split("|")[1].split()[0]: [c.strip() for c in line.strip("|").split("|")]
            for line in head.splitlines() if line.startswith("| 0")}
    assert rows["0"][-2] == "0.1" and rows["0"][-1].startswith("2") and rows["0"][-1].endswith(", slower")
    assert rows["0.3"][-2] == "0.1" and rows["0.3"][-1].startswith("0.5") and rows["0.3"][-1].endswith(", faster")
    low, high = map(float, re.search(r"\[([\d.]+), ([\d.]+)\]", rows["0"][-1]).groups())
    assert 1.9 < low < 2.0 < high < 2.1
    # the sentences say it in words, next to the FLOPs
    assert "0.1× dense (10× fewer)" in head
    at_0, at_03 = [line for line in head.splitlines() if line.startswith("- rate ")]
    assert re.search(r"Fit time 2(\.\d+)? s vs 1(\.\d+)? s: 2(\.\d+)?× dense \[95 % CI [\d.]+, [\d.]+; "
                     r"geometric mean of 5 per-replicate ratios\], sparse slower despite 10× fewer FLOPs\.", at_0)
    assert re.search(r"Fit time 0\.5(\d+)? s vs [\d.]+ s: 0\.5\d*× dense \[95 % CI [\d.]+, [\d.]+; "
                     r"geometric mean of 5 per-replicate ratios\], sparse faster\.", at_03)
    assert re.search(r"Fit time: the best sparse MLP took longer than the best dense MLP at 1 rate \(0\b[^)]*\), "
                     r"less time at 1 rate \(0\.3\b", head)
    assert re.search(r"\*\*Fewer FLOPs, yet slower: at rate 0\b[^*]* the sparse fits took longer than the dense ones\.\*\*",
                     head)
    html = open(paths["html"]).read()
    assert "<th>fit-time ratio [95 % CI]</th>" in html and "sparse slower despite 10× fewer FLOPs" in html
    # and comparisons.csv has every sparse model's comparison with the time ratio and its interval
    import pandas as pd

    cmp = pd.read_csv(paths["tables"]["comparisons"])
    assert list(cmp["rate"]) == [0.0, 0.3] and list(cmp["time"]) == ["slower", "faster"]
    assert ((cmp["time_low"] < cmp["time_ratio"]) & (cmp["time_ratio"] < cmp["time_high"])).all()


def test_a_study_over_several_datasets_opens_with_the_overview_figure(tmp_path):
    rng = np.random.default_rng(2)
    s = ResultsStore(tmp_path / "m.sqlite")
    for dataset in ("iris", "wine"):
        for seed in range(3):
            for mechanism in ("mcar", "mar"):
                for rate in (0.0, 0.3):
                    if rate == 0 and mechanism == "mar":
                        continue  # rate-0 runs are stored once, with mechanism "none"
                    noise = rng.normal(0, 0.01, size=3)
                    kw = dict(dataset=dataset, mechanism=mechanism)
                    s.write_result(result("dense", rate, seed, 0.9 + noise[0], 1e9, fit_time=1 + noise[0], **kw))
                    s.write_result(result("set", rate, seed, 0.85 + noise[1], 1e8, "observed", 0.9,
                                          fit_time=2 + noise[1], **kw))
                    s.write_result(result("static", rate, seed, 0.9 + noise[2], 1e8, "observed", 0.9,
                                          fit_time=1.5 + noise[2], **kw))
    paths = write_report(s, tmp_path / "out")
    md = open(paths["markdown"]).read()
    html = open(paths["html"]).read()
    # the first thing after the title: the overview section with its figure, before any per-cell text
    first_section = md.split("\n## ")[1]
    assert first_section.startswith("Overview: sparse vs dense MLP")
    assert md.index("![") == md.index("![", md.index("## Overview")) < md.index("## Headline")
    assert md.index("](figures/overview_sparse_vs_dense.png)") < md.index("## Headline")
    assert html.index("<img") == html.index('<img src="figures/overview_sparse_vs_dense.png"') < html.index("Headline")
    # rate 0 counted once per dataset: 2 datasets x (rate 0 + 2 mechanisms x rate 0.3) x 2 sparse models
    assert "12 comparisons of a sparse MLP" in first_section
    assert "Fit time: sparse slower in 12, faster in 0" in first_section
    figure = tmp_path / "out" / "figures" / "overview_sparse_vs_dense.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import pandas as pd

    cmp = pd.read_csv(paths["tables"]["comparisons"])
    assert set(cmp["dataset"]) == {"iris", "wine"} and set(cmp["model"]) == {"set", "static"}
    assert len(cmp) == 2 * 2 * 2 * 2  # dataset x mechanism group x rate x sparse model (rate 0 in both groups)


def test_one_cell_has_no_overview_figure(tmp_path):
    s = ResultsStore(tmp_path / "one.sqlite")
    for seed in range(3):
        s.write_result(result("dense", 0.2, seed, 0.9 + 0.01 * seed, 1e9))
        s.write_result(result("set", 0.2, seed, 0.9, 1e8, "observed", 0.9))
    paths = write_report(s, tmp_path / "out")
    assert "## Overview" not in open(paths["markdown"]).read()
    assert not any(p.endswith("overview_sparse_vs_dense.png") for p in paths["figures"])
