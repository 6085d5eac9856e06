"""Run one grid point, and sweeps of them: serially, in local processes, or on a Dask cluster.

A run is a pure function of its :class:`~dualsparse.experiments.config.RunSpec`: every random
choice is seeded from the spec (split from (dataset, seed); amputation from (dataset, mechanism,
rate, seed, fold); model from (seed, fold)), so a run gives the same numbers wherever it runs.
Only the sweep's driver process writes to the store, one transaction per finished run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from ..train import Callback
from .config import RunSpec
from .models import baseline_flops, make_estimator, model_info


def stable_seed(*parts) -> int:
    """A seed in [0, 2**31) that depends only on ``parts`` (not on Python's hash randomisation)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


# ---------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=16)
def _load(name: str, options_json: str):
    from ..data import load_dataset

    return load_dataset(name, **json.loads(options_json))


def split_indices(y, task: str, split: dict, seed: int, fold, dataset: str):
    """(train, validation, test) row indices; stratified for classification when asked."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    n = len(y)
    index = np.arange(n)
    stratify = split["stratify"] and task == "classification"
    rs = stable_seed("split", dataset, seed)
    if split["method"] == "kfold":
        cv = (StratifiedKFold if stratify else KFold)(n_splits=split["folds"], shuffle=True, random_state=rs)
        train, test = list(cv.split(index, y if stratify else None))[fold]
    else:
        train, test = train_test_split(index, test_size=split["test_size"], random_state=rs,
                                       stratify=y if stratify else None)
    val = np.empty(0, dtype=np.int64)
    if split["validation_size"] > 0:
        train, val = train_test_split(train, test_size=split["validation_size"], random_state=stable_seed("validation", dataset, seed, fold),
                                      stratify=y[train] if stratify else None)
    return np.sort(train), np.sort(val), np.sort(test)


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

    from .. import __version__

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


def classification_metrics(y_true, proba, classes_model, n_classes: int, prefix: str = "") -> dict:
    """accuracy, balanced accuracy, ROC AUC (binary; one-vs-rest macro otherwise), log loss."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss, roc_auc_score

    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(classes_model, dtype=np.int64)] = proba
    pred = full.argmax(axis=1)
    out = {f"{prefix}accuracy": float(accuracy_score(y_true, pred)),
           f"{prefix}balanced_accuracy": float(balanced_accuracy_score(y_true, pred))}
    labels = np.arange(n_classes)
    try:
        if n_classes == 2:
            auc = roc_auc_score(y_true, full[:, 1])
        else:
            auc = roc_auc_score(y_true, full, multi_class="ovr", labels=labels)
        out[f"{prefix}roc_auc"] = float(auc)
    except ValueError:  # a class absent from y_true
        out[f"{prefix}roc_auc"] = None
    clipped = np.clip(full, 1e-15, 1.0)
    out[f"{prefix}log_loss"] = float(log_loss(y_true, clipped / clipped.sum(axis=1, keepdims=True), labels=labels))
    return out


def regression_metrics(y_true, pred, prefix: str = "") -> dict:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {f"{prefix}rmse": float(np.sqrt(mean_squared_error(y_true, pred))),
            f"{prefix}mae": float(mean_absolute_error(y_true, pred)),
            f"{prefix}r2": float(r2_score(y_true, pred))}


def _is_sparse(X) -> bool:
    import scipy.sparse as sp

    return sp.issparse(X)


def _missing_fraction(X) -> float:
    if _is_sparse(X) or X.size == 0:
        return 0.0
    return float(np.isnan(X).mean())


# ---------------------------------------------------------------------- one run
def execute_run(spec: dict, threads: int | None = None, callbacks=None, payload: dict | None = None) -> dict:
    """Run one grid point and return its result row (or a failure record; never raises).

    ``payload``: what a subset run trains on (chosen by the driver from its reference run's stored
    statistics, see :func:`.study_runs.subset_payload`); None for the other kinds.
    """
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    key = RunSpec.from_dict(spec).key
    try:
        limit_threads(threads)
        with warnings.catch_warnings(record=True) as caught, PeakMemory() as mem:
            warnings.simplefilter("always")
            result = _execute(spec, callbacks, payload)
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


