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


@pytest.fixture
def topology_log():
    """A factory of callbacks that keep the info of every topology update an estimator makes
    (step-scheduled updates reach only ``on_topology_update``, not ``history_``)."""
    from dualsparse.train import Callback

    class TopologyLog(Callback):
        on_batch_end_reads_model = False

        def __init__(self):
            self.infos = []

        def on_topology_update(self, est, epoch, info):
            self.infos.append(info)

    return TopologyLog
