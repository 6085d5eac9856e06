"""Autograd for sparse linear layers, with two backends.

* ``numba`` (CPU): the kernels in :mod:`kernels`, batch-last, fused backward.
* ``torch`` (any device, CUDA included): ``torch.sparse`` CSR products and chunked gathers.

Both keep memory at O(nnz) beyond the activations. The batch-last trick costs no copies in a
stack of layers: a layer returns ``yt.t()`` — a (batch, out) *view* of a (out, batch) buffer —
so the next layer's ``x.t()`` is already contiguous, and elementwise activations keep the layout.
"""

from __future__ import annotations

import numpy as np
import torch

from . import kernels

_GATHER_CHUNK = 1 << 22  # elements per chunk in the torch backend's value gradient


def _backend(layer, device: torch.device) -> str:
    if layer.backend != "auto":
        return layer.backend
    return "numba" if device.type == "cpu" else "torch"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def transpose_pattern(n_in: int, row_ptr: torch.Tensor, col_idx: torch.Tensor):
    """CSC view of a CSR pattern: (col_ptr, row_idx, perm) on the pattern's device."""
    if row_ptr.device.type == "cpu":
        col_ptr, row_idx, perm = kernels.csr_to_csc(n_in, _np(row_ptr), _np(col_idx))
        return torch.from_numpy(col_ptr), torch.from_numpy(row_idx), torch.from_numpy(perm)
    n_out = row_ptr.shape[0] - 1
    counts = row_ptr[1:] - row_ptr[:-1]
    rows = torch.repeat_interleave(torch.arange(n_out, device=row_ptr.device), counts)
    perm = torch.argsort(col_idx.long() * n_out + rows, stable=True)
    col_ptr = torch.zeros(n_in + 1, dtype=torch.int64, device=row_ptr.device)
    col_ptr[1:] = torch.cumsum(torch.bincount(col_idx.long(), minlength=n_in), 0)
    return col_ptr, rows[perm].to(col_idx.dtype), perm


def _batch_last(x: torch.Tensor) -> torch.Tensor:
    xt = x.t()
    return xt if xt.is_contiguous() else xt.contiguous()


