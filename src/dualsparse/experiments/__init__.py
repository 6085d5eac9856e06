"""Reproducible experiments: TOML configs, a resumable runner, an SQLite results store, reports.

* :func:`load_config` / :func:`loads_config`: read and validate a config (see docs/experiments.md).
* :func:`run_sweep`: run the grid serially, in local processes or on Dask; resumes from the store.
* :class:`ResultsStore`: the SQLite store (one row per finished run).
* :func:`write_report`: Markdown + HTML report with a data-driven headline, tables and plots.
* :func:`export_results`: the rows (or a study table: ``examples``, ``epochs``, ``subsets``,
  ``continual``) as CSV or Parquet.

Learning-dynamics studies (``[dynamics]`` tracking and subset runs, ``[continual]`` sweeps) are
validated in :mod:`.studies`, executed in :mod:`.study_runs` and reported in :mod:`.study_report`.
"""

from .config import ConfigError, ExperimentConfig, RunSpec, describe, load_config, loads_config, run_key, validate_config
from .models import list_models
from .report import export_results, write_report
from .runner import SweepSummary, execute_run, run_sweep
from .store import DEFAULT_STORE, ResultsStore, StoreError

__all__ = [
    "DEFAULT_STORE",
    "ConfigError",
    "ExperimentConfig",
    "ResultsStore",
    "RunSpec",
    "StoreError",
    "SweepSummary",
    "describe",
    "execute_run",
    "export_results",
    "list_models",
    "load_config",
    "loads_config",
    "run_key",
    "run_sweep",
    "validate_config",
    "write_report",
]
