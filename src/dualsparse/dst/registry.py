"""Algorithms by name, as configs and estimators refer to them."""

from __future__ import annotations

from .algorithm import SET, Dense, RigL, Static, TopologyAlgorithm
from .observed import ObservedSET

ALGORITHMS = {"set": SET, "rigl": RigL, "static": Static, "dense": Dense, "set-observed": ObservedSET}


def make_algorithm(name, **options) -> TopologyAlgorithm:
    """Build an algorithm from its name (or return an algorithm instance unchanged)."""
    if isinstance(name, TopologyAlgorithm):
        return name
    key = str(name).lower()
    if key not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(sorted(ALGORITHMS))}")
    cls = ALGORITHMS[key]
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"bad options for algorithm {key!r}: {exc}") from None
