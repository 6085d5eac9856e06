"""What per-example tracking costs: fit time with and without ExampleTracker (and with GraNd).

    .venv/bin/python benchmarks/tracking.py                    # digits + a larger synthetic set
    .venv/bin/python benchmarks/tracking.py --quick            # digits only, fewer repeats
    .venv/bin/python benchmarks/tracking.py --json out.json    # also write the numbers

For every (data set, algorithm, batch size) these variants are fitted in interleaved order
``--repeats`` times: ``plain`` (no tracker), ``tracked`` (defaults: an evaluation pass every
epoch), ``topology`` (defaults + ``track_topology=True``: one more pass after every SET update),
``every2`` (``eval_every=2``), ``presented`` (``eval_every=None``: no evaluation pass) and
``grand`` (defaults + GraNd once). For each tracked variant the table gives two overheads
against ``plain``:

* ``e2e`` = median(variant) / median(plain) - 1, the end-to-end cost (noisy on a shared
  machine: differences of several % between identical runs are common);
* ``hooks`` = time spent inside the tracker's hooks / median(plain), measured by the tracker
  itself (``ExampleTracker.time_s_``; GraNd excluded, its pass is the last column) — a
  lower-noise estimate of the same thing.

Target (issue 5): tracking without GraNd adds at most 20 %; with tracking off nothing runs (the
estimator calls no hook when it has no callbacks). An evaluation pass is one forward pass over
the training rows, a third of the arithmetic of a training epoch, so its share grows with the
batch size (training gets closer to the machine's peak): try ``--batch-size 32 128 512``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def _data(name, seed=0):
    from sklearn.datasets import load_digits, make_classification
    from sklearn.preprocessing import StandardScaler

    if name == "digits":
        X, y = load_digits(return_X_y=True)
    elif name == "synthetic":
        X, y = make_classification(n_samples=20000, n_features=200, n_informative=40, n_classes=10,
                                   n_clusters_per_class=2, flip_y=0.05, random_state=seed)
    else:
        raise ValueError(f"unknown data set {name!r}")
    return StandardScaler().fit_transform(X).astype(np.float32), y


def _fit(X, y, algorithm, tracker, args, batch_size):
    from dualsparse import SparseMLPClassifier

    est = SparseMLPClassifier(hidden_layer_sizes=tuple(args.hidden), algorithm=algorithm, epsilon=args.epsilon,
                              max_epochs=args.epochs, batch_size=batch_size, optimizer="sgd",
                              learning_rate=0.01, momentum=0.9, random_state=0,
                              callbacks=[tracker] if tracker is not None else None)
    t0 = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - t0


VARIANTS = {  # name -> ExampleTracker options (None: no tracker)
    "plain": None,
    "tracked": {},                      # defaults: an evaluation pass every epoch
    "topology": {"track_topology": True},  # + one pass after every SET drop/grow step
    "every2": {"eval_every": 2},
    "presented": {"eval_every": None},  # no evaluation pass: statistics from the training batches
    "grand": {"grand_epoch": "mid"},    # defaults + GraNd once
}


def run(args) -> list[dict]:
    from dualsparse.dynamics import ExampleTracker

    def tracker_for(name):
        opts = VARIANTS[name]
        if opts is None:
            return None
        opts = dict(opts, el2n_epoch=min(2, args.epochs - 1))
        if opts.get("grand_epoch") == "mid":
            opts["grand_epoch"] = args.epochs // 2
        return ExampleTracker(**opts)

    rows = []
    for data in args.data:
        X, y = _data(data)
        for algorithm in args.algorithms:
            _fit(X[:256], y[:256], algorithm, ExampleTracker(grand_epoch=0), args, 32)  # warm-up (JIT, caches)
            for batch_size in args.batch_size:
                rows.append(_measure(X, y, data, algorithm, batch_size, tracker_for, args))
    return rows


def _measure(X, y, data, algorithm, batch_size, tracker_for, args) -> dict:
    times = {v: [] for v in VARIANTS}
    hooks = {v: [] for v in VARIANTS if v != "plain"}
    grand_s = []
    for _ in range(args.repeats):
        for name in VARIANTS:  # interleaved, so slow phases of a shared machine hit all variants
            tracker = tracker_for(name)
            times[name].append(_fit(X, y, algorithm, tracker, args, batch_size))
            if tracker is not None:
                hooks[name].append(tracker.time_s_)
                if name == "grand":
                    grand_s.append(tracker.grand_time_s_)
    med = {k: float(np.median(v)) for k, v in times.items()}
    row = {"data": data, "n": int(X.shape[0]), "d": int(X.shape[1]), "algorithm": algorithm,
           "epochs": args.epochs, "batch_size": batch_size, "hidden": list(args.hidden),
           "repeats": args.repeats, "plain_s": med["plain"], "grand_pass_s": float(np.median(grand_s)),
           "times": times}
    for name in hooks:
        row[f"{name}_s"] = med[name]
        row[f"overhead_{name}"] = med[name] / med["plain"] - 1.0
        row[f"hooks_{name}"] = float(np.median(hooks[name])) / med["plain"]
    cells = "".join(f"{100 * row[f'overhead_{v}']:>14.1f}%{100 * row[f'hooks_{v}']:>7.1f}%" for v in hooks)
    print(f"{data:<10}{algorithm:<8}{batch_size:>6}{row['plain_s']:>9.2f}{cells}{row['grand_pass_s']:>9.3f}",
          flush=True)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", default=["digits", "synthetic"], choices=["digits", "synthetic"])
    p.add_argument("--algorithms", nargs="+", default=["dense", "static", "set"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, nargs="+", default=[32, 128])
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--epsilon", type=float, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: library default)")
    p.add_argument("--quick", action="store_true", help="digits only, 2 repeats, 5 epochs")
    p.add_argument("--json", default=None, help="write the results to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.data, args.repeats, args.epochs = ["digits"], 2, 5
    if args.threads:
        import numba
        import torch

        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    print(f"{os.cpu_count()} CPUs; hidden {args.hidden}, epsilon {args.epsilon}, {args.epochs} epochs, "
          f"batch sizes {args.batch_size}, median of {args.repeats}")
    heads = "".join(f"{v + ' e2e':>15}{'hooks':>8}" for v in VARIANTS if v != "plain")
    print(f"{'data':<10}{'model':<8}{'batch':>6}{'plain s':>9}{heads}{'GraNd s':>9}")
    rows = run(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
