"""SET vs static sparse vs dense MLP on Breast Cancer Wisconsin: accuracy and training FLOPs.

Run:  .venv/bin/python examples/breast_cancer_set.py [--seeds 5] [--epochs 100]

Each model is trained with the same seeds, architecture and optimiser; only connectivity differs.
FLOPs are counted from the real non-zeros (see dualsparse.sparse.flops for the convention).
"""

import argparse

import numpy as np
from scipy import stats
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from dualsparse import SparseMLPClassifier


def mean_ci(values):
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return values.mean(), 0.0
    half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return values.mean(), half


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--epsilon", type=float, default=10.0)
    args = parser.parse_args()

    X, y = load_breast_cancer(return_X_y=True)
    results = {name: {"acc": [], "flops": [], "dense_flops": [], "inference": []} for name in ("set", "static", "dense")}
    for seed in range(args.seeds):
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
        scaler = StandardScaler().fit(X_tr)
        X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
        for name in results:
            est = SparseMLPClassifier(
                hidden_layer_sizes=(1000, 1000), algorithm=name, epsilon=args.epsilon, zeta=0.3,
                optimizer="sgd", learning_rate=0.01, momentum=0.9, batch_size=32,
                max_epochs=args.epochs, random_state=seed,
            ).fit(X_tr, y_tr)
            r = results[name]
            r["acc"].append(est.score(X_te, y_te))
            r["flops"].append(est.flops_["train"])
            r["dense_flops"].append(est.flops_["train_dense"])
            r["inference"].append(est.flops_["inference_per_sample"])

    print(f"Breast Cancer Wisconsin, MLP 30-1000-1000-2, epsilon={args.epsilon}, {args.seeds} seeds, {args.epochs} epochs")
    print(f"{'model':<8}{'test accuracy (95% CI)':>26}{'train GFLOPs':>14}{'vs dense':>10}{'inference FLOPs/sample':>24}")
    for name, r in results.items():
        m, h = mean_ci(r["acc"])
        flops = np.mean(r["flops"])
        print(f"{name:<8}{m:>18.4f} ± {h:.4f}{flops / 1e9:>14.2f}{flops / np.mean(r['dense_flops']):>10.3f}"
              f"{np.mean(r['inference']):>24.0f}")
    diff = np.array(results["set"]["acc"]) - np.array(results["dense"]["acc"])
    if diff.size > 1 and np.any(diff != 0):
        p = stats.ttest_rel(results["set"]["acc"], results["dense"]["acc"]).pvalue
        print(f"SET - dense accuracy: {diff.mean():+.4f} (paired t-test p = {p:.3f})")


if __name__ == "__main__":
    main()
