"""ExampleTracker: per-example learning dynamics recorded while an estimator trains.

Two correctness sequences are recorded for every training row:

* **presentations** — each time the row is in a training batch, whether the batch's logits
  (computed *before* that batch's update, in train mode, as the loss saw them) classify it
  correctly. Forgetting events, learning events, first-learned epoch, never-learned and
  unforgettable are counted over presentations, as Toneva et al. (2019) do.
* **epoch-end evaluations** — after an epoch, one pass over the training rows in eval mode (no
  dropout, the weights at the end of the epoch, before any end-of-epoch topology update).
  Confidence and variability (mean and population std of p(true label) over the evaluated
  epochs, Swayamdipta et al. 2020), correctness (fraction of evaluated epochs correct) and a
  second forgetting count (``forgetting_events_eval``) come from these; EL2N (Paul et al. 2021)
  is ||softmax - onehot||_2 of the evaluation at epoch ``el2n_epoch``.

Cost. Presentations cost almost nothing (the logits exist already; their argmax is taken over
many batches at once). An evaluation is one forward pass over the training rows, i.e. a third of
the arithmetic of a training epoch (forward + two backward products): measured (benchmarks/
tracking.py) it adds about a tenth of an epoch at batch size 32 and up to a fifth at 128, where
training runs close to the machine's peak. Beyond that (batches of several hundred) the pass
approaches a third of an epoch: ``eval_every=k`` evaluates every k-th epoch (and at
``el2n_epoch``); ``eval_every=None`` makes no pass at all and takes the data-map statistics
and EL2N from the presentations instead (the logits the training batches produced — what the
dataset-cartography code records), at a cost of a few per cent. The evaluation input (the
training rows as the model takes them) is built once per fit, not once per pass.

With ``track_topology=True`` an end-of-epoch topology update (SET) that follows an evaluation is
followed by one more evaluation pass, so that epoch's record says how many rows that were correct
before the drop/grow step are wrong right after it (``forgotten_by_update``): whether pruning and
regrowth make the network forget, separated from forgetting by gradient steps (see
:func:`topology_forgetting`). It is off by default because it doubles the evaluation cost of an
evolving model; the forgetting studies of :mod:`dualsparse.experiments` switch it on. Without it,
forgetting events are still counted per epoch next to the epoch's ``topology_update`` flag.

Epochs are counted from 0 from the moment tracking starts (``first_learned_epoch``,
``el2n_epoch``, ``grand_epoch`` use this count); the estimator's own epoch number is kept in
``epoch_stats_["epoch"]``. Tracking draws no random numbers and changes no weight, gradient or
optimiser state: a tracked fit is identical to an untracked one.
"""

from __future__ import annotations

import numbers
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..train.callbacks import Callback
from ._common import logits_of_batches, row_batches
from .grand import grand_scores
from .stats import TransitionCounter

_FLUSH_ELEMENTS = 1 << 16  # buffered logits (batch x classes) per correctness computation
_CACHE_ELEMENTS = 1 << 25  # evaluation inputs up to this many stored values (128 MB) are built once per fit


