"""Accumulate training FLOPs over a fit, for the model and for its dense equivalent."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..sparse import SparseLinear
from ..sparse.flops import backward_flops, forward_flops, layer_products, sparse_input_products
from .network import linear_layers


class FlopCounter:
    """Counts what the kernels actually compute (see :mod:`dualsparse.sparse.flops`).

    The dense equivalent is the same architecture fully connected on dense inputs; a dense model
    counts the same for both.
    """

    def __init__(self, model):
        self.model = model
        self.train = 0
        self.train_dense = 0
        self.samples = 0

    def _products(self, layer, first: bool, stored_cols, batch: int, first_products=None) -> int:
        if isinstance(layer, SparseLinear):
            if first and first_products is not None:
                return first_products
            if first and stored_cols is not None:
                deg = np.diff(layer.csc()[0].cpu().numpy())
                return sparse_input_products(deg, stored_cols)
            return layer_products(layer.nnz, batch)
        return layer.in_features * layer.out_features * batch

    def count_batch(self, x, batch: int) -> None:
        """Count one training step on ``x`` (a dense or ``torch.sparse_csr`` batch of ``batch`` rows)."""
        cols = x.col_indices().cpu().numpy() if x.layout == torch.sparse_csr else None
        self._count(cols, batch)

    def count_rows(self, X, rows: np.ndarray, first_products: int | None = None) -> None:
        """Count training steps over rows ``rows`` of X (np.ndarray or CSR), in any batches: every
        count is a sum over the rows, so it does not depend on how they were batched.
        ``first_products``: the first layer's products on sparse input, where the caller has
        counted them (the compiled epoch does, as it walks the stored values)."""
        cols = X[rows].indices if first_products is None and sp.issparse(X) else None
        self._count(cols, len(rows), first_products=first_products)

    def _count(self, stored_cols, batch: int, first_products=None) -> None:
        for i, layer in enumerate(linear_layers(self.model)):
            first = i == 0
            p = self._products(layer, first, stored_cols, batch, first_products if first else None)
            dense_p = layer.in_features * layer.out_features * batch
            # a layer applied several times per pass (NeuMiss's W, no bias) counts every application,
            # each with its input gradient (the block's mu sits upstream of all of them)
            repeats, bias = getattr(layer, "repeats", 1), layer.bias is not None
            no_input_gradient = first and repeats == 1
            self.train += repeats * (forward_flops(p, layer.out_features, batch, bias) + backward_flops(p, no_input_gradient))
            self.train_dense += repeats * (forward_flops(dense_p, layer.out_features, batch, bias)
                                           + backward_flops(dense_p, no_input_gradient))
        self.samples += batch

    def inference_per_sample(self, X) -> tuple[float, float]:
        """Mean forward FLOPs per row of X with the current topology, and the dense equivalent."""
        sparse_total, dense_total = 0.0, 0.0
        for i, layer in enumerate(linear_layers(self.model)):
            dense_products = layer.in_features * layer.out_features
            if isinstance(layer, SparseLinear) and i == 0 and sp.issparse(X) and X.shape[0]:
                # stored values x fan-out, summed per column: (stored per column) . (fan-out)
                fan_out = layer.input_degree().cpu().numpy()
                stored = np.bincount(X.indices, minlength=layer.in_features)
                products = float(stored @ fan_out) / X.shape[0]
            elif isinstance(layer, SparseLinear):
                products = layer.nnz
            else:
                products = dense_products
            # a layer applied several times per pass (NeuMiss's W) counts every application
            repeats, bias = getattr(layer, "repeats", 1), layer.bias is not None
            sparse_total += repeats * forward_flops(products, layer.out_features, 1, bias=bias)
            dense_total += repeats * forward_flops(dense_products, layer.out_features, 1, bias=bias)
        return float(sparse_total), float(dense_total)

    def summary(self, X) -> dict:
        inf, inf_dense = self.inference_per_sample(X)
        return {
            "train": float(self.train),
            "train_dense": float(self.train_dense),
            "train_ratio": float(self.train / self.train_dense) if self.train_dense else float("nan"),
            "inference_per_sample": inf,
            "inference_per_sample_dense": inf_dense,
            "inference_ratio": inf / inf_dense if inf_dense else float("nan"),
            "samples_seen": int(self.samples),
        }
