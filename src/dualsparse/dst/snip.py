"""SNIP: one-shot pruning at initialisation by connection sensitivity (Lee et al., ICLR 2019)."""

from __future__ import annotations

import numpy as np

from .budget import lowest_per_layer
from .gmp import DensityTargets
from .gradients import live_gradient
from .resizing import ResizingAlgorithm, target_nnz
from .rules import MagnitudeDrop
from .schedule import Schedule


class SNIP(DensityTargets, ResizingAlgorithm):
    """SNIP (Lee et al. 2019, "SNIP: Single-shot Network Pruning based on Connection Sensitivity").

    Rule: before training, score every connection by ``|dL/dw * w|`` on one batch and keep the
    highest-scoring ones over the whole network (one global threshold); the topology is then static.

    The network starts at ``initial_density`` (1.0: every position stored, as in the paper) and
    is cut to the final densities' total (``final_density``, or the estimator's density rule).
    The gradient is computed only at the stored connections, as a sampled product of the captured
    batch's layer inputs and output gradients (O(nnz x batch), never a dense weight gradient);
    ``|g w|`` equals the paper's normalised saliency up to the common normaliser, which does not
    change the ranking. Ties: stable over the layers in order (earlier layer, then storage order
    goes first). Deviation: each layer keeps at least one connection (the paper does not guard
    against an emptied layer).
    """

    name = "snip"
    display_name = "SNIP MLP"
    updates_at_init = True

    def __init__(self, final_density=None, initial_density: float = 1.0):
        super().__init__(MagnitudeDrop(), None, Schedule(0.0))
        self._init_targets(initial_density, final_density)
        self.pruned = False

    @property
    def needs_gradient(self) -> bool:
        return True

    def due(self, epoch: int, step: int, end_of_epoch: bool) -> bool:
        return False  # the only update is the one at initialisation

    def sensitivity(self, layer, context) -> np.ndarray:
        """``|g * w|`` at every stored connection of ``layer``, g from the captured batch."""
        g = live_gradient(layer, context, "SNIP")
        return np.abs(g * layer.values.detach().cpu().numpy().astype(g.dtype))

    def plan(self, layers, optimizer, epoch, step, context):
        final = self.final_densities(len(layers))
        scores = [self.sensitivity(layer, context) for layer in layers]
        keep = sum(target_nnz(layer, d) for layer, d in zip(layers, final))
        drop = lowest_per_layer(scores, sum(layer.nnz for layer in layers) - keep)
        self.pruned = True
        return [(int(n), 0, s) for n, s in zip(drop, scores)]

