"""SparseLinear: a linear layer that stores, computes with and learns only its live connections."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..utils import check_random_state
from . import functional as F
from .topology import keys_from_csr, keys_of, locate, random_keys, row_of_each, split_keys


def _index_dtype(n: int) -> torch.dtype:
    return torch.int32 if n < 2**31 - 1 else torch.int64


class SparseLinear(nn.Module):
    """``y = x @ W.T + b`` with ``W`` (out_features x in_features) stored as CSR.

    The only weight parameter is ``values`` (nnz,). Forward and both gradients cost
    O(batch x nnz) time (O(stored input values x fan-out) for a ``torch.sparse_csr`` input) and
    O(nnz) extra memory; no dense weight or weight gradient is ever built.

    Parameters
    ----------
    density : float in (0, 1]
        Fraction of the ``out_features * in_features`` positions that are live; the positions are
        drawn uniformly at random (Erdős–Rényi).
    init_gain : float
        Values are drawn from U(-a, a), ``a = init_gain * sqrt(3 / fan_in)`` with the fan-in each
        output unit *actually has* (He-uniform for ReLU by default), so sparse layers start with the
        same activation scale as dense ones.
    random_state : None, int or numpy Generator
        Seeds the topology and the initial values.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        density: float = 0.1,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        init_gain: float = math.sqrt(2.0),
        random_state=None,
    ):
        super().__init__()
        in_features, out_features = _check_shape(in_features, out_features)
        density = _check_density(density)
        self.in_features = in_features
        self.out_features = out_features
        self.init_gain = float(init_gain)
        rng = check_random_state(random_state)
        nnz = max(1, int(round(density * in_features * out_features)))
        keys = random_keys(out_features, in_features, nnz, rng)
        rows, cols = split_keys(keys, in_features)
        dtype = dtype or torch.get_default_dtype()
        self.values = nn.Parameter(torch.empty(nnz, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype, device=device)) if bias else None
        self.register_buffer("row_ptr", torch.zeros(out_features + 1, dtype=torch.int64, device=device))
        self.register_buffer("col_idx", torch.zeros(0, dtype=torch.int32, device=device))
        self._set_pattern(rows, cols)
        with torch.no_grad():
            self.values.copy_(torch.from_numpy(self.init_values(rows, rng)))
        self.backend = "auto"

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dense(cls, weight: torch.Tensor, bias: torch.Tensor | None = None) -> "SparseLinear":
        """A SparseLinear holding exactly the non-zeros of ``weight`` (out x in)."""
        weight = torch.as_tensor(weight)
        if weight.dim() != 2:
            raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
        if not torch.isfinite(weight).all():
            raise ValueError("weight contains NaN or inf; pass a finite matrix")
        out_f, in_f = weight.shape
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.in_features, layer.out_features = _check_shape(in_f, out_f)
        layer.init_gain = math.sqrt(2.0)
        layer.backend = "auto"
        w = weight.detach()
        nz = torch.nonzero(w, as_tuple=False)
        if nz.shape[0] == 0:
            raise ValueError("weight has no non-zero entry; a sparse layer needs at least one connection")
        rows, cols = nz[:, 0].cpu().numpy(), nz[:, 1].cpu().numpy()
        layer.values = nn.Parameter(w[nz[:, 0], nz[:, 1]].clone())
        if bias is not None:
            bias = torch.as_tensor(bias, dtype=w.dtype, device=w.device).detach().clone()
            if bias.shape != (out_f,):
                raise ValueError(f"bias must have shape ({out_f},), got {tuple(bias.shape)}")
            layer.bias = nn.Parameter(bias)
        else:
            layer.bias = None
        layer.register_buffer("row_ptr", torch.zeros(out_f + 1, dtype=torch.int64, device=w.device))
        layer.register_buffer("col_idx", torch.zeros(0, dtype=torch.int32, device=w.device))
        layer._set_pattern(rows, cols)  # nonzero() is row-major, i.e. already CSR order
        return layer

    def init_values(self, rows: np.ndarray, rng) -> np.ndarray:
        """He-uniform values for connections ending in ``rows``, scaled by each row's live fan-in."""
        fan_in = np.diff(self.row_ptr.cpu().numpy())[rows].clip(min=1)
        bound = self.init_gain * np.sqrt(3.0 / fan_in)
        dtype = torch.empty(0, dtype=self.values.dtype).numpy().dtype
        return (rng.uniform(-1.0, 1.0, size=rows.size) * bound).astype(dtype)

    # ------------------------------------------------------------------ structure
    def _set_pattern(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """Install a CSR pattern from rows/cols already sorted by (row, col)."""
        device = self.row_ptr.device
        counts = np.bincount(rows, minlength=self.out_features)
        row_ptr = np.zeros(self.out_features + 1, dtype=np.int64)
        np.cumsum(counts, out=row_ptr[1:])
        self.row_ptr = torch.from_numpy(row_ptr).to(device)
        self.col_idx = torch.from_numpy(np.ascontiguousarray(cols)).to(_index_dtype(self.in_features)).to(device)
        self._csc_cache = None

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    @property
    def density(self) -> float:
        return self.nnz / (self.in_features * self.out_features)

    def row_indices(self) -> torch.Tensor:
        """Row (output unit) of every stored value, CSR order."""
        if self.row_ptr.device.type == "cpu":
            return torch.from_numpy(row_of_each(self.row_ptr.numpy()))
        counts = self.row_ptr[1:] - self.row_ptr[:-1]
        return torch.repeat_interleave(torch.arange(self.out_features, device=self.row_ptr.device), counts)

    def input_degree(self) -> torch.Tensor:
        """Number of live connections leaving each input (fan-out), shape (in_features,)."""
        return torch.bincount(self.col_idx.long(), minlength=self.in_features)

    def keys(self) -> np.ndarray:
        """Sorted int64 keys ``row * in_features + col`` of the live connections."""
        return keys_from_csr(self.row_ptr.cpu().numpy(), self.col_idx.cpu().numpy(), self.in_features)

    def csc(self):
        """(col_ptr, row_idx, perm): the same pattern by input column; perm maps to CSR positions.

        Recomputed only when the topology changes (once per evolution step), in O(nnz).
        """
        if self._csc_cache is None:
            self._csc_cache = F.transpose_pattern(self.in_features, self.row_ptr, self.col_idx)
        return self._csc_cache

    def to_dense(self) -> torch.Tensor:
        """The (out_features, in_features) weight, like ``nn.Linear.weight`` (for inspection only)."""
        w = torch.zeros(self.out_features, self.in_features, dtype=self.values.dtype, device=self.values.device)
        w[self.row_indices(), self.col_idx.long()] = self.values.detach()
        return w

    @torch.no_grad()
    def set_connections(self, rows, cols, values) -> np.ndarray:
        """Replace the topology by the given connections (any order, no duplicates).

        Returns ``old_position`` (nnz_new,): for each new CSR position, where that connection was
        stored before, or -1 if it is new. Optimisers use it to carry (or reset) their state.
        If the count changes, ``values`` becomes a new Parameter (re-register it in the optimiser).
        """
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        values = torch.as_tensor(values, dtype=self.values.dtype).to(self.values.device)
        if not (rows.shape == cols.shape == tuple(values.shape)) or rows.ndim != 1:
            raise ValueError("rows, cols and values must be 1-D and of equal length")
        if rows.size == 0:
            raise ValueError("a sparse layer needs at least one connection")
        if rows.min() < 0 or rows.max() >= self.out_features or cols.min() < 0 or cols.max() >= self.in_features:
            raise ValueError("connection index out of range for this layer's shape")
        new_keys = keys_of(rows, cols, self.in_features)
        order = np.argsort(new_keys, kind="stable")
        new_keys = new_keys[order]
        if np.any(new_keys[1:] == new_keys[:-1]):
            raise ValueError("duplicate connections given to set_connections")
        old_keys = self.keys()
        old_position = locate(old_keys, new_keys)
        new_rows, new_cols = split_keys(new_keys, self.in_features)
        new_values = values[torch.from_numpy(order).to(values.device)]
        self._set_pattern(new_rows, new_cols)
        if new_values.shape[0] == self.values.shape[0]:
            self.values.data.copy_(new_values)
        else:
            self.values = nn.Parameter(new_values.clone())
        return old_position

    @torch.no_grad()
    def replace_pattern(self, row_ptr: np.ndarray, col_idx: np.ndarray, values) -> None:
        """Install a new CSR pattern as is (no sorting or checks: for callers that built it in CSR
        order, e.g. :func:`dualsparse.sparse.topology.evolve_csr`).

        Same nnz: the values are copied into the existing ``values`` storage, so the Parameter,
        its identity in the optimiser and any view of its data stay valid. Another nnz (pruning,
        growth beyond drops): ``values`` becomes a new Parameter of the new size, as in
        :meth:`set_connections` (resizing the old one's ``.data`` would leave autograd's cached
        gradient accumulator, kept alive by any graph still referenced, expecting the old size);
        re-register it in the optimiser and move its state with
        :func:`dualsparse.dst.remap_state`, which does both. ``row_ptr`` and ``col_idx`` always
        become new tensors (code caching views of them can tell the topology changed).
        """
        values = torch.as_tensor(values)
        if values.dim() != 1 or col_idx.shape[0] != values.shape[0] or row_ptr.shape[0] != self.out_features + 1:
            raise ValueError("replace_pattern needs row_ptr of out_features + 1 entries and one value per column index")
        if int(row_ptr[-1]) != values.shape[0] or values.shape[0] < 1:
            raise ValueError(f"row_ptr ends at {int(row_ptr[-1])} but {values.shape[0]} values were given; "
                             "a sparse layer needs at least one connection")
        if values.shape != self.values.shape:
            device = self.row_ptr.device
            self.row_ptr = torch.from_numpy(np.ascontiguousarray(row_ptr, dtype=np.int64)).to(device)
            self.col_idx = torch.from_numpy(np.ascontiguousarray(col_idx)).to(_index_dtype(self.in_features)).to(device)
            requires_grad = self.values.requires_grad
            self.values = nn.Parameter(values.to(self.values.device, self.values.dtype).clone().contiguous(),
                                       requires_grad=requires_grad)
            self._csc_cache = None
            return
        device = self.row_ptr.device
        # straight into the buffer table: nn.Module.__setattr__ costs more than the rest on small layers
        self._buffers["row_ptr"] = torch.from_numpy(np.ascontiguousarray(row_ptr, dtype=np.int64)).to(device)
        col_idx = torch.from_numpy(np.ascontiguousarray(col_idx))
        self._buffers["col_idx"] = col_idx.to(device, _index_dtype(self.in_features))
        values = values.to(self.values.device, self.values.dtype)
        if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64) and self.values.is_contiguous():
            np.copyto(self.values.detach().numpy(), values.numpy())  # one memcpy, no thread pool
        else:
            self.values.copy_(values)
        self._csc_cache = None

    # ------------------------------------------------------------------ compute
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.layout == torch.sparse_coo:
            x = x.to_sparse_csr()
        if x.layout == torch.sparse_csr:
            return F.sparse_input_linear(x, self)
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"SparseLinear expects input of shape (batch, {self.in_features}), got {tuple(x.shape)}"
            )
        return F.sparse_linear(x, self)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"nnz={self.nnz}, density={self.density:.4g}, bias={self.bias is not None}"
        )

    def _apply(self, fn, recurse=True):
        # Moving the layer (e.g. .to("cuda")) invalidates the cached transposed pattern.
        self._csc_cache = None
        return super()._apply(fn, recurse)


def _check_shape(in_features, out_features) -> tuple[int, int]:
    for name, v in (("in_features", in_features), ("out_features", out_features)):
        if int(v) != v or int(v) < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(in_features), int(out_features)


def _check_density(density) -> float:
    density = float(density)
    if not (0.0 < density <= 1.0) or math.isnan(density):
        raise ValueError(f"density must be in (0, 1], got {density!r}; use e.g. density=0.1 for 10 % of connections")
    return density
