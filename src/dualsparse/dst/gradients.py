"""What gradient-informed rules read from the captured batches, without a dense weight gradient.

The training loop captures, for each sparse layer, the inputs ``x`` (batch, in) and output
gradients ``g`` (batch, out) of the last few batches before an update (:class:`~.capture.LayerIOCapture`).
The weight gradient of a batch is ``g.T @ x``; rules need it either at the stored connections
(MEST's drop score, SNIP's sensitivity: a sampled product, O(nnz x batch)) or over the absent
positions (growth: built a block of rows at a time, O(block x in_features) memory).
"""

from __future__ import annotations

import numpy as np
import torch

from ..sparse.topology import sampled_products

_HOW = ("the estimators capture it when the algorithm's needs_gradient is true; in a hand-written loop run the "
        "batch's forward and backward inside `with LayerIOCapture(model) as cap:` "
        "(dualsparse.dst.capture) and pass context=cap to update")


def captured_window(layer, context, needed_by: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The captured (input, output-gradient) batches of ``layer``, oldest first; a clear error if none."""
    window = getattr(context, "layer_windows", {}).get(layer) if context is not None else None
    if not window:
        latest = getattr(context, "layer_io", {}).get(layer) if context is not None else None
        window = [latest] if latest is not None else None
    if not window:
        raise RuntimeError(f"{needed_by} needs a captured batch (layer inputs and output gradients) for its update, "
                           f"and none was given: {_HOW}")
    return window


def dense_input(x: torch.Tensor) -> torch.Tensor:
    """A captured layer input as a dense (batch, in) tensor (a sparse CSR batch is densified:
    batch x in_features, the size of one batch of dense input)."""
    return x.to_dense() if x.layout != torch.strided else x


def gradient_at(layer, ptr: np.ndarray, col: np.ndarray, x: torch.Tensor, g: torch.Tensor) -> np.ndarray:
    """One batch's weight gradient ``g.T @ x`` at the positions ``(ptr, col)`` (row-grouped)."""
    gt = g.detach().T.contiguous().cpu().to(torch.float32).numpy()
    xt = dense_input(x.detach()).T.contiguous().cpu().to(torch.float32).numpy()
    return sampled_products(ptr, col, gt, xt)


def live_gradient(layer, context, needed_by: str) -> np.ndarray:
    """The latest captured batch's gradient at every stored connection of ``layer`` (CSR order)."""
    x, g = captured_window(layer, context, needed_by)[-1]
    return gradient_at(layer, layer.row_ptr.cpu().numpy(), layer.col_idx.cpu().numpy(), x, g)


def block_gradient(window, r0: int, r1: int, weights=None, square: bool = False) -> torch.Tensor:
    """``sum_k weights[k] * (g_k[:, r0:r1].T @ x_k)`` (elementwise squared before weighting if
    ``square``) over the captured batches: rows r0..r1 of the weight gradient, (r1 - r0, in)."""
    weights = [1.0] * len(window) if weights is None else weights
    total = None
    for (x, g), w in zip(window, weights):
        block = g[:, r0:r1].T @ dense_input(x).to(g.dtype)
        if square:
            block = block * block
        block = block * float(w)
        total = block if total is None else total + block
    return total
