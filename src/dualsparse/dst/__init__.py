"""Dynamic sparse training: topology algorithms built from a drop rule, a grow rule and a schedule."""

from .algorithm import SET, Dense, RigL, Static, TopologyAlgorithm
from .chts import CHTs
from .gse import GSE, SampledGradientGrow
from .observed import ObservedDrop, ObservedGrow, ObservedSET, observed_frequency
from .optim_state import remap_state
from .registry import ALGORITHMS, AlgorithmInfo, algorithm_info, algorithm_names, make_algorithm, register_algorithm, unregister_algorithm
from .rules import GradientGrow, MagnitudeDrop, RandomGrow
from .schedule import Schedule
from .srigl import SRigL

__all__ = [
    "ALGORITHMS", "AlgorithmInfo", "CHTs", "GSE", "SampledGradientGrow", "SRigL", "algorithm_info", "algorithm_names", "register_algorithm", "unregister_algorithm", "Dense", "ObservedDrop", "ObservedGrow", "ObservedSET", "observed_frequency", "GradientGrow", "MagnitudeDrop", "RandomGrow", "RigL", "SET", "Schedule",
    "Static", "TopologyAlgorithm", "make_algorithm", "remap_state",
]
