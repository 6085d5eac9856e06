"""FLOP counting from the real non-zeros of weights and inputs.

Convention (stated so that numbers can be compared): a multiply-add is 2 FLOPs; per layer and
sample, the forward pass costs 2 x (products actually formed) + out (bias); the backward pass
costs 2 x products for the weight gradient, plus 2 x products for the input gradient except in the
first layer (nothing upstream needs it). Activations, losses and optimiser updates are not
counted (they are the same order for sparse and dense and small next to the products).

"Products actually formed" is what the kernels do: nnz per sample for a dense input, and for a
sparse input the sum over its stored values of the fan-out of that input.
"""

from __future__ import annotations

import numpy as np


def layer_products(nnz: int, batch: int) -> int:
    """Products of a sparse layer on ``batch`` dense inputs."""
    return int(nnz) * int(batch)


def sparse_input_products(input_degree: np.ndarray, indices: np.ndarray) -> int:
    """Products of a layer fed a sparse input: sum of fan-outs of the stored input indices."""
    if indices.size == 0:
        return 0
    return int(np.asarray(input_degree, dtype=np.int64)[indices].sum())


def forward_flops(products, out_features: int, batch, bias: bool = True):
    """Products may be a mean per sample (a float), so nothing is rounded here."""
    return 2 * products + (out_features * batch if bias else 0)


def backward_flops(products, first_layer: bool):
    return 2 * products * (1 if first_layer else 2)