class ExampleTracker(Callback):
    """Callback recording per-example statistics of a ``SparseMLPClassifier`` fit.

    Parameters
    ----------
    el2n_epoch : int, default 2
        Tracked epoch (0-based) whose probabilities give EL2N. Paul et al. score early in training
        (about a tenth of the run). NaN in ``example_stats_`` until that epoch is reached.
    grand_epoch : int or None, default None
        Tracked epoch at whose end GraNd (per-example gradient norm over the live weights and
        biases) is computed; ``-1`` means at initialisation, before the first epoch (as in Paul et
        al.). None: not computed (it costs about one forward and backward pass over the data).
    eval_every : int or None, default 1
        Evaluate the training rows after every k-th tracked epoch (epochs 0, k, 2k, ... and
        ``el2n_epoch``). None: never; confidence, variability, correctness and EL2N then come
        from the presentations (``results()["params"]["map_source"]`` says which).
    track_topology : bool, default False
        Evaluate the training rows again after an end-of-epoch topology update that follows an
        evaluation (one more forward pass per update: ``forgotten_by_update``).
    history : bool, default False
        Keep the full per-epoch matrices (``history_``): p(true) and correctness of every epoch-end
        evaluation and of every presentation. O(epochs x rows) memory.
    eval_batch_size, grand_batch_size : int
        Rows per forward pass of the evaluation and of the GraNd pass.

    Tracking continues across ``partial_fit`` calls (and warm-started fits) on the same data; a
    fresh ``fit`` or different data starts it afresh. Call :meth:`reset` to force a restart.
    """

    provides_example_stats = True  # MEST's data side reads example_stats_ during fit

    def __init__(self, el2n_epoch: int = 2, grand_epoch: int | None = None, eval_every: int | None = 1,
                 track_topology: bool = False, history: bool = False, eval_batch_size: int = 4096,
                 grand_batch_size: int = 256):
        for name, value, lo in (("el2n_epoch", el2n_epoch, 0), ("eval_batch_size", eval_batch_size, 1),
                                ("grand_batch_size", grand_batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
        if grand_epoch is not None and (isinstance(grand_epoch, bool) or not isinstance(grand_epoch, numbers.Integral)
                                        or grand_epoch < -1):
            raise ValueError(f"grand_epoch must be None, -1 (at initialisation) or an epoch >= 0, got {grand_epoch!r}")
        if eval_every is not None and (isinstance(eval_every, bool) or not isinstance(eval_every, numbers.Integral)
                                       or eval_every < 1):
            raise ValueError(
                f"eval_every must be a positive integer or None (no evaluation passes), got {eval_every!r}"
            )
        self.el2n_epoch = int(el2n_epoch)
        self.grand_epoch = None if grand_epoch is None else int(grand_epoch)
        self.eval_every = None if eval_every is None else int(eval_every)
        self.track_topology = bool(track_topology)
        self.history = bool(history)
        self.eval_batch_size = int(eval_batch_size)
        self.grand_batch_size = int(grand_batch_size)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything tracked so far; the next fit starts afresh."""
        self._n = None
        self._fingerprint = None
        self.time_s_ = 0.0  # seconds spent in the tracker's hooks, GraNd excluded
        self.grand_time_s_ = 0.0

    def _start(self, est, X, y, train_index):
        n = X.shape[0]
        self._n = n
        self._train_index = np.asarray(train_index, dtype=np.int64)
        self._in_train = np.zeros(n, dtype=bool)
        self._in_train[self._train_index] = True
        self._labels = np.asarray(y, dtype=np.int64)
        self._classes = np.asarray(est.classes_)
        self._presented = TransitionCounter(n, with_probabilities=self.eval_every is None)
        self._evaluated = TransitionCounter(n, with_probabilities=True)
        self._t = 0  # tracked epochs completed
        self._epochs: list[dict] = []
        self._el2n = np.full(n, np.nan)
        self._grand = np.full(n, np.nan)
        self._topology_forgetting = np.zeros(n, dtype=np.int32)
        self._last_eval_correct = None  # correctness of the training rows at the latest evaluation
        self._last_p = np.full(n, np.nan)
        self._hist = {"epoch": [], "p_true": [], "correct_eval": [], "correct_presented": []}

    # ------------------------------------------------------------------ callback hooks
    def on_fit_begin(self, est, X, y, train_index, validation_index):
        t0 = time.perf_counter()
        if not hasattr(est, "classes_"):
            raise TypeError(
                f"ExampleTracker needs a classifier (correctness per example); {type(est).__name__} has no classes_. "
                "Use it with SparseMLPClassifier"
            )
        fingerprint = _fingerprint(X, y, train_index)
        fresh = self._n is None or getattr(est, "n_iter_", 0) == 0 or fingerprint != self._fingerprint
        if fresh:
            self._start(est, X, y, train_index)
        self._fingerprint = fingerprint
        self._X = X
        self._eval_input = None  # the training rows as the model takes them, built at the first evaluation
        self._after_epoch_end = False
        self._current = None
        self._buf_idx, self._buf_correct = [], []
        self._buf_out, self._buf_y, self._buf_elems = [], [], 0
        self._buf_p, self._buf_el2n = [], []
        self._evaluated_now = False
        grand_s = self._compute_grand(est) if fresh and self.grand_epoch == -1 else 0.0
        self.time_s_ += time.perf_counter() - t0 - grand_s

    def on_epoch_begin(self, est, epoch):
        self._buf_idx: list = []
        self._buf_correct: list = []
        self._buf_out, self._buf_y, self._buf_elems = [], [], 0
        self._buf_p, self._buf_el2n = [], []
        self._after_epoch_end = False
        self._evaluated_now = False
        self._current = {"epoch": int(epoch), "tracked_epoch": self._t, "step_topology_updates": 0,
                         "step_dropped": 0, "step_grown": 0}

    #: on_batch_end reads only its arguments, so whole compiled epochs stay on while tracking
    on_batch_end_reads_model = False

    def on_batch_end(self, est, epoch, batch_index, outputs, y_batch, loss):
        # only references are kept here; the argmax runs over many batches at once (_flush)
        t0 = time.perf_counter()
        self._buf_idx.append(batch_index)
        self._buf_out.append(outputs)
        self._buf_y.append(y_batch)
        self._buf_elems += outputs.numel()
        if self._buf_elems >= _FLUSH_ELEMENTS:
            self._flush()
        self.time_s_ += time.perf_counter() - t0

    def _flush(self):
        """Correctness (and, without evaluations, p(true) and EL2N) of the buffered batch outputs."""
        if self._buf_out:
            out = torch.cat(self._buf_out) if len(self._buf_out) > 1 else self._buf_out[0]
            yb = torch.cat(self._buf_y) if len(self._buf_y) > 1 else self._buf_y[0]
            self._buf_correct.append((out.argmax(1) == yb).cpu().numpy())
            if self.eval_every is None:
                probs = torch.softmax(out.detach().float(), 1)
                p = probs.gather(1, yb.view(-1, 1)).squeeze(1)
                self._buf_p.append(p.cpu().numpy().astype(np.float64))
                if self._t == self.el2n_epoch:  # ||p - e_y||^2 = sum p^2 - 2 p_y + 1
                    sq = (probs * probs).sum(1) - 2 * p + 1
                    self._buf_el2n.append(sq.clamp_min(0).sqrt().cpu().numpy().astype(np.float64))
        self._buf_out, self._buf_y, self._buf_elems = [], [], 0

    def _evaluates(self, t: int) -> bool:
        return self.eval_every is not None and (t % self.eval_every == 0 or t == self.el2n_epoch)

    def on_epoch_end(self, est, epoch, logs):
        t0 = time.perf_counter()
        rec = self._current if self._current is not None else {"epoch": int(epoch), "tracked_epoch": self._t}
        t = self._t
        # presentations
        self._flush()
        if self._buf_idx:
            idx = np.concatenate(self._buf_idx).astype(np.int64, copy=False)
            corr = np.concatenate(self._buf_correct)
            p_pres = np.concatenate(self._buf_p) if self._buf_p else None
            if _distinct(idx, self._n):
                f, l = self._presented.update(idx, corr, t, p_pres)
            else:  # a row presented twice in one epoch: keep the order, batch by batch
                f = l = start = 0
                for b in self._buf_idx:
                    end = start + b.size
                    p_b = None if p_pres is None else p_pres[start:end]
                    df, dl = self._presented.update(b, corr[start:end], t, p_b)
                    f, l, start = f + df, l + dl, end
            rec.update(presentations=int(idx.size), forgetting_events=f, learning_events=l,
                       accuracy_presented=float(corr.mean()))
            if p_pres is not None:
                self._last_p[idx] = p_pres
                rec["mean_confidence"] = float(p_pres.mean())
                if self._buf_el2n:
                    self._el2n[idx] = np.concatenate(self._buf_el2n)
            if self.history:
                row = np.full(self._n, -1, dtype=np.int8)
                row[idx] = corr
                self._hist["correct_presented"].append(row)
        else:
            rec.update(presentations=0, forgetting_events=0, learning_events=0, accuracy_presented=np.nan)
            if self.history:
                self._hist["correct_presented"].append(np.full(self._n, -1, dtype=np.int8))
        self._buf_idx, self._buf_correct, self._buf_p, self._buf_el2n = [], [], [], []
        # epoch-end evaluation
        self._evaluated_now = self._evaluates(t)
        if self._evaluated_now:
            p_true, correct, probs = self._evaluate(est, with_probs=t == self.el2n_epoch)
            tr = self._train_index
            f, l = self._evaluated.update(tr, correct, t, p_true)
            self._last_eval_correct = correct
            self._last_p[tr] = p_true
            rec.update(evaluated=True, forgotten_eval=f, learned_eval=l,
                       accuracy_eval=float(correct.mean()) if correct.size else np.nan,
                       mean_confidence=float(p_true.mean()) if p_true.size else np.nan)
            if t == self.el2n_epoch:
                onehot = np.zeros_like(probs)
                onehot[np.arange(tr.size), self._labels[tr]] = 1.0
                self._el2n[tr] = np.linalg.norm(probs - onehot, axis=1)
            if self.history:
                p_row = np.full(self._n, np.nan, dtype=np.float32)
                p_row[tr] = p_true
                c_row = np.full(self._n, -1, dtype=np.int8)
                c_row[tr] = correct
                self._hist["epoch"].append(t)
                self._hist["p_true"].append(p_row)
                self._hist["correct_eval"].append(c_row)
        rec.setdefault("evaluated", False)
        rec.setdefault("topology_update", False)
        self._epochs.append(rec)
        self._current = rec
        self._after_epoch_end = True
        grand_s = self._compute_grand(est) if t == self.grand_epoch else 0.0
        self._t += 1
        self.time_s_ += time.perf_counter() - t0 - grand_s

    def on_topology_update(self, est, epoch, info):
        t0 = time.perf_counter()
        dropped = int(sum(d.get("dropped", 0) for d in info))
        grown = int(sum(d.get("grown", 0) for d in info))
        rec = self._current
        if rec is None:
            return
        if not self._after_epoch_end:  # a step-scheduled update inside the epoch (e.g. RigL)
            rec["step_topology_updates"] = rec.get("step_topology_updates", 0) + 1
            rec["step_dropped"] = rec.get("step_dropped", 0) + dropped
            rec["step_grown"] = rec.get("step_grown", 0) + grown
            return
        rec.update(topology_update=True, dropped=dropped, grown=grown)
        if self.track_topology and self._evaluated_now:
            _, after, _ = self._evaluate(est)
            before = self._last_eval_correct
            forgot = before & ~after
            self._topology_forgetting[self._train_index[forgot]] += 1
            rec.update(forgotten_by_update=int(forgot.sum()), learned_by_update=int((~before & after).sum()),
                       accuracy_after_update=float(after.mean()) if after.size else np.nan)
        self.time_s_ += time.perf_counter() - t0

    def on_fit_end(self, est):
        self._X = self._eval_input = None  # do not keep the data alive after the fit

    # ------------------------------------------------------------------ internals
    def _evaluate(self, est, with_probs: bool = False):
        """p(true label) and correctness of every training row in eval mode (probabilities if asked)."""
        tr = self._train_index
        if tr.size == 0:
            return np.empty(0), np.empty(0, dtype=bool), np.empty((0, 0))
        logits = logits_of_batches(est, self._eval_batches(est))
        labels = torch.from_numpy(self._labels[tr])
        probs = torch.softmax(logits, 1)
        p_true = probs.gather(1, labels.unsqueeze(1)).squeeze(1).numpy().astype(np.float64)
        correct = (logits.argmax(1) == labels).numpy()
        return p_true, correct, probs.numpy().astype(np.float64) if with_probs else None

    def _eval_batches(self, est):
        """The training rows in evaluation chunks: built once per fit when they are small enough
        (every evaluation of a fit sees the same rows), otherwise afresh for each pass."""
        if self._eval_input is not None:
            return self._eval_input
        tr, X = self._train_index, self._X
        stored = X.nnz * tr.size / max(X.shape[0], 1) if sp.issparse(X) else tr.size * X.shape[1]
        batches = row_batches(est, X, tr, self.eval_batch_size)
        if stored > _CACHE_ELEMENTS:
            return batches
        self._eval_input = list(batches)
        return self._eval_input

    def _compute_grand(self, est):
        t0 = time.perf_counter()
        tr = self._train_index
        self._grand[tr] = grand_scores(est, self._X, self._labels, tr, self.grand_batch_size)
        elapsed = time.perf_counter() - t0
        self.grand_time_s_ += elapsed
        return elapsed

    def _check_tracked(self):
        if self._n is None:
            raise RuntimeError(
                "ExampleTracker has tracked nothing yet; pass it in an estimator's callbacks=[...] and call fit"
            )

    # ------------------------------------------------------------------ results
    @property
    def example_stats_(self) -> pd.DataFrame:
        """One row per row of the X given to fit (same order); see the module docstring.

        Rows outside training (``in_train`` False, e.g. validation rows) hold NA statistics.
        """
        self._check_tracked()
        n, tr, mask = self._n, self._train_index, self._in_train
        p, e = self._presented, self._evaluated

        def ints(values):
            a = pd.array(np.asarray(values, dtype=np.int64), dtype="Int64")
            a[~mask] = pd.NA
            return a

        def bools(values):
            a = pd.array(np.asarray(values, dtype=bool), dtype="boolean")
            a[~mask] = pd.NA
            return a

        def floats(values):
            return np.where(mask, np.asarray(values, dtype=np.float64), np.nan)

        first = ints(np.where(p.first_correct >= 0, p.first_correct, 0))
        first[p.first_correct < 0] = pd.NA
        correct_last = np.zeros(n, dtype=bool)
        if self.eval_every is None:  # the latest presentation
            correct_last = p.last == 1
        elif self._last_eval_correct is not None:
            correct_last[tr] = self._last_eval_correct
        maps = p if self.eval_every is None else e
        forgetting_eval = ints(e.forgetting)
        forgetting_eval[e.observations == 0] = pd.NA  # never evaluated (eval_every=None)
        frame = pd.DataFrame({
            "in_train": mask,
            "label": self._classes[self._labels] if self._classes.size else self._labels,
            "presentations": ints(p.observations),
            "forgetting_events": ints(p.forgetting),
            "learning_events": ints(p.learning),
            "first_learned_epoch": first,
            "never_learned": bools(p.never_correct()),
            "unforgettable": bools(p.unforgettable()),
            "evaluations": ints(e.observations),
            "forgetting_events_eval": forgetting_eval,
            "confidence": floats(maps.confidence()),
            "variability": floats(maps.variability()),
            "correctness": floats(maps.correctness()),
            "el2n": floats(self._el2n),
            "grand": floats(self._grand),
            "topology_forgetting": ints(self._topology_forgetting),
            "correct_last": bools(correct_last),
            "p_true_last": floats(self._last_p),
        })
        frame.index.name = "row"
        return frame

    @property
    def epoch_stats_(self) -> pd.DataFrame:
        """One row per tracked epoch: forgetting/learning counts, accuracies, topology changes."""
        self._check_tracked()
        cols = ["epoch", "tracked_epoch", "presentations", "forgetting_events", "learning_events",
                "accuracy_presented", "evaluated", "forgotten_eval", "learned_eval", "accuracy_eval", "mean_confidence",
                "topology_update", "dropped", "grown", "forgotten_by_update", "learned_by_update",
                "accuracy_after_update", "step_topology_updates", "step_dropped", "step_grown"]
        frame = pd.DataFrame(self._epochs, columns=cols)
        for c in ("dropped", "grown", "step_topology_updates", "step_dropped", "step_grown"):
            frame[c] = frame[c].fillna(0).astype(np.int64)
        frame["topology_update"] = frame["topology_update"].fillna(False).astype(bool)
        frame["evaluated"] = frame["evaluated"].fillna(False).astype(bool)
        return frame

    @property
    def forgetting_per_epoch_(self) -> np.ndarray:
        """Forgetting events (over presentations) in each tracked epoch."""
        return self.epoch_stats_["forgetting_events"].to_numpy(dtype=np.int64)

    @property
    def history_(self) -> dict:
        """Per-epoch matrices (epochs x rows), with ``history=True``: ``correct_presented`` (one row per
        tracked epoch; 1 correct, 0 wrong, -1 not presented), and ``p_true`` (NaN off-train) and
        ``correct_eval`` (one row per evaluated epoch, listed in ``epoch``)."""
        self._check_tracked()
        if not self.history:
            raise RuntimeError("history_ needs ExampleTracker(history=True); the per-epoch matrices were not kept")
        h = self._hist
        n = self._n
        return {
            "epoch": np.asarray(h["epoch"], dtype=np.int64),
            "p_true": np.stack(h["p_true"]) if h["p_true"] else np.empty((0, n), dtype=np.float32),
            "correct_eval": np.stack(h["correct_eval"]) if h["correct_eval"] else np.empty((0, n), dtype=np.int8),
            "correct_presented": (np.stack(h["correct_presented"]) if h["correct_presented"]
                                  else np.empty((0, n), dtype=np.int8)),
        }

    def results(self) -> dict:
        """Everything tracked, as storable objects: two DataFrames and a dict of settings."""
        return {
            "example_stats": self.example_stats_,
            "epoch_stats": self.epoch_stats_,
            "params": {"el2n_epoch": self.el2n_epoch, "grand_epoch": self.grand_epoch, "eval_every": self.eval_every,
                       "map_source": "presentation" if self.eval_every is None else "evaluation",
                       "track_topology": self.track_topology, "tracked_epochs": self._t,
                       "time_s": self.time_s_, "grand_time_s": self.grand_time_s_},
        }

    def __repr__(self):
        return (f"ExampleTracker(el2n_epoch={self.el2n_epoch}, grand_epoch={self.grand_epoch}, "
                f"eval_every={self.eval_every}, track_topology={self.track_topology}, history={self.history})")


def _distinct(idx: np.ndarray, n: int) -> bool:
    seen = np.zeros(n, dtype=bool)
    seen[idx] = True
    return int(seen.sum()) == idx.size


def _fingerprint(X, y, train_index):
    """Cheap identity of a training set: shapes, labels and up to 64 evenly spaced rows."""
    n = X.shape[0]
    rows = np.unique(np.linspace(0, n - 1, num=min(n, 64)).astype(np.int64)) if n else np.empty(0, dtype=np.int64)
    if sp.issparse(X):
        sub = X[rows]
        sample = (sub.indptr.tobytes(), sub.indices.tobytes(), np.asarray(sub.data).tobytes())
    else:
        sample = (np.ascontiguousarray(X[rows]).tobytes(),)
    return (X.shape, hash(np.asarray(y).tobytes()), hash(np.asarray(train_index).tobytes()), hash(sample))


def topology_forgetting(epoch_stats: pd.DataFrame) -> dict:
    """Does pruning and regrowth make the network forget? A summary of ``epoch_stats_``.

    ``forgotten_by_updates``: rows correct just before an end-of-epoch drop/grow step and wrong
    just after it, summed over updates; ``forgotten_between_evaluations``: rows correct at one
    epoch-end evaluation and wrong at the next (one update plus one epoch of gradient steps);
    ``ratio`` is the first over the second for the updates that have an evaluation after them
    (NaN unless every epoch was evaluated, ``eval_every=1``): above 1, the updates knock out more
    rows than stay forgotten at the next evaluation, i.e. the following epoch relearns them;
    ``accuracy_drop``: mean training-accuracy change across an update (before minus after).
    Needs a tracker with ``track_topology=True`` on an evolving algorithm.
    """
    if "forgotten_by_update" not in epoch_stats:
        raise ValueError("pass ExampleTracker.epoch_stats_")
    upd = epoch_stats[epoch_stats["topology_update"] & epoch_stats["forgotten_by_update"].notna()]
    if upd.empty:
        raise ValueError(
            "no end-of-epoch topology update was evaluated: use an evolving algorithm (e.g. 'set') and "
            "ExampleTracker(track_topology=True)"
        )
    evaluated = (epoch_stats["evaluated"].to_numpy(dtype=bool) if "evaluated" in epoch_stats
                 else np.ones(len(epoch_stats), dtype=bool))
    between = epoch_stats["forgotten_eval"].iloc[1:].sum()
    # the ratio compares like with like: updates that have an evaluation after them, and only when
    # every epoch was evaluated (then consecutive evaluations enclose exactly one update)
    paired = upd.loc[upd["tracked_epoch"] < epoch_stats["tracked_epoch"].max(), "forgotten_by_update"].sum()
    if not evaluated.all():
        between = float("nan")
    return {
        "updates": int(len(upd)),
        "forgotten_by_updates": int(upd["forgotten_by_update"].sum()),
        "learned_by_updates": int(upd["learned_by_update"].sum()),
        "forgotten_between_evaluations": between if np.isnan(between) else int(between),
        "ratio": float(paired / between) if between and not np.isnan(between) else float("nan"),
        "accuracy_drop": float((upd["accuracy_eval"] - upd["accuracy_after_update"]).mean()),
    }
