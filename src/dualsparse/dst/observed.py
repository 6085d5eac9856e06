"""Data-aware topology: the input layer follows what is actually observed.

With incomplete data stored as sparse input (a missing entry is absent), a connection leaving a
rarely observed input is rarely used and rarely trained. ObservedSET grows input-layer
connections preferentially from frequently observed inputs and, when dropping, discounts the
magnitude of connections from rarely observed ones. Other layers evolve exactly as in SET.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..sparse.topology import contains, csr_of_keys
from .algorithm import TopologyAlgorithm
from .rules import MagnitudeDrop, RandomGrow
from .schedule import Schedule


def observed_frequency(X) -> np.ndarray:
    """Fraction of rows in which each input is present: stored entries for sparse X, non-zeros
    for dense X (after mean imputation of standardised data a missing value *is* 0)."""
    n = X.shape[0]
    if n == 0:
        raise ValueError("cannot compute observed frequencies of an empty X")
    if sp.issparse(X):
        counts = np.bincount(sp.csr_matrix(X).indices, minlength=X.shape[1])
    else:
        counts = np.count_nonzero(np.asarray(X), axis=0)
    return counts / n


class ObservedGrow(RandomGrow):
    """Grow in the input layer with input j chosen with probability ∝ frequency[j] ** power."""

    def __init__(self, power: float = 1.0):
        self.power = float(power)
        self.frequency = None

    def _applies(self, layer, context) -> bool:
        return not (self.frequency is None or getattr(context, "layer_index", 0) != 0
                    or self.frequency.size != layer.in_features)

    def select_csr(self, layer, n, rng, context):
        if not self._applies(layer, context):
            return super().select_csr(layer, n, rng, context)
        return csr_of_keys(self.select(layer, n, layer.keys(), rng, context), layer.out_features, layer.in_features)

    def select(self, layer, n, present_keys, rng, context):
        if self.frequency is None or getattr(context, "layer_index", 0) != 0 or self.frequency.size != layer.in_features:
            return super().select(layer, n, present_keys, rng, context)
        free_per_input = layer.out_features - layer.input_degree().cpu().numpy()
        weight = np.where(free_per_input > 0, self.frequency ** self.power, 0.0)
        if weight.sum() <= 0 or (free_per_input[weight > 0]).sum() < n:
            return super().select(layer, n, present_keys, rng, context)
        p = weight / weight.sum()
        chosen = np.empty(0, dtype=np.int64)
        while chosen.size < n:
            need = n - chosen.size
            cols = rng.choice(layer.in_features, size=int(need * 1.2) + 8, p=p)
            rows = rng.integers(0, layer.out_features, size=cols.size)
            keys = rows.astype(np.int64) * layer.in_features + cols
            keys = keys[~contains(present_keys, keys)]
            _, first = np.unique(keys, return_index=True)
            keys = keys[np.sort(first)]  # keep draw order, drop repeats
            keys = keys[~np.isin(keys, chosen)][:need]
            chosen = np.concatenate([chosen, keys])
        return np.sort(chosen)


class ObservedDrop(MagnitudeDrop):
    """Input-layer drop score |w| * frequency[j] ** power: rarely observed inputs shed connections."""

    def __init__(self, power: float = 1.0):
        self.power = float(power)
        self.frequency = None

    def scores(self, layer, context):
        s = super().scores(layer, context)
        if self.frequency is None or getattr(context, "layer_index", 0) != 0 or self.frequency.size != layer.in_features:
            return s
        return s * self.frequency[layer.col_idx.cpu().numpy()] ** self.power


class ObservedSET(TopologyAlgorithm):
    """SET whose input layer prefers observed inputs (``"set-observed"``)."""

    name = "set-observed"
    display_name = "SET MLP (observed-aware input layer)"

    def __init__(self, zeta: float = 0.3, every="epoch", grow_power: float = 1.0, drop_power: float = 0.5,
                 grow_init: str = "zero"):
        super().__init__(ObservedDrop(drop_power), ObservedGrow(grow_power), Schedule(zeta, every), grow_init)

    def prepare(self, X) -> None:
        frequency = observed_frequency(X)
        self.drop.frequency = frequency
        self.grow.frequency = frequency
