"""Reproducible experiments: TOML configs, a resumable runner, an SQLite results store, reports.

* :func:`load_config` / :func:`loads_config`: read and validate a config (see docs/experiments.md).
* :func:`run_sweep`: run the grid serially, in local processes or on Dask; resumes from the store.
* :class:`ResultsStore`: the SQLite store (one row per finished run).
* :func:`write_report`: Markdown + HTML report with a data-driven headline, tables and plots.
* :func:`export_results`: the rows (or a study table: ``examples``, ``epochs``, ``subsets``,
  ``continual``) as CSV or Parquet.

A run is a typed record (:class:`RunSpec`; its store columns in :mod:`.record`). What a kind of
study does is one :class:`StudyKind` (:mod:`.study`): the grid (:mod:`.grid_study`), per-example
tracking with subset runs (``[dynamics]``, :mod:`.tracking_study`) and continual learning
(``[continual]``, :mod:`.continual_study`) are registered here; add your own with
:func:`register_study_kind`. Models are every registered topology algorithm plus the baselines
(:mod:`.models`).
"""

from .config import ConfigError, ExperimentConfig, describe, load_config, loads_config, validate_config
from .continual_study import ContinualStudy
from .grid_study import GridStudy
from .models import list_models, model_info
from .record import RunSpec
from .report import export_results, write_report
from .runner import SweepSummary, execute_run, run_sweep
from .seeding import run_key
from .store import DEFAULT_STORE, ResultsStore, StoreError
from .study import ConfigContext, StudyKind, StudyTable, register_study_kind, study_kinds, unregister_study_kind
from .tracking_study import TrackingStudy

for _kind in (GridStudy(), TrackingStudy(), ContinualStudy()):
    register_study_kind(_kind)

__all__ = [
    "DEFAULT_STORE",
    "ConfigContext",
    "ConfigError",
    "ExperimentConfig",
    "ResultsStore",
    "RunSpec",
    "StoreError",
    "StudyKind",
    "StudyTable",
    "SweepSummary",
    "describe",
    "execute_run",
    "export_results",
    "list_models",
    "load_config",
    "loads_config",
    "model_info",
    "register_study_kind",
    "run_key",
    "run_sweep",
    "study_kinds",
    "unregister_study_kind",
    "validate_config",
    "write_report",
]
