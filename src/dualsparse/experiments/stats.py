"""Statistics for reports: t-intervals over seeds and paired tests between two models."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the t confidence interval, n) of the finite values; half-width NaN if n < 2."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = x.size
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, 1
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))
    return mean, half, n


@dataclass
class PairedComparison:
    n: int
    mean_a: float
    mean_b: float
    diff: float  # mean of a - b
    diff_half_width: float  # 95 % t-interval of the mean difference
    p_ttest: float | None
    p_wilcoxon: float | None
    note: str = ""

    @property
    def significant(self) -> bool:
        return self.p_ttest is not None and np.isfinite(self.p_ttest) and self.p_ttest < ALPHA

    @property
    def constant(self) -> bool:
        return self.note.startswith("constant")


def paired(a, b) -> PairedComparison:
    """Paired comparison of two aligned samples (same seeds): t-test on the differences, and Wilcoxon.

    Where every difference is the same (e.g. FLOPs of deterministic topologies) the tests are
    undefined: p is None and ``note`` says so.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = a.size
    d = a - b
    if n == 0:
        return PairedComparison(0, math.nan, math.nan, math.nan, math.nan, None, None, "no paired runs")
    mean_d, half_d, _ = mean_ci(d)
    p_t = p_w = None
    note = ""
    if n < 2:
        note = "one paired run: no test"
    elif np.allclose(d, d[0], rtol=0, atol=1e-12 * max(1.0, abs(d[0]))):
        note = "identical on every seed" if d[0] == 0 else "constant difference on every seed"
        half_d = 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p_t = float(stats.ttest_rel(a, b).pvalue)
            try:
                p_w = float(stats.wilcoxon(a, b).pvalue)
            except ValueError:
                p_w = None
    return PairedComparison(n, float(a.mean()), float(b.mean()), float(mean_d), half_d, p_t, p_w, note)


@dataclass
class RatioInterval:
    """Geometric mean of paired ratios a_i / b_i with a t-interval on the log scale."""

    n: int
    ratio: float
    low: float  # NaN when n < 2
    high: float

    @property
    def finite(self) -> bool:
        return self.n > 0 and np.isfinite(self.ratio)

    @property
    def direction(self) -> str:
        """``"higher"`` (a > b: the interval above 1), ``"lower"``, ``"unclear"`` (it contains 1) or ``"none"``.

        With one pair (no interval) the point estimate decides.
        """
        if not self.finite:
            return "none"
        if np.isfinite(self.low) and np.isfinite(self.high):
            return "higher" if self.low > 1 else "lower" if self.high < 1 else "unclear"
        return "higher" if self.ratio > 1 else "lower" if self.ratio < 1 else "unclear"


def ratio_ci(a, b, confidence: float = 0.95) -> RatioInterval:
    """Paired ratio of two aligned positive samples (e.g. fit times of the same seeds).

    The geometric mean of the per-pair ratios a_i / b_i, with the t-interval of the mean log
    ratio taken back to the ratio scale; pairs with a non-finite or non-positive value are left out.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    logs = np.log(a[ok]) - np.log(b[ok])
    mean, half, n = mean_ci(logs, confidence)
    if n == 0:
        return RatioInterval(0, math.nan, math.nan, math.nan)
    if not np.isfinite(half):
        return RatioInterval(n, math.exp(mean), math.nan, math.nan)
    return RatioInterval(n, math.exp(mean), math.exp(mean - half), math.exp(mean + half))
