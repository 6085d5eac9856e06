import os

# Before torch or numba load an OpenMP runtime (see dualsparse/__init__.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread each: xdist already runs one worker per core, and
    more threads only oversubscribe them. Opt in with pytest.mark.usefixtures("one_thread")."""
    import numba
    import torch

    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    numba.set_num_threads(numba_threads)
