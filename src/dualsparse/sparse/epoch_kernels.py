"""One training epoch of a small sparse MLP in one compiled call (Numba, CPU, one thread).

Why: the networks most studies train are small (tens of inputs, a few hundred hidden units,
batch 32): a step is ~10^5 multiply-adds, tens of microseconds of arithmetic, while the autograd
path pays Python, autograd and optimiser dispatch per layer per step (about a millisecond). So a
sparse model with a tenth of the FLOPs was slower than scikit-learn's dense MLP. Here everything
an epoch does between two topology updates runs inside one call:

    for each batch of ``order``:
        gather the rows (dense rows, or CSR rows: walked sparsely, or scattered when dense enough)
        forward: z = W a + b, a = act(z)                      (batch-last, CSR rows)
        loss gradient: softmax cross-entropy or squared error (means, as torch's losses)
        backward, last layer first: value, bias and input gradients (with the OLD weights),
            then one pass of the optimiser's update over the layer's values and biases (SGD with
            momentum and weight decay, or Adam; contiguous, so it vectorises), on the
            optimiser's own state arrays

so a fit costs what its non-zeros cost. The update rules are those of ``torch.optim.SGD`` (no
dampening / nesterov) and ``torch.optim.Adam`` (L2 weight decay added to the gradient, bias
corrections from the step count); :mod:`dualsparse.train.compiled_epoch` passes torch's own
state tensors, so an epoch here and an autograd step after it continue one another.

The layers' arrays travel as homogeneous tuples (one entry per layer), indexed at run time;
Numba compiles one specialisation per number of layers and caches it on disk.

Sparse input (the ``observed`` representation, bag-of-words, one-hot): a batch whose stored
fraction is below ``walk_below`` is walked per stored value through the first
layer's transposed pattern (CSC), costing stored values x fan-out; a denser batch is scattered
into the batch-last buffer and takes the dense-input loops, which vectorise over the batch. Both
give the same mathematics; only the summation order differs.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .kernels import _JIT, _ftz_off, _ftz_on
from .step_kernels import _as

#: optimiser kinds
SGD, SGD_MOMENTUM, ADAM = 0, 1, 2
#: activation kinds: ``z if z > 0 else slope * z`` (ReLU, leaky ReLU, All-ReLU, identity), tanh, logistic
ACT_SLOPE, ACT_TANH, ACT_LOGISTIC = 0, 1, 2
#: loss kinds
LOSS_CE, LOSS_MSE = 0, 1
# hyper-parameter vector layout (float64): lr, momentum, weight decay, beta1, beta2, eps
H_LR, H_MOM, H_WD, H_B1, H_B2, H_EPS = 0, 1, 2, 3, 4, 5


@nb.njit(inline="always")
def _update(w, grad, s1, s2, kind, lr, mom, wd, b1, b2, eps, step_size, bc2_sqrt):
    """The optimiser's update of every ``w[k]`` from its gradient ``grad[k]`` (weight decay added
    here), in one pass over contiguous arrays that the compiler vectorises (Adam's square root and
    division included)."""
    n = w.shape[0]
    if kind == ADAM:
        for k in range(n):
            d = grad[k] + wd * w[k]
            m = s1[k]
            m = m + (1 - b1) * (d - m)  # torch: exp_avg.lerp_(grad, 1 - beta1)
            v = b2 * s2[k] + (1 - b2) * d * d
            s1[k] = m
            s2[k] = v
            w[k] = w[k] - step_size * m / (np.sqrt(v) / bc2_sqrt + eps)
    elif kind == SGD_MOMENTUM:
        for k in range(n):
            b = mom * s1[k] + (grad[k] + wd * w[k])  # a new buffer is zeros: mom * 0 + d == d, torch's first step
            s1[k] = b
            w[k] = w[k] - lr * b
    else:
        for k in range(n):
            w[k] = w[k] - lr * (grad[k] + wd * w[k])


@nb.njit(inline="always")
def _activate(z, a, nb_, kind, slope):
    """a = act(z) on the first ``nb_`` columns; one loop per kind, so each one vectorises."""
    if kind == ACT_SLOPE:
        for i in range(z.shape[0]):
            for b in range(nb_):
                v = z[i, b]
                a[i, b] = v if v > 0 else v * slope
    elif kind == ACT_TANH:
        for i in range(z.shape[0]):
            for b in range(nb_):
                a[i, b] = np.tanh(z[i, b])
    else:
        for i in range(z.shape[0]):
            for b in range(nb_):
                a[i, b] = 1 / (1 + np.exp(-z[i, b]))


@nb.njit(inline="always")
def _times_derivative(gx, z, a, nb_, kind, slope):
    """gx *= act'(z) (from z, or from a = act(z)) on the first ``nb_`` columns."""
    if kind == ACT_SLOPE:
        for j in range(gx.shape[0]):
            for b in range(nb_):
                g = gx[j, b]
                gx[j, b] = g if z[j, b] > 0 else g * slope
    elif kind == ACT_TANH:
        for j in range(gx.shape[0]):
            for b in range(nb_):
                gx[j, b] = gx[j, b] * (1 - a[j, b] * a[j, b])
    else:
        for j in range(gx.shape[0]):
            for b in range(nb_):
                gx[j, b] = gx[j, b] * (a[j, b] * (1 - a[j, b]))


