"""Eight weights at a time at batch 2, with vector gathers and scatters (Numba intrinsics).

Why: in :mod:`.column_blocks` every weight costs a few random loads and stores within L2, one
after the other, and that — not memory bandwidth — bounds a step at batch 2 (it moves ~13 % of what
a copy moves). Eight weights handled with one gather of their inputs' pairs, one gather and one
scatter of their outputs' pairs and contiguous loads and stores of values and momentum issue
about half the memory operations. On one 600,000 x 600,000 layer (2 threads, quiet machine, 7
paired repetitions) the forward is 1.42x (1.38-2.80) and the backward with update 1.41x
(1.35-1.75) faster than the scalar loops over the same order; in SET's H = 600,000 epoch (cProfile)
the tiled forwards went from 6.4 to 4.7 s and the backwards from 10.1 to 9.1 s. The CSR value update
of a first layer (:func:`.step_kernels.update`: eight weights of one row, their inputs gathered,
nothing scattered) runs ~2x faster the same way (12 M weights, 3,312 inputs, 1 thread; 1.77 ->
1.16 s of that epoch).

Numba has no vector type, so each operation is one intrinsic over a group of eight, written in
LLVM IR: ``llvm.masked.gather`` / ``llvm.masked.scatter`` are generic, so the code compiles on any
CPU (LLVM emits AVX-512 gathers where the host has them and scalar loads elsewhere). The figures
above are from the host these kernels were written on; hardware gathers are not fast everywhere
(on an AMD EPYC, Zen 4, the tiled kernels were slower this way than the scalar loops), so callers
take this path where :mod:`.vector_choice` measured it faster on the host they run on, and only
where :data:`HAS_GATHER` says the host gathers in hardware at all.

A group goes through only where its stores cannot collide, and the intrinsic returns False,
having touched nothing, where they could; the caller then runs the scalar loop over the eight:
the forward's outputs must be distinct rows (checked as rows strictly increasing, which the tiles'
rank-major order makes the rule), the backward's input gradients distinct columns (all 28 pairs
compared). Arrays hold rows of float32 pairs, their row stride a power of two and element stride 4
(checked by the callers: :func:`pairs_ok`); batch 2 only. Every intrinsic declines (returns False)
for data that is not float32 or per-weight arrays that are not contiguous.

Numba's cache keys a kernel on its own file, not on this one: after editing this module, delete
the ``*.nbi`` / ``*.nbc`` files of ``column_blocks`` and ``step_kernels`` in ``__pycache__``.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numba as nb
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .kernels import FIRST_STEP, MOMENTUM, NO_MOMENTUM



def _host_gathers() -> bool:
    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:  # LLVM cannot tell on this platform
        return False
    return bool(features.get("avx512f", False)) and nb.config.CPU_NAME in (None, "host")


#: whether the code compiles for a host that gathers and scatters in hardware (AVX-512; not where
#: ``NUMBA_CPU_NAME`` picks another target); elsewhere LLVM lowers the intrinsics to scalar code
#: no faster than the loops they replace
HAS_GATHER = _host_gathers()

#: weights per vector group
WIDTH = 8


@nb.njit(inline="always")
def pairs_ok(a):
    """Whether ``a``'s rows can be gathered as pairs: element stride 4, row stride a power of two."""
    s = a.strides[0]
    return a.strides[1] == 4 and s > 0 and (s & (s - 1)) == 0


_I1, _I8, _I32, _I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
_F32, _F64 = ir.FloatType(), ir.DoubleType()
_PTR = ir.PointerType()


def _vec(t, n=WIDTH):
    return ir.VectorType(t, n)


