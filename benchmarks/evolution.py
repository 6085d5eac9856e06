"""Time SET's topology update (``dualsparse.dst.SET(zeta=0.3).update``) alone, at scale.

MLP ``3312-H-H-H-5``, Erdős–Rényi density (epsilon = 20), AllReLU, SGD with momentum 0.9 whose
momentum buffers are populated by one backward + step. Each H runs in a fresh subprocess so that
RSS figures are per size. Reported: seconds per update (each call, then the median of the calls
after the first, which pays Numba's cache loading), RSS before the first update, and the peak RSS
sampled every 2 ms while updates run (``peak_update_mb``) as well as the process's ``ru_maxrss``.

    .venv/bin/python -W ignore benchmarks/evolution.py --hidden 3000,30000 --repeats 5
    .venv/bin/python -W ignore benchmarks/evolution.py --hidden 600000 --repeats 2
    .venv/bin/python -W ignore benchmarks/evolution.py --hidden 30000 --profile   # cProfile, top 25
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from _memory import peak_rss_mb, rss_mb

HERE = os.path.abspath(__file__)


class _PeakRSS:
    def __init__(self, period=0.002):
        self.period = period
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def worker(hidden: int, repeats: int, profile: bool) -> dict:
    import numpy as np
    import torch

    from dualsparse.dst import SET
    from dualsparse.sparse import SparseLinear
    from dualsparse.train.network import build_mlp

    t0 = time.perf_counter()
    model = build_mlp(3312, (hidden, hidden, hidden), 5, sparse=True, epsilon=20.0, activation="allrelu",
                      rng=np.random.default_rng(0))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 3312)).astype(np.float32))
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    build_s = time.perf_counter() - t0
    nnz = [m.nnz for m in model.modules() if isinstance(m, SparseLinear)]
    algo = SET(zeta=0.3)
    rng = np.random.default_rng(2)
    rss_before = rss_mb()
    times = []
    if profile:
        import cProfile
        import io
        import pstats

        algo.update(model, opt, 0, 0, rng)  # warm (Numba cache)
        pr = cProfile.Profile()
        pr.enable()
        algo.update(model, opt, 0, 0, rng)
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(25)
        print(s.getvalue(), file=sys.stderr)
    with _PeakRSS() as peak:
        for _ in range(repeats):
            t = time.perf_counter()
            algo.update(model, opt, 0, 0, rng)
            times.append(time.perf_counter() - t)
    assert [m.nnz for m in model.modules() if isinstance(m, SparseLinear)] == nnz
    return {
        "hidden": hidden,
        "weights": int(sum(nnz)),
        "build_s": round(build_s, 2),
        "update_s": [round(t, 4) for t in times],
        "median_after_first_s": round(float(np.median(times[1:] if len(times) > 1 else times)), 4),
        "rss_before_mb": round(rss_before),
        "peak_update_mb": round(peak.peak),
        "ru_maxrss_mb": round(peak_rss_mb()),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", default="3000,30000")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--worker", type=int, default=None)
    a = p.parse_args(argv)
    if a.worker is not None:
        print(json.dumps(worker(a.worker, a.repeats, a.profile)))
        return
    for h in (int(v) for v in a.hidden.split(",")):
        cmd = [sys.executable, "-W", "ignore", HERE, "--worker", str(h), "--repeats", str(a.repeats)]
        if a.profile:
            cmd.append("--profile")
        out = subprocess.run(cmd, capture_output=False, stdout=subprocess.PIPE, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
