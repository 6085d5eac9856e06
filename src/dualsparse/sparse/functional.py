"""Autograd for sparse linear layers, with two backends.

* ``numba`` (CPU): the kernels in :mod:`kernels`, batch-last, fused backward.
* ``torch`` (any device, CUDA included): ``torch.sparse`` CSR products and chunked gathers.

Both keep memory at O(nnz) beyond the activations. The batch-last trick costs no copies in a
stack of layers: a layer returns ``yt.t()`` — a (batch, out) *view* of a (out, batch) buffer —
so the next layer's ``x.t()`` is already contiguous, and elementwise activations keep the layout.
Only the network's input and the loss gradient are transposed (a tiled parallel copy).

Outputs are allocated with ``empty`` and written by the kernels (bias and bias gradient
included), never zero-filled first. The value gradient reuses the memory of the previous step's
gradient when nothing holds it any more (see :func:`_value_grad_buffer`): for a layer of tens of
millions of weights a fresh allocation per step costs more page faults than the backward pass
itself. Activation-sized buffers (batch-last input copy, output, input gradient) are recycled the
same way (:func:`_buffer`), which matters for very sparse layers, whose step is mostly such passes.
"""

from __future__ import annotations

import sys
import threading
import weakref

import numpy as np
import torch

from . import kernels

_GATHER_CHUNK = 1 << 22  # elements per chunk in the torch backend's value gradient
_GRAD_BUFFERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_RECYCLE_MIN = 1 << 16  # recycle value-gradient / activation memory from this many elements up
_ACT_BUFFERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_BUFFER_LOCK = threading.Lock()
#: reuse each layer's activation-sized buffers across steps (see :func:`_buffer`)
RECYCLE_ACTIVATIONS = True
_NP_DTYPE = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}


def _backend(layer, device: torch.device) -> str:
    if layer.backend != "auto":
        return layer.backend
    return "numba" if device.type == "cpu" else "torch"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy() if t.requires_grad else t.numpy()


def _idx(t: torch.Tensor) -> np.ndarray:
    """An index array for the kernels; int32 is viewed as uint32 (free), which spares Numba the
    negative-index wraparound on every gather (3-15 % at batch 2)."""
    a = t.numpy()
    return a.view(np.uint32) if a.dtype == np.int32 else a


def _bias_np(bias, like: torch.Tensor) -> np.ndarray:
    """The bias as an array, or an empty array of ``like``'s dtype (the kernels' "no bias")."""
    if bias is None:
        return np.empty(0, dtype=_np(like[:0]).dtype)
    return _np(bias)


def transpose_pattern(n_in: int, row_ptr: torch.Tensor, col_idx: torch.Tensor):
    """CSC view of a CSR pattern: (col_ptr, row_idx, perm) on the pattern's device.

    On the CPU, ``row_idx`` and ``perm`` are int32 while the layer has fewer than 2**31 weights.
    """
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


def _batch_last(x: torch.Tensor, layer=None, role: str = "") -> torch.Tensor:
    """``x.t()`` as a C-contiguous (features, batch) tensor; a view when it already is one.

    With ``layer``, a copy goes to that layer's recycled ``role`` buffer (see :func:`_buffer`).
    """
    xt = x.t()
    if xt.is_contiguous():
        return xt
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous() and x.numel() >= 4096:
        out = _buffer(layer, role, xt.shape, x.dtype) if layer is not None else torch.empty(xt.shape, dtype=x.dtype)
        kernels.transpose(_np(x), _np(out))
        return out
    return xt.contiguous()


def _value_grad_buffer(layer, values: torch.Tensor) -> torch.Tensor:
    """An uninitialised (nnz,) tensor for the value gradient (the kernels write every entry).

    The memory of the last one handed out is reused if no tensor refers to it any more — e.g.
    after ``optimizer.zero_grad(set_to_none=True)`` — which the reference count of the numpy
    array behind it tells exactly (every torch tensor or view on it holds one reference). When
    the previous gradient is still alive (kept by the user, accumulated into, returned by
    ``autograd.grad``), a fresh buffer is allocated, so results never alias.
    """
    n = values.shape[0]
    if n < _RECYCLE_MIN:
        return torch.empty_like(values)
    dtype = _np(values[:0]).dtype
    with _BUFFER_LOCK:
        arr = _GRAD_BUFFERS.get(layer)
        # 3 references: the dict's, the local name and getrefcount's argument
        if arr is None or arr.shape[0] != n or arr.dtype != dtype or sys.getrefcount(arr) > 3:
            fresh = np.empty(n, dtype=dtype)
            if arr is None or arr.shape[0] != n or arr.dtype != dtype:
                _GRAD_BUFFERS[layer] = fresh
            return torch.from_numpy(fresh)
        return torch.from_numpy(arr)


