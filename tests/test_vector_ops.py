"""The eight-at-a-time intrinsics (sparse/vector_ops) against the scalar loops they stand in for.

The vector paths must give the scalar loops' numbers bit for bit, and must step aside wherever two
of eight weights would write the same place: the layers here are built so that such groups are
common (few distinct columns per block; rows with many weights in one block; tiles of fewer than
eight rows, where every group straddles two ranks)."""


import numba as nb
import numpy as np
import pytest

from dualsparse.sparse import column_blocks as CB
from dualsparse.sparse import step_kernels as K

F = np.float32


def _crowded(n_out, n_in, per_row, distinct, seed):
    """A CSR layer whose rows draw their columns from ``distinct`` columns per block."""
    rng = np.random.default_rng(seed)
    n_cb = -(-n_in // CB.BLOCK_COLS)
    widths = [min(CB.BLOCK_COLS, n_in - c * CB.BLOCK_COLS) for c in range(n_cb)]
    pool = np.concatenate([c * CB.BLOCK_COLS + rng.choice(w, min(w, distinct), replace=False)
                           for c, w in enumerate(widths)])
    sizes = np.minimum(pool.size, rng.integers(0, per_row + 1, n_out))
    rows = [np.sort(rng.choice(pool, k, replace=False)) for k in sizes]
    row_ptr = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    return row_ptr, np.concatenate(rows).astype(np.int32), rng.normal(0, 0.3, row_ptr[-1]).astype(F), rng


LAYERS = {
    "few columns per block": dict(n_out=300, n_in=3 * CB.BLOCK_COLS + 5, per_row=30, distinct=12),
    "tiles of seven rows": dict(n_out=7, n_in=2 * CB.BLOCK_COLS, per_row=200, distinct=60),
}


def _both(row_ptr, col, values, buf, n_in, threads, run):
    """``run(blocks)`` on the scalar and on the vector path; each side's flushed values, momentum
    and whatever ``run`` returns."""
    out = []
    for vector in (False, True):
        v, b = values.copy(), buf.copy()
        blocks = CB.ColumnBlocks(row_ptr, col, v, b, n_in, threads)
        blocks.vector = vector
        extra = run(blocks)
        blocks.flush()
        out.append((v, b, extra))
    return out


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("mode", [K.NO_MOMENTUM, K.FIRST_STEP, K.MOMENTUM])
@pytest.mark.parametrize("threads", [1, 2])
def test_vector_steps_are_the_scalar_steps_bit_for_bit(layer, mode, threads):
    row_ptr, col, values, rng = _crowded(seed=mode + 3 * threads, **LAYERS[layer])
    n_out, n_in = row_ptr.size - 1, LAYERS[layer]["n_in"]
    buf = rng.normal(0, 0.1, values.size).astype(F)
    x = rng.normal(size=(n_in, 4)).astype(F)[:, :2]  # strided, as between layers
    zprev = rng.normal(size=(n_in, 2)).astype(F)
    gt = rng.normal(size=(n_out, 4)).astype(F)[:, 2:]
    hyper = (F(0.05), F(0.9), F(1e-3), mode, mode)

    def forward(blocks):
        z, a = np.empty((n_out, 2), F), np.empty((n_out, 2), F)
        blocks.forward(np.zeros(n_out, F), x, z, a, F(0.3), True, threads)
        return z

    def backward(blocks):
        xg = np.zeros((n_in, 4), F)
        xg[:, :2] = x
        blocks.backward_update(np.zeros(n_out, F), np.zeros(n_out, F), xg, gt, zprev, F(0.3), *hyper, threads)
        return xg

    def update(blocks):
        blocks.update(np.zeros(n_out, F), np.zeros(n_out, F), x, gt, *hyper, threads)

    for run in (forward, backward, update):
        (v0, b0, e0), (v1, b1, e1) = _both(row_ptr, col, values, buf, n_in, threads, run)
        np.testing.assert_array_equal(v1, v0, err_msg=run.__name__)
        np.testing.assert_array_equal(b1, b0, err_msg=run.__name__)
        if e0 is not None:
            np.testing.assert_array_equal(e1, e0, err_msg=run.__name__)
    # and the scalar forward is the CSR forward, bit for bit (so the vector one is too)
    z, a = np.empty((n_out, 2), F), np.empty((n_out, 2), F)
    K.forward(row_ptr, col, values, np.zeros(n_out, F), x, z, a, F(0.3), True)
    np.testing.assert_array_equal(_both(row_ptr, col, values, buf, n_in, threads, forward)[1][2], z)


def test_crowded_layers_put_colliding_weights_side_by_side():
    """The layers above are worth testing on: in tile order many groups of eight repeat a column
    (the backward's collision) or a row (the forward's)."""
    for layer, kw in LAYERS.items():
        row_ptr, col, values, _ = _crowded(seed=0, **kw)
        blocks = CB.ColumnBlocks(row_ptr, col, values, np.empty(0, F), kw["n_in"], 1)
        same_col = same_row = groups = 0
        for t in range(blocks.tile_start.size - 1):
            q = blocks.key[blocks.tile_start[t] : blocks.tile_start[t + 1]]
            for g in range(0, q.size - 7, 8):
                rows, cols = q[g : g + 8] >> CB._ROW_SHIFT, q[g : g + 8] & CB._COL
                groups += 1
                same_col += np.unique(cols).size < 8
                same_row += np.unique(rows).size < 8
        assert groups > 50 and same_col > 0.2 * groups, layer
        if layer == "tiles of seven rows":
            assert same_row > 0.5 * groups


def test_tiles_are_rank_major():
    """Within a tile: every row's first weight of the block (rows ascending), then every second ..."""
    row_ptr, col, values, _ = _crowded(seed=1, **LAYERS["few columns per block"])
    blocks = CB.ColumnBlocks(row_ptr, col, values, np.empty(0, F), LAYERS["few columns per block"]["n_in"], 1)
    for t in range(blocks.tile_start.size - 1):
        q = blocks.key[blocks.tile_start[t] : blocks.tile_start[t + 1]].astype(np.int64)
        rows, cols = q >> CB.BLOCK_SHIFT, q & (CB.BLOCK_COLS - 1)
        rank = np.zeros(q.size, np.int64)
        seen = {}
        for i, r in enumerate(rows):
            rank[i] = seen.get(r, 0)
            seen[r] = rank[i] + 1
        assert np.all(np.diff(rank) >= 0)
        for m in np.unique(rank):
            assert np.all(np.diff(rows[rank == m]) > 0)
        for r in np.unique(rows):
            assert np.all(np.diff(cols[rows == r]) > 0)  # a row's weights keep CSR order


@pytest.mark.parametrize("index", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_value_update_vector_path_is_the_scalar_rule(index, dtype):
    rng = np.random.default_rng(4)
    n_out, n_in = 200, 3312
    rows = [np.sort(rng.choice(n_in, rng.integers(0, 40), replace=False)) for _ in range(n_out)]
    row_ptr = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    col = np.concatenate(rows).astype(index)
    x = rng.normal(size=(n_in, 2)).astype(dtype)
    gt = rng.normal(size=(n_out, 2)).astype(dtype)
    def scalar(*args):
        K._update_rows(*args, False)

    def vector(*args):  # the intrinsics compile (as scalar code where the host has no gathers) on any CPU
        K._update_rows(*args, True)

    for mode in (K.NO_MOMENTUM, K.FIRST_STEP, K.MOMENTUM):
        values = rng.normal(size=col.size).astype(dtype)
        buf = rng.normal(size=col.size).astype(dtype)
        a, b = [values.copy(), buf.copy()], [values.copy(), buf.copy()]
        args = (x, gt, dtype(0.05), dtype(0.9), dtype(1e-3), mode, 0, n_out)
        scalar(row_ptr, col, a[0], a[1], *args)
        vector(row_ptr, col, b[0], b[1], *args)
        assert not np.array_equal(a[0], values)
        np.testing.assert_array_equal(b[0], a[0])
        np.testing.assert_array_equal(b[1], a[1])
        # strided values (not contiguous): the intrinsic declines, the loop gives the same numbers
        c = [np.repeat(values, 2)[::2], np.repeat(buf, 2)[::2]]
        vector(row_ptr, col, c[0], c[1], *args)
        np.testing.assert_array_equal(c[0], a[0])
        np.testing.assert_array_equal(c[1], a[1])


def test_float64_layers_take_the_scalar_loops():
    """The intrinsics do float32 arithmetic; for other dtypes they decline and the loops run."""
    row_ptr, col, values, rng = _crowded(seed=2, **LAYERS["few columns per block"])
    n_out, n_in = row_ptr.size - 1, LAYERS["few columns per block"]["n_in"]
    values = values.astype(np.float64)
    x = rng.normal(size=(n_in, 2))
    blocks = CB.ColumnBlocks(row_ptr, col, values, np.empty(0), n_in, 1)
    blocks.vector = True
    z, z_ref, a = np.empty((n_out, 2)), np.empty((n_out, 2)), np.empty((n_out, 2))
    blocks.forward(np.zeros(n_out), x, z, a, 0.3, False, 1)
    K.forward(row_ptr, col, values, np.zeros(n_out), x, z_ref, a, 0.3, False)
    np.testing.assert_array_equal(z, z_ref)


def test_intrinsics_take_float32_groups_and_decline_the_rest():
    """The bit-for-bit tests above would pass if the intrinsics always declined: here they must act
    on a valid group (and give the scalar sums), and decline, touching nothing, on a colliding group
    or float64 data."""
    from dualsparse.sparse.vector_ops import forward8, make_update_row8

    @nb.njit
    def fwd(key, val, x, z):
        return forward8(key, val, x, z, np.uint64(0), np.uint32(CB.BLOCK_SHIFT))

    update = make_update_row8(K.NO_MOMENTUM)

    @nb.njit
    def upd(col, val, x, g0, g1):
        return update(col, val, val, x, g0, g1, np.uint64(0), g0, g0, g0)

    rng = np.random.default_rng(6)
    rows, cols = np.arange(0, 16, 2, dtype=np.uint32), rng.integers(0, 50, 8).astype(np.uint32)
    val, x = rng.normal(size=8).astype(F), rng.normal(size=(50, 2)).astype(F)
    z = np.zeros((16, 2), F)
    assert fwd(rows << CB._ROW_SHIFT | cols, val, x, z)
    np.testing.assert_array_equal(z[rows], val[:, None] * x[cols])
    repeated = rows.copy()
    repeated[3] = repeated[2]
    z2 = np.zeros((16, 2), F)
    assert not fwd(repeated << CB._ROW_SHIFT | cols, val, x, z2) and not z2.any()
    assert not fwd(rows << CB._ROW_SHIFT | cols, val.astype(np.float64), x.astype(np.float64), z.astype(np.float64))
    v = val.copy()
    assert upd(cols.astype(np.int32), v, x, F(0.5), F(0.25)) and not np.array_equal(v, val)
    v64 = val.astype(np.float64)
    assert not upd(cols.astype(np.int32), v64, x.astype(np.float64), 0.5, 0.25)
    np.testing.assert_array_equal(v64, val.astype(np.float64))
