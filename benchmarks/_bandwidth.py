"""The machine's memory bandwidth, measured in the same run as a benchmark: a STREAM-style copy.

``copy_bandwidth(threads)`` copies a float32 array far larger than the caches, split in
``threads`` contiguous chunks each copied by ``np.copyto`` (memcpy, which releases the GIL) on
its own thread, and returns the best of several passes in bytes per second, counted as STREAM
counts a copy: one read and one write per element (8 bytes for float32). A benchmark divides the
bytes its kernels must move by its measured time and reports the share of this figure it reaches:
the distance to the physical limit as a number, taken on the same machine at the same moment.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def copy_bandwidth(threads: int, megabytes: int = 512, passes: int = 7) -> float:
    """Best copy rate over ``passes`` passes (bytes/s, read + write) of a ``megabytes`` array."""
    threads = max(1, threads)
    a = np.ones(megabytes * (1 << 20) // 4, dtype=np.float32)
    b = np.zeros_like(a)  # every page touched before timing
    edges = np.linspace(0, a.size, threads + 1).astype(np.int64)
    chunks = [(a[lo:hi], b[lo:hi]) for lo, hi in zip(edges[:-1], edges[1:])]
    best = np.inf
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(passes + 1):  # the first pass warms the pool
            t = time.perf_counter()
            list(pool.map(lambda ab: np.copyto(ab[1], ab[0]), chunks))
            best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best
