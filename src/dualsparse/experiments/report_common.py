"""Helpers the study kinds' report sections share: configuration ids and labels, means with intervals."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
from scipy import stats

from .formatting import fmt_ci
from .models import display_name
from .stats import mean_ci


def cfg_id(model, sparsity, epsilon) -> str:
    """``model|sparsity|epsilon`` (empty where unset): one configuration of a model."""
    s = "" if sparsity is None or (isinstance(sparsity, float) and math.isnan(sparsity)) else f"{sparsity:g}"
    e = "" if epsilon is None or (isinstance(epsilon, float) and math.isnan(epsilon)) else f"{epsilon:g}"
    return f"{model}|{s}|{e}"


def cfg_label(model, sparsity, epsilon) -> str:
    """``SET MLP (sparsity 0.9)``: a configuration as reports name it."""
    name = display_name(model)
    if sparsity is not None and not (isinstance(sparsity, float) and math.isnan(sparsity)):
        return f"{name} (sparsity {sparsity:g})"
    if epsilon is not None and not (isinstance(epsilon, float) and math.isnan(epsilon)) and model != "dense":
        return f"{name} (ε {epsilon:g})"
    return name


def nan_none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def ci_text(values, digits=3) -> str:
    """Mean ± 95 % half-width of ``values``, formatted."""
    m, h, _ = mean_ci(values)
    return fmt_ci(m, h, digits)


def mean_of(values) -> float:
    return mean_ci(values)[0]


def metrics_of(frame) -> dict:
    """{run key: its metrics dict} of the runs in ``frame``."""
    return {k: json.loads(m) for k, m in zip(frame["run_key"], frame["metrics"])}


def welch_p(a, b):
    """Welch's t-test p-value of two samples (finite values only); None where it cannot be computed."""
    a = np.asarray([x for x in a if np.isfinite(x)])
    b = np.asarray([x for x in b if np.isfinite(x)])
    if a.size < 2 or b.size < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)
