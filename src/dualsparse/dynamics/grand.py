"""Per-example gradient norms (GraNd, Paul et al. 2021) without dense weights or per-example loops.

For a linear layer with input x_b and output gradient g_b (of example b's loss), the gradient of
weight (i, j) is g_b[i] x_b[j]. Hence, per example,

* ``nn.Linear``: ||grad W||^2 = ||g_b||^2 ||x_b||^2 (an outer product);
* ``SparseLinear`` with live set K (CSR ``row_ptr``, ``col_idx``):
  ||grad values||^2 = sum_{k=(i,j) in K} g_b[i]^2 x_b[j]^2 = sum_i g_b[i]^2 (P (x_b∘x_b))[i],
  with P the 0/1 pattern as a ``torch.sparse_csr`` matrix: one sparse-dense product per batch,
  O(batch x nnz) work, nothing of dense weight size. For a ``torch.sparse_csr`` input the sum runs
  over (stored input, live connection leaving it) pairs only, the work the layer itself does;
* bias: ||g_b||^2.

x and g come from one dedicated pass (eval mode, so no dropout): forward hooks record every
linear layer's input and output, and ``torch.autograd.grad`` of the summed per-example losses
with respect to the layer outputs gives every g_b at once (a sum of per-example losses has
per-example output gradients). Parameter ``.grad`` fields and optimiser state are not touched.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ..sparse import SparseLinear
from ._common import row_batches


def _linear_layers(model):
    return [m for m in model.modules() if isinstance(m, (SparseLinear, nn.Linear))]


def _check_parameters(model, layers):
    covered = {id(p) for layer in layers for p in layer.parameters(recurse=False)}
    other = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
    if other:
        raise ValueError(
            f"per-example gradient norms cover linear layers only, but the model has other trainable "
            f"parameters ({', '.join(other[:5])}); use an MLP of SparseLinear / nn.Linear layers"
        )


def _pattern(layer: SparseLinear, dtype) -> torch.Tensor:
    ones = torch.ones(layer.nnz, dtype=dtype, device=layer.values.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(layer.row_ptr.long(), layer.col_idx.long(), ones,
                                       size=(layer.out_features, layer.in_features), check_invariants=False)


def _sparse_layer_sq(layer: SparseLinear, x: torch.Tensor, g2: torch.Tensor, pattern) -> torch.Tensor:
    """sum_k g2[b, i_k] x[b, j_k]^2 for every example b; g2 = g*g (batch, out), float64."""
    if x.layout == torch.sparse_csr:
        return _sparse_input_sq(layer, x, g2)
    x2 = x.to(g2.dtype) ** 2  # (batch, in)
    s = torch.sparse.mm(pattern, x2.t().contiguous())  # (out, batch): sum of x_j^2 over live j of row i
    return (s.t() * g2).sum(1)


def _sparse_input_sq(layer: SparseLinear, x: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Same sum for a CSR input: over (stored input (b, j), live connection (i, j)) pairs."""
    x_ptr, x_idx = x.crow_indices(), x.col_indices().long()
    x_val = x.values().to(g2.dtype)
    col_ptr, row_idx, _ = layer.csc()
    col_ptr = col_ptr.to(x_idx.device)
    row_idx = row_idx.to(x_idx.device).long()
    batch = x_ptr.shape[0] - 1
    sample = torch.repeat_interleave(torch.arange(batch, device=x_idx.device), x_ptr[1:] - x_ptr[:-1])
    deg = col_ptr[x_idx + 1] - col_ptr[x_idx]
    stored = torch.repeat_interleave(torch.arange(x_idx.shape[0], device=x_idx.device), deg)
    start = torch.repeat_interleave(col_ptr[x_idx], deg)
    first_of_stored = torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)
    offset = torch.arange(stored.shape[0], device=x_idx.device) - first_of_stored
    pos = start + offset
    b = sample[stored]
    contrib = x_val[stored] ** 2 * g2[b, row_idx[pos]]
    return torch.zeros(batch, dtype=g2.dtype, device=g2.device).index_add_(0, b, contrib)


def per_example_grad_norms(model: nn.Module, batches) -> np.ndarray:
    """||d loss_b / d theta|| for every example, theta = all live weights and biases.

    ``batches`` yields (x, y) pairs: x a dense or ``sparse_csr`` tensor the model takes, y int
    labels; the loss is cross-entropy. Returns a float64 array in the order of the batches.
    """
    layers = _linear_layers(model)
    if not layers:
        raise ValueError("the model has no SparseLinear or nn.Linear layer")
    _check_parameters(model, layers)
    captured: dict = {}

    def hook(layer, args, output):
        captured[layer] = (args[0].detach(), output)

    handles = [layer.register_forward_hook(hook) for layer in layers]
    was_training = model.training
    model.eval()
    norms = []
    try:
        patterns = {layer: _pattern(layer, torch.float64) for layer in layers if isinstance(layer, SparseLinear)}
        for xb, yb in batches:
            captured.clear()
            with torch.enable_grad():
                out = model(xb)
                loss = nn.functional.cross_entropy(out, yb, reduction="sum")
                outputs = [captured[layer][1] for layer in layers]
                grads = torch.autograd.grad(loss, outputs)
            sq = torch.zeros(out.shape[0], dtype=torch.float64, device=out.device)
            for layer, g in zip(layers, grads):
                x = captured[layer][0]
                g2 = g.detach().to(torch.float64) ** 2
                if isinstance(layer, SparseLinear):
                    sq += _sparse_layer_sq(layer, x, g2, patterns[layer])
                else:
                    xd = x.to_dense() if x.layout != torch.strided else x
                    sq += g2.sum(1) * (xd.to(torch.float64) ** 2).sum(1)
                if layer.bias is not None and layer.bias.requires_grad:
                    sq += g2.sum(1)
            norms.append(sq.sqrt().cpu().numpy())
    finally:
        for h in handles:
            h.remove()
        captured.clear()
        model.train(was_training)
    return np.concatenate(norms) if norms else np.empty(0)


def grand_scores(est, X, y, index=None, batch_size: int = 256) -> np.ndarray:
    """GraNd of rows ``index`` of (X, y) under a fitted SparseMLPClassifier's current weights.

    ``X`` and ``y`` as the estimator sees them inside ``fit`` (validated X, labels encoded 0..C-1),
    e.g. from a callback's ``on_fit_begin``.
    """
    n = X.shape[0]
    index = np.arange(n) if index is None else np.asarray(index, dtype=np.int64)
    device = torch.device(est.device)
    y = np.asarray(y, dtype=np.int64)
    labels = (torch.from_numpy(y[index[s : s + batch_size]]).to(device) for s in range(0, index.size, batch_size))
    return per_example_grad_norms(est.module_, zip(row_batches(est, X, index, batch_size), labels))
