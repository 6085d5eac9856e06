"""Layer-wise density: how many connections each layer of a sparse network gets.

* ``er`` — SET's Erdős–Rényi rule, density = ε (n_in + n_out) / (n_in n_out): thin layers keep
  relatively more connections. A layer for which this exceeds 1 is fully connected (as in SET's
  reference code); asking for more connections than the whole network has is an error. With a
  global ``sparsity`` instead of ε, the ER scores are scaled to meet it.
* ``erk`` — RigL's Erdős–Rényi-Kernel: the same scaling at a global sparsity, with layers whose
  density would exceed 1 made dense and the rest rescaled (for fully connected layers the
  kernel term is 1, so ERK and ER-at-a-sparsity coincide; the name is kept for configs).
* ``uniform`` — every layer at 1 - sparsity.
"""

from __future__ import annotations

import math

DISTRIBUTIONS = ("er", "erk", "uniform")


def layer_densities(
    shapes: list[tuple[int, int]],
    distribution: str = "er",
    *,
    epsilon: float | None = 20.0,
    sparsity: float | None = None,
) -> list[float]:
    """Densities for layers of shapes ``(n_in, n_out)``.

    Give ``epsilon`` (ER only) or ``sparsity`` (fraction of all weights removed, in [0, 1)).
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    if sparsity is not None:
        sparsity = float(sparsity)
        if not 0.0 <= sparsity < 1.0 or math.isnan(sparsity):
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}; e.g. sparsity=0.9 keeps 10 % of weights")
        if distribution == "uniform":
            return [1.0 - sparsity for _ in shapes]
        return _scaled_er(shapes, 1.0 - sparsity)
    if distribution != "er":
        raise ValueError(f"distribution {distribution!r} needs a global sparsity; pass sparsity=... (e.g. 0.9)")
    if epsilon is None or not epsilon > 0:
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
    requested = [epsilon * (n_in + n_out) for n_in, n_out in shapes]
    available = [n_in * n_out for n_in, n_out in shapes]
    if sum(requested) > sum(available):
        raise ValueError(
            f"epsilon={epsilon} asks for {sum(requested):.0f} connections but the network has only "
            f"{sum(available)}; lower epsilon or give a global sparsity instead"
        )
    # Like SET's reference code, a layer too small for epsilon is simply fully connected.
    return [min(1.0, r / a) for r, a in zip(requested, available)]


def _scaled_er(shapes, target_density: float) -> list[float]:
    """ER scores scaled to meet ``target_density`` overall; layers that would overflow become dense."""
    sizes = [n_in * n_out for n_in, n_out in shapes]
    scores = [(n_in + n_out) / (n_in * n_out) for n_in, n_out in shapes]
    dense: set[int] = set()
    total = sum(sizes)
    while True:
        budget = target_density * total - sum(sizes[i] for i in dense)
        weighted = sum(scores[i] * sizes[i] for i in range(len(shapes)) if i not in dense)
        scale = budget / weighted if weighted > 0 else 0.0
        overflow = [i for i in range(len(shapes)) if i not in dense and scale * scores[i] > 1.0]
        if not overflow:
            return [1.0 if i in dense else scale * scores[i] for i in range(len(shapes))]
        dense.update(overflow)
