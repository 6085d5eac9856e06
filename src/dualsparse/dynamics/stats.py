"""Streaming per-example statistics of a correctness sequence (vectorised, O(n) memory).

A :class:`TransitionCounter` holds, for n examples, everything needed to report

* forgetting events — transitions correct -> incorrect between two consecutive observations of
  the same example (Toneva et al. 2019); the state before the first observation counts as
  "incorrect", so a first observation never forgets;
* learning events — transitions incorrect (or unseen) -> correct;
* the first step (epoch) an example was observed correct, and whether it ever was;
* the mean and (population, ddof=0) standard deviation of p(true label) over observations —
  the *confidence* and *variability* of dataset cartography (Swayamdipta et al. 2020) — and the
  fraction of observations that were correct (*correctness*).

Updates take a whole batch (or a whole epoch) of distinct example indices at once, with NumPy
fancy indexing, so the cost per training step is a handful of array operations, never a Python
loop over examples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class TransitionCounter:
    """Counts for ``n`` examples, fed observation by observation (see module docstring)."""

    def __init__(self, n: int, with_probabilities: bool = True):
        self.n = int(n)
        self.last = np.full(self.n, -1, dtype=np.int8)  # -1 never observed, 0 incorrect, 1 correct
        self.observations = np.zeros(self.n, dtype=np.int32)
        self.n_correct = np.zeros(self.n, dtype=np.int32)
        self.forgetting = np.zeros(self.n, dtype=np.int32)
        self.learning = np.zeros(self.n, dtype=np.int32)
        self.first_correct = np.full(self.n, -1, dtype=np.int64)
        self.with_probabilities = with_probabilities
        if with_probabilities:
            self.sum_p = np.zeros(self.n, dtype=np.float64)
            self.sum_p2 = np.zeros(self.n, dtype=np.float64)

    def update(self, idx: np.ndarray, correct: np.ndarray, step: int,
               p_true: np.ndarray | None = None) -> tuple[int, int]:
        """Observe examples ``idx`` (distinct) at ``step``; returns (forgetting, learning) events."""
        idx = np.asarray(idx, dtype=np.int64)
        correct = np.asarray(correct, dtype=bool)
        prev = self.last[idx]
        forgot = (prev == 1) & ~correct
        learned = (prev != 1) & correct
        self.forgetting[idx] += forgot
        self.learning[idx] += learned
        newly = correct & (self.first_correct[idx] < 0)
        self.first_correct[idx[newly]] = step
        self.last[idx] = correct
        self.observations[idx] += 1
        self.n_correct[idx] += correct
        if self.with_probabilities and p_true is not None:
            p = np.asarray(p_true, dtype=np.float64)
            self.sum_p[idx] += p
            self.sum_p2[idx] += p * p
        return int(forgot.sum()), int(learned.sum())

    # ------------------------------------------------------------------ derived quantities
    def confidence(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.observations > 0, self.sum_p / self.observations, np.nan)

    def variability(self) -> np.ndarray:
        mean = self.confidence()
        with np.errstate(invalid="ignore", divide="ignore"):
            var = self.sum_p2 / self.observations - mean * mean
        return np.sqrt(np.clip(var, 0.0, None))

    def correctness(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.observations > 0, self.n_correct / self.observations, np.nan)

    def never_correct(self) -> np.ndarray:
        return self.first_correct < 0

    def unforgettable(self) -> np.ndarray:
        """Learned at some point and never forgotten (Toneva et al. 2019)."""
        return (self.first_correct >= 0) & (self.forgetting == 0)


def sequence_statistics(correct, p_true=None) -> pd.DataFrame:
    """Statistics of a full (steps, n) correctness matrix (1 correct, 0 incorrect, -1 not observed).

    The same counter the tracker uses, fed one row (step) at a time; ``p_true`` (steps, n) adds
    confidence and variability. Useful to recompute statistics from a stored history.
    """
    correct = np.asarray(correct)
    if correct.ndim != 2:
        raise ValueError(f"correct must be a 2-D (steps, examples) matrix, got shape {correct.shape}")
    if p_true is not None:
        p_true = np.asarray(p_true, dtype=np.float64)
        if p_true.shape != correct.shape:
            raise ValueError(
                f"p_true has shape {p_true.shape} but correct has {correct.shape}; pass one value per entry"
            )
    counter = TransitionCounter(correct.shape[1], with_probabilities=p_true is not None)
    for t in range(correct.shape[0]):
        seen = np.flatnonzero(correct[t] >= 0)
        counter.update(seen, correct[t, seen] == 1, t, None if p_true is None else p_true[t, seen])
    first = pd.array(np.where(counter.first_correct >= 0, counter.first_correct, 0), dtype="Int64")
    first[counter.first_correct < 0] = pd.NA
    out = {
        "observations": counter.observations,
        "forgetting_events": counter.forgetting,
        "learning_events": counter.learning,
        "first_learned": first,
        "never_learned": counter.never_correct(),
        "unforgettable": counter.unforgettable(),
        "correctness": counter.correctness(),
    }
    if p_true is not None:
        out["confidence"] = counter.confidence()
        out["variability"] = counter.variability()
    return pd.DataFrame(out)
