"""Drop and grow rules: what distinguishes one dynamic-sparse-training algorithm from another.

A drop rule scores the live connections (the lowest are dropped); a grow rule picks new positions
among the absent ones. SET and RigL share the drop rule and differ only in the grow score.
"""

from __future__ import annotations

import numpy as np
import torch

from ..sparse.topology import contains, keys_from_csr, sample_absent_csr, score_bits
from .gradients import captured_window, dense_input


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


class TopScoreGrow:
    """New connections at the absent positions of highest score, scored a block of rows at a time.

    Subclasses give ``block_scores(layer, r0, r1, context)``: a (r1 - r0, in_features) tensor of
    non-negative scores for rows r0..r1 (present positions are masked here). Memory stays
    O(block x in_features); nothing of the layer's dense size is kept. Ties (e.g. equal zero
    scores) are broken at random with the update's seeded generator, so they do not always
    favour the first rows.
    """

    needs_gradient = True
    needed_by = "gradient-based growth"

    def __init__(self, block_elements: int = 1 << 24):
        self.block_elements = int(block_elements)

    def block_scores(self, layer, r0: int, r1: int, context) -> torch.Tensor:
        raise NotImplementedError

    def select(self, layer, n: int, present_keys: np.ndarray, rng, context) -> np.ndarray:
        rows_per_block = max(1, self.block_elements // layer.in_features)
        best_keys, best_scores = [], []
        for r0 in range(0, layer.out_features, rows_per_block):
            r1 = min(layer.out_features, r0 + rows_per_block)
            block = self.block_scores(layer, r0, r1, context).flatten().cpu().numpy()
            keys = np.arange(r0 * layer.in_features, r1 * layer.in_features, dtype=np.int64)
            block[contains(present_keys, keys)] = -np.inf
            k = min(n, block.size)
            top = np.argpartition(-block, k - 1)[:k]
            best_keys.append(keys[top])
            best_scores.append(block[top])
        keys = np.concatenate(best_keys)
        scores = np.concatenate(best_scores)
        # random tie-breaking so equal (e.g. zero) scores do not always favour the first rows
        order = np.lexsort((rng.random(scores.size), -scores))[:n]
        chosen = keys[order]
        if np.isinf(scores[order]).any():
            raise ValueError("not enough absent positions to grow into")
        return np.sort(chosen)


class GradientGrow(TopScoreGrow):
    """New connections where the loss gradient is largest in magnitude (RigL, Evci et al. 2020).

    The dense gradient is the one quantity RigL needs that a sparse layer never holds; it is built
    block of rows by block of rows (``G[rows].T @ X``) from one captured batch, so memory stays
    O(block x in_features) and nothing of dense size is kept.
    """

    needed_by = "GradientGrow (RigL-style growth)"

    def block_scores(self, layer, r0, r1, context):
        x, g = captured_window(layer, context, self.needed_by)[-1]  # x: (batch, in), g: (batch, out)
        return (g[:, r0:r1].T @ dense_input(x)).abs()
