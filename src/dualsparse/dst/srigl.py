"""SRigL: RigL with a constant fan-in per output unit and ablation of units with too few salient weights.

Lasby, Golubeva, Evci, Nica & Ioannou, ICLR 2024, "Dynamic Sparse Training with Structured
Sparsity"; the rule below follows the authors' code (github.com/calgaryml/condensed-sparsity,
``rigl_torch/rigl_constant_fan.py``). Constant fan-in is what makes a sparse layer condensable
into a small dense one; ablating units whose weights and gradients say little frees their budget
for the units that keep learning.
"""

from __future__ import annotations

import numpy as np
import torch

from ..sparse import SparseLinear
from ..sparse.topology import keys_from_csr, row_of_each
from ..utils import check_random_state
from .algorithm import TopologyAlgorithm, _LayerContext
from .gse import captured_batch
from .rewire import install_keys
from .rules import MagnitudeDrop
from .schedule import Schedule


class SRigL(TopologyAlgorithm):
    """SRigL (Lasby et al. 2024): per unit, drop the weakest |w| and grow the largest |grad| to one fan-in.

    One update of a layer with ``N`` live weights, ``n = round(zeta_t * N)`` of them replaced:

    1. *Saliency.* A weight is salient if it is among the ``N - n`` largest |w| of the layer (ties:
       the first stored lose, as in :class:`~dualsparse.dst.MagnitudeDrop`) or its position (live or
       absent) is among the ``n`` largest |dL/dw| of the layer (ties drawn at random).
    2. *Ablation* (not in the output layer; ``gamma_sal=0`` turns it off). A unit with fewer than
       ``max(1, int(gamma_sal * (N // out)))`` salient weights is ablated (fan-in 0); the threshold is
       lowered, as in the authors' code, so that at least ``N // in + 1`` units stay active.
    3. *Fan-in.* Each of the ``a`` active units gets ``k = N // a`` connections; the ``N - k a``
       active units with the most salient weights (ties: lower index) get ``k + 1``, so the layer
       keeps exactly ``N`` (the authors round ``N`` down to ``k a`` instead).
    4. *Drop and grow.* The ``N - n`` largest |w| of the active units are kept (ties: the first
       stored lose), at most a unit's fan-in of them in each unit (its largest); each unit grows the
       rest of its fan-in where |dL/dw| is largest among its positions not kept (ties at random).

    As in the authors' code a connection dropped and regrown in the same update keeps its value
    and optimiser state; positions new to the layer start at ``grow_init`` with zeroed state. The
    gradient is RigL's (``g.T @ x`` of one captured batch), built in row blocks of at most
    ``block_elements`` values, so memory stays O(block) but time is O(in x out x batch): SRigL, like
    RigL, is for layers where a dense gradient pass is affordable.
    """

    name = "srigl"
    display_name = "SRigL MLP (constant fan-in)"

    def __init__(self, zeta: float = 0.3, every="auto", end: int | None = None, gamma_sal: float = 0.3,
                 grow_init: str = "zero"):
        if every == "epoch":
            raise ValueError("srigl grows by gradient, so it updates every N optimiser steps (every=100, say, or 'auto'), where "
                             "the training loop captures the batch it needs; every='epoch' captures none")
        gamma_sal = float(gamma_sal)
        if not 0.0 <= gamma_sal <= 1.0:
            raise ValueError(f"gamma_sal must be in [0, 1] (the fraction of a unit's fan-in that must be salient "
                             f"for it to stay active; the authors use 0.3, 0 turns ablation off), got {gamma_sal!r}")
        super().__init__(MagnitudeDrop(), None, Schedule(zeta, every, "cosine" if end else "constant", end), grow_init)
        self.gamma_sal = gamma_sal
        self.block_elements = 1 << 24

    @property
    def needs_gradient(self) -> bool:
        return True

    @torch.no_grad()
    def update(self, model, optimizer=None, epoch: int = 0, step: int = 0, rng=None, context=None) -> list[dict]:
        rng = check_random_state(rng)
        fraction = self.schedule.fraction(epoch, step)
        layers = [m for m in model.modules() if isinstance(m, SparseLinear)]
        return [self.update_layer(layer, fraction, optimizer, rng, _LayerContext(context, i), i,
                                  ablate=i < len(layers) - 1) for i, layer in enumerate(layers)]

    def update_layer(self, layer, fraction, optimizer, rng, context, index: int = 0, ablate: bool = True) -> dict:
        nnz, n_out, n_in = layer.nnz, layer.out_features, layer.in_features
        n_swap = min(int(round(fraction * nnz)), nnz - 1, n_in * n_out - nnz)
        if n_swap <= 0:
            return {"layer": index, "nnz": nnz, "dropped": 0, "grown": 0, "ablated": 0}
        x, g = captured_batch(layer, context, "SRigL")
        grads = _GradientBlocks(x, g, n_out, n_in, self.block_elements, rng)
        row_ptr = layer.row_ptr.cpu().numpy().astype(np.int64)
        col_idx = layer.col_idx.cpu().numpy()
        rows = row_of_each(row_ptr)
        magnitude = layer.values.detach().abs().cpu().numpy()

        # 1. saliency: the n_keep largest |w| (stable ties) and the n_swap largest |grad| anywhere
        n_keep = nnz - n_swap
        by_magnitude = np.argsort(magnitude, kind="stable")
        weight_salient = np.ones(nnz, dtype=bool)
        weight_salient[by_magnitude[:n_swap]] = False
        threshold = grads.threshold(n_swap)
        salient = np.bincount(rows[weight_salient], minlength=n_out).astype(np.int64)
        live_grad_salient = np.zeros(nnz, dtype=bool)
        for r0, r1, block in grads:
            salient[r0:r1] += (block >= threshold).sum(axis=1)
            a, b = row_ptr[r0], row_ptr[r1]
            live_grad_salient[a:b] = block[rows[a:b] - r0, col_idx[a:b]] >= threshold
        salient -= np.bincount(rows[weight_salient & live_grad_salient], minlength=n_out)

        # 2. ablation of units with too few salient weights (never the output layer)
        ablated = np.zeros(n_out, dtype=bool)
        if ablate and self.gamma_sal > 0:
            min_salient = max(1, int(self.gamma_sal * (nnz // n_out)))
            ranked = np.sort(salient)[::-1]
            min_active = nnz // n_in  # the authors' "min_neurons": that many + 1 units always stay
            if min_active < n_out and ranked[min_active] < min_salient:
                min_salient = int(ranked[min_active])
            ablated = salient < min_salient

        # 3. fan-in of each active unit: k, or k + 1 for the most salient so that nnz is kept
        active = np.flatnonzero(~ablated)
        k, extra = divmod(nnz, active.size)
        fan_in = np.zeros(n_out, dtype=np.int64)
        fan_in[active] = k
        by_salience = active[np.argsort(-salient[active], kind="stable")]
        fan_in[by_salience[:extra]] += 1

        # 4. keep the n_keep largest |w| of the active units, at most fan_in[i] in unit i (the
        # largest), grow the rest of each fan-in by |grad|
        by_magnitude = by_magnitude[~ablated[rows[by_magnitude]]]  # still ascending, stable
        kept = np.zeros(nnz, dtype=bool)
        kept[by_magnitude[max(0, by_magnitude.size - n_keep):]] = True
        kept = _cap_per_row(kept, rows, magnitude, fan_in)
        need = fan_in - np.bincount(rows[kept], minlength=n_out)
        grown = []
        for r0, r1, block in grads:
            grown.append(_grow_rows(block, r0, r1, need[r0:r1], row_ptr, col_idx, kept, n_in))
        new_keys = np.sort(np.concatenate([keys_from_csr(row_ptr, col_idx, n_in)[kept], *grown]))
        info = install_keys(layer, optimizer, new_keys, rng, self.grow_init, index)
        info["ablated"] = int(ablated.sum())
        return info

    def __repr__(self) -> str:
        return f"SRigL(zeta={self.schedule.zeta}, every={self.schedule.every!r}, gamma_sal={self.gamma_sal})"


class _GradientBlocks:
    """|dL/dW| of one layer as int64 keys (float32 bits << 32 | random bits), block of rows by block.

    The random low bits break ties uniformly and reproducibly: each block's bits come from its own
    seed, drawn once from the update's generator, so every pass over the blocks sees the same keys.
    A layer that fits in one block is computed once.
    """

    def __init__(self, x, g, n_out: int, n_in: int, block_elements: int, rng):
        self.x, self.g, self.n_out, self.n_in = x, g, n_out, n_in
        self.rows_per_block = max(1, block_elements // max(1, n_in))
        self.starts = list(range(0, n_out, self.rows_per_block))
        self.seeds = rng.integers(0, 2**63 - 1, size=len(self.starts))
        self._cache = None

    def _block(self, b: int) -> np.ndarray:
        r0 = self.starts[b]
        r1 = min(self.n_out, r0 + self.rows_per_block)
        grad = (self.g[:, r0:r1].T.to(self.x.dtype) @ self.x).abs().to(torch.float32).cpu().numpy()
        keys = grad.view(np.uint32).astype(np.int64) << 32
        keys |= np.random.default_rng(self.seeds[b]).integers(0, 2**32, size=keys.shape, dtype=np.int64)
        return keys

    def __iter__(self):
        if len(self.starts) == 1:
            if self._cache is None:
                self._cache = self._block(0)
            yield 0, self.n_out, self._cache
            return
        for b, r0 in enumerate(self.starts):
            yield r0, min(self.n_out, r0 + self.rows_per_block), self._block(b)

    def threshold(self, n: int) -> int:
        """The key of the n-th largest |gradient| of the layer (n >= 1)."""
        top = np.empty(0, dtype=np.int64)
        for _, _, block in self:
            top = np.concatenate([top, block.ravel()])
            if top.size > n:
                top = np.partition(top, top.size - n)[top.size - n:]
        return int(top.min())


def _cap_per_row(kept: np.ndarray, rows: np.ndarray, magnitude: np.ndarray, fan_in: np.ndarray) -> np.ndarray:
    """Unset the weakest kept weights of every row holding more than its fan-in (first stored lose ties)."""
    idx = np.flatnonzero(kept)
    count = np.bincount(rows[idx], minlength=fan_in.size)
    excess = np.maximum(count - fan_in, 0)
    if not excess.any():
        return kept
    order = idx[np.lexsort((idx, magnitude[idx], rows[idx]))]  # by row, then |w| ascending, then storage
    start = np.zeros(fan_in.size + 1, dtype=np.int64)
    np.cumsum(count, out=start[1:])
    rank = np.arange(order.size) - start[rows[order]]
    kept = kept.copy()
    kept[order[rank < excess[rows[order]]]] = False
    return kept


def _grow_rows(block, r0, r1, need, row_ptr, col_idx, kept, n_in) -> np.ndarray:
    """Keys of the ``need[i]`` largest-|grad| positions of each row of the block that are not kept."""
    kmax = int(need.max()) if need.size else 0
    if kmax <= 0:
        return np.empty(0, dtype=np.int64)
    scores = block + 1  # >= 1 everywhere, so the kept positions (set to 0) are never chosen
    a, b = row_ptr[r0], row_ptr[r1]
    live_rows = row_of_each(row_ptr[r0:r1 + 1] - a)
    on = kept[a:b]
    scores[live_rows[on], col_idx[a:b][on]] = 0
    top = np.argpartition(-scores, kmax - 1, axis=1)[:, :kmax]
    top_scores = np.take_along_axis(scores, top, axis=1)
    top = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
    take = np.arange(kmax)[None, :] < need[:, None]
    block_rows = np.broadcast_to(np.arange(r0, r1)[:, None], top.shape)
    return block_rows[take].astype(np.int64) * n_in + top[take]
