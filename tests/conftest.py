import os

# Before torch or numba load an OpenMP runtime (see dualsparse/__init__.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
