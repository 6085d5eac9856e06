"""Numba kernels for a fused SGD training step of a stack of sparse layers (batch-last, CPU).

The autograd path makes, per layer and step, one pass over the stored weights for the forward,
one for the backward (input gradient + value gradient into a separate ``(nnz,)`` array) and one
more in the optimiser (value, gradient, momentum). Here the backward pass over the non-zeros
reads each weight once, uses its OLD value for the input gradient, and writes the updated value
and momentum right away — no value-gradient array, no optimiser pass:

    d = <g[i, :], x[j, :]> + weight_decay * w          (torch.optim.SGD, no dampening/nesterov)
    buf = momentum * buf + d     (buf = d on the first step; no buffer at all when momentum == 0)
    w  -= lr * buf

Activations are fused too: the forward writes the pre-activation ``z`` and ``a = z if z > 0
else slope * z`` (ReLU: slope 0, All-ReLU: +-alpha, identity: 1); the backward multiplies the
input gradient by the derivative of the previous layer's activation on its own input range.

Threads: every kernel splits the rows in nnz-balanced ranges, so each stored weight (value and
momentum) is written by one thread and no two threads write the same cache line of them; the
backward with input gradient scatters into per-thread gradient buffers that a second parallel
loop sums (an input-range split as in ``kernels.csr_backward`` made the two threads write the
same line of ``values`` and of the momentum at every row: 2 threads were slower than 1).
Scalars (lr, momentum, weight decay, slope) are passed in the data type, so float32 stays float32.

Between two layers the activations and their gradient share one array, ``xg`` (units x 2 batch:
``[:, :batch]`` activations, ``[:, batch:]`` gradient), so that the backward's gather of an input
and its scatter of the input gradient touch one cache line, which is prefetched for writing a few
weights ahead. Measured on one 600,000 x 600,000 layer (24 M weights, batch 2, 1 thread): backward
with update 9.0 ns per weight with separate arrays, 6.8 interleaved, 5.7 interleaved + prefetch
(the autograd path: ``csr_backward`` alone ~9 ns, plus the optimiser's pass). Loop indices are
uint64 (no negative-index wraparound code on every access: -30 % at H = 3,000).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# the kernels module's compilation rules, flush-to-zero switch and binary search: _JIT_EXACT is
# csr_forward's rule (outputs are bias + w_1 x_1 + w_2 x_2 + ... in CSR order, one FMA after the
# other), so the fused forward gives the autograd forward's numbers
from .kernels import FIRST_STEP, MOMENTUM, NO_MOMENTUM, _JIT, _JIT_EXACT, _ftz_off, _ftz_on, _lower_bound
from .vector_ops import WIDTH, make_update_row8, pairs_ok

def _as(a, v):  # pragma: no cover - replaced in compiled code
    return v


@overload(_as)
def _as_impl(a, v):
    """``v`` converted to ``a``'s dtype (float32 arithmetic stays float32)."""
    dt = a.dtype

    def impl(a, v):
        return dt(v)

    return impl


_ONE = np.uint64(1)
#: weights ahead whose input row the backward prefetches
_AHEAD = np.uint64(16)


@intrinsic
def _prefetch_row(typingctx, arr, j):
    """Prefetch ``arr[j, 0]``'s cache line for writing (``llvm.prefetch``, a hint only)."""

    def codegen(context, builder, sig, args):
        aryty, jty = sig.args
        ary = context.make_array(aryty)(context, builder, args[0])
        jj = context.cast(builder, args[1], jty, types.intp)
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [jj, zero], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(arr, j), codegen


@nb.njit(**_JIT)
def _u(i):
    """An index as uint64: Numba then drops the negative-index wraparound on every access (-30 %)."""
    return np.uint64(i)


