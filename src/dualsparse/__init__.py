"""dualsparse: dynamic sparse training on sparse data.

Truly sparse layers (:mod:`dualsparse.sparse`), topology evolution (:mod:`dualsparse.dst`),
scikit-learn estimators (:mod:`dualsparse.train`), missing and sparse data (:mod:`dualsparse.data`),
learning dynamics (:mod:`dualsparse.dynamics`) and reproducible experiments
(:mod:`dualsparse.experiments`).
"""

from .train import Callback, SparseMLPClassifier, SparseMLPRegressor

__version__ = "0.1.0"
__all__ = ["Callback", "SparseMLPClassifier", "SparseMLPRegressor", "__version__"]
