"""CPU kernels for truly sparse linear layers (Numba).

Why these exist: a sparse weight stored as CSR (rows = output units) costs O(batch x nnz) only if
the inner loop runs over the batch, contiguously. So activations are kept *batch-last*
(features x batch, C order): every stored weight w_ij then touches one contiguous vector
``x[j, :]`` and one ``y[i, :]``, which the compiler vectorises (the idea of SparseProp,
Nikdan et al. 2023).

Kernels by batch size (measured on 2 cores, see ``benchmarks/engine.py`` and ``scale.py``):

* wide batches: the forward and the value-only gradient walk CSR rows, four stored weights per
  pass over the output row; the backward walks the weights in CSC order (columns = inputs) so
  that the input gradient ``gx[j, :]`` stays in L1 while the value gradient ``gv[k]`` is produced
  in the same race-free parallel loop over inputs, again four weights per pass.
* tiny batches (SET's batch size is 2): every per-weight vector is a few bytes, so what counts is
  streaming ``values``/``col_idx``/``gv`` sequentially. The backward then walks CSR rows too; the
  threads split the *input* range (each owns ``gx[c0:c1]``), so no atomics and no transposed
  pattern are needed — a 72-million-weight layer never builds its CSC.

Every kernel *writes* its outputs (the bias, or the first block of products, or zero for a row /
column without stored weights), so callers allocate with ``empty``, never ``zeros``; the backward
kernels also write the bias gradient. No kernel allocates anything of dense-weight size. At very
low density (0.1 %: rows and columns of 0-8 weights) every pass over an activation row counts, so
blocks of 1-4 weights are each one pass, the first one writing instead of accumulating. Reductions accumulate in the data
type (a float64 accumulator for float32 data would not vectorise).

Denormals: a softmax far from uniform produces gradients below 1e-38, and every product with
one costs a microcode assist (~100 cycles) — it made the backward pass of SET's benchmark 3x
slower after one epoch. The parallel kernels therefore run with flush-to-zero /
denormals-are-zero set on x86 (MXCSR), per thread and restored on exit, so nothing outside the
kernels sees the change. The effect on results is below 1.2e-38 (float32) / 2.3e-308 (float64).
"""

from __future__ import annotations

import platform

import numba as nb
import numpy as np
from numba.extending import overload

# Reassociation (vectorised reductions) and FMA contraction, but NaN/inf keep their meaning: a
# diverging run must still produce a non-finite loss.
_FAST = {"reassoc", "contract", "nsz", "arcp"}
_JIT = dict(nogil=True, cache=True, fastmath=_FAST)
# The forward pass is never reassociated: every output is bias + w_1 x_1 + w_2 x_2 + ... in CSR
# order, one FMA after the other, whatever the batch size and kernel branch, so a sample's output
# does not depend on the batch it is in (scikit-learn's subset-invariance contract) nor on the
# input format (dense, densified or per-sample sparse walk all add in column order).
_JIT_EXACT = dict(nogil=True, cache=True, fastmath={"contract"})

#: momentum modes of the fused SGD updates (step_kernels, column_blocks, vector_ops): no buffer,
#: the buffer's first step (buf = d, as torch), and buf = momentum * buf + d
NO_MOMENTUM, FIRST_STEP, MOMENTUM = 0, 1, 2

#: multiply-adds below which a kernel runs single-threaded (see :func:`run`).
PARALLEL_MIN_WORK = 1 << 18
#: chunks a parallel loop is cut into (static schedule; FTZ is set once per chunk).
_CHUNKS = 64


def use_csr_backward(batch: int, nnz: int) -> bool:
    """Whether the backward with input gradient walks CSR rows (:func:`csr_backward`) or CSC columns.

    Measured crossover (1 thread): CSR wins at batch <= 2 always, and up to batch 8 once the layer
    is too big for the caches (the CSC walk then gathers ``values``/``gv`` at random).
    """
    return batch <= 2 or (batch <= 8 and nnz >= 1 << 20)


# ---------------------------------------------------------------------------- helpers
def _zero(a):  # pragma: no cover - replaced in compiled code
    return 0


@overload(_zero)
def _zero_impl(a):
    """A zero of ``a``'s dtype (float32 accumulators stay float32)."""
    dt = a.dtype

    def impl(a):
        return dt(0)

    return impl


