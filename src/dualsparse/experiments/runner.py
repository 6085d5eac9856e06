"""Run one spec, and sweeps of them: serially, in local processes, or on a Dask cluster.

A run is a pure function of its :class:`~dualsparse.experiments.record.RunSpec`: every random
choice is seeded from the spec (split from (dataset, seed); amputation from (dataset, mechanism,
rate, seed, fold); model from (seed, fold)), so a run gives the same numbers wherever it runs.
What a run does is up to the study kind that claims it (:func:`.study.kind_for`); the runner
knows no kind by name. Only the sweep's driver process writes to the store, one transaction per
finished run. A run whose kind reads the results of others (:meth:`.study.StudyKind.phase` 1,
e.g. a subset run) starts after every phase-0 run, with what its kind's ``prepare`` took from
the store.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone

from .. import __version__
from ..train import Callback
from .record import RunSpec
from .seeding import stable_seed
from .store import ResultsStore
from .study import kind_for

__all__ = ["EpochProgress", "SweepSummary", "execute_run", "limit_threads", "run_sweep", "stable_seed", "thread_limits"]


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled every 5 ms).

    ``peak_mb`` is the highest RSS seen; ``increase_mb`` its rise over the RSS at the start.
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak = 0
        self.start = 0

    @staticmethod
    def _rss() -> int:
        try:
            import psutil

            return psutil.Process().memory_info().rss
        except Exception:  # noqa: BLE001 - psutil missing: fall back to /proc
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        return False

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def increase_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def library_versions() -> dict:
    import numpy
    import scipy
    import sklearn
    import torch

    versions = {"dualsparse": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
                "scipy": scipy.__version__, "scikit-learn": sklearn.__version__, "torch": torch.__version__}
    try:
        import numba

        versions["numba"] = numba.__version__
    except ImportError:  # pragma: no cover
        pass
    versions["platform"] = platform.platform()
    return versions


def limit_threads(threads: int | None) -> None:
    """Cap torch, numba and BLAS/OpenMP threads of this process (None or 0: leave them alone)."""
    if not threads:
        return
    import torch

    torch.set_num_threads(int(threads))
    try:
        import numba

        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
    except Exception:  # noqa: BLE001
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(threads))
    except Exception:  # noqa: BLE001
        pass


class thread_limits:
    """``limit_threads`` for a block, restoring torch's, numba's and the BLAS/OpenMP pools' settings after."""

    def __init__(self, threads: int | None):
        self.threads = threads

    def __enter__(self):
        if not self.threads:
            return self
        import torch

        self._torch = torch.get_num_threads()
        try:
            import numba

            self._numba = numba.get_num_threads()
        except Exception:  # noqa: BLE001
            self._numba = None
        try:
            from threadpoolctl import threadpool_limits

            self._pools = threadpool_limits(limits=int(self.threads))
        except Exception:  # noqa: BLE001
            self._pools = None
        torch.set_num_threads(int(self.threads))
        if self._numba is not None:
            import numba

            numba.set_num_threads(min(int(self.threads), numba.config.NUMBA_NUM_THREADS))
        return self

    def __exit__(self, *exc):
        if not self.threads:
            return False
        import torch

        torch.set_num_threads(self._torch)
        if self._numba is not None:
            import numba

            numba.set_num_threads(self._numba)
        if self._pools is not None:
            self._pools.restore_original_limits()
        return False


# ---------------------------------------------------------------------- one run
def execute_run(spec: dict, threads: int | None = None, callbacks=None, payload: dict | None = None,
                kind=None) -> dict:
    """Run one grid point and return its result row (or a failure record; never raises).

    ``payload``: what the driver took from the store for a run of phase 1 (a subset run's rows,
    see :meth:`.study.StudyKind.prepare`); None for the others. ``kind``: the study kind that
    executes it (by default the registered one that claims it; the driver sends its own to worker
    processes, where a kind registered only in the driver is not known).
    """
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    run = RunSpec.from_dict(spec)
    key = run.key
    try:
        limit_threads(threads)
        with warnings.catch_warnings(record=True) as caught, PeakMemory() as mem:
            warnings.simplefilter("always")
            result = (kind or kind_for(run)).execute(run, callbacks, payload)
        result.update({
            "warnings": _unique_warnings(caught),
            "status": "ok",
            "run_key": key,
            "config": spec,
            "wall_time_s": time.perf_counter() - t0,
            "peak_memory_mb": mem.peak_mb,
            "memory_increase_mb": mem.increase_mb,
            "versions": library_versions(),
            "host": platform.node(),
            "started_at": started,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
        return result
    except Exception as err:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        return {"status": "failed", "run_key": key, "config": spec, "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(), "started_at": started,
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _unique_warnings(caught, limit: int = 20) -> list[str]:
    """Distinct warnings of a run ("Category: first line"), kept in its row instead of printed."""
    seen = []
    for w in caught:
        text = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0] if str(w.message).strip() else ''}"
        if text not in seen:
            seen.append(text)
        if len(seen) >= limit:
            break
    return seen


# ---------------------------------------------------------------------- sweeps
@dataclass
class SweepSummary:
    total: int
    skipped: int
    ran: int
    failed: int
    wall_time_s: float
    failures: list

    def line(self) -> str:
        parts = [f"{self.total} runs: {self.skipped} already in the store, {self.ran - self.failed} finished now"]
        if self.failed:
            parts.append(f"{self.failed} FAILED")
        return ", ".join(parts) + f" ({self.wall_time_s:.1f} s)"


def _worker_init(threads, parent_pid):
    limit_threads(threads)
    # a worker outlives a driver killed with SIGKILL (nothing tells it); watch the parent and leave
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid, interval: float = 0.5):
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            os._exit(1)


