"""A missingness-aware first block: NeuMiss (Le Morvan, Josse, Moreau, Scornet & Varoquaux, NeurIPS 2020).

Why: a sparse first layer on the observed entries already drops the weights of missing inputs per
example, but it cannot tell "missing" from "zero", and under MNAR (values removed because of
what they are) whether a value is missing is itself information (on digits with MNAR
self-masking at 0.3, HistGradientBoosting with native NaN reached 0.94 and an MLP on the observed
entries 0.89). NeuMiss approximates the Bayes predictor with missing values by a truncated
Neumann series over the observed coordinates, learned end to end::

    o   = 1 where x is observed, 0 where it is NaN
    h_0 = o * (x - mu)
    h_k = o * (W h_{k-1}) + h_0            k = 1 .. depth
    out = [h_depth, 1 - o]

``W`` (features x features, no bias) is a :class:`~dualsparse.sparse.SparseLinear` for sparse
algorithms, so its connections are counted, trained, dropped and regrown like every other
layer's; ``mu`` is learned. The mask is appended to the output (NeuMiss's MNAR variant learns it
through the following layers), so the network sees both what was observed and what was not.
Inputs are dense with NaN for missing values (the ``native-nan`` representation); the
estimators' ``missing_block="neumiss"`` puts this block in front of the MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from ..sparse import SparseLinear


class NeuMissBlock(nn.Module):
    """``x`` (batch, n_features) with NaN for missing values -> (batch, 2 n_features)."""

    def __init__(self, n_features: int, depth: int = 3, *, density: float = 1.0, sparse: bool = True,
                 init_gain: float = 0.5, random_state=None, device=None, dtype=torch.float32):
        super().__init__()
        if depth < 1:
            raise ValueError(f"NeuMiss depth must be a positive integer, got {depth!r}")
        self.n_features = int(n_features)
        self.depth = int(depth)
        # a small initial W keeps the series contracting (spectral radius well below 1)
        if sparse:
            self.W = SparseLinear(n_features, n_features, density=density, bias=False, device=device, dtype=dtype,
                                  init_gain=init_gain, random_state=random_state)
        else:
            self.W = nn.Linear(n_features, n_features, bias=False, device=device, dtype=dtype)
            gen = torch.Generator().manual_seed(int(random_state or 0) % (2**63))
            bound = init_gain * (3.0 / n_features) ** 0.5
            with torch.no_grad():
                self.W.weight.copy_((torch.rand(n_features, n_features, generator=gen, dtype=dtype) * 2 - 1) * bound)
        self.W.repeats = self.depth  # applications per forward pass (FLOP counting)
        self.mu = nn.Parameter(torch.zeros(n_features, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.layout != torch.strided:
            x = x.to_dense()
        missing = torch.isnan(x)
        observed = (~missing).to(x.dtype)
        h0 = observed * (torch.nan_to_num(x, nan=0.0) - self.mu)
        h = h0
        for _ in range(self.depth):
            h = observed * self.W(h) + h0
        return torch.cat([h, missing.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}, depth={self.depth}"


MISSING_BLOCKS = ("neumiss",)
