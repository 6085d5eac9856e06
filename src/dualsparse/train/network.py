"""Build the MLP: sparse or dense linear layers, activations, dropout."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..sparse import SparseLinear
from ..sparse.density import layer_densities
from ..utils import derive_seed
from .dropout import Dropout


class AllReLU(nn.Module):
    """All-ReLU (Curci, Mocanu & Pechenizkiy 2021): x for x > 0, and a slope of -alpha / +alpha
    for x <= 0 on odd / even hidden layers, which keeps very sparse deep MLPs trainable."""

    def __init__(self, alpha: float = 0.6, layer_index: int = 1):
        super().__init__()
        self.alpha = float(alpha)
        self.slope = -self.alpha if layer_index % 2 == 1 else self.alpha

    def forward(self, x):
        return torch.nn.functional.leaky_relu(x, self.slope)  # one op; a negative slope is allowed

    def extra_repr(self):
        return f"alpha={self.alpha}, slope={self.slope}"


ACTIVATIONS = {
    "relu": lambda i: nn.ReLU(),
    "tanh": lambda i: nn.Tanh(),
    "logistic": lambda i: nn.Sigmoid(),
    "sigmoid": lambda i: nn.Sigmoid(),
    "leaky_relu": lambda i: nn.LeakyReLU(0.01),
    "elu": lambda i: nn.ELU(),
    "gelu": lambda i: nn.GELU(),
    "identity": lambda i: nn.Identity(),
    "allrelu": lambda i: AllReLU(0.6, i),
}

_GAIN = {"relu": math.sqrt(2.0), "leaky_relu": math.sqrt(2.0), "allrelu": math.sqrt(2.0 / (1 + 0.36)), "elu": math.sqrt(2.0), "gelu": math.sqrt(2.0)}


def build_mlp(
    n_in: int,
    hidden: tuple[int, ...],
    n_out: int,
    *,
    sparse: bool,
    distribution: str = "er",
    epsilon: float | None = 20.0,
    sparsity: float | None = None,
    activation: str = "relu",
    dropout: float = 0.0,
    rng: np.random.Generator,
    device=None,
    dtype=torch.float32,
    densities: list[float] | None = None,
) -> nn.Sequential:
    """``n_in -> hidden... -> n_out``; sparse layers follow the layer-wise density rule, or
    ``densities`` (one per layer) where given."""
    sizes = [n_in, *hidden, n_out]
    shapes = list(zip(sizes[:-1], sizes[1:]))
    if not sparse:
        densities = [1.0] * len(shapes)
    elif densities is None:
        densities = layer_densities(shapes, distribution, epsilon=epsilon, sparsity=sparsity)
    elif len(densities) != len(shapes):
        raise ValueError(f"densities has {len(densities)} entries for {len(shapes)} layers")
    gain = _GAIN.get(activation, 1.0)
    layers: list[nn.Module] = []
    for index, ((fan_in, fan_out), density) in enumerate(zip(shapes, densities)):
        if sparse:
            layers.append(
                SparseLinear(fan_in, fan_out, density=density, device=device, dtype=dtype,
                             init_gain=gain, random_state=derive_seed(rng))
            )
        else:
            layers.append(_dense_linear(fan_in, fan_out, gain, rng, device, dtype))
        if index < len(shapes) - 1:
            layers.append(ACTIVATIONS[activation](index + 1))
            if dropout > 0:
                layers.append(Dropout(dropout))
    return nn.Sequential(*layers)


def _dense_linear(fan_in, fan_out, gain, rng, device, dtype) -> nn.Linear:
    """nn.Linear initialised by the same He-uniform rule as SparseLinear, so only sparsity differs."""
    layer = nn.Linear(fan_in, fan_out, device=device, dtype=dtype)
    bound = gain * math.sqrt(3.0 / fan_in)
    w = rng.uniform(-bound, bound, size=(fan_out, fan_in))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.zero_()
    return layer


def linear_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (SparseLinear, nn.Linear))]


def input_importance(model: nn.Module) -> torch.Tensor:
    """Sum of |w| over the connections leaving each input of the first layer (in_features,).

    For a sparse network this ranks inputs by how much connectivity topology evolution kept for
    them; computed from the stored values only.
    """
    first = linear_layers(model)[0]
    with torch.no_grad():
        if isinstance(first, SparseLinear):
            imp = torch.zeros(first.in_features, dtype=first.values.dtype, device=first.values.device)
            return imp.index_add_(0, first.col_idx.long(), first.values.abs()).cpu()
        return first.weight.abs().sum(0).cpu()
