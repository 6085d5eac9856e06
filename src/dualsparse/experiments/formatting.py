"""How reports write numbers: means with intervals, p-values, FLOPs, ratios, file-name slugs."""

from __future__ import annotations

import re

import numpy as np


def fmt_ci(mean, half, digits=3) -> str:
    """``0.912 ± 0.010``; ``–`` without a mean."""
    if not np.isfinite(mean):
        return "–"
    if not np.isfinite(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def fmt_interval(mean, half, digits=3) -> str:
    """``+0.012 [-0.003, +0.027]`` (a difference and its interval)."""
    if not np.isfinite(mean):
        return "–"
    if not np.isfinite(half):
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{mean - half:+.{digits}f}, {mean + half:+.{digits}f}]"


def fmt_p(p) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def p_text(p) -> str:
    if p is None or not np.isfinite(p):
        return "p = –"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def fmt_flops(v, half=None) -> str:
    """``1.23 ± 0.04 GFLOP``."""
    if v is None or not np.isfinite(v):
        return "–"
    for scale, unit in ((1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP"), (1e3, "kFLOP")):
        if abs(v) >= scale:
            break
    else:
        scale, unit = 1.0, "FLOP"
    text = f"{v / scale:.3g}"
    if half is not None and np.isfinite(half) and half > 0:
        text += f" ± {half / scale:.2g}"
    return f"{text} {unit}"


def fmt_ratio(rc, digits=3) -> str:
    """``2.41 [2.10, 2.77]`` (ratio and 95 % interval), ``2.41`` without an interval, ``–`` without data."""
    if not rc.finite:
        return "–"
    text = f"{rc.ratio:.{digits}g}"
    if np.isfinite(rc.low) and np.isfinite(rc.high):
        text += f" [{rc.low:.{digits}g}, {rc.high:.{digits}g}]"
    return text


def fmt_seconds(v) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:.3g} s"


def slug(*parts) -> str:
    """A file-name-safe stem made of ``parts``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(str(p) for p in parts)).strip("_")[:120]
