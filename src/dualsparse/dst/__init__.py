"""Dynamic sparse training: topology algorithms built from a drop rule, a grow rule and a schedule."""

from .algorithm import SET, Dense, RigL, Static, TopologyAlgorithm
from .budget import lowest_per_layer, redistribute
from .capture import LayerIOCapture
from .chts import CHTs
from .gmp import GMP
from .granet import GraNet
from .gse import GSE, SampledGradientGrow
from .mest import MEST, MagnitudeGradientDrop
from .observed import ObservedDrop, ObservedGrow, ObservedSET, observed_frequency
from .optim_state import remap_state
from .registry import ALGORITHMS, AlgorithmInfo, algorithm_info, algorithm_names, make_algorithm, register_algorithm, unregister_algorithm
from .resizing import ResizingAlgorithm
from .rules import GradientGrow, MagnitudeDrop, RandomGrow, TopScoreGrow
from .schedule import CubicDensity, Schedule
from .snfs import SNFS, MomentumGrow
from .snip import SNIP
from .srigl import SRigL

__all__ = [
    "ALGORITHMS", "AlgorithmInfo", "CHTs", "GSE", "SampledGradientGrow", "SRigL", "algorithm_info", "algorithm_names", "register_algorithm", "unregister_algorithm", "Dense", "ObservedDrop", "ObservedGrow", "ObservedSET", "observed_frequency", "GradientGrow", "MagnitudeDrop", "RandomGrow", "RigL", "SET", "Schedule",
    "Static", "TopologyAlgorithm", "make_algorithm", "remap_state",
    "CubicDensity", "GMP", "GraNet", "LayerIOCapture", "MEST", "MagnitudeGradientDrop", "MomentumGrow",
    "ResizingAlgorithm", "SNFS", "SNIP", "TopScoreGrow", "lowest_per_layer", "redistribute",
]
