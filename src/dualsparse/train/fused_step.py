"""One SGD training step of a sparse MLP without autograd: forward, loss gradient, fused backward + update.

For SET's setting (batch size 2, millions of weights) the autograd step spends most of its time
outside the arithmetic: graph bookkeeping, a value-gradient array per layer, and a separate
optimiser pass over value, gradient and momentum. :class:`FusedStep` runs the same step with the
kernels of :mod:`dualsparse.sparse.step_kernels`: each stored weight is read once in the forward
and once in a backward that also applies ``torch.optim.SGD``'s update in place, on the tensors
torch uses (``param.data`` and ``optimizer.state[param]["momentum_buffer"]``, created on the first
step the way torch does), so topology evolution, ``partial_fit``, warm starts and the autograd
path all see one consistent state.

:func:`make_fused_step` returns ``None`` (the estimator then keeps the autograd path) unless the
fit is eligible: CPU, dense input rows, every linear layer a numba-backed float32
:class:`~dualsparse.sparse.SparseLinear`, elementwise ReLU / All-ReLU / leaky ReLU / identity
activations and nothing else in between (no dropout), plain SGD (momentum and weight decay
allowed; no nesterov, dampening or maximize), a mean cross-entropy or mean squared-error loss, no
hooks on the modules. Setting ``DUALSPARSE_FUSED_STEP=0`` or ``estimator._use_fused_step = False``
forces the autograd path (tests compare the two).

Sparse layers with more inputs than fit a core's L2 (:func:`dualsparse.sparse.column_blocks.wanted`)
train on a tiled copy of their values and momentum (:class:`~dualsparse.sparse.column_blocks.
ColumnBlocks`), built on the first step after the layer's tensors last changed. At batch 2 the
tiles and the first layer's CSR update go eight weights at a time where that measured faster on
this host (:mod:`dualsparse.sparse.vector_choice`, timed once per process; the same numbers
either way). While it exists, the copy is the live state: :meth:`FusedStep.flush` writes it back,
and the estimator calls it before anything else reads or changes the model (an autograd or compiled step, a callback that
reads the model, a topology update, the end of every epoch, an error). ``DUALSPARSE_TILES=0``
keeps every layer on the CSR kernels. A tiled layer reads its input activations and its output
gradient from contiguous arrays (:meth:`FusedStep._contiguous`), written by the passes that
produce them, rather than from halves of the interleaved [activation | gradient] rows the CSR
kernels use.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..sparse import SparseLinear, kernels
from ..sparse.functional import _idx, _np  # numpy views as the autograd path's kernels get them
from ..sparse import column_blocks, vector_choice
from ..sparse import step_kernels as K
from .network import AllReLU

ENV_VAR = "DUALSPARSE_FUSED_STEP"
TILES_ENV_VAR = "DUALSPARSE_TILES"
#: multiply-adds per layer from which its kernels run on all threads
PARALLEL_MIN_WORK = kernels.PARALLEL_MIN_WORK
#: The fused step walks CSR rows, which wins where per-step overhead or streaming the weights
#: dominates: batches of up to 4, or little work per step (batch x live weights). Wider batches
#: are faster through autograd's column-order backward, which reuses each input across the batch.
#: Measured (SET MLP, 500 inputs, 2 threads; fused/autograd speed-up): 256-256 hidden: 7.5x at
#: batch 2, 2.6x at 32 (0.5 M products), 0.8x at 128 (1.9 M); 2000-2000: 2.2x at 2, 1.2x at 8
#: (1.2 M), 0.67x at 16 (2.4 M); 8000-8000: 1.8x at 2, 1.1x at 4, 0.9x at 8 (4.6 M).
FUSED_MAX_BATCH = 4
FUSED_MAX_WORK = 1_500_000


def _slope(module) -> float | None:
    """The activation as ``z if z > 0 else slope * z``; None if it is not of that form."""
    if isinstance(module, AllReLU):
        return float(module.slope)
    if type(module) is nn.ReLU:
        return 0.0
    if type(module) is nn.LeakyReLU:
        return float(module.negative_slope)
    if type(module) is nn.Identity:
        return 1.0
    return None


def _loss_kind(loss_fn) -> str | None:
    if type(loss_fn) is nn.CrossEntropyLoss:
        ok = loss_fn.weight is None and loss_fn.reduction == "mean" and loss_fn.label_smoothing == 0
        return "ce" if ok else None
    if type(loss_fn) is nn.MSELoss:
        return "mse" if loss_fn.reduction == "mean" else None
    return None


def _has_hooks(module: nn.Module) -> bool:
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or getattr(m, "_backward_pre_hooks", None)
        for m in module.modules()
    )


def make_fused_step(est, X, loss_fn) -> "FusedStep | None":
    """A fused stepper for this fit of ``est``, or None when it must train through autograd."""
    if os.environ.get(ENV_VAR, "1") == "0" or not getattr(est, "_use_fused_step", True):
        return None
    if sp.issparse(X) or torch.device(est.device).type != "cpu":
        return None
    kind = _loss_kind(loss_fn)
    model, opt = est.module_, est.optimizer_
    if kind is None or not isinstance(model, nn.Sequential) or type(opt) is not torch.optim.SGD:
        return None
    if len(opt.param_groups) != 1:
        return None
    group = opt.param_groups[0]
    if group.get("nesterov") or group.get("dampening", 0) != 0 or group.get("maximize") or group.get("differentiable"):
        return None
    children = list(model.children())
    layers, slopes = children[0::2], [_slope(m) for m in children[1::2]]
    if len(children) % 2 != 1 or any(s is None for s in slopes):
        return None
    for layer in layers:
        if type(layer) is not SparseLinear or layer.backend not in ("auto", "numba"):
            return None
        params = [layer.values] + ([layer.bias] if layer.bias is not None else [])
        if any(p.dtype != torch.float32 or p.device.type != "cpu" or not p.requires_grad for p in params):
            return None
    if _has_hooks(model):
        return None
    batch = est.batch_size
    if batch > FUSED_MAX_BATCH and batch * sum(layer.nnz for layer in layers) > FUSED_MAX_WORK:
        return None
    if {id(p) for p in group["params"]} != {id(p) for p in model.parameters()}:
        return None
    return FusedStep(est, layers, slopes, opt, kind, loss_fn)


class _LayerViews:
    """numpy views of one layer's tensors, rebuilt when the layer's tensors are replaced."""

    __slots__ = ("values_t", "bias_t", "row_ptr_t", "col_idx_t", "values", "bias", "row_ptr", "col_idx", "nnz",
                 "n_in", "n_out")

    def __init__(self, layer: SparseLinear):
        self.values_t, self.bias_t = layer.values, layer.bias
        self.row_ptr_t, self.col_idx_t = layer.row_ptr, layer.col_idx
        self.values = _np(layer.values)
        self.bias = _np(layer.bias) if layer.bias is not None else np.empty(0, dtype=np.float32)
        self.row_ptr = layer.row_ptr.numpy()
        self.col_idx = _idx(layer.col_idx)
        self.nnz = self.values.shape[0]
        self.n_in, self.n_out = layer.in_features, layer.out_features

    def current(self, layer: SparseLinear) -> bool:
        return (layer.values is self.values_t and layer.bias is self.bias_t and layer.row_ptr is self.row_ptr_t
                and layer.col_idx is self.col_idx_t)


_EMPTY = np.empty(0, dtype=np.float32)
#: the kernels' ``gcopy`` where no tiled layer reads the gradient (see FusedStep._contiguous)
_NO_COPY = np.empty((0, 0), dtype=np.float32)


class FusedStep:
    """Callable ``(xb, yb) -> (logits, loss)`` doing one SGD step in place (see the module doc)."""

    def __init__(self, est, layers, slopes, optimizer, kind, loss_fn):
        self.est = est
        self.layers = layers
        self.slopes = [np.float32(s) for s in slopes]
        self.optimizer = optimizer
        self.group = optimizer.param_groups[0]
        self.kind = kind
        self.loss_fn = loss_fn
        self.views = [_LayerViews(layer) for layer in layers]
        self._buffers: dict[int, tuple] = {}
        # tiled copies (see column_blocks), by layer: live between a step that builds them and flush()
        self.tiled = os.environ.get(TILES_ENV_VAR, "1") != "0"
        self._blocks: list = [None] * len(layers)
        self._momentum: dict[int, tuple] = {}  # id(param) -> (tensor, array)
        for layer in layers:  # stale gradients of an earlier autograd step only hold memory
            layer.values.grad = None
            if layer.bias is not None:
                layer.bias.grad = None

    # ------------------------------------------------------------------ state
    @property
    def live(self) -> bool:
        """Whether a tiled copy holds state the layers' tensors do not have yet."""
        return any(b is not None for b in self._blocks)

    def flush(self) -> None:
        """Write the tiled copies' values and momentum back into the layers' tensors (a no-op
        when none is live); from here the tensors are the state again."""
        for i, blocks in enumerate(self._blocks):
            if blocks is not None:
                blocks.flush()
                self._blocks[i] = None

    def _sync(self) -> bool:
        """Refresh views after a topology change; False if the model no longer fits this path."""
        for i, layer in enumerate(self.layers):
            v = self.views[i]
            if not v.current(layer):
                if self._blocks[i] is not None:
                    raise RuntimeError("a layer changed while its tiled copy was live: FusedStep.flush() was not "
                                       "called before the model was modified")
                if not (layer.values.dtype == torch.float32 and layer.values.is_contiguous()):
                    return False
                self.views[i] = _LayerViews(layer)
        return True

    def _state(self, param, momentum: float):
        """(buffer array, mode) for ``param``, creating torch's momentum buffer on its first step."""
        if momentum == 0:
            return _EMPTY, K.NO_MOMENTUM
        state = self.optimizer.state[param]
        buf = state.get("momentum_buffer")
        if buf is None:
            # torch: buf = d on a parameter's first step. Zeros (unread in FIRST_STEP mode) keep a
            # step that falls back to autograd right after this exact: 0.9 * 0 + d == d.
            buf = torch.zeros_like(param, memory_format=torch.contiguous_format).detach()
            state["momentum_buffer"] = buf
            arr = buf.numpy()
            self._momentum[id(param)] = (buf, arr)
            return arr, K.FIRST_STEP
        cached = self._momentum.get(id(param))
        if cached is not None and cached[0] is buf:
            return cached[1], K.MOMENTUM
        if buf.shape != param.shape or buf.dtype != param.dtype or buf.device.type != "cpu" or not buf.is_contiguous():
            return None, K.MOMENTUM
        arr = buf.detach().numpy()
        self._momentum[id(param)] = (buf, arr)
        return arr, K.MOMENTUM

    def _activations(self, batch: int):
        bufs = self._buffers.get(batch)
        if bufs is None:
            v0 = self.views[0]
            xt = np.empty((v0.n_in, batch), dtype=np.float32)
            zs = [np.empty((v.n_out, batch), dtype=np.float32) for v in self.views]
            # between layers: one row per unit, [activations | gradient] (see step_kernels)
            xgs = [np.empty((v.n_out, 2 * batch), dtype=np.float32) for v in self.views[:-1]]
            acts = [xg[:, :batch] for xg in xgs]
            grads = [xg[:, batch:] for xg in xgs] + [np.empty((self.views[-1].n_out, batch), dtype=np.float32)]
            scratch = {}  # per-thread gradient buffers of the parallel backward, by layer input
            sides = {}  # contiguous (activations, gradient) of outputs a tiled layer reads (_contiguous)
            bufs = self._buffers[batch] = (xt, zs, xgs, acts, grads, scratch, sides)
        return bufs

    def _contiguous(self, sides: dict, i: int, batch: int) -> tuple:
        """Layer ``i``'s outputs as contiguous (activations, gradient) arrays, for the tiled layers
        that read them: the next layer's forward gathers the activations, layer ``i``'s own tiled
        backward gathers the gradient (see ``column_blocks.backward_update``)."""
        pair = sides.get(i)
        if pair is None:
            n = self.views[i].n_out
            pair = sides[i] = (np.empty((n, batch), dtype=np.float32), np.empty((n, batch), dtype=np.float32))
        return pair

    def _enter(self, states, threads, batch) -> list:
        """The tiled copy of every layer that wants one, built where it is not live yet."""
        if not self.tiled:
            return self._blocks
        for i, v in enumerate(self.views):
            if self._blocks[i] is None and column_blocks.wanted(v.n_out, v.n_in, v.nnz):
                self._blocks[i] = column_blocks.ColumnBlocks(v.row_ptr, v.col_idx, v.values, states[i][0], v.n_in,
                                                             threads, batch == 2 and vector_choice.tiles().vector)
        return self._blocks

    # ------------------------------------------------------------------ step
    def __call__(self, xb: torch.Tensor, yb: torch.Tensor):
        group = self.group
        lr, momentum, wd = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
        if not self._sync() or xb.layout != torch.strided or xb.dtype != torch.float32:
            self.flush()
            return self.est._step_batch(xb, yb, self.loss_fn)
        states = []
        for layer in self.layers:
            vb, vmode = self._state(layer.values, momentum)
            bb, bmode = self._state(layer.bias, momentum) if layer.bias is not None else (_EMPTY, K.NO_MOMENTUM)
            if vb is None or bb is None:
                self.flush()
                return self.est._step_batch(xb, yb, self.loss_fn)
            states.append((vb, vmode, bb, bmode))
        x = xb.numpy()
        batch = x.shape[0]
        xt, zs, xgs, acts, grads, scratch, sides = self._activations(batch)
        np.copyto(xt, x.T)
        threads = kernels.num_threads()
        big = PARALLEL_MIN_WORK
        last = len(self.views) - 1
        blocks = self._enter(states, threads, batch)
        # contiguous copies of hidden outputs where a tiled layer reads them (see _contiguous)
        feeds_tiles = [i < last and blocks[i + 1] is not None for i in range(last + 1)]
        tiled_grad = [i < last and blocks[i] is not None for i in range(last + 1)]

        inp = xt
        for i, v in enumerate(self.views):
            act = i < last
            a = (self._contiguous(sides, i, batch)[0] if feeds_tiles[i] else acts[i]) if act else zs[i]
            slope = self.slopes[i] if act else np.float32(1)
            if blocks[i] is not None:
                blocks[i].forward(v.bias, inp, zs[i], a, slope, act, threads)
            elif threads > 1 and v.nnz * batch >= big:
                K.forward_par(v.row_ptr, v.col_idx, v.values, v.bias, inp, zs[i], a, slope, act, threads)
            else:
                K.forward(v.row_ptr, v.col_idx, v.values, v.bias, inp, zs[i], a, slope, act)
            inp = a

        out = np.empty((batch, self.views[last].n_out), dtype=np.float32)
        y = yb.numpy()
        if self.kind == "ce":
            loss = K.cross_entropy_grad(zs[last], y, grads[last], out)
        else:
            loss = K.mse_grad(zs[last], y, grads[last], out)

        lr32, mom32, wd32 = np.float32(lr), np.float32(momentum), np.float32(wd)
        for i in range(last, -1, -1):
            v = self.views[i]
            vb, vmode, bb, bmode = states[i]
            par = threads > 1 and v.nnz * batch >= big
            gt = self._contiguous(sides, i, batch)[1] if tiled_grad[i] else grads[i]
            # the gradient of this layer's input, also copied contiguous where a tiled layer reads it
            gcopy = self._contiguous(sides, i - 1, batch)[1] if i > 0 and tiled_grad[i - 1] else _NO_COPY
            if blocks[i] is not None:
                if i > 0:
                    xin = self._contiguous(sides, i - 1, batch)[0]
                    blocks[i].backward_update(v.bias, bb, xgs[i - 1], gt, zs[i - 1], self.slopes[i - 1], lr32,
                                              mom32, wd32, vmode, bmode, threads, xin, gcopy)
                else:
                    blocks[i].update(v.bias, bb, xt, gt, lr32, mom32, wd32, vmode, bmode, threads)
            elif i > 0:
                args = (v.row_ptr, v.col_idx, v.values, vb, v.bias, bb, xgs[i - 1], gt,
                        zs[i - 1], self.slopes[i - 1], lr32, mom32, wd32, vmode, bmode, gcopy)
                if par and K.wide_rows(v.n_out, v.n_in, v.nnz):  # a few long rows: threads own inputs
                    K.backward_update_cols(*args, threads)
                elif par:
                    key = (i, threads)
                    if key not in scratch:
                        scratch[key] = np.empty((threads,) + xgs[i - 1].shape, dtype=np.float32)
                    K.backward_update_par(*args, scratch[key])
                else:
                    K.backward_update(*args)
            else:
                # the vector kernels exist for batch 2 only: no timing for fits that cannot use them
                vector = batch == 2 and vector_choice.rows().vector
                args = (v.row_ptr, v.col_idx, v.values, vb, v.bias, bb, xt, gt, lr32, mom32, wd32, vmode, bmode)
                if par:
                    K.update_par(*args, threads, vector)
                else:
                    K.update(*args, vector)
        return torch.from_numpy(out), loss
