"""Time one topology update of every registered algorithm, alone, on the lung-shaped network.

MLP ``3312-H-H-H-5`` (as ``benchmarks/scale.py``), Erdős–Rényi density (epsilon = 20), AllReLU,
SGD with momentum 0.9 whose momentum buffers are populated by one backward + step. The
algorithms are read from the registry (``dualsparse.dst.algorithm_names()``), so every algorithm
registered in this checkout appears, built with its defaults (zeta = 0.3 where it takes one).
Those that need a gradient (``algorithm_info(name).needs_gradient``) get one captured random
batch of ``--batch`` rows (2, the lung benchmark's training batch), recorded by
``LayerIOCapture`` exactly as the estimator records it. Each (algorithm, H) runs in a fresh
subprocess, so memory figures are per algorithm and size. Reported per run: seconds per update
(each call; the median of the calls after the first, which pays Numba's cache loading, and the
min-max spread of those calls), RSS before the first update, the peak RSS sampled every 2 ms
while the updates run (``peak_update_mb``) and the process's ``ru_maxrss``.

Sizes above ``--large`` (default 100,000) run only the algorithms flagged in ``SCALES``: those
whose update is O(nnz) (no dense gradient, no all-pairs score). Algorithms whose topology never
changes (dense, static) are listed and skipped. A run that exceeds ``--timeout`` is reported as such.

    .venv/bin/python -W ignore benchmarks/evolution.py                       # H = 3,000 and 30,000, all
    .venv/bin/python -W ignore benchmarks/evolution.py --hidden 600000 --repeats 3
    .venv/bin/python -W ignore benchmarks/evolution.py --hidden 300 --repeats 2 --algorithms set,gse
    .venv/bin/python -W ignore benchmarks/evolution.py --hidden 30000 --algorithms set --profile
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
# Algorithms whose update costs O(nnz) (or O(sample x batch)) and so run at H = 600,000. Names
# not registered in this checkout are ignored.
SCALES = {"set", "set-observed", "gse", "mest", "gmp", "snfs"}


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


def worker(name: str, hidden: int, repeats: int, batch: int, profile: bool) -> dict:
    import numpy as np
    import torch

    from dualsparse.dst import algorithm_info, make_algorithm
    from dualsparse.dst.capture import LayerIOCapture
    from dualsparse.sparse import SparseLinear
    from dualsparse.train.network import build_mlp

    info = algorithm_info(name)
    options = {"zeta": 0.3} if info.accepts("zeta") else {}
    t0 = time.perf_counter()
    model = build_mlp(3312, (hidden, hidden, hidden), 5, sparse=True, epsilon=20.0, activation="allrelu",
                      rng=np.random.default_rng(0))
    built = [m.density for m in model.modules() if isinstance(m, SparseLinear)]
    if info.accepts("final_density"):
        # pruning algorithms (GMP, GraNet, SNIP): from the ER network built here to half its density
        # per layer, one step of the cubic curve per call (call k at epoch k, the curve ending after
        # the last call), so every call prunes
        options["final_density"] = [d / 2 for d in built]
        if info.accepts("initial_density"):
            options["initial_density"] = built
        if info.accepts("end"):
            options["end"] = repeats + 1
    if info.accepts("candidates") and hidden > 10_000:
        # SNFS scores every absent position unless told to sample: at lung sizes that is
        # O(in x out) per update, so it runs here with its sampled growth (10 candidates per
        # connection to grow)
        options["candidates"] = 10
    algo = make_algorithm(name, **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = np.random.default_rng(1)
    x = torch.from_numpy(data.standard_normal((batch, 3312)).astype(np.float32))
    y = torch.from_numpy(data.integers(0, 5, batch))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    context = None
    if info.needs_gradient:
        with LayerIOCapture(model) as context:
            torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.zero_grad(set_to_none=True)
    algo.prepare(x.numpy())
    build_s = time.perf_counter() - t0
    layers = [m for m in model.modules() if isinstance(m, SparseLinear)]
    nnz_before = [m.nnz for m in layers]
    rng = np.random.default_rng(2)

    calls = iter(range(1, 1 << 30))

    def update():
        epoch = next(calls) if info.changes_density else 0
        algo.update(model, opt, epoch, 0, rng, context)

    rss_before = rss_mb()
    if profile:
        import cProfile
        import io
        import pstats

        update()  # warm (Numba cache)
        pr = cProfile.Profile()
        pr.enable()
        update()
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(25)
        print(s.getvalue(), file=sys.stderr)
    times = []
    with _PeakRSS() as peak:
        for _ in range(repeats):
            t = time.perf_counter()
            update()
            times.append(time.perf_counter() - t)
    warm = times[1:] if len(times) > 1 else times
    return {
        "algorithm": name,
        "display_name": info.display_name,
        "hidden": hidden,
        "weights": int(sum(nnz_before)),
        "weights_after": int(sum(m.nnz for m in layers)),
        "captured_batch": batch if info.needs_gradient else 0,
        "build_s": round(build_s, 2),
        "update_s": [round(t, 4) for t in times],
        "median_after_first_s": round(float(np.median(warm)), 4),
        "spread_after_first_s": [round(float(min(warm)), 4), round(float(max(warm)), 4)],
        "rss_before_mb": round(rss_before),
        "peak_update_mb": round(peak.peak),
        "ru_maxrss_mb": round(peak_rss_mb()),
    }


def plan(names, sizes, large):
    """(name, H) runs and the (name, reason) skips: static topologies, and large sizes for non-scaling ones."""
    from dualsparse.dst import algorithm_info, make_algorithm

    runs, skips = [], []
    for name in names:
        info = algorithm_info(name)
        algo = make_algorithm(name, **({"zeta": 0.3} if info.accepts("zeta") else {}))
        if not info.sparse or not algo.evolves:
            skips.append((name, "topology never changes"))
            continue
        for h in sizes:
            if h > large and name not in SCALES:
                skips.append((name, f"H = {h:,}: not flagged as scaling (benchmarks/evolution.py SCALES)"))
            else:
                runs.append((name, h))
    return runs, skips


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", default="3000,30000", help="comma-separated hidden widths H")
    p.add_argument("--algorithms", default=None, help="comma-separated names (default: every registered one)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=2, help="rows of the captured batch for gradient-based growth")
    p.add_argument("--large", type=int, default=100_000, help="above this H only the SCALES algorithms run")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per (algorithm, H) run")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker is not None:
        name, h = a.worker.rsplit(":", 1)
        print(json.dumps(worker(name, int(h), a.repeats, a.batch, a.profile)))
        return
    from dualsparse.dst import algorithm_names

    names = a.algorithms.split(",") if a.algorithms else algorithm_names()
    runs, skips = plan(names, [int(v) for v in a.hidden.split(",")], a.large)
    for name, reason in skips:
        print(json.dumps({"algorithm": name, "skipped": reason}), flush=True)
    rows = []
    for name, h in runs:
        cmd = [sys.executable, "-W", "ignore", HERE, "--worker", f"{name}:{h}", "--repeats", str(a.repeats),
               "--batch", str(a.batch)]
        if a.profile:
            cmd.append("--profile")
        try:
            out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=a.timeout)
        except subprocess.TimeoutExpired:
            print(json.dumps({"algorithm": name, "hidden": h, "error": f"timed out after {a.timeout:g} s"}), flush=True)
            continue
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            print(json.dumps({"algorithm": name, "hidden": h, "error": f"exit status {out.returncode}"}), flush=True)
            continue
        print(lines[-1], flush=True)
        rows.append(json.loads(lines[-1]))
    if rows:
        print(f"\n{'algorithm':<14}{'H':>9}{'weights':>13}{'s/update':>11}{'min-max':>18}{'peak MB':>9}")
        for r in rows:
            lo, hi = r["spread_after_first_s"]
            print(f"{r['algorithm']:<14}{r['hidden']:>9,}{r['weights']:>13,}{r['median_after_first_s']:>11.4f}"
                  f"{f'{lo:.4f}-{hi:.4f}':>18}{r['peak_update_mb']:>9}")


if __name__ == "__main__":
    main()
