"""Carry optimiser state across a topology change; reset it for regrown weights.

A regrown connection is a new weight: momentum or Adam moments inherited from whatever was
stored at that position before would push it in a direction it never had.
"""

from __future__ import annotations

import numpy as np
import torch

from ..sparse.small_swap import remap_into
from ..sparse.topology import take_or_zero


def remap_state(optimizer, old_param, new_param, old_position: np.ndarray, n_old: int | None = None) -> None:
    """Reorder per-weight state tensors of ``old_param`` to ``new_param``'s positions.

    ``old_position[k]`` (int32 or int64) is where new position k was stored before, or -1 (new:
    state zeroed); its length is the new number of weights, which may differ from the old one.
    ``n_old``: the number of weights before the change, needed when ``old_param`` is the same
    Parameter already resized (:meth:`SparseLinear.replace_pattern` with another nnz); by default
    ``old_param``'s current length. Scalar state (e.g. Adam's step count) is kept.
    """
    if optimizer is None:
        return
    state = optimizer.state.pop(old_param, None)
    if new_param is not old_param:
        for group in optimizer.param_groups:
            group["params"] = [new_param if p is old_param else p for p in group["params"]]
    if not state:
        return
    old_position = np.asarray(old_position)
    if old_position.dtype not in (np.int32, np.int64):
        old_position = old_position.astype(np.int64)
    n_old = old_param.shape[0] if n_old is None else int(n_old)
    new_state = {}
    for key, value in state.items():
        if torch.is_tensor(value) and value.dim() == 1 and value.shape[0] == n_old:
            new_state[key] = _take_or_zero(value, old_position)
        else:
            new_state[key] = value
    optimizer.state[new_param] = new_state


def remap_state_in_place(optimizer, param, old_position: np.ndarray) -> None:
    """:func:`remap_state` for a swap that kept ``param`` and its size: the per-weight state
    tensors are reordered in their own storage (small layers: no new tensors, no thread pool)."""
    if optimizer is None:
        return
    state = optimizer.state.get(param)
    if not state:
        return
    n = param.shape[0]
    for key, value in state.items():
        if torch.is_tensor(value) and value.dim() == 1 and value.shape[0] == n:
            if value.device.type == "cpu" and value.is_contiguous() and value.dtype in (torch.float32, torch.float64):
                remap_into(value.numpy(), old_position)
            else:
                state[key] = _take_or_zero(value, old_position)


def _take_or_zero(value: torch.Tensor, old_position: np.ndarray) -> torch.Tensor:
    """``value[old_position]`` with 0 where the position is -1 (one parallel pass on the CPU)."""
    if value.device.type == "cpu":
        return torch.from_numpy(take_or_zero(value.numpy(), old_position))
    pos = torch.from_numpy(old_position).to(value.device).long()
    kept = pos >= 0
    fresh = torch.zeros(pos.shape[0], dtype=value.dtype, device=value.device)
    fresh[kept] = value[pos[kept]]
    return fresh
