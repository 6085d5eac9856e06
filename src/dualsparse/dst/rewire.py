"""Install a layer's next set of connections, given as keys, keeping what survives.

Rules whose drop set is not "the n lowest scores of the layer" (SRigL's per-unit fan-in, CHTs'
sampled removal and chain removal) or that may regrow a connection they just removed (as the
authors' code of both does) say what the layer should hold next as sorted keys
``row * in_features + col``. A connection present before keeps its value and optimiser state, so
a connection removed and regrown in the same update is, as in those authors' code, simply kept;
a position absent before gets the ``grow_init`` value and zeroed state. O(nnz) memory, no dense
weight; the number of connections must not change (``SparseLinear.replace_pattern``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..sparse.topology import csr_of_keys, locate, row_of_each
from .optim_state import remap_state


def install_keys(layer, optimizer, new_keys: np.ndarray, rng, grow_init: str = "zero", index: int = 0) -> dict:
    """Make ``new_keys`` (sorted, distinct, as many as the layer holds) the layer's connections.

    Returns the per-layer info dict of :meth:`TopologyAlgorithm.update_layer` (``dropped``:
    connections present before and not now; ``grown``: present now and not before).
    """
    new_keys = np.ascontiguousarray(new_keys, dtype=np.int64)
    if new_keys.shape[0] != layer.nnz:
        raise ValueError(f"install_keys keeps the number of connections: got {new_keys.shape[0]} keys "
                         f"for a layer of {layer.nnz}")
    old_position = locate(layer.keys(), new_keys)
    fresh = old_position < 0
    n_grown = int(fresh.sum())
    row_ptr, col_idx = csr_of_keys(new_keys, layer.out_features, layer.in_features)
    old_values = layer.values.detach()
    work_dtype = old_values.dtype if old_values.dtype in (torch.float32, torch.float64) else torch.float32
    old_values = old_values.cpu().to(work_dtype).numpy()
    values = old_values[np.where(fresh, 0, old_position)]
    if grow_init == "zero":
        values[fresh] = 0
    else:
        values[fresh] = layer.init_values(row_of_each(row_ptr)[fresh], rng)
    old_param = layer.values
    layer.replace_pattern(row_ptr, col_idx, torch.from_numpy(values))
    remap_state(optimizer, old_param, layer.values, old_position)
    return {"layer": index, "nnz": layer.nnz, "dropped": n_grown, "grown": n_grown}