# ---------------------------------------------------------------------------- dense input
class _SparseLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, values, bias, layer):
        xt = _batch_last(x.to(values.dtype))
        backend = _backend(layer, x.device)
        n_out, batch = layer.out_features, xt.shape[1]
        if bias is not None:
            yt = bias.detach().unsqueeze(1).expand(n_out, batch).contiguous()
        else:
            yt = torch.zeros(n_out, batch, dtype=values.dtype, device=x.device)
        if backend == "numba":
            kernels.csr_forward(_np(layer.row_ptr), _np(layer.col_idx), _np(values), _np(xt), _np(yt))
        else:
            yt += torch.sparse.mm(_csr(layer.row_ptr, layer.col_idx, values.detach(), (n_out, layer.in_features)), xt)
        ctx.layer = layer
        ctx.backend = backend
        ctx.has_bias = bias is not None
        ctx.save_for_backward(xt, values)
        return yt.t()

    @staticmethod
    def backward(ctx, grad_out):
        xt, values = ctx.saved_tensors
        layer = ctx.layer
        gt = _batch_last(grad_out.to(values.dtype))
        need_x = ctx.needs_input_grad[0]
        col_ptr, row_idx, perm = layer.csc()
        gv = torch.empty_like(values)
        gxt = None
        if ctx.backend == "numba":
            if need_x:
                gxt = torch.zeros_like(xt)
                kernels.csc_backward(_np(col_ptr), _np(row_idx), _np(perm), _np(values), _np(xt), _np(gt), _np(gxt), _np(gv))
            else:
                kernels.csr_value_grad(_np(layer.row_ptr), _np(layer.col_idx), _np(xt), _np(gt), _np(gv))
        else:
            rows = layer.row_indices()
            cols = layer.col_idx.long()
            step = max(1, _GATHER_CHUNK // max(1, xt.shape[1]))
            for s in range(0, gv.shape[0], step):
                gv[s : s + step] = (gt[rows[s : s + step]] * xt[cols[s : s + step]]).sum(1)
            if need_x:
                wt = _csr(col_ptr, row_idx, values[perm], (layer.in_features, layer.out_features))
                gxt = torch.sparse.mm(wt, gt)
        grad_x = gxt.t() if gxt is not None else None
        grad_b = gt.sum(1) if ctx.has_bias else None
        return grad_x, gv, grad_b, None


def _csr(ptr, idx, values, size):
    return torch.sparse_csr_tensor(ptr.long(), idx.long(), values, size=size)


def sparse_linear(x: torch.Tensor, layer) -> torch.Tensor:
    """``x @ W.T + b`` for a dense ``x`` (batch, in)."""
    return _SparseLinearFn.apply(x, layer.values, layer.bias, layer)


# ---------------------------------------------------------------------------- sparse input
class _SparseInputFn(torch.autograd.Function):
    """A ``torch.sparse_csr`` input (data, not a learned quantity: no gradient flows to it)."""

    @staticmethod
    def forward(ctx, x_ptr, x_idx, x_val, values, bias, layer, batch):
        x_val = x_val.to(values.dtype)
        col_ptr, row_idx, perm = layer.csc()
        n_out = layer.out_features
        backend = _backend(layer, values.device)
        if bias is not None:
            y = bias.detach().unsqueeze(0).expand(batch, n_out).contiguous()
        else:
            y = torch.zeros(batch, n_out, dtype=values.dtype, device=values.device)
        if backend == "numba":
            kernels.sparse_input_forward(
                _np(x_ptr), _np(x_idx), _np(x_val), _np(col_ptr), _np(row_idx), _np(perm), _np(values), _np(y)
            )
        else:
            b, p = _expand_sparse_input(x_ptr, x_idx, col_ptr)
            contrib = x_val[b[1]] * values.detach()[perm[p]]
            y.index_put_((b[0], row_idx[p].long()), contrib, accumulate=True)
        ctx.layer = layer
        ctx.backend = backend
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x_ptr, x_idx, x_val, values)
        ctx.batch = batch
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x_ptr, x_idx, x_val, values = ctx.saved_tensors
        layer = ctx.layer
        g = grad_out.to(values.dtype).contiguous()
        col_ptr, row_idx, perm = layer.csc()
        gv = torch.zeros_like(values)
        if ctx.backend == "numba":
            xc_ptr, xc_row, xc_val = _input_by_column(x_ptr, x_idx, x_val, layer.in_features, ctx.batch)
            kernels.sparse_input_value_grad(
                xc_ptr, xc_row, xc_val, _np(col_ptr), _np(row_idx), _np(perm), _np(g), _np(gv)
            )
        else:
            b, p = _expand_sparse_input(x_ptr, x_idx, col_ptr)
            contrib = x_val[b[1]] * g[b[0], row_idx[p].long()]
            gv.index_add_(0, perm[p].long(), contrib)
        grad_b = g.sum(0) if ctx.has_bias else None
        return None, None, None, gv, grad_b, None, None


def _input_by_column(x_ptr, x_idx, x_val, n_in, batch):
    """The CSR input re-indexed by column (CSC), so the value gradient is race-free."""
    col_ptr, rows, perm = kernels.csr_to_csc(n_in, _np(x_ptr), _np(x_idx))
    return col_ptr, rows, _np(x_val)[perm]


def _expand_sparse_input(x_ptr, x_idx, col_ptr):
    """Index pairs (sample, stored-input position) x (weight position in CSC) for every product.

    The number of pairs is the true work: sum over stored inputs of their fan-out.
    """
    batch = x_ptr.shape[0] - 1
    sample = torch.repeat_interleave(torch.arange(batch, device=x_ptr.device), x_ptr[1:] - x_ptr[:-1])
    j = x_idx.long()
    deg = col_ptr[j + 1] - col_ptr[j]
    stored = torch.repeat_interleave(torch.arange(j.shape[0], device=j.device), deg)
    start = torch.repeat_interleave(col_ptr[j], deg)
    offset = torch.arange(stored.shape[0], device=j.device) - torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)
    return (sample[stored], stored), start + offset


def sparse_input_linear(x: torch.Tensor, layer) -> torch.Tensor:
    """``x @ W.T + b`` for a ``torch.sparse_csr`` input; cost follows the stored input values."""
    if x.dim() != 2 or x.shape[1] != layer.in_features:
        raise ValueError(f"SparseLinear expects input of shape (batch, {layer.in_features}), got {tuple(x.shape)}")
    if x.requires_grad:
        raise ValueError("gradients with respect to a sparse input are not supported; pass data that does not require grad")
    return _SparseInputFn.apply(
        x.crow_indices(), x.col_indices(), x.values(), layer.values, layer.bias, layer, x.shape[0]
    )
