"""Layer-wise density: how many connections each layer of a sparse network gets.

* ``er`` — SET's Erdős–Rényi rule, density = ε (n_in + n_out) / (n_in n_out) per layer: thin
  layers keep relatively more connections. The density of each layer is capped at 1 (a layer for
  which the formula exceeds 1 is fully connected), as SET's reference code caps its per-layer
  connection probability. With ``epsilon=None`` (the default) ε = 20 (``DEFAULT_EPSILON``) and
  that is all: never an error, even if every layer comes out fully connected. An explicit ε that
  leaves *no* layer sparse cannot be met and is an error naming the largest ε that would. With a
  global ``sparsity`` instead of ε, the ER scores are scaled to meet it.
* ``erk`` — RigL's Erdős–Rényi-Kernel: the same scaling at a global sparsity, with layers whose
  density would exceed 1 made dense and the rest rescaled (for fully connected layers the
  kernel term is 1, so ERK and ER-at-a-sparsity coincide; the name is kept for configs).
* ``uniform`` — every layer at 1 - sparsity.
"""

from __future__ import annotations

import math
import numbers

DISTRIBUTIONS = ("er", "erk", "uniform")

#: SET's ε, used when none is given.
DEFAULT_EPSILON = 20.0


class DensityWarning(UserWarning):
    """A network meant to be sparse came out fully connected.

    Issued (at most once per fit, by the estimators) when the default ε makes every layer of the
    network fully connected, so a sparse algorithm has nothing to prune or evolve. It is a
    ``UserWarning`` subclass of its own, like scikit-learn's ``ConvergenceWarning``, so that it
    can be silenced on its own: ``warnings.filterwarnings("ignore", category=DensityWarning)``.
    """


def layer_densities(
    shapes: list[tuple[int, int]],
    distribution: str = "er",
    *,
    epsilon: float | None = None,
    sparsity: float | None = None,
) -> list[float]:
    """Densities for layers of shapes ``(n_in, n_out)``.

    Give ``epsilon`` (ER only; None: ``DEFAULT_EPSILON``, never an error) or ``sparsity``
    (fraction of all weights removed, in [0, 1)); ``sparsity`` takes precedence.
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
    if epsilon is None:
        return er_densities(shapes, DEFAULT_EPSILON)
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon > 0:
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}; e.g. epsilon=10, or None for SET's 20")
    densities = er_densities(shapes, float(epsilon))
    if shapes and all(d >= 1.0 for d in densities):
        limit = sparse_epsilon_limit(shapes)
        raise ValueError(
            f"epsilon={epsilon:g} makes every layer of the {_arch(shapes)} network fully connected "
            f"(a layer n_in x n_out is sparse only for epsilon < n_in n_out / (n_in + n_out)); lower epsilon "
            f"below {limit:.4g}, give a global sparsity instead (e.g. sparsity=0.9), or leave epsilon unset "
            f"(SET's {DEFAULT_EPSILON:g}, with layers too small for it fully connected)"
        )
    return densities


def er_densities(shapes, epsilon: float) -> list[float]:
    """SET's rule ε (n_in + n_out) / (n_in n_out) for each layer, capped at 1 (fully connected)."""
    return [min(1.0, epsilon * (n_in + n_out) / (n_in * n_out)) for n_in, n_out in shapes]


def sparse_epsilon_limit(shapes) -> float:
    """The ε at and above which ER makes every layer fully connected: max n_in n_out / (n_in + n_out)."""
    return max(n_in * n_out / (n_in + n_out) for n_in, n_out in shapes)


def _arch(shapes) -> str:
    return "-".join(str(n) for n in [shapes[0][0], *(n_out for _, n_out in shapes)])


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