@nb.njit(**_JIT)
def _row_split(row_ptr, t, nt):
    """Row where the t-th of nt nnz-balanced row ranges starts."""
    n = row_ptr.shape[0] - 1
    if t <= 0:
        return 0
    if t >= nt:
        return n
    return _lower_bound(row_ptr, 0, n, row_ptr[n] * t // nt)


# torch.optim.SGD's update of one value, per momentum mode (d: gradient plus weight decay)
@nb.njit(inline="always", **_JIT)
def _step_momentum(values, buf, k, w, d, lr, mom):
    b = mom * buf[k] + d
    buf[k] = b
    values[k] = w - lr * b


@nb.njit(inline="always", **_JIT)
def _step_first(values, buf, k, w, d, lr, mom):
    buf[k] = d
    values[k] = w - lr * d


@nb.njit(inline="always", **_JIT)
def _step_plain(values, buf, k, w, d, lr, mom):
    values[k] = w - lr * d


@nb.njit(**_JIT)
def _sgd(values, buf, k, w, d, lr, mom, mode):
    if mode == MOMENTUM:
        _step_momentum(values, buf, k, w, d, lr, mom)
    elif mode == FIRST_STEP:
        _step_first(values, buf, k, w, d, lr, mom)
    else:
        _step_plain(values, buf, k, w, d, lr, mom)


# ---------------------------------------------------------------------------- forward
@nb.njit(**_JIT_EXACT)
def _forward_rows(row_ptr, col_idx, values, bias, xt, zt, at, slope, act, i0, i1):
    batch = zt.shape[1]
    has_bias = bias.shape[0] > 0
    zero = _as(zt, 0)
    if batch == 1:
        for i in range(i0, i1):
            s0 = bias[i] if has_bias else zero
            for k in range(_u(row_ptr[i]), _u(row_ptr[i + 1])):
                s0 += values[k] * xt[col_idx[k], 0]
            zt[i, 0] = s0
            if act:
                at[i, 0] = s0 if s0 > 0 else s0 * slope
    elif batch == 2:
        # Two rows at a time: four independent FMA chains instead of two (each output keeps its
        # own CSR-order chain, so the numbers are those of one row at a time).
        i = i0
        while i < i1:
            two = i + 1 < i1
            s0 = bias[i] if has_bias else zero
            s1 = s0
            t0 = zero
            if two:
                t0 = bias[i + 1] if has_bias else zero
            t1 = t0
            ka = _u(row_ptr[i])
            ea = _u(row_ptr[i + 1])
            kb = ea
            eb = _u(row_ptr[i + 2]) if two else ea
            n = min(ea - ka, eb - kb)
            for q in range(n):
                wa = values[ka + q]
                ja = col_idx[ka + q]
                wb = values[kb + q]
                jb = col_idx[kb + q]
                s0 += wa * xt[ja, 0]
                s1 += wa * xt[ja, 1]
                t0 += wb * xt[jb, 0]
                t1 += wb * xt[jb, 1]
            for k in range(ka + n, ea):
                w = values[k]
                j = col_idx[k]
                s0 += w * xt[j, 0]
                s1 += w * xt[j, 1]
            for k in range(kb + n, eb):
                w = values[k]
                j = col_idx[k]
                t0 += w * xt[j, 0]
                t1 += w * xt[j, 1]
            zt[i, 0] = s0
            zt[i, 1] = s1
            if act:
                at[i, 0] = s0 if s0 > 0 else s0 * slope
                at[i, 1] = s1 if s1 > 0 else s1 * slope
            if two:
                zt[i + 1, 0] = t0
                zt[i + 1, 1] = t1
                if act:
                    at[i + 1, 0] = t0 if t0 > 0 else t0 * slope
                    at[i + 1, 1] = t1 if t1 > 0 else t1 * slope
            i += 2
    else:
        for i in range(i0, i1):
            y = zt[i]
            b0 = bias[i] if has_bias else zero
            for b in range(batch):
                y[b] = b0
            for k in range(_u(row_ptr[i]), _u(row_ptr[i + 1])):
                w = values[k]
                x = xt[col_idx[k]]
                for b in range(batch):
                    y[b] += w * x[b]
            if act:
                a = at[i]
                for b in range(batch):
                    s = y[b]
                    a[b] = s if s > 0 else s * slope


@nb.njit(**_JIT_EXACT)
def forward(row_ptr, col_idx, values, bias, xt, zt, at, slope, act):
    """zt = W xt + bias (batch-last); at = activation(zt) if ``act`` (one thread)."""
    old = _ftz_on()
    _forward_rows(row_ptr, col_idx, values, bias, xt, zt, at, slope, act, 0, zt.shape[0])
    _ftz_off(old)


@nb.njit(parallel=True, **_JIT_EXACT)
def forward_par(row_ptr, col_idx, values, bias, xt, zt, at, slope, act, nt):
    for t in nb.prange(nt):
        old = _ftz_on()
        i0 = _row_split(row_ptr, t, nt)
        i1 = _row_split(row_ptr, t + 1, nt)
        _forward_rows(row_ptr, col_idx, values, bias, xt, zt, at, slope, act, i0, i1)
        _ftz_off(old)


# ---------------------------------------------------------------------------- bias
@nb.njit(**_JIT)
def _bias_rows(gt, bias, bbuf, lr, mom, wd, mode, i0, i1):
    batch = gt.shape[1]
    for i in range(i0, i1):
        s = _as(gt, 0)
        for b in range(batch):
            s += gt[i, b]
        w = bias[i]
        _sgd(bias, bbuf, i, w, s + wd * w, lr, mom, mode)


# ---------------------------------------------------------------------------- value-only update
_WIDTH = np.uint64(WIDTH)  # a group's stride as an index (column_blocks reads it too)
_update8_momentum = make_update_row8(MOMENTUM)
_update8_first = make_update_row8(FIRST_STEP)
_update8_plain = make_update_row8(NO_MOMENTUM)


@nb.njit(**_JIT)
def _update_rows(row_ptr, col_idx, values, buf, xt, gt, lr, mom, wd, mode, i0, i1, vector):
    batch = gt.shape[1]
    if batch == 1:
        for i in range(i0, i1):
            g0 = gt[i, 0]
            for k in range(_u(row_ptr[i]), _u(row_ptr[i + 1])):
                w = values[k]
                _sgd(values, buf, k, w, g0 * xt[col_idx[k], 0] + wd * w, lr, mom, mode)
    elif batch == 2:
        vector = vector and pairs_ok(xt)
        for i in range(i0, i1):
            g0 = gt[i, 0]
            g1 = gt[i, 1]
            k = _u(row_ptr[i])
            hi = _u(row_ptr[i + 1])
            if vector:  # eight weights at a time (vector_ops), the same arithmetic
                while k + _WIDTH <= hi:
                    if mode == MOMENTUM:
                        done = _update8_momentum(col_idx, values, buf, xt, g0, g1, k, lr, mom, wd)
                    elif mode == FIRST_STEP:
                        done = _update8_first(col_idx, values, buf, xt, g0, g1, k, lr, mom, wd)
                    else:
                        done = _update8_plain(col_idx, values, buf, xt, g0, g1, k, lr, mom, wd)
                    if not done:
                        break
                    k += _WIDTH
            for k in range(k, hi):
                j = col_idx[k]
                w = values[k]
                _sgd(values, buf, k, w, (g0 * xt[j, 0] + g1 * xt[j, 1]) + wd * w, lr, mom, mode)
    else:
        for i in range(i0, i1):
            g = gt[i]
            for k in range(_u(row_ptr[i]), _u(row_ptr[i + 1])):
                x = xt[col_idx[k]]
                s = _as(gt, 0)
                for b in range(batch):
                    s += g[b] * x[b]
                w = values[k]
                _sgd(values, buf, k, w, s + wd * w, lr, mom, mode)


@nb.njit(**_JIT)
def update(row_ptr, col_idx, values, buf, bias, bbuf, xt, gt, lr, mom, wd, mode, bmode, vector=False):
    """SGD on a layer whose input gradient is not needed (the first one): values and bias
    (``vector``: eight weights at a time at batch 2, see vector_ops and vector_choice)."""
    old = _ftz_on()
    _update_rows(row_ptr, col_idx, values, buf, xt, gt, lr, mom, wd, mode, 0, gt.shape[0], vector)
    if bias.shape[0] > 0:
        _bias_rows(gt, bias, bbuf, lr, mom, wd, bmode, 0, gt.shape[0])
    _ftz_off(old)


@nb.njit(parallel=True, **_JIT)
def update_par(row_ptr, col_idx, values, buf, bias, bbuf, xt, gt, lr, mom, wd, mode, bmode, nt, vector=False):
    n_out = gt.shape[0]
    for t in nb.prange(nt):
        old = _ftz_on()
        _update_rows(row_ptr, col_idx, values, buf, xt, gt, lr, mom, wd, mode,
                     _row_split(row_ptr, t, nt), _row_split(row_ptr, t + 1, nt), vector)
        if bias.shape[0] > 0:
            _bias_rows(gt, bias, bbuf, lr, mom, wd, bmode, n_out * t // nt, n_out * (t + 1) // nt)
        _ftz_off(old)


# ---------------------------------------------------------------------------- backward + update
@nb.njit(inline="always", **_JIT)
def _backward_span(col_idx, values, buf, xg, gt, lr, mom, wd, mode, i, k, hi):
    """Weights [k, hi) of row i: input gradient with the OLD values accumulated into
    ``xg[:, batch:]``, then SGD on each weight in the same visit.

    ``xg[j]`` holds input j's activations (``xg[j, :batch]``) and accumulates its gradient
    (``xg[j, batch:]``): the gather and the scatter of a weight touch one cache line, not two,
    and that line is prefetched for writing a few weights ahead.
    """
    batch = gt.shape[1]
    nnz = _u(values.shape[0])
    k = _u(k)
    hi = _u(hi)
    if batch == 1:
        g0 = gt[i, 0]
        while k < hi:
            if k + _AHEAD < nnz:
                _prefetch_row(xg, col_idx[k + _AHEAD])
            w = values[k]
            r = xg[col_idx[k]]
            r[1] += w * g0
            _sgd(values, buf, k, w, g0 * r[0] + wd * w, lr, mom, mode)
            k += _ONE
    elif batch == 2:
        g0 = gt[i, 0]
        g1 = gt[i, 1]
        while k < hi:
            if k + _AHEAD < nnz:
                _prefetch_row(xg, col_idx[k + _AHEAD])
            w = values[k]
            r = xg[col_idx[k]]
            r[2] += w * g0
            r[3] += w * g1
            _sgd(values, buf, k, w, (g0 * r[0] + g1 * r[1]) + wd * w, lr, mom, mode)
            k += _ONE
    else:
        g = gt[i]
        while k < hi:
            w = values[k]
            r = xg[col_idx[k]]
            s = _as(gt, 0)
            for b in range(batch):
                s += g[b] * r[b]
                r[batch + b] += w * g[b]
            _sgd(values, buf, k, w, s + wd * w, lr, mom, mode)
            k += _ONE


@nb.njit(**_JIT)
def _backward_rows(row_ptr, col_idx, values, buf, xg, gt, lr, mom, wd, mode, r0, r1):
    """:func:`_backward_span` over the whole rows [r0, r1)."""
    for i in range(r0, r1):
        _backward_span(col_idx, values, buf, xg, gt, lr, mom, wd, mode, i, row_ptr[i], row_ptr[i + 1])


@nb.njit(**_JIT)
def _zero_gradient(xg, j0, j1):
    """xg[j, batch:] = 0 for j in [j0, j1): where the backward accumulates inputs' gradients."""
    batch = xg.shape[1] // 2
    for j in range(j0, j1):
        for b in range(batch):
            xg[j, batch + b] = 0


@nb.njit(**_JIT)
def _stage_inputs(xg, xin, j0, j1):
    """xg[j] = [xin[j] | 0] for j in [j0, j1): the layer's input beside its zeroed gradient, from
    the contiguous activations a tiled layer's forward read (see ``column_blocks``)."""
    batch = xg.shape[1] // 2
    for j in range(j0, j1):
        for b in range(batch):
            xg[j, b] = xin[j, b]
            xg[j, batch + b] = 0


@nb.njit(**_JIT)
def _derivative(xg, zprev, slope, j0, j1, gcopy):
    """xg[j, batch:] *= act'(zprev[j]) for j in [j0, j1), and the result into ``gcopy[j]`` too
    unless ``gcopy`` is empty: the contiguous gradient a tiled layer below gathers from (see
    ``column_blocks``), written in this pass rather than copied in another.

    Branch-free (a select and an unconditional store): hidden units' signs are close to random,
    and a branch on them mispredicted half the time: 8.4 -> 2.3 ms for SET's 600,000 units, batch 2,
    one thread."""
    batch = zprev.shape[1]
    copy = gcopy.shape[0] > 0
    for j in range(j0, j1):
        for b in range(batch):
            g = xg[j, batch + b]
            g = g if zprev[j, b] > 0 else g * slope
            xg[j, batch + b] = g
            if copy:
                gcopy[j, b] = g


@nb.njit(**_JIT)
def backward_update(row_ptr, col_idx, values, buf, bias, bbuf, xg, gt, zprev, slope, lr, mom, wd, mode, bmode,
                    gcopy):
    """``xg[:, B:] = act'(zprev) * (W.T gt)`` with the old W (``xg[:, :B]``: the layer's input),
    then SGD on values and bias (one thread). ``gcopy``: empty, or (n_in, B) to receive a
    contiguous copy of the input gradient (:func:`_derivative`)."""
    old = _ftz_on()
    n_in = xg.shape[0]
    _zero_gradient(xg, 0, n_in)
    _backward_rows(row_ptr, col_idx, values, buf, xg, gt, lr, mom, wd, mode, 0, gt.shape[0])
    _derivative(xg, zprev, slope, 0, n_in, gcopy)
    if bias.shape[0] > 0:
        _bias_rows(gt, bias, bbuf, lr, mom, wd, bmode, 0, gt.shape[0])
    _ftz_off(old)


@nb.njit(parallel=True, **_JIT)
def backward_update_par(row_ptr, col_idx, values, buf, bias, bbuf, xg, gt, zprev, slope, lr, mom, wd, mode, bmode,
                        gcopy, scratch):
    """:func:`backward_update` on ``scratch.shape[0]`` threads.

    Thread t owns an nnz-balanced range of rows (so it alone writes those values and momenta: no
    false sharing, which splitting by *input* range would cause at every row's split point) and
    scatters into its own ``scratch[t]`` (a copy of ``xg``'s activations, gradient zeroed); a
    second parallel loop sums the threads' gradients into ``xg[:, B:]`` by input range.
    """
    nt = scratch.shape[0]
    batch = gt.shape[1]
    n_in = xg.shape[0]
    n_out = gt.shape[0]
    for t in nb.prange(nt):
        old = _ftz_on()
        p = scratch[t]
        for j in range(n_in):
            for b in range(batch):
                p[j, b] = xg[j, b]
                p[j, batch + b] = 0
        _backward_rows(row_ptr, col_idx, values, buf, p, gt, lr, mom, wd, mode,
                       _row_split(row_ptr, t, nt), _row_split(row_ptr, t + 1, nt))
        if bias.shape[0] > 0:
            _bias_rows(gt, bias, bbuf, lr, mom, wd, bmode, n_out * t // nt, n_out * (t + 1) // nt)
        _ftz_off(old)
    for t in nb.prange(nt):
        old = _ftz_on()
        j0 = n_in * t // nt
        j1 = n_in * (t + 1) // nt
        for j in range(j0, j1):
            for b in range(batch):
                s = scratch[0, j, batch + b]
                for u in range(1, nt):
                    s += scratch[u, j, batch + b]
                xg[j, batch + b] = s
        _derivative(xg, zprev, slope, j0, j1, gcopy)
        _ftz_off(old)


def wide_rows(n_out: int, n_in: int, nnz: int) -> bool:
    """Whether a layer is a few long rows, for :func:`backward_update_cols`: 256 or more weights a
    row on average, and at least 64 inputs per row (a dense output layer's shape)."""
    return n_out * 256 <= nnz and n_out * 64 <= n_in


@nb.njit(parallel=True, **_JIT)
def backward_update_cols(row_ptr, col_idx, values, buf, bias, bbuf, xg, gt, zprev, slope, lr, mom, wd, mode, bmode,
                         gcopy, nt):
    """:func:`backward_update` on ``nt`` threads for a layer of a few long rows (:func:`wide_rows`).

    Thread t owns a range of inputs and, in every row, the weights that read them (found by binary
    search): it alone writes those inputs' gradients, straight into ``xg``, with no per-thread
    copies of it to zero and sum as :func:`backward_update_par` needs, and each input's gradient
    adds its rows in CSR order: the one-thread :func:`backward_update`'s numbers bit for bit, on
    any number of threads. Two threads share a cache line of values only at their boundary in each
    row. SET's dense 600,000 -> 5 output layer, 2 threads: 7.7-8.3 ms a step against 9.3-10.6 with
    the per-thread copies (two runs of 15 interleaved calls each). Walking the inputs in L2-sized chunks, every
    row in turn, was slower (9.9-10.2 ms): five rows' streams of values, momentum and indices at
    once instead of one."""
    n_in = xg.shape[0]
    n_out = gt.shape[0]
    for t in nb.prange(nt):
        old = _ftz_on()
        j0 = n_in * t // nt
        j1 = n_in * (t + 1) // nt
        _zero_gradient(xg, j0, j1)
        for i in range(n_out):
            lo, hi = row_ptr[i], row_ptr[i + 1]
            k0 = _lower_bound(col_idx, lo, hi, j0)
            _backward_span(col_idx, values, buf, xg, gt, lr, mom, wd, mode, i, k0, _lower_bound(col_idx, k0, hi, j1))
        _derivative(xg, zprev, slope, j0, j1, gcopy)
        if bias.shape[0] > 0:
            _bias_rows(gt, bias, bbuf, lr, mom, wd, bmode, n_out * t // nt, n_out * (t + 1) // nt)
        _ftz_off(old)


# ---------------------------------------------------------------------------- losses
@nb.njit(nogil=True, cache=True)
def cross_entropy_grad(zt, y, gt, out):
    """Mean cross-entropy of logits ``zt`` (classes x batch) against labels ``y``.

    Writes ``gt = (softmax - onehot) / batch`` and ``out = zt.T`` (the batch's logits, batch-first);
    returns the loss (float64).
    """
    n, batch = zt.shape
    inv = _as(zt, 1.0 / batch)
    total = 0.0
    for b in range(batch):
        m = zt[0, b]
        for i in range(1, n):
            if zt[i, b] > m:
                m = zt[i, b]
        s = _as(zt, 0)
        for i in range(n):
            s += np.exp(zt[i, b] - m)
        lse = m + np.log(s)
        t = y[b]
        for i in range(n):
            z = zt[i, b]
            out[b, i] = z
            p = np.exp(z - lse)
            gt[i, b] = (p - 1) * inv if i == t else p * inv
        total += float(lse - zt[t, b])
    return total / batch


@nb.njit(nogil=True, cache=True)
def mse_grad(zt, y, gt, out):
    """Mean squared error over all entries; ``gt = 2 (z - y) / numel``, ``out = zt.T``."""
    n, batch = zt.shape
    scale = _as(zt, 2.0 / (n * batch))
    total = 0.0
    for b in range(batch):
        for i in range(n):
            z = zt[i, b]
            out[b, i] = z
            r = z - y[b, i]
            gt[i, b] = r * scale
            total += float(r) * float(r)
    return total / (n * batch)
