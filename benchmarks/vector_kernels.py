"""The vector kernels against the scalar loops at full size, and whether this host's choice agrees.

``dualsparse.sparse.vector_choice`` decides once per process, from a few milliseconds on a small
layer, whether the eight-at-a-time kernels (AVX-512 gathers and scatters) or the scalar loops run
(they give the same numbers). This script checks that decision where it matters, on SET's layer
sizes, in one run:

* the tiled kernels of one ``--width`` x ``--width`` layer (``--per-row`` weights a row, batch 2,
  momentum SGD): forward, and backward with the update, over the same tiles with the vector path
  off and on, interleaved;
* the CSR value update of a first layer (``--inputs`` -> ``--width``, 20 weights a row: SET's
  3,312 -> 600,000 shape at epsilon 20), off and on, interleaved.

It prints ns per weight (median, min-max over ``--repeats``), the per-repetition ratio
scalar / vector (> 1: the vector kernels are faster) as median (min-max), and what
``vector_choice`` picked in this process, with the small layer's timings behind it::

    .venv/bin/python -W ignore benchmarks/vector_kernels.py                  # 600,000 wide, ~1 min
    .venv/bin/python -W ignore benchmarks/vector_kernels.py --width 200000 --repeats 9
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _interleaved(runs: dict, repeats: int) -> dict:
    """Best-effort fair timing: each repetition runs every variant once, in turn (one warm-up)."""
    for fn in runs.values():
        fn()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: np.array(v) for k, v in times.items()}


def _report(what, times, nnz):
    s, v = times["scalar"], times["vector"]
    for k in ("scalar", "vector"):
        t = times[k] / nnz * 1e9
        print(f"  {what:28s} {k:6s} {np.median(t):5.2f} ns/weight ({t.min():.2f}-{t.max():.2f})")
    r = s / v
    print(f"  {what:28s} scalar/vector {np.median(r):.2f}x ({r.min():.2f}-{r.max():.2f})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=600_000, help="hidden width (the tiled layer is width x width)")
    p.add_argument("--per-row", type=int, default=40, help="weights per row of the tiled layer (SET: ~40)")
    p.add_argument("--inputs", type=int, default=3312, help="inputs of the first layer (CSR update)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()

    from dualsparse.sparse import column_blocks, kernels, step_kernels, vector_choice
    from dualsparse.sparse.kernels import MOMENTUM

    kernels.set_num_threads(args.threads)
    f = np.float32
    rng = np.random.default_rng(0)
    n, T = args.width, args.threads
    print(f"{n:,} x {n:,} tiled layer, {args.per_row} weights a row; first layer {args.inputs:,} -> {n:,}, "
          f"20 a row; batch 2, momentum SGD, {T} threads, {args.repeats} interleaved repetitions")

    row_ptr, col, values, mom = vector_choice.synthetic_layer(n, n, args.per_row, rng)
    blocks = column_blocks.ColumnBlocks(row_ptr, col, values, mom, n, T)
    xg = rng.normal(size=(n, 4)).astype(f)
    z, a = np.empty((n, 2), f), np.empty((n, 2), f)
    gt = rng.normal(0, 1e-3, (n, 2)).astype(f)
    bias, bbuf = np.zeros(n, f), np.zeros(n, f)

    def forward(vector):
        blocks.vector = vector
        blocks.forward(bias, xg[:, :2], z, a, f(0.6), True, T)

    def backward(vector):
        blocks.vector = vector
        blocks.backward_update(bias, bbuf, xg, gt, xg[:, :2], f(0.6), f(1e-3), f(0.9), f(0), MOMENTUM, MOMENTUM, T)

    for what, fn in (("tiled forward", forward), ("tiled backward + update", backward)):
        _report(what, _interleaved({"scalar": lambda: fn(False), "vector": lambda: fn(True)}, args.repeats), col.size)
    del blocks

    row_ptr, col, values, mom = vector_choice.synthetic_layer(n, args.inputs, 20, rng)
    x = rng.normal(size=(args.inputs, 2)).astype(f)
    empty = np.empty(0, f)

    def update(vector):
        step_kernels.update_par(row_ptr, col, values, mom, empty, empty, x, gt, f(1e-3), f(0.9), f(0), MOMENTUM,
                                MOMENTUM, T, vector)

    _report("first layer's CSR update", _interleaved({"scalar": lambda: update(False), "vector": lambda: update(True)},
                                                      args.repeats), col.size)

    for family, choice in (("tiles", vector_choice.tiles()), ("CSR update", vector_choice.rows())):
        detail = ""
        if choice.best_s:
            s, v = choice.best_s
            detail = f": small layer {s * 1e3:.3f} ms scalar, {v * 1e3:.3f} ms vector ({s / v:.2f}x)"
        print(f"this process's choice for {family}: {'vector' if choice.vector else 'scalar'} ({choice.how}{detail})")


if __name__ == "__main__":
    main()