def _fn(builder, name, ret, args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


class _Arr:
    """An array argument's data pointer and first stride in bytes."""

    def __init__(self, context, builder, ty, value):
        a = context.make_array(ty)(context, builder, value)
        self.data = a.data
        self.stride = builder.extract_value(a.strides, 0) if ty.ndim > 1 else None


def _applies(index, val, pairs, mode=NO_MOMENTUM, buf=None, index_bits=(32, 64)) -> bool:
    """Whether an intrinsic's float32 code applies to these argument types: ``index`` (keys or column
    indices, ``index_bits`` wide), ``val`` and, where ``mode`` keeps one, the momentum ``buf``
    contiguous one-dimensional arrays, ``val``/``buf`` and the ``pairs`` float32. Elsewhere the
    intrinsic declines (:func:`_declined`) and the callers' scalar loops run."""
    streams = (index, val, buf) if mode != NO_MOMENTUM else (index, val)
    for a in streams:
        if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"):
            return False
    if index.dtype not in (types.uint32, types.int32, types.int64) or index.dtype.bitwidth not in index_bits:
        return False
    return all(a.dtype == types.float32 for a in streams[1:]) and all(
        isinstance(a, types.Array) and a.ndim == 2 and a.dtype == types.float32 for a in pairs)


def _declined(sig):
    """An intrinsic that does nothing and returns False (the caller's scalar loop then runs)."""
    return sig, lambda context, builder, signature, args: ir.Constant(_I1, 0)


def _splat(builder, value):
    v = builder.insert_element(ir.Constant(_vec(value.type), ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, v, ir.Constant(_vec(_I32), [0] * WIDTH))


def _shuffle(builder, v, lanes):
    return builder.shuffle_vector(v, v, ir.Constant(_vec(_I32, len(lanes)), lanes))


def _load(builder, base, k, ety):
    p = builder.gep(base, [k], source_etype=ety)
    return builder.load(builder.bitcast(p, _vec(ety).as_pointer()), align=4)


def _store(builder, value, base, k, ety):
    p = builder.gep(base, [k], source_etype=ety)
    builder.store(value, builder.bitcast(p, _vec(ety).as_pointer()), align=4)


def _pair_ptrs(builder, arr, rows, offset=0):
    """Pointers to the (float32, float32) pairs ``arr[rows, offset:offset + 2]`` (the row stride a
    power of two: a shift, where a 64-bit vector multiply costs three micro-ops)."""
    base = builder.add(builder.ptrtoint(arr.data, _I64), ir.Constant(_I64, 4 * offset))
    cttz = _fn(builder, "llvm.cttz.i64", _I64, [_I64, _I1])
    shift = builder.call(cttz, [arr.stride, ir.Constant(_I1, 1)])
    if rows.type.element.width < 64:
        rows = builder.zext(rows, _vec(_I64))
    addr = builder.add(_splat(builder, base), builder.shl(rows, _splat(builder, shift)))
    return builder.inttoptr(addr, _vec(_PTR))


def _gather(builder, ptrs):
    fn = _fn(builder, "llvm.masked.gather.v8f64.v8p0", _vec(_F64), [_vec(_PTR), _I32, _vec(_I1), _vec(_F64)])
    pairs = builder.call(fn, [ptrs, ir.Constant(_I32, 4), ir.Constant(_vec(_I1), [1] * WIDTH),
                              ir.Constant(_vec(_F64), ir.Undefined)])
    return builder.bitcast(pairs, _vec(_F32, 2 * WIDTH))


def _scatter(builder, value, ptrs):
    fn = _fn(builder, "llvm.masked.scatter.v8f64.v8p0", ir.VoidType(), [_vec(_F64), _vec(_PTR), _I32, _vec(_I1)])
    builder.call(fn, [builder.bitcast(value, _vec(_F64)), ptrs, ir.Constant(_I32, 4),
                      ir.Constant(_vec(_I1), [1] * WIDTH)])


def _fma(builder, a, b, c):
    n = a.type.count
    return builder.call(_fn(builder, f"llvm.fma.v{n}f32", _vec(_F32, n), [_vec(_F32, n)] * 3), [a, b, c])


def _all(builder, mask):
    return builder.icmp_unsigned("==", builder.bitcast(mask, _I8), ir.Constant(_I8, 0xFF))


def _increasing(builder, v):
    """Each lane below the next (so no two lanes are equal)."""
    nxt = _shuffle(builder, v, list(range(1, WIDTH)) + [WIDTH - 1])
    lt = builder.icmp_unsigned("<", v, nxt)
    return _all(builder, builder.or_(lt, ir.Constant(_vec(_I1), [0] * (WIDTH - 1) + [1])))


def _distinct(builder, v):
    """No two lanes equal: lane i against lanes i + 1 .. i + 4 (mod 8) covers every pair."""
    ok = None
    for d in range(1, WIDTH // 2 + 1):
        ne = builder.icmp_unsigned("!=", v, _shuffle(builder, v, [(i + d) % WIDTH for i in range(WIDTH)]))
        ok = ne if ok is None else builder.and_(ok, ne)
    return _all(builder, ok)


def _keys(builder, key, k, shift):
    """Rows and columns of the eight keys at ``k`` (key = row << shift | column)."""
    q = _load(builder, key.data, k, _I32)
    s = _splat(builder, builder.trunc(shift, _I32) if shift.type.width > 32 else shift)
    one = ir.Constant(_vec(_I32), [1] * WIDTH)
    return builder.lshr(q, s), builder.and_(q, builder.sub(builder.shl(one, s), one))


_PAIRED = [i // 2 for i in range(2 * WIDTH)]  # each weight twice: (w0, w0, w1, w1, ...)
_EVEN = list(range(0, 2 * WIDTH, 2))
_ODD = list(range(1, 2 * WIDTH, 2))


@intrinsic
def forward8(typingctx, key, val, x, z, k, shift):
    """``z[r, :] += w * x[c, :]`` for the eight weights at ``k``, as the scalar loop's FMAs (so the
    sums are bit-equal); False, touching nothing, unless their rows increase strictly."""
    sig = types.boolean(key, val, x, z, k, shift)
    if not _applies(key, val, (x, z), index_bits=(32,)):
        return _declined(sig)

    def codegen(context, builder, signature, args):
        key_, val_, x_, z_ = (_Arr(context, builder, t, a) for t, a in zip(signature.args[:4], args[:4]))
        k_, shift_ = args[4], args[5]
        r, j = _keys(builder, key_, k_, shift_)
        ok = _increasing(builder, r)
        with builder.if_then(ok, likely=True):
            w = _shuffle(builder, _load(builder, val_.data, k_, _F32), _PAIRED)
            zp = _pair_ptrs(builder, z_, r)
            out = _fma(builder, w, _gather(builder, _pair_ptrs(builder, x_, j)), _gather(builder, zp))
            _scatter(builder, out, zp)
        return ok

    return sig, codegen


def make_backward8(mode: int, grad: bool):
    """An intrinsic for eight weights at ``k`` of a tile, batch 2: with ``grad``, ``x[c, 2:4] += w *
    g[r]`` (the old w), then SGD in ``mode`` on the values (and momentum), with d = g[r] . x[c, 0:2]
    + wd * w, the scalar loop's rule (see step_kernels' ``_step_*``). False, touching nothing, when
    ``grad`` and two of the eight share a column."""

    @intrinsic
    def backward8(typingctx, key, val, buf, x, g, k, shift, lr, mom, wd):
        sig = types.boolean(key, val, buf, x, g, k, shift, lr, mom, wd)
        if not _applies(key, val, (x, g), mode, buf, index_bits=(32,)):
            return _declined(sig)

        def codegen(context, builder, signature, args):
            key_, val_, buf_, x_, g_ = (_Arr(context, builder, t, a) for t, a in zip(signature.args[:5], args[:5]))
            k_, shift_, lr_, mom_, wd_ = args[5:]
            r, j = _keys(builder, key_, k_, shift_)
            ok = _distinct(builder, j) if grad else ir.Constant(_I1, 1)
            with builder.if_then(ok, likely=True):
                w = _load(builder, val_.data, k_, _F32)
                gv = _gather(builder, _pair_ptrs(builder, g_, r))
                xv = _gather(builder, _pair_ptrs(builder, x_, j))
                if grad:
                    gp = _pair_ptrs(builder, x_, j, offset=2)
                    _scatter(builder, _fma(builder, _shuffle(builder, w, _PAIRED), gv, _gather(builder, gp)), gp)
                _sgd8(builder, mode, val_, buf_, k_, w, gv, xv, lr_, mom_, wd_)
            return ok

        return sig, codegen

    return backward8


def _sgd8(builder, mode, val, buf, k, w, gv, xv, lr, mom, wd):
    """SGD on the eight values at ``k`` given their weights ``w``, output gradients ``gv`` and
    inputs ``xv`` (pairs), in the order LLVM gives the scalar rule under reassociation (so the two
    are bit-equal): d = (wd * w + g0 * x0) + g1 * x1, then b = d + mom * buf, w - lr * b."""
    d = builder.fmul(_splat(builder, wd), w)
    d = _fma(builder, _shuffle(builder, gv, _EVEN), _shuffle(builder, xv, _EVEN), d)
    d = _fma(builder, _shuffle(builder, gv, _ODD), _shuffle(builder, xv, _ODD), d)
    if mode == MOMENTUM:
        d = _fma(builder, _load(builder, buf.data, k, _F32), _splat(builder, mom), d)
    if mode in (MOMENTUM, FIRST_STEP):
        _store(builder, d, buf.data, k, _F32)
    _store(builder, _fma(builder, _splat(builder, builder.fneg(lr)), d, w), val.data, k, _F32)


def make_update_row8(mode: int):
    """An intrinsic for eight weights at ``k`` of one CSR row whose output gradients are ``(g0,
    g1)``, batch 2: SGD in ``mode`` with d = (g0, g1) . x[col[k], :] + wd * w (the first layer's
    update, where no input gradient is needed). True: nothing is scattered, so nothing collides."""

    @intrinsic
    def update_row8(typingctx, col, val, buf, x, g0, g1, k, lr, mom, wd):
        sig = types.boolean(col, val, buf, x, g0, g1, k, lr, mom, wd)
        if not _applies(col, val, (x,), mode, buf) or g0 != types.float32 or g1 != types.float32:
            return _declined(sig)

        def codegen(context, builder, signature, args):
            col_, val_, buf_, x_ = (_Arr(context, builder, t, a) for t, a in zip(signature.args[:4], args[:4]))
            g0_, g1_, k_, lr_, mom_, wd_ = args[4:]
            j = _load(builder, col_.data, k_, ir.IntType(signature.args[0].dtype.bitwidth))
            w = _load(builder, val_.data, k_, _F32)
            g = builder.insert_element(ir.Constant(_vec(_F32, 2), ir.Undefined), g0_, ir.Constant(_I32, 0))
            g = builder.insert_element(g, g1_, ir.Constant(_I32, 1))
            gv = builder.shuffle_vector(g, g, ir.Constant(_vec(_I32, 2 * WIDTH), [i % 2 for i in range(2 * WIDTH)]))
            _sgd8(builder, mode, val_, buf_, k_, w, gv, _gather(builder, _pair_ptrs(builder, x_, j)), lr_, mom_, wd_)
            return ir.Constant(_I1, 1)

        return sig, codegen

    return update_row8
