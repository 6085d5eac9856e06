"""dualsparse: dynamic sparse training on sparse data.

Truly sparse layers (:mod:`dualsparse.sparse`), topology evolution (:mod:`dualsparse.dst`),
scikit-learn estimators (:mod:`dualsparse.train`), missing and sparse data (:mod:`dualsparse.data`),
learning dynamics (:mod:`dualsparse.dynamics`) and reproducible experiments
(:mod:`dualsparse.experiments`).

The estimators are imported lazily so that ``import dualsparse.data`` does not load PyTorch.
"""

import os as _os

# PyTorch and the Numba kernels each bring an OpenMP runtime. With the default (spinning) wait
# policy, idle threads of one pool busy-wait on the cores the other needs: small fits ran ~20x
# slower on 2 cores. Passive waiting removes that; set OMP_WAIT_POLICY yourself to override
# (it must be set before torch is imported to take effect).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = ["Callback", "SparseMLPClassifier", "SparseMLPRegressor", "__version__"]


def __getattr__(name):
    if name in ("Callback", "SparseMLPClassifier", "SparseMLPRegressor"):
        from . import train

        return getattr(train, name)
    raise AttributeError(f"module 'dualsparse' has no attribute {name!r}")
