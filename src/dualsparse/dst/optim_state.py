"""Carry optimiser state across a topology change; reset it for regrown weights.

A regrown connection is a new weight: momentum or Adam moments inherited from whatever was
stored at that position before would push it in a direction it never had.
"""

from __future__ import annotations

import numpy as np
import torch


def remap_state(optimizer, old_param, new_param, old_position: np.ndarray) -> None:
    """Reorder per-weight state tensors of ``old_param`` to ``new_param``'s positions.

    ``old_position[k]`` is where new position k was stored before, or -1 (new: state zeroed).
    Scalar state (e.g. Adam's step count) is kept.
    """
    if optimizer is None:
        return
    state = optimizer.state.pop(old_param, None)
    if new_param is not old_param:
        for group in optimizer.param_groups:
            group["params"] = [new_param if p is old_param else p for p in group["params"]]
    if not state:
        return
    pos = torch.from_numpy(np.asarray(old_position, dtype=np.int64))
    kept = pos >= 0
    n_old = old_param.shape[0]
    new_state = {}
    for key, value in state.items():
        if torch.is_tensor(value) and value.dim() == 1 and value.shape[0] == n_old:
            fresh = torch.zeros(new_param.shape[0], dtype=value.dtype, device=value.device)
            idx = kept.to(value.device)
            fresh[idx] = value[pos[kept].to(value.device)]
            new_state[key] = fresh
        else:
            new_state[key] = value
    optimizer.state[new_param] = new_state