def _run_in_worker(spec, threads, payload=None, kind=None):
    return execute_run(spec, threads=threads, payload=payload, kind=kind)


def run_sweep(config, store, *, jobs: int = 1, dask: str | None = None, quiet: bool = False,
              threads: int | None = 1, epoch_progress: bool = True, max_runs: int | None = None,
              show_warnings: bool = False) -> SweepSummary:
    """Run every run of ``config`` that ``store`` does not hold yet; write each as it finishes.

    ``jobs`` > 1: that many local worker processes (spawned). ``dask``: the address of a Dask
    scheduler (``tcp://host:port``) or ``"local"`` (a LocalCluster of ``jobs`` worker
    processes). ``threads``: torch / numba / BLAS threads per run, 1 by default: the small
    networks of a sweep run faster single-threaded, and a sweep uses more cores through
    ``jobs``; 0 or None leaves the libraries' defaults. Serially, the caller's thread settings
    are restored afterwards. ``max_runs``: stop after that many runs (to split a long sweep
    into sessions).

    Runs whose kind needs the results of others (subset runs: their reference runs' statistics)
    go in a second phase, after every other pending run, with what their kind takes from the
    store; one whose input is missing (its reference failed) is recorded as failed and retried
    next time.
    """
    if not isinstance(store, ResultsStore):
        store = ResultsStore(store)
    t0 = time.perf_counter()
    specs = config.runs()
    keys = [s.key for s in specs]
    done = store.existing_keys(keys)
    pending = [s for s, k in zip(specs, keys) if k not in done]
    if max_runs is not None:
        pending = pending[:max_runs]
    store.register_experiment(config)
    summary = SweepSummary(total=len(specs), skipped=len(done), ran=0, failed=0, wall_time_s=0.0, failures=[])
    bar = _progress_bar(total=len(specs), initial=len(done), desc=config.name, quiet=quiet)

    def record(result):
        summary.ran += 1
        if result["status"] == "ok":
            store.write_result(result)
            if show_warnings and not quiet:
                for text in result.get("warnings", []):
                    bar.write(f"warning in {RunSpec.from_dict(result['config']).label}: {text}")
        else:
            summary.failed += 1
            summary.failures.append((result["config"], result["error"]))
            store.write_failure(result)
            if not quiet:
                bar.write(f"run failed: {RunSpec.from_dict(result['config']).label}: {result['error']}")
        bar.update(1)

    if dask:
        backend = _DaskBackend(dask, jobs, threads)
    elif jobs > 1:
        backend = _ProcessBackend(jobs, threads)
    else:
        backend = _SerialBackend(threads, epoch_progress and not quiet)
    first = [(s, None) for s in pending if kind_for(s).phase(s) == 0]
    second = [s for s in pending if kind_for(s).phase(s) != 0]
    try:
        backend.run(first, record, bar)
        if second:
            items = []
            for spec in second:
                try:
                    items.append((spec, kind_for(spec).prepare(spec, store)))
                except LookupError as err:
                    record({"status": "failed", "run_key": spec.key, "config": spec.to_dict(),
                            "error": f"{spec.kind} run not started: {err}", "traceback": None, "started_at": None,
                            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            backend.run(items, record, bar)
        backend.close()
    except BaseException:
        backend.abort()
        raise
    finally:
        bar.close()
    summary.wall_time_s = time.perf_counter() - t0
    return summary


def _failed(spec, error):
    return {"status": "failed", "run_key": spec.key, "config": spec.to_dict(), "error": error,
            "traceback": traceback.format_exc(), "started_at": None,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


class _SerialBackend:
    def __init__(self, threads, epoch_progress):
        self.threads = threads
        self.epoch_progress = epoch_progress

    def run(self, items, record, bar):
        with thread_limits(self.threads):
            for spec, payload in items:
                bar.set_postfix_str(spec.label, refresh=False)
                cbs = [EpochProgress(position=1)] if self.epoch_progress else None
                record(execute_run(spec.to_dict(), threads=None, callbacks=cbs, payload=payload))

    def close(self):
        pass

    def abort(self):
        pass


class _ProcessBackend:
    """Spawned worker processes, started on first use and kept for every phase of the sweep."""

    def __init__(self, jobs, threads):
        self.jobs, self.threads = jobs, threads
        self.pool = None

    def run(self, items, record, bar):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if not items:
            return
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("spawn"),
                                            initializer=_worker_init, initargs=(self.threads, os.getpid()))
        futures = {self.pool.submit(_run_in_worker, s.to_dict(), self.threads, p, kind_for(s)): s for s, p in items}
        for fut in as_completed(futures):
            spec = futures[fut]
            try:
                result = fut.result()
            except Exception as err:  # noqa: BLE001 - a worker died
                result = _failed(spec, f"worker process failed: {type(err).__name__}: {err}")
            bar.set_postfix_str(spec.label, refresh=False)
            record(result)

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def abort(self):
        # interrupted (Ctrl-C): stop the workers now (their unfinished runs are not stored, so
        # nothing is lost) instead of letting the pool finish its queue at exit
        if self.pool is None:
            return
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.terminate()
        self.pool.shutdown(wait=False, cancel_futures=True)


class _DaskBackend:
    def __init__(self, address, jobs, threads):
        self.address, self.jobs, self.threads = address, jobs, threads
        self.client = self.cluster = None

    def _connect(self):
        from distributed import Client, LocalCluster

        if self.address == "local":
            self.cluster = LocalCluster(n_workers=max(self.jobs, 1), threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            self.client = Client(self.address, timeout="30s")

    def run(self, items, record, bar):
        from distributed import as_completed

        if not items:
            return
        if self.client is None:
            self._connect()
        futures = {}
        for s, p in items:
            fut = self.client.submit(_run_in_worker, s.to_dict(), self.threads, p, kind_for(s), key=f"dualsparse-run-{s.key}",
                                     pure=False)
            futures[fut] = s
        for fut in as_completed(list(futures)):
            spec = futures[fut]
            try:
                result = fut.result()
            except Exception as err:  # noqa: BLE001 - worker lost, etc.
                result = _failed(spec, f"dask task failed: {type(err).__name__}: {err}")
            bar.set_postfix_str(spec.label, refresh=False)
            record(result)
            futures.pop(fut, None)
            fut.release()

    def close(self):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def abort(self):
        self.close()


# ---------------------------------------------------------------------- progress
LOG_INTERVAL_S = 15.0  # off a terminal: a progress line at most this often (and one at the start and the end)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty(), or a closed stream
        return False


def _live_bars() -> bool:
    """Redrawn bars only where they can be redrawn: stderr is a terminal, or tqdm.auto picked notebook widgets."""
    from tqdm.auto import tqdm

    return _is_terminal(sys.stderr) or any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)


def _line_progress(**kwargs):
    """tqdm that prints each refresh as a line of its own instead of redrawing one line with '\\r'.

    For a log file or CI: tqdm still does the counting, the timing (``mininterval``) and the
    formatting (``bar_format``); only how a status is written changes.
    """
    from tqdm.std import tqdm

    class LineProgress(tqdm):
        @staticmethod
        def status_printer(file):
            def print_status(s):
                if s:  # tqdm prints '' to erase a bar: nothing to erase here
                    file.write(("\n" if print_status.open else "") + s)
                    getattr(file, "flush", lambda: None)()
                    print_status.open = True

            print_status.open = False  # a status line waits for its newline
            return print_status

        def clear(self, nolock=False):
            # before tqdm.write() prints a message: end the open status line instead of erasing it
            sp = getattr(self, "sp", None)
            if getattr(sp, "open", False):
                self.fp.write("\n")
                sp.open = False

    return LineProgress(**kwargs)


def _progress_bar(total, initial, desc, quiet):
    """The sweep's bar on stderr: redrawn on a terminal; elsewhere (a log file, CI) a plain line
    (``quick: 40/105 runs, 00:18 elapsed, ~00:30 left, <run>``) every LOG_INTERVAL_S seconds and at the end."""
    from tqdm.auto import tqdm

    if quiet or _live_bars():
        return tqdm(total=total, initial=initial, desc=desc, unit="run", disable=quiet, dynamic_ncols=True,
                    file=sys.stderr, position=0)
    return _line_progress(total=total, initial=initial, desc=desc, unit="run", file=sys.stderr,
                          mininterval=LOG_INTERVAL_S, miniters=1,
                          bar_format="{desc}: {n_fmt}/{total_fmt} runs, {elapsed} elapsed, ~{remaining} left{postfix}")


class EpochProgress(Callback):
    """A per-epoch tqdm bar for one fit of a dualsparse MLP (shows the training loss); off where
    stderr is not a terminal (a log file, CI), where it would only add a redraw per epoch."""

    def __init__(self, position: int = 1):
        self.position = position
        self.bar = None

    def on_fit_begin(self, est, X, y, train_index, validation_index):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=int(est.max_epochs), desc="  epochs", unit="ep", leave=False,
                        position=self.position, file=sys.stderr, dynamic_ncols=True, disable=not _live_bars())

    def on_epoch_end(self, est, epoch, logs):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
            self.bar.update(1)

    def on_fit_end(self, est):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __getstate__(self):  # never pickle a live bar
        return {"position": self.position, "bar": None}
