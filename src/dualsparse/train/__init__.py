"""Training loop, callbacks and scikit-learn estimators."""

from .callbacks import Callback, CallbackList
from .estimators import ScaleWarning, SparseMLPClassifier, SparseMLPRegressor
from .network import AllReLU, build_mlp

__all__ = ["AllReLU", "Callback", "CallbackList", "ScaleWarning", "SparseMLPClassifier", "SparseMLPRegressor",
           "build_mlp"]
