"""Drop and grow rules: what distinguishes one dynamic-sparse-training algorithm from another.

A drop rule scores the live connections (the lowest are dropped); a grow rule picks new positions
among the absent ones. SET and RigL share the drop rule and differ only in the grow score.
"""

from __future__ import annotations

import numpy as np
import torch

from ..sparse.topology import contains, keys_from_csr, sample_absent_csr, score_bits


class MagnitudeDrop:
    """Score = |w|: the weakest connections go (SET, RigL).

    Of several connections with the same score at the threshold, those stored first (lower row,
    then lower column) are dropped first: the dropped set is
    ``np.argsort(scores, kind="stable")[:n_drop]`` (see :func:`dualsparse.sparse.topology.evolve_csr`).
    """

    def scores(self, layer, context) -> np.ndarray:
        return layer.values.detach().abs().cpu().numpy()

    def bits(self, layer, context) -> tuple[np.ndarray, bool]:
        """(unsigned view of the scores, absolute): the form the evolution kernels read. For plain
        magnitude this is the values' own bits with the sign masked off, so no |w| array is made."""
        values = layer.values.detach()
        if type(self).scores is MagnitudeDrop.scores and values.dtype in (torch.float32, torch.float64):
            v = values.cpu().numpy()
            return v.view(np.uint32 if v.dtype == np.float32 else np.uint64), True
        return score_bits(self.scores(layer, context))


class RandomGrow:
    """New connections uniformly at random among absent positions (SET)."""

    needs_gradient = False

    def select_csr(self, layer, n: int, rng, context) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` new positions as (row pointer, ascending columns per row)."""
        return sample_absent_csr(layer.row_ptr.cpu().numpy(), layer.col_idx.cpu().numpy(), layer.in_features, n, rng)

    def select(self, layer, n: int, present_keys: np.ndarray, rng, context) -> np.ndarray:
        """The ``n`` new positions as sorted keys (same draws as :meth:`select_csr`)."""
        ptr, cols = RandomGrow.select_csr(self, layer, n, rng, context)
        return keys_from_csr(ptr, cols, layer.in_features)


class GradientGrow:
    """New connections where the loss gradient is largest in magnitude (RigL, Evci et al. 2020).

    The dense gradient is the one quantity RigL needs that a sparse layer never holds; it is built
    block of rows by block of rows (``G[rows].T @ X``) from one captured batch, so memory stays
    O(block x in_features) and nothing of dense size is kept.
    """

    needs_gradient = True

    def __init__(self, block_elements: int = 1 << 24):
        self.block_elements = int(block_elements)

    def select(self, layer, n: int, present_keys: np.ndarray, rng, context) -> np.ndarray:
        if context is None or layer not in getattr(context, "layer_io", {}):
            raise RuntimeError("GradientGrow needs a captured batch (context.layer_io); the training loop provides it")
        x, g = context.layer_io[layer]  # x: (batch, in) dense, g: (batch, out) gradient of the output
        if x.layout != torch.strided:
            x = x.to_dense()
        rows_per_block = max(1, self.block_elements // layer.in_features)
        best_keys, best_scores = [], []
        for r0 in range(0, layer.out_features, rows_per_block):
            r1 = min(layer.out_features, r0 + rows_per_block)
            block = (g[:, r0:r1].T @ x).abs().flatten().cpu().numpy()
            keys = np.arange(r0 * layer.in_features, r1 * layer.in_features, dtype=np.int64)
            block[contains(present_keys, keys)] = -np.inf
            k = min(n, block.size)
            top = np.argpartition(-block, k - 1)[:k]
            best_keys.append(keys[top])
            best_scores.append(block[top])
        keys = np.concatenate(best_keys)
        scores = np.concatenate(best_scores)
        # random tie-breaking so equal (e.g. zero) gradients do not always favour the first rows
        order = np.lexsort((rng.random(scores.size), -scores))[:n]
        chosen = keys[order]
        if np.isinf(scores[order]).any():
            raise ValueError("not enough absent positions to grow into")
        return np.sort(chosen)
