"""Process memory for the benchmarks (Linux): current and peak resident set size, in MB.

The benchmarks run as scripts (``python benchmarks/NAME.py``), so their folder is on ``sys.path``
and they import this module by its bare name.
"""

from __future__ import annotations

import os
import resource


def rss_mb() -> float:
    """Resident set size now (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