def _buffer(layer, role: str, shape, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor for an activation-sized output of ``layer`` (its batch-last
    input, output or input gradient), the same memory every step while nothing else holds it.

    A training step frees and re-allocates a dozen (features x batch) buffers; glibc hands freed
    heap tops back to the kernel, so each new one page-faults (at 0.1 % density on 2 cores that
    was a fifth of the step). As in :func:`_value_grad_buffer`, the numpy array's reference count
    says whether any tensor or view still uses the memory; if one does, a fresh buffer is used.
    """
    n = 1
    for d in shape:
        n *= d
    if n < _RECYCLE_MIN or not RECYCLE_ACTIVATIONS:
        return torch.empty(shape, dtype=dtype)
    np_dtype = _NP_DTYPE.get(dtype) or torch.empty(0, dtype=dtype).numpy().dtype
    with _BUFFER_LOCK:  # check and hand out atomically: two threads never get the same memory
        pool = _ACT_BUFFERS.get(layer)
        if pool is None:
            pool = _ACT_BUFFERS[layer] = {}
        arr = pool.get(role)
        # 3 references: the dict's, the local name and getrefcount's argument
        if arr is None or arr.shape != tuple(shape) or arr.dtype != np_dtype:
            arr = pool[role] = np.empty(shape, dtype=np_dtype)
        elif sys.getrefcount(arr) > 3:
            return torch.from_numpy(np.empty(shape, dtype=np_dtype))
        return torch.from_numpy(arr)


# ---------------------------------------------------------------------------- dense input
class _SparseLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, values, bias, layer):
        backend = _backend(layer, x.device)
        numba = backend == "numba"
        xt = _batch_last(x.to(values.dtype), layer if numba else None, "xt")
        n_out, batch = layer.out_features, xt.shape[1]
        # a buffer no tensor uses, fully written: never an alias of the bias (batch 1) or of the input
        if numba:
            yt = _buffer(layer, "yt", (n_out, batch), values.dtype)
        else:
            yt = torch.empty(n_out, batch, dtype=values.dtype, device=x.device)
        if numba:
            kernels.run(
                kernels.csr_forward, layer.nnz * batch,
                _np(layer.row_ptr), _idx(layer.col_idx), _np(values), _bias_np(bias, values), _np(xt), _np(yt),
            )
        else:
            if bias is not None:
                yt.copy_(bias.detach().unsqueeze(1))
            else:
                yt.zero_()
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
        numba = ctx.backend == "numba"
        gt = _batch_last(grad_out.to(values.dtype), layer if numba else None, "gt")
        need_x = ctx.needs_input_grad[0]
        gxt = None
        if numba:
            gv = _value_grad_buffer(layer, values)
            batch = xt.shape[1]
            work = values.shape[0] * batch
            grad_b = torch.empty(gt.shape[0], dtype=gt.dtype) if ctx.has_bias else None
            gb = _np(grad_b) if grad_b is not None else _bias_np(None, values)
            if not need_x:
                kernels.run(kernels.csr_value_grad, work, _np(layer.row_ptr), _idx(layer.col_idx), _np(xt), _np(gt), _np(gv), gb)
            elif kernels.use_csr_backward(batch, values.shape[0]):
                gxt = _buffer(layer, "gxt", tuple(xt.shape), xt.dtype)
                threads = kernels.num_threads() if work >= kernels.PARALLEL_MIN_WORK else 1
                kernels.run(
                    kernels.csr_backward, work,
                    _np(layer.row_ptr), _idx(layer.col_idx), _np(values), _np(xt), _np(gt), _np(gxt), _np(gv), gb, threads,
                )
            else:
                col_ptr, row_idx, perm = layer.csc()
                gxt = _buffer(layer, "gxt", tuple(xt.shape), xt.dtype)
                # every input-gradient row is written, stored weights or not (a 4000 x 10 layer at
                # 0.1 % is 40 products but 4000 x batch writes: worth two threads)
                kernels.run(
                    kernels.csc_backward, 2 * work + gxt.numel(),
                    _np(col_ptr), _idx(row_idx), _idx(perm), _np(values), _np(xt), _np(gt), _np(gxt), _np(gv), gb,
                )
            grad_x = gxt.t() if gxt is not None else None
            return grad_x, gv, grad_b, None
        else:
            gv = torch.empty_like(values)
            rows = layer.row_indices()
            cols = layer.col_idx.long()
            step = max(1, _GATHER_CHUNK // max(1, xt.shape[1]))
            for s in range(0, gv.shape[0], step):
                gv[s : s + step] = (gt[rows[s : s + step]] * xt[cols[s : s + step]]).sum(1)
            if need_x:
                col_ptr, row_idx, perm = layer.csc()
                wt = _csr(col_ptr, row_idx, values[perm.long()], (layer.in_features, layer.out_features))
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
#: stored fraction of a sparse input batch from which the numba backend scatters it into a dense
#: batch-last buffer and runs the dense-input kernels (vectorised over the batch); below it, the
#: per-sample walk, whose cost is stored values x fan-out only. Measured crossover ~2-3 % at
#: batch 128 (benchmarks/engine.py); both give the same numbers.
DENSIFY_FROM = 0.02


def _sparse_input_work(x_nnz: int, layer) -> int:
    """Expected products of a sparse input batch: stored values x mean fan-out."""
    return x_nnz * layer.nnz // layer.in_features + layer.out_features


class _SparseInputFn(torch.autograd.Function):
    """A ``torch.sparse_csr`` input (data, not a learned quantity: no gradient flows to it)."""

    @staticmethod
    def forward(ctx, x_ptr, x_idx, x_val, values, bias, layer, batch):
        x_val = x_val.to(values.dtype)
        n_out = layer.out_features
        backend = _backend(layer, values.device)
        ctx.layer = layer
        ctx.backend = backend
        ctx.has_bias = bias is not None
        ctx.batch = batch
        ctx.densified = backend == "numba" and x_idx.shape[0] >= DENSIFY_FROM * batch * layer.in_features
        if ctx.densified:
            xt = torch.empty(layer.in_features, batch, dtype=values.dtype)
            kernels.densify_t(_np(x_ptr), _np(x_idx), _np(x_val), _np(xt))
            yt = torch.empty(n_out, batch, dtype=values.dtype)
            kernels.run(
                kernels.csr_forward, layer.nnz * batch,
                _np(layer.row_ptr), _idx(layer.col_idx), _np(values), _bias_np(bias, values), _np(xt), _np(yt),
            )
            ctx.save_for_backward(xt, values)
            return yt.t()
        col_ptr, row_idx, perm = layer.csc()
        y = torch.empty(batch, n_out, dtype=values.dtype, device=values.device)
        if backend == "numba":
            kernels.run(
                kernels.sparse_input_forward, _sparse_input_work(x_idx.shape[0], layer),
                _np(x_ptr), _np(x_idx), _np(x_val), _np(col_ptr), _idx(row_idx), _idx(perm), _np(values),
                _bias_np(bias, values), _np(y),
            )
        else:
            if bias is not None:
                y.copy_(bias.detach().unsqueeze(0))
            else:
                y.zero_()
            b, p = _expand_sparse_input(x_ptr, x_idx, col_ptr)
            contrib = x_val[b[1]] * values.detach()[perm[p].long()]
            y.index_put_((b[0], row_idx[p].long()), contrib, accumulate=True)
        ctx.save_for_backward(x_ptr, x_idx, x_val, values)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        layer = ctx.layer
        if ctx.densified:
            xt, values = ctx.saved_tensors
            gt = _batch_last(grad_out.to(values.dtype))
            gv = _value_grad_buffer(layer, values)
            grad_b = torch.empty(gt.shape[0], dtype=gt.dtype) if ctx.has_bias else None
            gb = _np(grad_b) if grad_b is not None else _bias_np(None, values)
            kernels.run(
                kernels.csr_value_grad, values.shape[0] * xt.shape[1],
                _np(layer.row_ptr), _idx(layer.col_idx), _np(xt), _np(gt), _np(gv), gb,
            )
            return None, None, None, gv, grad_b, None, None
        x_ptr, x_idx, x_val, values = ctx.saved_tensors
        g = grad_out.to(values.dtype).contiguous()
        col_ptr, row_idx, perm = layer.csc()
        if ctx.backend == "numba":
            gv = _value_grad_buffer(layer, values)
            xc_ptr, xc_row, xc_val = kernels.csr_by_column(layer.in_features, _np(x_ptr), _np(x_idx), _np(x_val))
            kernels.run(
                kernels.sparse_input_value_grad, _sparse_input_work(x_idx.shape[0], layer),
                xc_ptr, xc_row, xc_val, _np(col_ptr), _idx(row_idx), _idx(perm), _np(g), _np(gv),
            )
        else:
            gv = torch.zeros_like(values)
            b, p = _expand_sparse_input(x_ptr, x_idx, col_ptr)
            contrib = x_val[b[1]] * g[b[0], row_idx[p].long()]
            gv.index_add_(0, perm[p].long(), contrib)
        grad_b = g.sum(0) if ctx.has_bias else None
        return None, None, None, gv, grad_b, None, None


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
