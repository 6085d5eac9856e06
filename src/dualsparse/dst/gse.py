"""Gradient-sampled growth (GSE): RigL's growth without RigL's dense gradient.

Heddes, Srinivasa, Givargis & Nicolau 2024, "Always-sparse training by growing connections with
guided stochastic exploration" (arXiv:2401.06898; code: github.com/mikeheddes/guided-stochastic-exploration).
RigL scores every absent connection by |dL/dw|, which is the dense (out x in) gradient; GSE scores
only a uniform random sample of the absent connections and grows the best of them. The gradient
of one position is a sum over the captured batch, ``dL/dw[r, c] = sum_b g[b, r] * x[b, c]``, so
growth costs O(sample x batch) and memory O(sample): this is how RigL-style growth runs at the
scale of ``benchmarks/scale.py`` (``algorithm="gse"``; ``"rigl"`` itself keeps the exact dense
gradient, built in row blocks, which is O(in x out x batch) per update).
"""

from __future__ import annotations

import numpy as np
import torch

from ..sparse.topology import row_of_each, sample_absent_csr
from .algorithm import TopologyAlgorithm
from .rules import MagnitudeDrop
from .schedule import Schedule


def captured_batch(layer, context, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch captured for ``layer``: (input (batch, in) dense, gradient of its output (batch, out))."""
    layer_io = getattr(context, "layer_io", None) or {}
    if layer not in layer_io:
        raise RuntimeError(
            f"{who} grows by gradient and needs a captured batch (context.layer_io[layer] = (x, grad_out)); "
            "SparseMLPClassifier/Regressor capture one before every update of an algorithm whose needs_gradient "
            "is True. In a hand-written loop, run the batch inside dualsparse.dst.capture.LayerIOCapture(model) "
            "and pass the capture as update(..., context=capture)"
        )
    x, g = layer_io[layer]
    if x.layout != torch.strided:
        x = x.to_dense()  # one batch of inputs, (batch, in): never the weight's size
    return x, g


def sampled_gradient(x: torch.Tensor, g: torch.Tensor, rows: np.ndarray, cols: np.ndarray,
                     chunk_elements: int = 1 << 22) -> np.ndarray:
    """``|sum_b g[b, rows[k]] * x[b, cols[k]]|`` for every k: the loss gradient at chosen positions.

    Works through the positions in chunks of ``chunk_elements // batch``, so memory is
    O(chunk x batch) whatever the number of positions; never a dense (out x in) array.
    """
    x_t = x.detach().T.contiguous()  # (in, batch): one contiguous row per input
    g_t = g.detach().to(x_t.dtype).T.contiguous()  # (out, batch)
    batch = max(1, x_t.shape[1])
    step = max(1, int(chunk_elements) // batch)
    out = np.empty(len(rows), dtype=np.float32 if x_t.dtype != torch.float64 else np.float64)
    rows_t = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64)).to(x_t.device)
    cols_t = torch.from_numpy(np.ascontiguousarray(cols, dtype=np.int64)).to(x_t.device)
    for a in range(0, len(rows), step):
        b = min(len(rows), a + step)
        val = (g_t[rows_t[a:b]] * x_t[cols_t[a:b]]).sum(dim=1).abs()
        out[a:b] = val.cpu().numpy()
    return out


def top_n_random_ties(scores: np.ndarray, n: int, rng) -> np.ndarray:
    """Boolean mask of the ``n`` largest ``scores``; ties at the threshold drawn uniformly (O(len))."""
    chosen = np.zeros(scores.size, dtype=bool)
    if n >= scores.size:
        chosen[:] = True
        return chosen
    if n <= 0:
        return chosen
    t = np.partition(scores, scores.size - n)[scores.size - n]  # the n-th largest
    above = scores > t
    chosen[above] = True
    ties = np.flatnonzero(scores == t)
    chosen[rng.choice(ties, size=n - int(above.sum()), replace=False)] = True
    return chosen


class SampledGradientGrow:
    """Grow where |gradient| is largest among a uniform random sample of the absent positions (GSE).

    The sample holds ``max(n, subset_fraction * nnz)`` positions (all absent ones if fewer), drawn
    uniformly without replacement by :func:`~dualsparse.sparse.topology.sample_absent_csr`; as in the
    authors' code the sample size is a multiple of the layer's live connections (their default
    ``--grow-subset 1.0``; they draw (row, col) pairs with replacement over all positions and
    discard the live ones, so their effective sample is a little smaller). As there, connections
    dropped in the same update are not candidates. Of several sampled positions with the same
    |gradient| at the threshold, the grown ones are drawn uniformly.
    """

    needs_gradient = True

    def __init__(self, subset_fraction: float = 1.0, chunk_elements: int = 1 << 22):
        subset_fraction = float(subset_fraction)
        if not subset_fraction > 0 or not np.isfinite(subset_fraction):
            raise ValueError(f"subset_fraction must be a positive number (sample size = subset_fraction x live "
                             f"connections; the authors use 1.0), got {subset_fraction!r}")
        self.subset_fraction = subset_fraction
        self.chunk_elements = int(chunk_elements)

    def sample_size(self, layer, n: int) -> int:
        n_free = layer.in_features * layer.out_features - layer.nnz
        return int(min(n_free, max(n, round(self.subset_fraction * layer.nnz))))

    def candidates(self, layer, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """The sampled absent positions, (rows, cols) in CSR order (the draws :meth:`select_csr` makes)."""
        s_ptr, s_col = sample_absent_csr(layer.row_ptr.cpu().numpy(), layer.col_idx.cpu().numpy(),
                                         layer.in_features, self.sample_size(layer, n), rng)
        return row_of_each(s_ptr), s_col

    def select_csr(self, layer, n: int, rng, context) -> tuple[np.ndarray, np.ndarray]:
        x, g = captured_batch(layer, context, "gradient-sampled growth (GSE)")
        rows, cols = self.candidates(layer, n, rng)
        scores = sampled_gradient(x, g, rows, cols, self.chunk_elements)
        chosen = top_n_random_ties(scores, n, rng)
        ptr = np.zeros(layer.out_features + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[chosen], minlength=layer.out_features), out=ptr[1:])
        return ptr, np.ascontiguousarray(cols[chosen])


class GSE(TopologyAlgorithm):
    """GSE (Heddes et al. 2024): magnitude drop, growth by |gradient| among a uniform sample of absent positions.

    RigL's schedule (every ``every`` steps, cosine-decayed fraction when ``end`` is given) and drop
    rule; only the growth candidates differ: ``subset_fraction x nnz`` uniformly sampled absent
    positions instead of all of them, so an update costs O(nnz x batch), not O(in x out x batch).
    With ``subset_fraction`` large enough to sample every absent position it grows exactly RigL's set.
    """

    name = "gse"
    display_name = "GSE MLP (gradient-sampled growth)"

    def __init__(self, zeta: float = 0.3, every="auto", end: int | None = None, subset_fraction: float = 1.0,
                 grow_init: str = "zero"):
        if every == "epoch":
            raise ValueError("gse grows by gradient, so it updates every N optimiser steps (every=100, say, or 'auto'), where "
                             "the training loop captures the batch it needs; every='epoch' captures none")
        super().__init__(MagnitudeDrop(), SampledGradientGrow(subset_fraction),
                         Schedule(zeta, every, "cosine" if end else "constant", end), grow_init)
