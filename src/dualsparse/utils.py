"""Small helpers shared by every package (no model or data knowledge here)."""

from __future__ import annotations

import numbers

import numpy as np


def check_random_state(seed) -> np.random.Generator:
    """Turn None, an int or a Generator into a ``np.random.Generator``.

    Every random choice in dualsparse goes through one of these, so a seed fixes the result.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, numbers.Integral):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(0, 2**31 - 1))
    raise ValueError(f"random_state must be None, an int or a numpy Generator, got {seed!r}")


def derive_seed(rng: np.random.Generator) -> int:
    """A fresh integer seed drawn from ``rng`` (for torch generators and child components)."""
    return int(rng.integers(0, 2**31 - 1))