def _execute(spec: dict, callbacks, payload=None) -> dict:
    from ..data import ampute_split, make_representation

    kind = spec.get("kind", "grid")
    if kind == "continual":
        from .study_runs import execute_continual

        return execute_continual(spec, _load, split_indices, stable_seed)
    ds = _load(spec["dataset"], json.dumps(spec["dataset_options"], sort_keys=True))
    X, y = ds.X, np.asarray(ds.y)
    task = spec["task"]
    seed, fold = spec["seed"], spec["fold"]
    dyn = spec.get("dynamics")
    # a [dynamics] config fixes the data (split, label noise, amputation) by its data_seed, so that
    # the seeds differ only in the model's initialisation and batch order
    data_seed = dyn["data_seed"] if dyn else seed
    train, val, test = split_indices(y, task, spec["split"], data_seed, fold, spec["dataset"])
    X_train, X_val, X_test = X[train], X[val], X[test]
    y_fit = y[train]
    noisy = np.zeros(len(train), dtype=bool)
    if dyn and dyn.get("label_noise", 0) > 0:
        from .study_runs import flip_labels

        y_fit, noisy = flip_labels(y_fit, dyn["label_noise"], stable_seed("label_noise", spec["dataset"], data_seed, fold),
                                   classes=np.unique(y))

    # amputation: training rows (and, with apply_to = "both", validation and test rows)
    if spec["rate"] > 0:
        X_rest = np.vstack([X_val, X_test])
        amp_seed = stable_seed("ampute", spec["dataset"], spec["mechanism"], spec["rate"], data_seed, fold)
        X_train, X_rest, _, _ = ampute_split(
            X_train, X_rest, spec["mechanism"], spec["rate"], random_state=amp_seed,
            apply_to=spec["apply_to"], per_feature=spec["per_feature"], **spec["mechanism_options"],
        )
        X_val, X_test = X_rest[: len(val)], X_rest[len(val):]
    missing_train = _missing_fraction(X_train)
    missing_test = _missing_fraction(X_test)

    # representation: fit on training rows only
    rep = make_representation(spec["representation"], **spec["representation_options"])
    t_rep = time.perf_counter()
    Z_train = rep.fit_transform(X_train)
    Z_val = rep.transform(X_val) if len(val) else None
    Z_test = rep.transform(X_test)
    represent_time = time.perf_counter() - t_rep

    info = model_info(spec["model"])
    if not info.accepts_sparse and _is_sparse(Z_train):
        Z_train = Z_train.toarray()
        Z_val = Z_val.toarray() if Z_val is not None else None
        Z_test = Z_test.toarray()
    tracker = None
    if dyn and dyn.get("tracking") is not None and info.family == "mlp" and kind == "grid":
        from ..dynamics import ExampleTracker

        tracker = ExampleTracker(**dyn["tracking"])
        callbacks = [*(callbacks or []), tracker]
    est = make_estimator(spec["model"], task, spec["model_params"], sparsity=spec["sparsity"], epsilon=spec["epsilon"],
                         random_state=stable_seed("model", seed, fold),
                         callbacks=callbacks if info.family == "mlp" else None)
    fit_rows = np.arange(len(train))
    if kind == "subset":
        fit_rows = np.asarray(payload["positions"], dtype=np.int64)
    Z_fit = Z_train if kind != "subset" else Z_train[fit_rows]
    t_fit = time.perf_counter()
    est.fit(Z_fit, y_fit[fit_rows])
    fit_time = time.perf_counter() - t_fit

    t_pred = time.perf_counter()
    metrics = _metrics(est, task, Z_test, y[test], ds)
    predict_time = time.perf_counter() - t_pred
    if Z_val is not None:
        metrics.update(_metrics(est, task, Z_val, y[val], ds, prefix="val_"))

    if info.family == "mlp":
        f = est.flops_
        flops = {k: float(f[k]) for k in ("train", "train_dense", "inference_per_sample", "inference_per_sample_dense")}
        from ..sparse import SparseLinear

        layers = [m for m in est.module_.modules() if isinstance(m, SparseLinear)]
        if layers:
            nnz = sum(m.nnz for m in layers)
            total = sum(m.in_features * m.out_features for m in layers)
            density = nnz / total
        else:
            density = 1.0
        epochs = int(est.n_iter_)
    else:
        flops = baseline_flops(spec["model"], est, Z_train.shape[1], len(train))
        density = None if spec["model"] == "hgb" else 1.0
        epochs = int(np.max(np.atleast_1d(est.n_iter_))) if getattr(est, "n_iter_", None) is not None else None
    out = {
        "metrics": metrics,
        "flops": flops,
        "density": density,
        "epochs": epochs,
        "n_train": int(len(fit_rows)),
        "n_val": int(len(val)),
        "n_test": int(len(test)),
        "n_features": int(Z_train.shape[1]),
        "missing_fraction_train": missing_train,
        "missing_fraction_test": missing_test,
        "fit_time_s": fit_time,
        "predict_time_s": predict_time,
        "represent_time_s": represent_time,
    }
    if tracker is not None:
        from .study_runs import tracked_parts

        parts = tracked_parts(tracker, est, train, test, y_fit, y[train], noisy, Z_train, Z_test, y[test])
        metrics.update(parts.pop("metrics"))
        out.update(parts)
    elif kind == "subset":
        from .study_runs import subset_parts

        parts = subset_parts(spec, payload, est, len(train), int(noisy[fit_rows].sum()))
        metrics.update(parts.pop("metrics"))
        out.update(parts)
    return out


def _metrics(est, task, Z, y_true, ds, prefix=""):
    if task == "classification":
        n_classes = len(ds.target_names) if ds.target_names is not None else int(np.max(ds.y)) + 1
        return classification_metrics(y_true, est.predict_proba(Z), est.classes_, n_classes, prefix)
    return regression_metrics(y_true, est.predict(Z), prefix)


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


def _run_in_worker(spec, threads, payload=None):
    return execute_run(spec, threads=threads, payload=payload)


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

    Subset runs (``[dynamics.subsets]``) need the statistics of their reference runs, so they go
    in a second phase, after every other pending run; the driver chooses their rows from the
    store. A subset run whose reference is missing (it failed) is recorded as failed and retried
    next time.
    """
    from .store import ResultsStore

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
    first = [(s, None) for s in pending if s.kind != "subset"]
    second = [s for s in pending if s.kind == "subset"]
    try:
        backend.run(first, record, bar)
        if second:
            from .study_runs import subset_payload

            items = []
            for spec in second:
                try:
                    items.append((spec, subset_payload(spec, store)))
                except LookupError as err:
                    record({"status": "failed", "run_key": spec.key, "config": spec.to_dict(),
                            "error": f"subset run not started: {err}", "traceback": None, "started_at": None,
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
                cbs = [EpochProgress(position=1)] if (self.epoch_progress and spec.kind != "continual") else None
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
        futures = {self.pool.submit(_run_in_worker, s.to_dict(), self.threads, p): s for s, p in items}
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
            fut = self.client.submit(_run_in_worker, s.to_dict(), self.threads, p, key=f"dualsparse-run-{s.key}", pure=False)
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
