"""Command line: ``dualsparse demo | run | report | results``."""

from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    """SET vs static vs dense on Breast Cancer Wisconsin: accuracy and training FLOPs."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from .train import SparseMLPClassifier

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=args.seed)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    print(f"{'algorithm':<10}{'accuracy':>10}{'train GFLOPs':>14}{'dense GFLOPs':>14}{'ratio':>8}")
    for algorithm in ("set", "static", "dense"):
        est = SparseMLPClassifier(hidden_layer_sizes=(200, 200), algorithm=algorithm, epsilon=10,
                                  max_epochs=args.epochs, random_state=args.seed).fit(X_tr, y_tr)
        f = est.flops_
        print(f"{algorithm:<10}{est.score(X_te, y_te):>10.4f}{f['train'] / 1e9:>14.3f}{f['train_dense'] / 1e9:>14.3f}"
              f"{f['train_ratio']:>8.3f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dualsparse", description="Dynamic sparse training on sparse data.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="SET vs static vs dense on Breast Cancer Wisconsin")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