@nb.njit(**_JIT)
def train_epoch(
    X, x_ptr, x_idx, x_val, sparse_input, walk_below, order, batch,
    row_ptrs, col_idxs, values, biases, s1v, s2v, s1b, s2b,
    csc_ptr, csc_row, csc_perm, gvs, gbs,
    xt, zs, acts, grads,
    act_kind, slopes, loss_kind, y_int, y_real,
    opt_kind, hyper, step0, outputs, batch_losses,
):
    """Train on the rows ``order`` in batches of ``batch``; returns the sum of per-row losses and,
    for sparse input, the first layer's products by the FLOP convention (stored values x fan-out).

    ``X`` (rows x features, float32) is read when ``sparse_input`` is False, else the CSR arrays
    ``x_ptr, x_idx, x_val`` (sorted columns) and the first layer's CSC pattern ``csc_ptr,
    csc_row, csc_perm``; a batch with fewer than ``walk_below`` x rows x features stored values
    is walked, a denser one scattered. ``zs[l]``, ``acts[l]``, ``grads[l]`` are (units x batch)
    buffers; ``acts`` has one per hidden layer (the last entry is unused); ``gvs[l]`` (nnz) and
    ``gbs[l]`` (units) take the value and bias gradients of a step before the update pass.
    ``step0`` is the number of optimiser steps taken before this call (Adam's bias correction).
    Targets: ``y_int`` (class per row) for cross-entropy, ``y_real`` (rows x outputs) for
    squared error. When ``outputs`` has rows, each row's network output
    (logits / predictions, before the update of its batch) is written to ``outputs[position in
    order]`` and each batch's mean loss to ``batch_losses`` (for callbacks that read them).
    """
    old = _ftz_on()
    n_layers = len(values)
    lr = hyper[H_LR]
    mom = hyper[H_MOM]
    wd = hyper[H_WD]
    b1 = hyper[H_B1]
    b2 = hyper[H_B2]
    eps = hyper[H_EPS]
    f = values[0]  # scalars in the data type: float32 arithmetic stays float32
    zero = _as(f, 0)
    one = _as(f, 1)
    lr_f = _as(f, lr)
    mom_f = _as(f, mom)
    wd_f = _as(f, wd)
    b1_f = _as(f, b1)
    b2_f = _as(f, b2)
    eps_f = _as(f, eps)
    n_in = xt.shape[0]
    n_rows = order.shape[0]
    total = 0.0
    step = step0
    record = outputs.shape[0] > 0
    products = 0  # sparse input: first-layer products by the FLOP convention (stored values x fan-out)
    for start in range(0, n_rows, batch):
        nb_ = min(batch, n_rows - start)
        step += 1
        step_size = zero
        bc2_sqrt = one
        if opt_kind == ADAM:
            step_size = _as(f, lr / (1.0 - b1**step))
            bc2_sqrt = _as(f, np.sqrt(1.0 - b2**step))
        inv = _as(f, 1.0 / nb_)

        # ---------------------------------------------------------------- input
        walk = False
        if sparse_input:
            stored = 0
            for b in range(nb_):
                r = order[start + b]
                stored += x_ptr[r + 1] - x_ptr[r]
            walk = stored < walk_below * nb_ * n_in
            if not walk:
                for j in range(n_in):
                    for b in range(nb_):
                        xt[j, b] = 0
                for b in range(nb_):
                    r = order[start + b]
                    for p in range(x_ptr[r], x_ptr[r + 1]):
                        j = x_idx[p]
                        xt[j, b] = x_val[p]
                        products += csc_ptr[j + 1] - csc_ptr[j]
        else:
            for b in range(nb_):
                r = order[start + b]
                for j in range(n_in):
                    xt[j, b] = X[r, j]

        # ---------------------------------------------------------------- forward
        for l in range(n_layers):
            rp = row_ptrs[l]
            ci = col_idxs[l]
            w = values[l]
            bias = biases[l]
            has_bias = bias.shape[0] > 0
            z = zs[l]
            n_out = z.shape[0]
            if l == 0 and walk:
                for i in range(n_out):
                    b0 = bias[i] if has_bias else zero
                    for b in range(nb_):
                        z[i, b] = b0
                for b in range(nb_):
                    r = order[start + b]
                    for p in range(x_ptr[r], x_ptr[r + 1]):
                        j = x_idx[p]
                        xv = x_val[p]
                        products += csc_ptr[j + 1] - csc_ptr[j]
                        for q in range(csc_ptr[j], csc_ptr[j + 1]):
                            z[csc_row[q], b] += w[csc_perm[q]] * xv
            else:
                inp = xt if l == 0 else acts[l - 1]
                for i in range(n_out):
                    zi = z[i]
                    b0 = bias[i] if has_bias else zero
                    for b in range(nb_):
                        zi[b] = b0
                    for k in range(rp[i], rp[i + 1]):
                        wk = w[k]
                        x = inp[ci[k]]
                        for b in range(nb_):
                            zi[b] += wk * x[b]
            if l < n_layers - 1:
                _activate(z, acts[l], nb_, act_kind[l], slopes[l])

        # ---------------------------------------------------------------- loss gradient
        zl = zs[n_layers - 1]
        gl = grads[n_layers - 1]
        n_cls = zl.shape[0]
        before = total
        if record:
            for b in range(nb_):
                for i in range(n_cls):
                    outputs[start + b, i] = zl[i, b]
        if loss_kind == LOSS_CE:
            for b in range(nb_):
                m = zl[0, b]
                for i in range(1, n_cls):
                    if zl[i, b] > m:
                        m = zl[i, b]
                s = zero
                for i in range(n_cls):
                    s += np.exp(zl[i, b] - m)
                lse = m + np.log(s)
                t = y_int[order[start + b]]
                for i in range(n_cls):
                    p_ = np.exp(zl[i, b] - lse)
                    gl[i, b] = (p_ - 1) * inv if i == t else p_ * inv
                total += float(lse - zl[t, b])
        else:
            scale = _as(f, 2.0 / (nb_ * n_cls))
            batch_sum = 0.0
            for b in range(nb_):
                r = order[start + b]
                for i in range(n_cls):
                    d = zl[i, b] - y_real[r, i]
                    gl[i, b] = d * scale
                    batch_sum += float(d) * float(d)
            total += batch_sum / n_cls
        if record:
            batch_losses[start // batch] = (total - before) / nb_

        # ---------------------------------------------------------------- backward, then update
        # Each layer's gradients (the input gradient with the OLD weights), then one update pass
        # over its values and biases.
        for l in range(n_layers - 1, -1, -1):
            rp = row_ptrs[l]
            ci = col_idxs[l]
            w = values[l]
            bias = biases[l]
            g = grads[l]
            gv = gvs[l]
            n_out = g.shape[0]
            if bias.shape[0] > 0:
                gb = gbs[l]
                for i in range(n_out):
                    s = zero
                    for b in range(nb_):
                        s += g[i, b]
                    gb[i] = s
            if l > 0:
                inp = acts[l - 1]
                gx = grads[l - 1]
                for j in range(gx.shape[0]):
                    for b in range(nb_):
                        gx[j, b] = 0
                for i in range(n_out):
                    gi = g[i]
                    for k in range(rp[i], rp[i + 1]):
                        wk = w[k]
                        c = ci[k]
                        x = inp[c]
                        gr = gx[c]
                        d = zero
                        for b in range(nb_):
                            d += gi[b] * x[b]
                        for b in range(nb_):
                            gr[b] += wk * gi[b]
                        gv[k] = d
                _times_derivative(gx, zs[l - 1], acts[l - 1], nb_, act_kind[l - 1], slopes[l - 1])
            elif walk:
                for k in range(gv.shape[0]):
                    gv[k] = 0
                for b in range(nb_):
                    r = order[start + b]
                    for p in range(x_ptr[r], x_ptr[r + 1]):
                        j = x_idx[p]
                        xv = x_val[p]
                        for q in range(csc_ptr[j], csc_ptr[j + 1]):
                            gv[csc_perm[q]] += g[csc_row[q], b] * xv
            else:
                for i in range(n_out):
                    gi = g[i]
                    for k in range(rp[i], rp[i + 1]):
                        x = xt[ci[k]]
                        d = zero
                        for b in range(nb_):
                            d += gi[b] * x[b]
                        gv[k] = d
            _update(w, gv, s1v[l], s2v[l], opt_kind, lr_f, mom_f, wd_f, b1_f, b2_f, eps_f, step_size, bc2_sqrt)
            if bias.shape[0] > 0:
                _update(bias, gbs[l], s1b[l], s2b[l], opt_kind, lr_f, mom_f, wd_f, b1_f, b2_f, eps_f, step_size,
                        bc2_sqrt)
    _ftz_off(old)
    return total, products
