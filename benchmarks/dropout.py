"""Dropout on the CPU: torch's ``nn.Dropout`` against ``dualsparse.train.dropout.Dropout``.

Two measurements, both against torch's dropout timed in the same run, interleaved repetitions:

* the dropout call alone on a batch of activations (``--batch`` x ``--width``, default 128 x 1000,
  SET's MNIST hidden layer at batch 128), microseconds per call, median and min-max;
* whole training epochs of the SET-scale MLP (784-1000-1000-1000-10, epsilon 20, dropout 0.3, SGD
  with momentum, batch 128) on ``--rows`` synthetic 784-feature rows, static sparse and dense,
  the training network built once per variant (``dualsparse.train.network.Dropout`` swapped for
  ``nn.Dropout`` in the baseline): seconds per epoch (median of the epochs after the first of each
  fit), and the paired baseline / ours ratio per repetition.

Threads: ``--threads`` (default 1, as ``dualsparse run`` gives each run).

    .venv/bin/python -W ignore benchmarks/dropout.py
    .venv/bin/python -W ignore benchmarks/dropout.py --repeats 5 --rows 25600
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=int, default=1000)
    p.add_argument("--rows", type=int, default=12_800, help="training rows of the epoch measurement (0: skip it)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from dualsparse.sparse import kernels

    kernels.set_num_threads(args.threads)
    import dualsparse.train.network as network
    from dualsparse import SparseMLPClassifier
    from dualsparse.train.dropout import Dropout

    variants = (("torch nn.Dropout", torch.nn.Dropout), ("dualsparse Dropout", Dropout))
    x = torch.randn(args.batch, args.width)
    calls = {name: [] for name, _ in variants}
    for _ in range(args.repeats):
        for name, cls in variants:
            module = cls(0.3).train()
            module(x)
            t = time.perf_counter()
            for _ in range(200):
                module(x)
            calls[name].append((time.perf_counter() - t) / 200 * 1e6)
    print(f"dropout(p=0.3) on {args.batch} x {args.width}, {args.threads} thread(s), {args.repeats} interleaved repeats")
    for name, v in calls.items():
        print(f"  {name:20s} {np.median(v):8.1f} us per call ({min(v):.1f}-{max(v):.1f})")
    base, ours = np.array(calls[variants[0][0]]), np.array(calls[variants[1][0]])
    print(f"  ratio torch / ours: median {np.median(base / ours):.1f}x ({(base / ours).min():.1f}-{(base / ours).max():.1f})")

    if args.rows <= 0:
        return
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, 784)).astype(np.float32)
    y = rng.integers(0, 10, args.rows)
    params = dict(hidden_layer_sizes=(1000, 1000, 1000), epsilon=20, optimizer="sgd", learning_rate=0.01,
                  momentum=0.9, weight_decay=0.0002, dropout=0.3, batch_size=128, max_epochs=args.epochs,
                  random_state=0)
    epochs = {}
    original = network.Dropout
    try:
        for _ in range(args.repeats):
            for name, cls in variants:
                network.Dropout = cls
                for algorithm in ("static", "dense"):
                    est = SparseMLPClassifier(algorithm=algorithm, **params).fit(X, y)
                    epochs.setdefault((algorithm, name), []).append(np.median([h["time_s"] for h in est.history_[1:]]))
    finally:
        network.Dropout = original
    steps = -(-args.rows // 128)
    print(f"\n784-1000-1000-1000-10, epsilon 20, dropout 0.3, batch 128: seconds per epoch of {steps} steps")
    for algorithm in ("static", "dense"):
        base = np.array(epochs[(algorithm, variants[0][0])])
        ours = np.array(epochs[(algorithm, variants[1][0])])
        print(f"  {algorithm:7s} torch {np.median(base):.2f} s ({base.min():.2f}-{base.max():.2f}), ours {np.median(ours):.2f} s "
              f"({ours.min():.2f}-{ours.max():.2f}); paired torch / ours {', '.join(f'{r:.2f}' for r in base / ours)}")


if __name__ == "__main__":
    main()