if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    def _mxcsr_call(builder, name, slot):
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])

    @intrinsic
    def _get_mxcsr(typingctx):
        def codegen(context, builder, sig, args):
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
            return builder.load(slot)

        return types.uint32(), codegen

    @intrinsic
    def _set_mxcsr(typingctx, value):
        def codegen(context, builder, sig, args):
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
            return context.get_dummy_value()

        return types.none(types.uint32), codegen

    @nb.njit(**_JIT)
    def _ftz_on():
        """Set flush-to-zero and denormals-are-zero on this thread; returns the old MXCSR."""
        old = _get_mxcsr()
        _set_mxcsr(old | np.uint32(0x8040))
        return old

    @nb.njit(**_JIT)
    def _ftz_off(old):
        _set_mxcsr(old)

else:  # pragma: no cover - other architectures keep IEEE denormals

    @nb.njit(**_JIT)
    def _ftz_on():
        return np.uint32(0)

    @nb.njit(**_JIT)
    def _ftz_off(old):
        pass


@nb.njit(**_JIT)
def _n_chunks(n):
    return max(1, min(_CHUNKS, n))


@nb.njit(**_JIT)
def _lower_bound(a, lo, hi, v):
    """First position p in [lo, hi) with a[p] >= v (a sorted there); hi if none."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(**_JIT)
def _row_sums(gt, gb, i0, i1):
    for i in range(i0, i1):
        s = _zero(gb)
        for b in range(gt.shape[1]):
            s += gt[i, b]
        gb[i] = s


# ---------------------------------------------------------------------------- dense input
@nb.njit(**_JIT_EXACT)
def _forward_rows(row_ptr, col_idx, values, bias, xt, yt, i0, i1):
    batch = yt.shape[1]
    has_bias = bias.shape[0] > 0
    if batch == 1:
        for i in range(i0, i1):
            s0 = bias[i] if has_bias else _zero(yt)
            for k in range(row_ptr[i], row_ptr[i + 1]):
                s0 += values[k] * xt[col_idx[k], 0]
            yt[i, 0] = s0
    elif batch == 2:
        for i in range(i0, i1):
            s0 = bias[i] if has_bias else _zero(yt)
            s1 = s0
            for k in range(row_ptr[i], row_ptr[i + 1]):
                w = values[k]
                j = col_idx[k]
                s0 += w * xt[j, 0]
                s1 += w * xt[j, 1]
            yt[i, 0] = s0
            yt[i, 1] = s1
    else:
        # One pass over y per block of up to four stored weights, the first block starting from the
        # bias (no separate initialising pass) and the last from the 1-3 left: the rounding is that
        # of adding the weights one by one in CSR order, whatever the batch (see _JIT_EXACT).
        for i in range(i0, i1):
            b0 = bias[i] if has_bias else _zero(yt)
            k = row_ptr[i]
            end = row_ptr[i + 1]
            r = end - k
            if r >= 4:
                w0 = values[k]
                w1 = values[k + 1]
                w2 = values[k + 2]
                w3 = values[k + 3]
                j0 = col_idx[k]
                j1 = col_idx[k + 1]
                j2 = col_idx[k + 2]
                j3 = col_idx[k + 3]
                for b in range(batch):
                    yt[i, b] = (((b0 + w0 * xt[j0, b]) + w1 * xt[j1, b]) + w2 * xt[j2, b]) + w3 * xt[j3, b]
                k += 4
            elif r == 3:
                w0 = values[k]
                w1 = values[k + 1]
                w2 = values[k + 2]
                j0 = col_idx[k]
                j1 = col_idx[k + 1]
                j2 = col_idx[k + 2]
                for b in range(batch):
                    yt[i, b] = ((b0 + w0 * xt[j0, b]) + w1 * xt[j1, b]) + w2 * xt[j2, b]
                continue
            elif r == 2:
                w0 = values[k]
                w1 = values[k + 1]
                j0 = col_idx[k]
                j1 = col_idx[k + 1]
                for b in range(batch):
                    yt[i, b] = (b0 + w0 * xt[j0, b]) + w1 * xt[j1, b]
                continue
            elif r == 1:
                w0 = values[k]
                j0 = col_idx[k]
                for b in range(batch):
                    yt[i, b] = b0 + w0 * xt[j0, b]
                continue
            else:
                for b in range(batch):
                    yt[i, b] = b0
                continue
            while k + 4 <= end:
                w0 = values[k]
                w1 = values[k + 1]
                w2 = values[k + 2]
                w3 = values[k + 3]
                j0 = col_idx[k]
                j1 = col_idx[k + 1]
                j2 = col_idx[k + 2]
                j3 = col_idx[k + 3]
                for b in range(batch):
                    yt[i, b] = (((yt[i, b] + w0 * xt[j0, b]) + w1 * xt[j1, b]) + w2 * xt[j2, b]) + w3 * xt[j3, b]
                k += 4
            r = end - k
            if r == 3:
                w0 = values[k]
                w1 = values[k + 1]
                w2 = values[k + 2]
                j0 = col_idx[k]
                j1 = col_idx[k + 1]
                j2 = col_idx[k + 2]
                for b in range(batch):
                    yt[i, b] = ((yt[i, b] + w0 * xt[j0, b]) + w1 * xt[j1, b]) + w2 * xt[j2, b]
            elif r == 2:
                w0 = values[k]
                w1 = values[k + 1]
                j0 = col_idx[k]
                j1 = col_idx[k + 1]
                for b in range(batch):
                    yt[i, b] = (yt[i, b] + w0 * xt[j0, b]) + w1 * xt[j1, b]
            elif r == 1:
                w0 = values[k]
                j0 = col_idx[k]
                for b in range(batch):
                    yt[i, b] = yt[i, b] + w0 * xt[j0, b]


@nb.njit(parallel=True, **_JIT_EXACT)
def csr_forward(row_ptr, col_idx, values, bias, xt, yt):
    """yt[i, :] = bias[i] + sum_k values[k] * xt[col_idx[k], :] over the stored k of row i.

    ``bias`` may be empty (no bias). ``yt`` is written, not accumulated into.
    """
    n = yt.shape[0]
    nc = _n_chunks(n)
    for c in nb.prange(nc):
        old = _ftz_on()
        _forward_rows(row_ptr, col_idx, values, bias, xt, yt, n * c // nc, n * (c + 1) // nc)
        _ftz_off(old)


@nb.njit(**_JIT)
def _value_grad_rows(row_ptr, col_idx, xt, gt, gv, i0, i1):
    batch = gt.shape[1]
    if batch == 1:
        for i in range(i0, i1):
            g0 = gt[i, 0]
            for k in range(row_ptr[i], row_ptr[i + 1]):
                gv[k] = g0 * xt[col_idx[k], 0]
    elif batch == 2:
        for i in range(i0, i1):
            g0 = gt[i, 0]
            g1 = gt[i, 1]
            for k in range(row_ptr[i], row_ptr[i + 1]):
                j = col_idx[k]
                gv[k] = g0 * xt[j, 0] + g1 * xt[j, 1]
    else:
        for i in range(i0, i1):
            g = gt[i]
            k = row_ptr[i]
            end = row_ptr[i + 1]
            while k + 4 <= end:
                x0 = xt[col_idx[k]]
                x1 = xt[col_idx[k + 1]]
                x2 = xt[col_idx[k + 2]]
                x3 = xt[col_idx[k + 3]]
                s0 = _zero(gv)
                s1 = _zero(gv)
                s2 = _zero(gv)
                s3 = _zero(gv)
                for b in range(batch):
                    gb = g[b]
                    s0 += gb * x0[b]
                    s1 += gb * x1[b]
                    s2 += gb * x2[b]
                    s3 += gb * x3[b]
                gv[k] = s0
                gv[k + 1] = s1
                gv[k + 2] = s2
                gv[k + 3] = s3
                k += 4
            while k < end:
                x0 = xt[col_idx[k]]
                s0 = _zero(gv)
                for b in range(batch):
                    s0 += g[b] * x0[b]
                gv[k] = s0
                k += 1


@nb.njit(parallel=True, **_JIT)
def csr_value_grad(row_ptr, col_idx, xt, gt, gv, gb):
    """gv[k] = <gt[i, :], xt[j, :]> only (no input gradient needed, e.g. the first layer).

    Also ``gb[i] = sum_b gt[i, b]`` (the bias gradient) unless ``gb`` is empty.
    """
    n = gt.shape[0]
    nc = _n_chunks(n)
    for c in nb.prange(nc):
        old = _ftz_on()
        i0 = n * c // nc
        i1 = n * (c + 1) // nc
        _value_grad_rows(row_ptr, col_idx, xt, gt, gv, i0, i1)
        if gb.shape[0] > 0:
            _row_sums(gt, gb, i0, i1)
        _ftz_off(old)


@nb.njit(**_JIT)
def _csc_backward_cols(col_ptr, row_idx, perm, values, xt, gt, gxt, gv, j0, j1):
    batch = gxt.shape[1]
    for j in range(j0, j1):
        x = xt[j]
        gx = gxt[j]
        for b in range(batch):
            gx[b] = 0
        p = col_ptr[j]
        end = col_ptr[j + 1]
        while p + 4 <= end:
            g0 = gt[row_idx[p]]
            g1 = gt[row_idx[p + 1]]
            g2 = gt[row_idx[p + 2]]
            g3 = gt[row_idx[p + 3]]
            k0 = perm[p]
            k1 = perm[p + 1]
            k2 = perm[p + 2]
            k3 = perm[p + 3]
            w0 = values[k0]
            w1 = values[k1]
            w2 = values[k2]
            w3 = values[k3]
            s0 = _zero(gv)
            s1 = _zero(gv)
            s2 = _zero(gv)
            s3 = _zero(gv)
            for b in range(batch):
                xb = x[b]
                a0 = g0[b]
                a1 = g1[b]
                a2 = g2[b]
                a3 = g3[b]
                s0 += a0 * xb
                s1 += a1 * xb
                s2 += a2 * xb
                s3 += a3 * xb
                gx[b] += w0 * a0 + w1 * a1 + w2 * a2 + w3 * a3
            gv[k0] = s0
            gv[k1] = s1
            gv[k2] = s2
            gv[k3] = s3
            p += 4
        while p < end:
            g0 = gt[row_idx[p]]
            k0 = perm[p]
            w0 = values[k0]
            s0 = _zero(gv)
            for b in range(batch):
                a0 = g0[b]
                s0 += a0 * x[b]
                gx[b] += w0 * a0
            gv[k0] = s0
            p += 1


@nb.njit(parallel=True, **_JIT)
def csc_backward(col_ptr, row_idx, perm, values, xt, gt, gxt, gv, gb):
    """Fused backward in CSC order (wide batches).

    For every input j and stored weight k = (i, j):
    ``gv[k] = <gt[i, :], xt[j, :]>`` and ``gxt[j, :] = sum values[k] * gt[i, :]``.
    Each thread owns whole input columns, so neither output needs atomics; ``gxt`` is written.
    Also ``gb[i] = sum_b gt[i, b]`` (the bias gradient) unless ``gb`` is empty.
    """
    n = gxt.shape[0]
    n_out = gt.shape[0]
    nc = _n_chunks(n)
    for c in nb.prange(nc):
        old = _ftz_on()
        _csc_backward_cols(col_ptr, row_idx, perm, values, xt, gt, gxt, gv, n * c // nc, n * (c + 1) // nc)
        if gb.shape[0] > 0:
            _row_sums(gt, gb, n_out * c // nc, n_out * (c + 1) // nc)
        _ftz_off(old)


@nb.njit(**_JIT)
def _csr_backward_range(row_ptr, col_idx, values, xt, gt, gxt, gv, c0, c1):
    """The CSR-order backward restricted to the stored weights whose column is in [c0, c1)."""
    n_out = gt.shape[0]
    batch = gt.shape[1]
    for j in range(c0, c1):
        for b in range(batch):
            gxt[j, b] = 0
    for i in range(n_out):
        lo = row_ptr[i]
        hi = row_ptr[i + 1]
        if lo == hi:
            continue
        k = lo if c0 == 0 else _lower_bound(col_idx, lo, hi, c0)
        if batch == 1:
            g0 = gt[i, 0]
            while k < hi:
                j = col_idx[k]
                if j >= c1:
                    break
                gv[k] = g0 * xt[j, 0]
                gxt[j, 0] += values[k] * g0
                k += 1
        elif batch == 2:
            g0 = gt[i, 0]
            g1 = gt[i, 1]
            while k < hi:
                j = col_idx[k]
                if j >= c1:
                    break
                w = values[k]
                gv[k] = g0 * xt[j, 0] + g1 * xt[j, 1]
                gxt[j, 0] += w * g0
                gxt[j, 1] += w * g1
                k += 1
        else:
            g = gt[i]
            while k < hi:
                j = col_idx[k]
                if j >= c1:
                    break
                w = values[k]
                x = xt[j]
                gx = gxt[j]
                s = _zero(gv)
                for b in range(batch):
                    s += g[b] * x[b]
                    gx[b] += w * g[b]
                gv[k] = s
                k += 1


@nb.njit(parallel=True, **_JIT)
def csr_backward(row_ptr, col_idx, values, xt, gt, gxt, gv, gb, n_threads):
    """Backward in CSR order for tiny batches: ``gv[k] = <gt[i], xt[j]>``, ``gxt[j] = sum values[k] gt[i]``.

    Thread t owns the inputs [c0, c1): it walks every row but only the stored weights whose column
    falls in its range (columns are sorted within a row, so one binary search finds the start);
    ``gv`` is written sequentially and ``gxt`` without races. Needs no transposed pattern.
    ``n_threads``: input ranges (one per thread of the caller). Also ``gb[i] = sum_b gt[i, b]``
    unless ``gb`` is empty.
    """
    n_in = gxt.shape[0]
    n_out = gt.shape[0]
    nt = max(1, min(n_threads, n_in // 64))
    for t in nb.prange(nt):
        old = _ftz_on()
        _csr_backward_range(row_ptr, col_idx, values, xt, gt, gxt, gv, n_in * t // nt, n_in * (t + 1) // nt)
        if gb.shape[0] > 0:
            _row_sums(gt, gb, n_out * t // nt, n_out * (t + 1) // nt)
        _ftz_off(old)


# ---------------------------------------------------------------------------- sparse input
@nb.njit(parallel=True, **_JIT)
def densify_t(x_ptr, x_idx, x_val, xt):
    """xt = x.T (batch-last, dense) for a CSR input x (batch x in): zero fill, then scatter."""
    n_in = xt.shape[0]
    batch = xt.shape[1]
    nc = _n_chunks(n_in // 256)
    for c in nb.prange(nc):
        for j in range(n_in * c // nc, n_in * (c + 1) // nc):
            for b in range(batch):
                xt[j, b] = 0
    for b in range(batch):
        for q in range(x_ptr[b], x_ptr[b + 1]):
            xt[x_idx[q], b] = x_val[q]


@nb.njit(parallel=True, **_JIT_EXACT)
def sparse_input_forward(x_ptr, x_idx, x_val, col_ptr, row_idx, perm, values, bias, y):
    """y[b, :] = bias + x[b, :] @ W.T for a CSR input x (batch x in); y is batch-first.

    For very sparse inputs: work per sample is the sum, over its stored inputs j, of the
    connections leaving j — a missing input costs nothing, not even a visit of its weights.
    """
    batch = y.shape[0]
    n_out = y.shape[1]
    has_bias = bias.shape[0] > 0
    for b in nb.prange(batch):
        old = _ftz_on()
        yb = y[b]
        if has_bias:
            for i in range(n_out):
                yb[i] = bias[i]
        else:
            for i in range(n_out):
                yb[i] = 0
        for q in range(x_ptr[b], x_ptr[b + 1]):
            j = x_idx[q]
            xv = x_val[q]
            for p in range(col_ptr[j], col_ptr[j + 1]):
                yb[row_idx[p]] += xv * values[perm[p]]
        _ftz_off(old)


@nb.njit(parallel=True, **_JIT)
def sparse_input_value_grad(xc_ptr, xc_row, xc_val, col_ptr, row_idx, perm, g, gv):
    """gv[k] = sum_b x[b, j] * g[b, i] for a sparse input given in CSC (xc_*, per input column).

    ``g`` is batch-first. Parallel over input columns: each stored weight is written by exactly
    one thread.
    """
    n = col_ptr.shape[0] - 1
    nc = _n_chunks(n)
    for c in nb.prange(nc):
        old = _ftz_on()
        for j in range(n * c // nc, n * (c + 1) // nc):
            q0 = xc_ptr[j]
            q1 = xc_ptr[j + 1]
            for p in range(col_ptr[j], col_ptr[j + 1]):
                i = row_idx[p]
                s = _zero(gv)
                for q in range(q0, q1):
                    s += xc_val[q] * g[xc_row[q], i]
                gv[perm[p]] = s
        _ftz_off(old)


# ---------------------------------------------------------------------------- patterns
def csr_to_csc(n_in, row_ptr, col_idx):
    """Counting-sort transpose of a CSR pattern: (col_ptr, row_idx, perm), perm[p] = CSR position.

    ``col_ptr`` is int64; ``row_idx`` and ``perm`` are int32 while they fit (half the memory and
    bandwidth of int64 in the backward pass).
    """
    nnz = col_idx.shape[0]
    n_out = row_ptr.shape[0] - 1
    index = np.int32 if max(nnz, n_out) < 2**31 - 1 else np.int64
    col_ptr = np.zeros(n_in + 1, dtype=np.int64)
    row_idx = np.empty(nnz, dtype=index)
    perm = np.empty(nnz, dtype=index)
    _csr_to_csc(row_ptr, col_idx, col_ptr, row_idx, perm)
    return col_ptr, row_idx, perm


@nb.njit(**_JIT)
def _csr_to_csc(row_ptr, col_idx, col_ptr, row_idx, perm):
    nnz = col_idx.shape[0]
    n_out = row_ptr.shape[0] - 1
    n_in = col_ptr.shape[0] - 1
    for k in range(nnz):
        col_ptr[col_idx[k] + 1] += 1
    for j in range(n_in):
        col_ptr[j + 1] += col_ptr[j]
    fill = col_ptr[:-1].copy()
    for i in range(n_out):
        for k in range(row_ptr[i], row_ptr[i + 1]):
            j = col_idx[k]
            p = fill[j]
            row_idx[p] = i
            perm[p] = k
            fill[j] = p + 1


@nb.njit(**_JIT)
def csr_by_column(n_in, x_ptr, x_idx, x_val):
    """A CSR matrix (rows = samples) re-indexed by column: (ptr, row, val), rows ascending per column."""
    nnz = x_idx.shape[0]
    n_rows = x_ptr.shape[0] - 1
    ptr = np.zeros(n_in + 1, dtype=np.int64)
    for q in range(nnz):
        ptr[x_idx[q] + 1] += 1
    for j in range(n_in):
        ptr[j + 1] += ptr[j]
    fill = ptr[:-1].copy()
    rows = np.empty(nnz, dtype=np.int32)
    vals = np.empty(nnz, dtype=x_val.dtype)
    for b in range(n_rows):
        for q in range(x_ptr[b], x_ptr[b + 1]):
            j = x_idx[q]
            p = fill[j]
            rows[p] = b
            vals[p] = x_val[q]
            fill[j] = p + 1
    return ptr, rows, vals


@nb.njit(parallel=True, **_JIT)
def transpose(a, out):
    """out[:, :] = a.T for C-contiguous 2-D arrays, in 16 x 16 tiles.

    (32-row tiles of a power-of-two row stride map to the same L1 sets and thrash.)
    """
    n, m = a.shape
    nbi = (n + 15) // 16
    for bi in nb.prange(nbi):
        i0 = bi * 16
        i1 = min(n, i0 + 16)
        for j0 in range(0, m, 16):
            j1 = min(m, j0 + 16)
            for j in range(j0, j1):
                for i in range(i0, i1):
                    out[j, i] = a[i, j]


# ---------------------------------------------------------------------------- threads
def num_threads() -> int:
    """Threads the parallel kernels use now."""
    return nb.get_num_threads()


def run(kernel, work: int, *args) -> None:
    """Call ``kernel(*args)``, on the calling thread alone when ``work`` (multiply-adds) is small.

    Waking a thread pool costs tens of microseconds on a quiet machine and far more on a busy
    one (a spinning OpenMP barrier waits for a descheduled sibling); below
    :data:`PARALLEL_MIN_WORK` one thread is as fast.
    """
    n = nb.get_num_threads()
    if n > 1 and work < PARALLEL_MIN_WORK:
        nb.set_num_threads(1)
        try:
            kernel(*args)
        finally:
            nb.set_num_threads(n)
    else:
        kernel(*args)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the kernels (defaults to torch's intra-op thread count)."""
    nb.set_num_threads(max(1, min(int(n), nb.config.NUMBA_NUM_THREADS)))
