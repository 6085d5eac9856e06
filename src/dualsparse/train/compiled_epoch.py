"""Train whole epochs of a small sparse MLP in one compiled call, on torch's own tensors.

Per-step overhead, not arithmetic, set the time of the fits studies are made of: on Breast Cancer
(30-200-200-2, batch 32, Adam) a SET fit at 90 % sparsity took longer than scikit-learn's dense
MLP. :class:`CompiledEpoch` hands the batches of an epoch (or of the part of it between two
gradient captures) to :func:`dualsparse.sparse.epoch_kernels.train_epoch`, which runs forward,
loss gradient, backward and the optimiser update for all of them without returning to Python.

It reads and writes the tensors the autograd path uses — ``param.data``, and the optimiser's
state (``momentum_buffer``; Adam's ``step``, ``exp_avg``, ``exp_avg_sq``), created the way torch
creates them — so topology updates (which remap that state), ``partial_fit``, warm starts and a
fall-back autograd step all continue one consistent run.

:meth:`CompiledEpoch.make` returns ``None`` (the estimator then keeps its per-step paths) unless
the fit is eligible: CPU; dense float32 rows or a float32 CSR matrix; every linear layer a
numba-backed float32 :class:`~dualsparse.sparse.SparseLinear`; activations of the form
``z if z > 0 else slope * z`` (ReLU, leaky ReLU, All-ReLU, identity), tanh or logistic, and
nothing else in between (no dropout); ``torch.optim.SGD`` (momentum and weight decay; no
nesterov, dampening or maximize) or ``torch.optim.Adam`` (no amsgrad / maximize / capturable);
mean cross-entropy or squared error; no hooks; not batches of one or two rows where the fused SGD
step applies (:data:`FUSED_PREFERRED_MAX_BATCH`); no callback whose ``on_batch_end`` reads the model
while it runs (callbacks that read only the hook's arguments, ``on_batch_end_reads_model =
False`` like the per-example tracker, are called for every batch after each compiled run); and
little enough work per step that one thread beats the threaded per-step kernels
(:data:`MAX_WORK`). ``DUALSPARSE_COMPILED_EPOCH=0`` or ``estimator._use_compiled_epoch = False``
turns it off (tests compare the paths).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..sparse import SparseLinear, kernels
from ..sparse import epoch_kernels as E
from ..sparse.functional import _idx, _np
from .callbacks import Callback
from .fused_step import _has_hooks, _loss_kind, _slope

ENV_VAR = "DUALSPARSE_COMPILED_EPOCH"
#: stored fraction of a sparse-input batch below which the first layer walks the stored values
#: (cost: stored values x fan-out); denser batches are scattered into the dense loops, which
#: vectorise over the batch (see benchmarks/small_data.py)
SPARSE_WALK_BELOW = 0.05
#: batch x live weights up to which one compiled thread is used when several are available; above
#: it the per-step paths' threaded kernels win. Measured (SET MLP 500-H-H-2, SGD, 2 threads;
#: compiled / per-step time): H = 1000, batch 32 (4.8 M): 0.79; H = 2000, batch 32 (16 M): 1.39,
#: batch 128 (64 M): 2.31.
MAX_WORK = 8_000_000
#: batches up to which the fused SGD step (train/fused_step.py) is preferred where it applies: its
#: kernels are specialised for one and two rows (same net, batch 2: compiled / fused 1.23 at
#: H = 300, 1.94 at H = 1000; at batch 4 the compiled epoch was faster, 0.60 and 0.93).
FUSED_PREFERRED_MAX_BATCH = 2

_EMPTY_F = np.empty(0, dtype=np.float32)
_EMPTY_I = np.empty(0, dtype=np.int64)
_EMPTY_2D = np.empty((0, 0), dtype=np.float32)


def _activation(module) -> tuple[int, float] | None:
    slope = _slope(module)
    if slope is not None:
        return E.ACT_SLOPE, slope
    if type(module) is nn.Tanh:
        return E.ACT_TANH, 0.0
    if type(module) is nn.Sigmoid:
        return E.ACT_LOGISTIC, 0.0
    return None


def _optimizer_kind(opt) -> int | None:
    if len(opt.param_groups) != 1:
        return None
    group = opt.param_groups[0]
    if group.get("maximize") or group.get("differentiable") or group.get("capturable"):
        return None
    if not isinstance(group.get("lr"), float):
        return None
    if type(opt) is torch.optim.SGD:
        if group.get("nesterov") or group.get("dampening", 0) != 0:
            return None
        return E.SGD_MOMENTUM if group["momentum"] != 0 else E.SGD
    if type(opt) is torch.optim.Adam:
        if group.get("amsgrad") or group.get("decoupled_weight_decay"):
            return None
        return E.ADAM
    return None


def batch_callbacks(callbacks) -> tuple[bool, bool]:
    """(any callback has an ``on_batch_end``, one of those reads the model while it runs)."""
    wants, reads = False, False
    for cb in getattr(callbacks, "callbacks", callbacks) or []:
        hook = getattr(type(cb), "on_batch_end", None)
        if hook is not None and hook is not Callback.on_batch_end:
            wants = True
            reads = reads or getattr(cb, "on_batch_end_reads_model", True)
    return wants, reads


class CompiledEpoch:
    """``run(order) -> summed loss`` trains on rows ``order`` of X in batches (see the module doc)."""

    def __init__(self, est, X, y, layers, acts, loss_kind, opt_kind, rows=None):
        self.layers = layers
        self.optimizer = est.optimizer_
        self.opt_kind = opt_kind
        self.loss_kind = loss_kind
        self.act_kind = np.array([a[0] for a in acts] + [0], dtype=np.int64)
        self.slopes = np.array([a[1] for a in acts] + [0.0], dtype=np.float32)
        self.sparse_input = sp.issparse(X)
        self.rows = rows  # a CSR input read as dense rows: its first-layer products (FLOP count)
        if self.sparse_input and rows is None:  # walked or scattered per batch by the kernel
            self.X = _EMPTY_2D
            self.x_ptr = X.indptr.astype(np.int64, copy=False)
            self.x_idx = X.indices.astype(np.int64, copy=False)
            self.x_val = X.data.astype(np.float32, copy=False)
        else:  # dense rows: the input's, or a small CSR input's (see input_rows)
            self.X = np.ascontiguousarray(X if rows is None else rows.X, dtype=np.float32)
            self.x_ptr = self.x_idx = _EMPTY_I
            self.x_val = _EMPTY_F
        if loss_kind == E.LOSS_CE:
            self.y_int, self.y_real = np.ascontiguousarray(y, dtype=np.int64), _EMPTY_2D
        else:
            self.y_int, self.y_real = _EMPTY_I, np.ascontiguousarray(y, dtype=np.float32)
        batch = est.batch_size
        self.batch = batch
        self.xt = np.empty((layers[0].in_features, batch), dtype=np.float32)
        self.zs = tuple(np.empty((m.out_features, batch), dtype=np.float32) for m in layers)
        self.acts = tuple(np.empty((m.out_features, batch), dtype=np.float32) for m in layers)
        self.grads = tuple(np.empty((m.out_features, batch), dtype=np.float32) for m in layers)
        self.first_products = None

    @classmethod
    def make(cls, est, X, y, loss_fn, callbacks, fused=None, rows=None) -> "CompiledEpoch | None":
        """A compiled-epoch trainer for this fit of ``est``, or None when it must train per step
        (``fused``: the fit's fused SGD step, if it has one; ``rows``: a CSR ``X`` as the dense
        rows the fit reads, :class:`~.input_rows.DenseRows`)."""
        if os.environ.get(ENV_VAR, "1") == "0" or not getattr(est, "_use_compiled_epoch", True):
            return None
        if fused is not None and est.batch_size <= FUSED_PREFERRED_MAX_BATCH:
            return None
        if torch.device(est.device).type != "cpu" or batch_callbacks(callbacks)[1]:
            return None
        if sp.issparse(X):
            if X.dtype != np.float32 or not X.has_sorted_indices:
                return None
        elif not (isinstance(X, np.ndarray) and X.dtype == np.float32 and X.ndim == 2):
            return None
        loss_kind = {"ce": E.LOSS_CE, "mse": E.LOSS_MSE}.get(_loss_kind(loss_fn))
        model, opt = est.module_, est.optimizer_
        if loss_kind is None or not isinstance(model, nn.Sequential):
            return None
        opt_kind = _optimizer_kind(opt)
        if opt_kind is None:
            return None
        children = list(model.children())
        if len(children) % 2 != 1:
            return None
        layers, acts = children[0::2], [_activation(m) for m in children[1::2]]
        if any(a is None for a in acts):
            return None
        for layer in layers:
            if type(layer) is not SparseLinear or layer.backend not in ("auto", "numba") or layer.bias is None:
                return None
            if layer.col_idx.dtype != torch.int32:  # int32 columns: under 2**31 inputs
                return None
            for p in (layer.values, layer.bias):
                if p.dtype != torch.float32 or p.device.type != "cpu" or not p.requires_grad:
                    return None
        if _has_hooks(model):
            return None
        if {id(p) for p in opt.param_groups[0]["params"]} != {id(p) for p in model.parameters()}:
            return None
        work = est.batch_size * sum(layer.nnz for layer in layers)
        if kernels.num_threads() > 1 and work > MAX_WORK:
            return None
        return cls(est, X, y, layers, acts, loss_kind, opt_kind, rows)

    # ------------------------------------------------------------------ optimiser state
    def _state(self, param) -> tuple[np.ndarray, np.ndarray, int] | None:
        """(first, second) state arrays of ``param`` and its step count; created as torch would."""
        kind = self.opt_kind
        if kind == E.SGD:
            return _EMPTY_F, _EMPTY_F, 0
        state = self.optimizer.state[param]
        if kind == E.SGD_MOMENTUM:
            buf = state.get("momentum_buffer")
            if buf is None:
                # torch: buf = d on the first step; a zero buffer gives momentum * 0 + d == d
                buf = state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format).detach()
            return (_array(buf), _EMPTY_F, 0) if _usable(buf, param) else None
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        m, v, step = state.get("exp_avg"), state.get("exp_avg_sq"), state.get("step")
        if m is None or v is None or step is None or not (_usable(m, param) and _usable(v, param)):
            return None
        return _array(m), _array(v), int(float(step))

    def _arrays(self):
        """The kernel's per-layer tuples, read afresh (topology updates replace tensors)."""
        rows, cols, vals, biases, s1v, s2v, s1b, s2b, steps = [], [], [], [], [], [], [], [], set()
        for layer in self.layers:
            if not layer.values.is_contiguous():
                return None
            sv, sb = self._state(layer.values), self._state(layer.bias)
            if sv is None or sb is None:
                return None
            rows.append(layer.row_ptr.numpy())
            cols.append(_idx(layer.col_idx))
            vals.append(_np(layer.values))
            biases.append(_np(layer.bias))
            s1v.append(sv[0])
            s2v.append(sv[1])
            s1b.append(sb[0])
            s2b.append(sb[1])
            steps.update((sv[2], sb[2]))
        if len(steps) != 1:  # Adam parameters at different step counts: keep torch's own loop
            return None
        return tuple(rows), tuple(cols), tuple(vals), tuple(biases), tuple(s1v), tuple(s2v), tuple(s1b), tuple(s2b), steps.pop()

    # ------------------------------------------------------------------ run
    def run(self, order: np.ndarray, record: bool = False):
        """Train on rows ``order`` (a whole number of batches, or the epoch's tail).

        Returns the summed per-row loss, or None if the model no longer fits this path (the
        caller steps instead); ``first_products`` is then the first layer's products on sparse
        input by the FLOP convention (None for dense input). With ``record``: ``(loss, outputs,
        batch_losses)``, the network's output for every row of ``order`` (as its batch met it)
        and each batch's mean loss.
        """
        arrays = self._arrays()
        if arrays is None:
            return None
        rows, cols, vals, biases, s1v, s2v, s1b, s2b, step0 = arrays
        group = self.optimizer.param_groups[0]
        betas = group.get("betas", (0.9, 0.999))
        hyper = np.array([group["lr"], group.get("momentum", 0.0), group["weight_decay"],
                          betas[0], betas[1], group.get("eps", 1e-8)], dtype=np.float64)
        first = self.layers[0]
        walks = self.sparse_input and self.rows is None
        if walks:
            col_ptr, row_idx, perm = first.csc()
            csc = (col_ptr.numpy(), _idx(row_idx).astype(np.int64, copy=False), _idx(perm).astype(np.int64, copy=False))
        else:
            csc = (_EMPTY_I, _EMPTY_I, _EMPTY_I)
        order = np.ascontiguousarray(order, dtype=np.int64)
        n_out = self.layers[-1].out_features
        outputs = np.empty((order.size, n_out) if record else (0, 0), dtype=np.float32)
        batch_losses = np.empty(-(-order.size // self.batch) if record else 0, dtype=np.float64)
        total, products = E.train_epoch(
            self.X, self.x_ptr, self.x_idx, self.x_val, walks, SPARSE_WALK_BELOW, order, self.batch,
            rows, cols, vals, biases, s1v, s2v, s1b, s2b, csc[0], csc[1], csc[2],
            tuple(np.empty_like(v) for v in vals), tuple(np.empty_like(b) for b in biases),
            self.xt, self.zs, self.acts, self.grads,
            self.act_kind, self.slopes, self.loss_kind, self.y_int, self.y_real,
            self.opt_kind, hyper, step0, outputs, batch_losses,
        )
        if self.opt_kind == E.ADAM:
            n_steps = -(-order.size // self.batch)
            for layer in self.layers:
                for p in (layer.values, layer.bias):
                    self.optimizer.state[p]["step"] += n_steps
        if self.rows is not None:  # the kernel ran dense rows: count the stored values' products
            products = self.rows.first_products(first, order)
        self.first_products = int(products) if self.sparse_input else None
        return (float(total), outputs, batch_losses) if record else float(total)


def _usable(state: torch.Tensor, param: torch.Tensor) -> bool:
    return (state.shape == param.shape and state.dtype == param.dtype and state.device.type == "cpu"
            and state.is_contiguous())


def _array(state: torch.Tensor) -> np.ndarray:
    """The state tensor's memory as an array the kernel updates in place (torch sees the update)."""
    return state.detach().numpy()
