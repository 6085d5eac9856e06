"""Reports: the headline follows the data (and says when sparse loses), tables, plots, statistics."""

import math

import numpy as np
import pytest
from scipy import stats

from dualsparse.experiments import ResultsStore, StoreError, write_report
from dualsparse.experiments.stats import mean_ci, paired


def result(model, rate, seed, accuracy, flops, representation="impute-mean", sparsity=None, val=None):
    key = f"{model}-{representation}-{rate}-{seed}-{sparsity}"
    config = {"experiment": "rep", "dataset": "toy", "dataset_options": {}, "task": "classification",
              "split": {"method": "holdout"}, "fold": None, "mechanism": "none" if rate == 0 else "mcar",
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
            "fit_time_s": 1.0, "predict_time_s": 0.1, "represent_time_s": 0.1, "wall_time_s": 1.2,
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
    assert names == ["rep_toy_mcar_accuracy_vs_rate.png", "rep_toy_mcar_accuracy_vs_sparsity.png",
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
