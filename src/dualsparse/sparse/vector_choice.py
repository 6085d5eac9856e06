"""Whether the vector kernels pay on this host: timed once per process, not read off a CPU flag.

Why: every host with AVX-512 gathers and scatters in hardware (:data:`.vector_ops.HAS_GATHER`),
but not every host does it fast. The eight-at-a-time kernels made the tiled step of SET's
H = 600,000 network 1.4x faster on the host they were written on, and slower on an AMD EPYC
(Zen 4, family 25 model 17): there one steady epoch took 24.0 s with them and 12.9 s with the
scalar loops (cProfile, same code and seed, back to back: tiled backward 13.6 vs 5.5 s, forward
6.1 vs 3.4 s), and ``benchmarks/scale.py --hidden 600000`` gave 17.9 and 14.5 s per epoch with
them against 14.9 and 11.4 s with this choice (two interleaved pairs). Both paths give the same
numbers bit for bit (``tests/test_column_blocks.py``, ``tests/test_vector_ops.py``), so which one
runs is a matter of speed alone, and a few milliseconds of timing on a small synthetic layer,
whose activations sit in L2 as the tiles' do, settle it (there: 1.0-1.2 ms scalar against
1.3-1.5 ms vector for the tiles, 0.21-0.23 against 0.15 ms for the CSR update, which only gathers
and stays faster with them). ``benchmarks/vector_kernels.py`` checks the decision at full size, in
one run: there, on a 600,000-wide layer (2 threads, 7 interleaved repetitions), scalar / vector
time 0.65x (0.56-0.71) for the tiled forward, 0.73x (0.62-0.76) for the backward with update, and
1.26x (0.62-1.87) for the first layer's CSR update.

``DUALSPARSE_VECTOR=0`` keeps the scalar loops, ``=1`` takes the vector kernels wherever they
apply (on a host without hardware gathers LLVM lowers them to scalar code); unset, each kernel
family is timed on its own the first time it is asked for (:func:`tiles`: gathers and scatters;
:func:`rows`, the first layer's CSR update: gathers only), and the vector path is taken where its
best time is below :data:`MARGIN` of the scalar loops'.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

import numpy as np

from . import column_blocks, step_kernels
from .kernels import MOMENTUM
from .vector_ops import HAS_GATHER

ENV_VAR = "DUALSPARSE_VECTOR"
#: the vector path is taken where its best time is below this share of the scalar loops' best
MARGIN = 0.9
_REPEATS = 5


@dataclass(frozen=True)
class Choice:
    """Whether one kernel family goes eight weights at a time, and why."""

    vector: bool
    how: str  # "measured", "DUALSPARSE_VECTOR=0" / "=1", or "no hardware gathers"
    best_s: tuple[float, float] | None = None  # (scalar, vector) best times where measured


def synthetic_layer(n_out: int, n_in: int, per_row: int, rng) -> tuple:
    """(row_ptr, col_idx, values, zero momentum) of a float32 CSR layer whose rows hold ``per_row``
    random columns, one in each of ``per_row`` equal strata (sorted, distinct): what the timings
    here and ``benchmarks/vector_kernels.py`` run on."""
    stride = n_in // per_row
    col = (np.arange(per_row) * stride + rng.integers(0, stride, (n_out, per_row))).astype(np.int32).ravel()
    row_ptr = np.arange(0, (n_out + 1) * per_row, per_row, dtype=np.int64)
    values = rng.normal(0, 0.1, col.size).astype(np.float32)
    return row_ptr, col, values, np.zeros_like(values)


def _best(run) -> tuple[float, float]:
    """Best (scalar, vector) time of ``run(vector)``, the two interleaved, each warmed once first."""
    run(False), run(True)
    best = [np.inf, np.inf]
    for _ in range(_REPEATS):
        for v in (0, 1):
            t = time.perf_counter()
            run(bool(v))
            best[v] = min(best[v], time.perf_counter() - t)
    return best[0], best[1]


def _time_tiles(rng) -> tuple[float, float]:
    """Forward plus backward-with-update of a tiled 2,048 x 32,768 layer (131,072 weights), batch 2."""
    n_out, n_in = 2048, 4 * column_blocks.BLOCK_COLS
    row_ptr, col, values, mom = synthetic_layer(n_out, n_in, 64, rng)
    blocks = column_blocks.ColumnBlocks(row_ptr, col, values, mom, n_in, threads=1)
    f = np.float32
    xg = rng.normal(size=(n_in, 4)).astype(f)
    z, a = np.empty((n_out, 2), f), np.empty((n_out, 2), f)
    gt = rng.normal(0, 1e-3, size=(n_out, 2)).astype(f)
    bias, bbuf = np.zeros(n_out, f), np.zeros(n_out, f)

    def run(vector):
        blocks.vector = vector
        blocks.forward(bias, xg[:, :2], z, a, f(0.5), True, 1)
        blocks.backward_update(bias, bbuf, xg, gt, xg[:, :2], f(0.5), f(1e-3), f(0.9), f(0), MOMENTUM, MOMENTUM, 1)

    return _best(run)


def _time_rows(rng) -> tuple[float, float]:
    """The CSR value update of a 4,096 x 4,096 first layer with 32 weights a row, batch 2."""
    n = 4096
    row_ptr, col, values, mom = synthetic_layer(n, n, 32, rng)
    f = np.float32
    x = rng.normal(size=(n, 2)).astype(f)
    gt = rng.normal(0, 1e-3, size=(n, 2)).astype(f)
    empty = np.empty(0, f)

    def run(vector):
        step_kernels.update(row_ptr, col, values, mom, empty, empty, x, gt, f(1e-3), f(0.9), f(0), MOMENTUM,
                            MOMENTUM, vector)

    return _best(run)


def _decide(timer) -> Choice:
    forced = os.environ.get(ENV_VAR, "")
    if forced in ("0", "1"):
        return Choice(forced == "1", f"{ENV_VAR}={forced}")
    if forced:
        raise ValueError(f"{ENV_VAR}={forced!r}: use 0 (scalar loops), 1 (vector kernels) or leave it unset "
                         "(measured once per process)")
    if not HAS_GATHER:
        return Choice(False, "no hardware gathers")
    scalar, vector = timer(np.random.default_rng(0))
    return Choice(vector < MARGIN * scalar, "measured", (scalar, vector))


@functools.cache
def tiles() -> Choice:
    """For :class:`.column_blocks.ColumnBlocks` (measured on the first call of a process, ~30 ms once
    its kernels are loaded)."""
    return _decide(_time_tiles)


@functools.cache
def rows() -> Choice:
    """For the first layer's CSR update, :func:`.step_kernels.update` (measured on the first call, ~5 ms)."""
    return _decide(_time_rows)
