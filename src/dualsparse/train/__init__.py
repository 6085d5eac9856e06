"""Training loop, callbacks and scikit-learn estimators."""

from .callbacks import Callback, CallbackList
from .estimators import SparseMLPClassifier, SparseMLPRegressor
from .network import AllReLU, build_mlp

__all__ = ["AllReLU", "Callback", "CallbackList", "SparseMLPClassifier", "SparseMLPRegressor", "build_mlp"]
