"""A tiled copy of a wide CSR layer, so the fused step's gathers and scatters stay in L2.

At batch 2 a step visits each stored weight twice, and each visit reads (forward) or updates
(backward) the row of its input column in an activation array. For a layer with 600,000 inputs
that array is ~10 MB, far beyond a core's L2, and every weight costs a random L3 line fetch plus
a write-back: measured on one 600,000 x 600,000 layer (24 M weights, 1 thread), 4.3 ns per weight
forward and 6.3 backward, against 1.4 and 2.5 when the same number of weights reads only 65,536
inputs (a 1 MB array that fits in L2).

:class:`ColumnBlocks` therefore re-stores a layer whose inputs exceed :data:`TILED_ABOVE` in tiles
of :data:`BLOCK_COLS` (8,192) columns x up to :data:`ROW_TILE` rows, ordered (row tile, column
block), and within a tile rank-major (below); each weight's position in its tile is one 32-bit key
(row << :data:`BLOCK_SHIFT` | column), in place of CSR's 32-bit column index. The kernels walk a
row tile's column blocks in turn, so what they touch at any time is one block of activations
(8,192 inputs: 64 KB forward, 128 KB with the gradients backward) and one tile of outputs — and
one flat loop per tile, with no per-row bookkeeping: a CSR row has well under one weight per
block, and looping over per-row segments (tried first, with 65,536-column blocks) cost more than
the cache saved (forward 4.2 -> 5.3 ns per weight, backward 6.3 -> 5.0). The flat tiles of 65,536
columns: forward 4.5 -> 2.2, backward with update 6.3 -> 3.2 ns per weight (same layer, 1 thread).
Keeping each row's sums in registers while its weights last (two halves of a tile side by side)
was slower again (forward 2.6 -> 3.5 ns, 2 threads): a row ends every ~4 weights, and that branch
mispredicts.

Narrower blocks paid once the rows per tile were kept (an earlier try packed row << S, so narrower
blocks made taller tiles whose outputs left L2, and found 2^16 best): on one 600,000 x 600,000 layer
(2 threads, 3 interleaved repetitions, ns per weight forward / backward) 2^16 columns: 1.8-2.2 /
2.9-4.4, 2^14: 1.4-2.1 / 2.5-3.1, 2^13: 1.4-2.0 / 2.5-3.2, 2^12: 1.1-1.7 / 2.3-2.6; end to end at
SET's H = 600,000, 2^13 trains 1.30-1.35x faster than 2^16 (epochs 1.28-1.32x, two interleaved
pairs), and 2^12 was not faster than 2^13 in a pair (25.9 vs 24.9 s per epoch). With the vector
kernels below, 2^13 stays the best backward (same layer, two runs each beside other work, so
indicative only: 3.3-4.2 ns per weight at 2^13, 4.9-5.1 at 2^12, 4.8-5.8 at 2^11, 4.2-4.3 at 2^14).

Within a tile the weights are rank-major: every row's first weight in the block (rows ascending),
then every row's second, and so on. Eight weights in a row then belong to eight different rows
except where one rank ends, so at batch 2 the kernels handle eight at a time with vector gathers
and scatters (:mod:`.vector_ops`, where that measured faster on the host: :mod:`.vector_choice`),
stepping back to the scalar loop for the rare group whose outputs (forward) or input gradients
(backward) would collide: on one 600,000 x 600,000 layer (2 threads) forward and backward 1.4x
faster than the scalar loops over the same order; in SET's H = 600,000 epoch (same code, vector path
off / on, quiet machine) 20.5 -> 17.2 s, the tiled backward 1.32x and forward 1.40x faster; against the
scalar loops over CSR-ordered tiles 1.16x (20.9 vs 24.2 s, medians of three quiet runs each), all on
the host the vector kernels were written on. On an AMD EPYC (Zen 4) the scalar loops over the
rank-major order are the faster ones (one steady epoch 12.9 s against 24.0, cProfile), which is why
the choice is measured per host.

Each row's weights keep CSR order and every output accumulates in place in that order, so the
forward gives exactly the CSR kernels' numbers, and the update is the CSR kernels' arithmetic (bit
for bit, vector or scalar). In the backward each thread owns whole column blocks, so no per-thread
copies of the input gradient are summed; an input's gradient adds its rows in the tiles' order
(row tiles ascending, then rank-major), which is fixed by the layout: the same on every run with the
same number of threads (that sets the rows per tile), and equal to the CSR kernels' up to float32
rounding.

The copy holds the values and the momentum while the fused step trains; :meth:`ColumnBlocks.flush`
writes them back into the layer's own tensors, which the fused step does before anything else
reads the model (see :class:`dualsparse.train.fused_step.FusedStep`). Building and flushing each
walk the stored weights once (and count each row's weights per block first, to place the ranks).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .kernels import _JIT, _JIT_EXACT, _ftz_off, _ftz_on
from .step_kernels import (_WIDTH, FIRST_STEP, MOMENTUM, NO_MOMENTUM, _as, _bias_rows, _derivative, _stage_inputs,
                           _step_first, _step_momentum, _step_plain, _u, _zero_gradient)
from .vector_ops import forward8, make_backward8, pairs_ok

#: columns per block: one block's activations (8,192 inputs x 2 batch x [value | gradient] x 4 bytes =
#: 128 KB) stay in L2 with room to spare beside the tile's outputs and the streamed weights
BLOCK_SHIFT = 13
BLOCK_COLS = 1 << BLOCK_SHIFT
#: a layer with more inputs than this is tiled (its gathers no longer fit a core's L2)
TILED_ABOVE = 1 << 16
#: rows per tile, at most (the key's upper 32 - BLOCK_SHIFT bits)
ROW_TILE = 1 << (32 - BLOCK_SHIFT)
_COL = np.uint32(BLOCK_COLS - 1)
_ROW_SHIFT = np.uint32(BLOCK_SHIFT)
#: (block, rank) cursors a row tile's build may allocate from the row lengths alone (8 MB); above,
#: the longest run of a row in one block is counted first
_CURSOR_CELLS = 1 << 20


#: stored fraction above which a layer's rows read most cache lines of their inputs anyway (four
#: inputs share a line), so its gathers stream instead of jumping and tiles cannot help
MAX_DENSITY = 1 / 8


def wanted(n_out: int, n_in: int, nnz: int) -> bool:
    """Whether a layer gains from the tiled copy: more than one block of inputs, gathered sparsely.

    (SET's 600,000 -> 5 output layer is dense: its rows stream their inputs, and as one row tile
    it would run on one thread.)"""
    return n_in > TILED_ABOVE and nnz < MAX_DENSITY * n_out * n_in


# ---------------------------------------------------------------------------- build / flush
@nb.njit(**_JIT)
def _tile_starts(row_ptr, col_idx, n_cb, R, tile_start):
    """tile_start[t] = position of tile t's first weight (tiles in (row tile, block) order)."""
    n = row_ptr.shape[0] - 1
    tile_start[:] = 0
    for i in range(n):
        base = (i // R) * n_cb + 1
        for k in range(_u(row_ptr[i]), _u(row_ptr[i + 1])):
            tile_start[base + (col_idx[k] >> BLOCK_SHIFT)] += 1
    for t in range(tile_start.shape[0] - 1):
        tile_start[t + 1] += tile_start[t]


@nb.njit(**_JIT)
def _runs(row_ptr, col_idx, i0, i1, count):
    """Most weights one row of [i0, i1) has in one block; where ``count`` is not empty (n_cb x at
    least that many), also count[c, m] += rows whose block c holds more than m weights."""
    longest = 1
    counting = count.shape[0] > 0
    for i in range(i0, i1):
        prev = -1
        m = 0
        for k in range(_u(row_ptr[i]), _u(row_ptr[i + 1])):
            c = col_idx[k] >> BLOCK_SHIFT
            m = m + 1 if c == prev else 0
            prev = c
            if counting:
                count[c, m] += 1
            longest = max(longest, m + 1)
    return longest


@nb.njit(parallel=True, **_JIT)
def _move(row_ptr, col_idx, values, buf, tile_start, n_cb, R, key, t_val, t_buf, inward):
    """Copy weights between CSR order and tile order (``inward``: CSR -> tiles), a row tile per task.

    Within a tile the weights are rank-major: first every row's first weight in the block (rows
    ascending), then every row's second, and so on, so eight weights in a row have distinct rows
    (what :func:`vector_ops.forward8` needs) except where one rank ends, and each row's weights
    still come in CSR order."""
    n = row_ptr.shape[0] - 1
    n_rt = (n + R - 1) // R
    has_buf = buf.shape[0] > 0
    for rt in nb.prange(n_rt):
        i0, i1 = rt * R, min(n, (rt + 1) * R)
        longest = 1  # a bound on a row's weights in one block: the longest row, or counted
        for i in range(i0, i1):
            longest = max(longest, min(BLOCK_COLS, row_ptr[i + 1] - row_ptr[i]))
        if n_cb * longest > _CURSOR_CELLS:
            longest = _runs(row_ptr, col_idx, i0, i1, np.empty((0, 0), dtype=np.int64))
        cursor = np.zeros((n_cb, longest), dtype=np.int64)
        _runs(row_ptr, col_idx, i0, i1, cursor)
        for c in range(n_cb):  # counts -> where each (block, rank) starts
            p = tile_start[rt * n_cb + c]
            for m in range(longest):
                n_m = cursor[c, m]
                cursor[c, m] = p
                p += n_m
        for i in range(i0, i1):
            r = np.uint32(i - i0) << _ROW_SHIFT
            prev = -1
            m = 0
            for k in range(_u(row_ptr[i]), _u(row_ptr[i + 1])):
                j = col_idx[k]
                c = j >> BLOCK_SHIFT
                m = m + 1 if c == prev else 0
                prev = c
                p = cursor[c, m]
                cursor[c, m] = p + 1
                if inward:
                    key[p] = r | (np.uint32(j) & _COL)
                    t_val[p] = values[k]
                    if has_buf:
                        t_buf[p] = buf[k]
                else:
                    values[k] = t_val[p]
                    if has_buf:
                        buf[k] = t_buf[p]


def _balanced(ends, threads: int) -> np.ndarray:
    """Boundaries cutting the units whose cumulative weight counts are ``ends`` into ``threads``
    ranges of about equal weight counts (``threads + 1`` indices from 0 to ``ends.size``)."""
    n = ends.shape[0]
    targets = ends[-1] * np.arange(1, threads) // threads
    inner = np.searchsorted(ends, targets, side="left") + 1
    return np.maximum.accumulate(np.minimum(np.concatenate([[0], inner, [n]]), n)).astype(np.int64)


class ColumnBlocks:
    """The tiles of one layer (see the module doc); ``values``/``momentum``: the live copies of
    the CSR-ordered arrays it was built from, which :meth:`flush` writes back into."""

    def __init__(self, row_ptr, col_idx, values, momentum, n_in: int, threads: int, vector: bool = False):
        n_out = row_ptr.shape[0] - 1
        self.n_out, self.n_in = n_out, n_in
        self.n_cb = -(-n_in // BLOCK_COLS)
        # at least four row tiles per thread where the layer is tall enough (balance)
        self.R = min(ROW_TILE, max(64, -(-n_out // (4 * max(threads, 1)))))
        self.n_rt = -(-n_out // self.R)
        self.tile_start = np.empty(self.n_rt * self.n_cb + 1, dtype=np.int64)
        _tile_starts(row_ptr, col_idx, self.n_cb, self.R, self.tile_start)
        nnz = values.shape[0]
        self.key = np.empty(nnz, dtype=np.uint32)
        self.values = np.empty(nnz, dtype=values.dtype)
        self.momentum = np.empty(momentum.shape[0], dtype=values.dtype)
        self._csr = (row_ptr, col_idx, values, momentum)
        _move(row_ptr, col_idx, values, momentum, self.tile_start, self.n_cb, self.R, self.key, self.values,
              self.momentum, True)
        self._splits = {}
        #: eight weights at a time (vector_ops) at batch 2; the scalar loops where False (which pays
        #: depends on the host: vector_choice)
        self.vector = vector

    def split(self, threads: int) -> np.ndarray:
        """Row-tile boundaries of ``threads`` nnz-balanced ranges."""
        s = self._splits.get(threads)
        if s is None:
            s = self._splits[threads] = _balanced(self.tile_start[self.n_cb :: self.n_cb], threads)
        return s

    def block_split(self, threads: int) -> np.ndarray:
        """Column-block boundaries of ``threads`` nnz-balanced ranges."""
        key = ("blocks", threads)
        s = self._splits.get(key)
        if s is None:
            per_block = np.diff(self.tile_start).reshape(self.n_rt, self.n_cb).sum(axis=0)
            s = self._splits[key] = _balanced(np.cumsum(per_block), threads)
        return s

    def flush(self) -> None:
        """Write the live values (and momentum) back into the CSR-ordered arrays built from."""
        row_ptr, col_idx, values, momentum = self._csr
        _move(row_ptr, col_idx, values, momentum, self.tile_start, self.n_cb, self.R, self.key, self.values,
              self.momentum, False)

    # ------------------------------------------------------------------ steps
    def forward(self, bias, xt, zt, at, slope, act, threads):
        forward(self.tile_start, self.key, self.values, bias, xt, zt, at, slope, act, self.n_cb, self.R,
                self.split(threads), self.vector)

    def backward_update(self, bias, bbuf, xg, gt, zprev, slope, lr, mom, wd, mode, bmode, threads, xin=None,
                        gcopy=None):
        """See :func:`backward_update`; ``xin`` (contiguous activations to stage into ``xg[:, :B]``)
        and ``gcopy`` (to receive a contiguous copy of the input gradient) are optional."""
        none = np.empty((0, 0), dtype=xg.dtype)
        backward_update(self.tile_start, self.key, self.values, self.momentum, bias, bbuf, xg, gt, zprev, slope, lr,
                        mom, wd, mode, bmode, self.n_cb, self.R, self.block_split(threads), self.vector,
                        none if xin is None else xin, none if gcopy is None else gcopy)

    def update(self, bias, bbuf, xt, gt, lr, mom, wd, mode, bmode, threads):
        update(self.tile_start, self.key, self.values, self.momentum, bias, bbuf, xt, gt, lr, mom, wd, mode, bmode,
               self.n_cb, self.R, self.split(threads), self.vector)


# ---------------------------------------------------------------------------- forward
@nb.njit(inline="always", **_JIT_EXACT)
def _forward_pairs(key, val, x, z, lo, hi):
    """Weights [lo, hi) of a tile, batch 2, one at a time."""
    for k in range(lo, hi):
        q = key[k]
        r = q >> _ROW_SHIFT
        j = q & _COL
        w = val[k]
        z[r, 0] += w * x[j, 0]
        z[r, 1] += w * x[j, 1]


@nb.njit(**_JIT_EXACT)
def _forward_tiles(tile_start, key, val, bias, xt, zt, at, slope, act, n_cb, R, rt0, rt1, vector):
    n_out, batch = zt.shape
    has_bias = bias.shape[0] > 0
    zero = _as(zt, 0)
    vector = vector and batch == 2 and pairs_ok(xt) and pairs_ok(zt)
    for rt in range(rt0, rt1):
        i0 = rt * R
        i1 = min(n_out, i0 + R)
        for i in range(i0, i1):
            for b in range(batch):
                zt[i, b] = bias[i] if has_bias else zero
        z = zt[i0:i1]
        for c in range(n_cb):
            t = rt * n_cb + c
            x = xt[c << BLOCK_SHIFT :]
            lo, hi = _u(tile_start[t]), _u(tile_start[t + 1])
            if batch == 2:
                if vector:
                    while lo + _WIDTH <= hi:
                        if not forward8(key, val, x, z, lo, _ROW_SHIFT):
                            _forward_pairs(key, val, x, z, lo, lo + _WIDTH)
                        lo += _WIDTH
                _forward_pairs(key, val, x, z, lo, hi)
            else:
                for k in range(lo, hi):
                    q = key[k]
                    y = z[q >> _ROW_SHIFT]
                    xj = x[q & _COL]
                    w = val[k]
                    for b in range(batch):
                        y[b] += w * xj[b]
        if act:
            for i in range(i0, i1):
                for b in range(batch):
                    s = zt[i, b]
                    at[i, b] = s if s > 0 else s * slope


@nb.njit(parallel=True, **_JIT_EXACT)
def forward(tile_start, key, val, bias, xt, zt, at, slope, act, n_cb, R, split, vector):
    """zt = W xt + bias (batch-last), at = activation(zt) if ``act``, on ``split.size - 1`` threads
    (``vector``: eight weights at a time where batch is 2, see vector_ops)."""
    for t in nb.prange(split.shape[0] - 1):
        old = _ftz_on()
        _forward_tiles(tile_start, key, val, bias, xt, zt, at, slope, act, n_cb, R, split[t], split[t + 1], vector)
        _ftz_off(old)


# ---------------------------------------------------------------------------- backward + update
def _weights_loop(step, mode):
    """The loop over a tile's weights with ``step`` (one of step_kernels' SGD updates) compiled in: a
    closure per update, so no branch on the momentum mode runs per weight (Numba caches each); with
    ``vector``, batch 2 goes eight weights at a time (vector_ops) where no two of them collide."""
    with_grad, without_grad = make_backward8(mode, True), make_backward8(mode, False)

    @nb.njit(inline="always", **_JIT)
    def pairs(key, val, buf, x, g, lo, hi, lr, mom, wd, grad):
        for k in range(lo, hi):
            q = key[k]
            r = q >> _ROW_SHIFT
            xj = x[q & _COL]
            w = val[k]
            g0 = g[r, 0]
            g1 = g[r, 1]
            if grad:
                xj[2] += w * g0
                xj[3] += w * g1
            step(val, buf, k, w, (g0 * xj[0] + g1 * xj[1]) + wd * w, lr, mom)

    @nb.njit(**_JIT)
    def loop(key, val, buf, x, g, lo, hi, lr, mom, wd, grad, vector):
        batch = g.shape[1]
        if batch == 2:
            if vector and pairs_ok(x) and pairs_ok(g):
                while lo + _WIDTH <= hi:
                    if grad:
                        done = with_grad(key, val, buf, x, g, lo, _ROW_SHIFT, lr, mom, wd)
                    else:
                        done = without_grad(key, val, buf, x, g, lo, _ROW_SHIFT, lr, mom, wd)
                    if not done:
                        pairs(key, val, buf, x, g, lo, lo + _WIDTH, lr, mom, wd, grad)
                    lo += _WIDTH
            pairs(key, val, buf, x, g, lo, hi, lr, mom, wd, grad)
        else:
            for k in range(lo, hi):
                q = key[k]
                gr = g[q >> _ROW_SHIFT]
                xj = x[q & _COL]
                w = val[k]
                d = _as(g, 0)
                for b in range(batch):
                    d += gr[b] * xj[b]
                    if grad:
                        xj[batch + b] += w * gr[b]
                step(val, buf, k, w, d + wd * w, lr, mom)

    return loop


_weights_momentum = _weights_loop(_step_momentum, MOMENTUM)
_weights_first = _weights_loop(_step_first, FIRST_STEP)
_weights_plain = _weights_loop(_step_plain, NO_MOMENTUM)


@nb.njit(**_JIT)
def _tile_backward(key, val, buf, x, g, lo, hi, lr, mom, wd, mode, grad, vector):
    """Weights [lo, hi) of one tile: input gradient with the OLD value into ``x[:, batch:]`` (if
    ``grad``), then SGD. ``x``: the activations from the tile's block on, ``g``: its rows' gradients.

    The momentum mode picks a compiled loop per tile rather than a branch per weight, as
    ``step_kernels._sgd`` has (one 600,000 x 600,000 layer, 2 threads, 10 interleaved pairs: the
    per-weight branch took 3-8 % longer, median old/new 1.03 and 1.08 in two runs)."""
    if mode == MOMENTUM:
        _weights_momentum(key, val, buf, x, g, lo, hi, lr, mom, wd, grad, vector)
    elif mode == FIRST_STEP:
        _weights_first(key, val, buf, x, g, lo, hi, lr, mom, wd, grad, vector)
    else:
        _weights_plain(key, val, buf, x, g, lo, hi, lr, mom, wd, grad, vector)


@nb.njit(**_JIT)
def _backward_tiles(tile_start, key, val, buf, p, gt, lr, mom, wd, mode, n_cb, R, rt0, rt1, grad, vector):
    """Row tiles [rt0, rt1), each block in turn (see _tile_backward)."""
    n_out = gt.shape[0]
    for rt in range(rt0, rt1):
        i0 = rt * R
        g = gt[i0 : min(n_out, i0 + R)]
        for c in range(n_cb):
            t = rt * n_cb + c
            _tile_backward(key, val, buf, p[c << BLOCK_SHIFT :], g, _u(tile_start[t]), _u(tile_start[t + 1]), lr, mom,
                           wd, mode, grad, vector)


@nb.njit(parallel=True, **_JIT)
def backward_update(tile_start, key, val, buf, bias, bbuf, xg, gt, zprev, slope, lr, mom, wd, mode, bmode,
                    n_cb, R, block_split, vector, xin, gcopy):
    """``xg[:, B:] = act'(zprev) * (W.T gt)`` with the old W (``xg[:, :B]``: the layer's input),
    then SGD on values and bias. Where ``xin`` is not empty, the input is first staged into
    ``xg[:, :B]`` from it; where ``gcopy`` is not empty, the input gradient is also written there.

    Both serve the fused step's buffers around a tiled layer: the backward gathers ``gt`` by row
    and the forward gathers its input by column, and from a strided half of an interleaved
    [activation | gradient] array each gather touches twice the cache lines. SET's H = 600,000
    epoch (cProfile, three interleaved pairs, contiguous copies first made in passes of their own):
    tiled backward 8.0 / 6.9 / 6.1 s strided against 5.6 / 4.9 / 5.3 s contiguous, forward 4.7 / 4.2
    / 4.0 against 3.8 / 3.3 / 3.5 s. The backward's own gather and scatter stay on the interleaved
    array, input and gradient on one line: one 600,000 x 600,000 layer, 2 threads, 9 repetitions,
    2.00 ns per weight (1.88-2.13) against 2.44 (2.00-2.58) with separate input and gradient arrays
    (and 2.80 with a strided ``gt``).

    Each thread owns a range of column blocks: it alone writes those inputs' gradients (straight
    into ``xg``: no per-thread copies of it to sum, as ``step_kernels`` needs) and the weights of
    those blocks' tiles, walking the row tiles in order, so each input's gradient adds its rows in
    the tiles' order, however the blocks are shared out. (Owning row tiles with per-thread copies
    was 15 % slower at H = 600,000.) A block's inputs are staged (or its gradients zeroed) just
    before its tiles and its gradients finished (activation derivative, contiguous copy) just
    after, while its 128 KB are in L2, rather than in two passes over the thread's whole range:
    one 600,000 x 600,000 layer, 2 threads, 28 interleaved calls each, 1.04x (per-pair ratios'
    quartiles 1.03-1.06)."""
    nt = block_split.shape[0] - 1
    n_out = gt.shape[0]
    n_in = xg.shape[0]
    n_rt = (n_out + R - 1) // R
    for t in nb.prange(nt):
        old = _ftz_on()
        c0 = block_split[t]
        c1 = block_split[t + 1]
        for c in range(c0, c1):
            b0 = c << BLOCK_SHIFT
            b1 = min(n_in, b0 + BLOCK_COLS)
            if xin.shape[0] > 0:
                _stage_inputs(xg, xin, b0, b1)
            else:
                _zero_gradient(xg, b0, b1)
            x = xg[b0:]
            for rt in range(n_rt):
                i0 = rt * R
                tt = rt * n_cb + c
                _tile_backward(key, val, buf, x, gt[i0 : min(n_out, i0 + R)], _u(tile_start[tt]),
                               _u(tile_start[tt + 1]), lr, mom, wd, mode, True, vector)
            _derivative(xg, zprev, slope, b0, b1, gcopy)
        if bias.shape[0] > 0:
            _bias_rows(gt, bias, bbuf, lr, mom, wd, bmode, n_out * t // nt, n_out * (t + 1) // nt)
        _ftz_off(old)


@nb.njit(parallel=True, **_JIT)
def update(tile_start, key, val, buf, bias, bbuf, xt, gt, lr, mom, wd, mode, bmode, n_cb, R, split, vector):
    """SGD on a layer whose input gradient is not needed (the first one): values and bias."""
    nt = split.shape[0] - 1
    n_out = gt.shape[0]
    for t in nb.prange(nt):
        old = _ftz_on()
        _backward_tiles(tile_start, key, val, buf, xt, gt, lr, mom, wd, mode, n_cb, R, split[t], split[t + 1],
                        False, vector)
        if bias.shape[0] > 0:
            _bias_rows(gt, bias, bbuf, lr, mom, wd, bmode, min(n_out, split[t] * R), min(n_out, split[t + 1] * R))
        _ftz_off(old)
