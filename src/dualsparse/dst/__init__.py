"""Dynamic sparse training: topology algorithms built from a drop rule, a grow rule and a schedule."""

from .algorithm import SET, Dense, RigL, Static, TopologyAlgorithm
from .observed import ObservedDrop, ObservedGrow, ObservedSET, observed_frequency
from .optim_state import remap_state
from .registry import ALGORITHMS, make_algorithm
from .rules import GradientGrow, MagnitudeDrop, RandomGrow
from .schedule import Schedule

__all__ = [
    "ALGORITHMS", "Dense", "ObservedDrop", "ObservedGrow", "ObservedSET", "observed_frequency", "GradientGrow", "MagnitudeDrop", "RandomGrow", "RigL", "SET", "Schedule",
    "Static", "TopologyAlgorithm", "make_algorithm", "remap_state",
]
