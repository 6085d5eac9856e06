"""Compile the Numba kernels once, ahead of the first fit, into Numba's on-disk cache.

Every kernel is compiled with ``cache=True``: the first process that calls one compiles it
(seconds per kernel) and later processes load it (milliseconds). ``scripts/setup.sh`` runs this
module after installing, so that a user's first fit, the README's main job and every test worker
load kernels instead of compiling them::

    python -m dualsparse.warmup          # about a minute on 2 cores the first time, ~2 s after

It fits tiny models through each training path with the shapes that select the kernels'
specialisations (1 to 4 hidden layers for whole compiled epochs; dense and CSR input; SGD and
Adam; classifier and regressor; SET, RigL and MEST updates; the fused small-batch step, on CSR and
on tiled layers; the autograd path; prediction).
"""

from __future__ import annotations

import time
import warnings


def warm_up(verbose: bool = True) -> float:
    """Run the tiny fits; returns the seconds it took."""
    import numpy as np
    import scipy.sparse as sp

    from .train import SparseMLPClassifier, SparseMLPRegressor

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    Xs = sp.csr_matrix(np.where(rng.random(X.shape) < 0.5, X, 0).astype(np.float32))
    fits = []
    for depth in range(1, 5):
        fits.append((SparseMLPClassifier, X, y, dict(hidden_layer_sizes=(6,) * depth)))
    fits += [
        (SparseMLPClassifier, Xs, y, dict()),
        (SparseMLPRegressor, X, X[:, :2], dict(optimizer="sgd", learning_rate=0.01)),
        (SparseMLPClassifier, X, y, dict(algorithm="rigl", optimizer="sgd", batch_size=4)),
        (SparseMLPClassifier, X, y, dict(algorithm="mest")),  # sampled products of captured batches
        (SparseMLPClassifier, X, y, dict(optimizer="sgd", batch_size=2, _compiled=False)),
        (SparseMLPClassifier, X, y, dict(dropout=0.1)),
        (SparseMLPClassifier, Xs, y, dict(dropout=0.1)),
        # more than 65,536 inputs to a layer: the fused step's tiled kernels (sparse/column_blocks)
        (SparseMLPClassifier, rng.normal(size=(40, 70_000)).astype(np.float32), y,
         dict(hidden_layer_sizes=(70_000, 4), sparsity=0.9999, optimizer="sgd", batch_size=2)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cls, data, target, kw in fits:
            compiled = kw.pop("_compiled", True)
            params = dict(hidden_layer_sizes=(6, 6), sparsity=0.5, max_epochs=2, batch_size=8, random_state=0)
            params.update(kw)
            est = cls(**params)
            est._use_compiled_epoch = compiled
            est.fit(data, target).predict(data)
    seconds = time.perf_counter() - t0
    if verbose:
        print(f"dualsparse: kernels compiled or loaded from Numba's cache in {seconds:.1f} s")
    return seconds


if __name__ == "__main__":
    warm_up()
