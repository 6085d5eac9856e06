"""Truly sparse layers: storage, kernels, layer-wise density and FLOP counting."""

from .layer import SparseLinear

__all__ = ["SparseLinear"]
