"""Dropout whose CPU mask comes from a counter-based generator compiled with Numba.

Why: on the CPU, ``torch.nn.Dropout`` draws its Bernoulli mask element by element. In a sparse
784-1000-1000-1000-10 MLP at epsilon 20 (batch 128, dropout 0.3, SET's MNIST setting) the three
dropout calls of a step took 42 % of the fit (cProfile: 0.81 of 1.92 s), more than every sparse
product together: at 4.5 % of the dense FLOPs, the random numbers cost more than the arithmetic.

:class:`Dropout` keeps ``nn.Dropout``'s semantics (inverted dropout: kept units scaled by
``1 / (1 - p)``, identity in eval mode) and its reproducibility: each call draws one 63-bit seed
from torch's generator (so ``torch.manual_seed`` and the estimators' seeding govern it), and the
mask element ``i`` is a function of ``(seed, i)`` alone (SplitMix64 of a counter, the top 32 bits
compared with ``p * 2**32``): the same mask on any number of threads. The mask is a tensor of 0 and
``1 / (1 - p)`` in the input's dtype, so forward and backward are one multiplication each, left to
autograd.
Off the CPU, or for dtypes other than float32 / float64, it is ``nn.Dropout``.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import torch
from torch import nn

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@nb.njit(nogil=True, cache=True, parallel=True)
def _fill_mask(mask, seed, threshold, scale):
    """``mask[i] = scale`` where SplitMix64(seed + (i + 1) * golden) >> 32 >= threshold, else 0."""
    n = mask.shape[0]
    s = np.uint64(seed)
    t = np.uint64(threshold)
    zero = mask.dtype.type(0)
    for i in nb.prange(n):
        z = s + np.uint64(i + 1) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
        mask[i] = scale if (z >> np.uint64(32)) >= t else zero


def dropout_mask(shape, p: float, seed: int, dtype=torch.float32) -> torch.Tensor:
    """The mask of :class:`Dropout` for ``seed``: 0 with probability ``p``, else ``1 / (1 - p)``."""
    mask = np.empty(int(np.prod(shape)), dtype=np.float32 if dtype == torch.float32 else np.float64)
    _fill_mask(mask, np.uint64(seed), min(int(round(p * 2.0**32)), 2**32), mask.dtype.type(1.0 / (1.0 - p)))
    return torch.from_numpy(mask).reshape(shape)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a fast, seeded mask on the CPU (see the module doc)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p >= 1 or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or self.inplace:
            return super().forward(x)
        seed = int(torch.randint(0, 2**63 - 1, (1,)).item())
        return x * dropout_mask(x.shape, self.p, seed, x.dtype)
