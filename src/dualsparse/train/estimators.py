"""scikit-learn estimators that train truly sparse MLPs with dynamic sparse training."""

from __future__ import annotations

import copy
import numbers
import warnings
import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ..dst import algorithm_info, make_algorithm, remap_state
from ..dst.capture import LayerIOCapture
from ..sparse import SparseLinear
from ..sparse.topology import row_of_each
from ..sparse.density import DEFAULT_EPSILON, DISTRIBUTIONS, DensityWarning, layer_densities, sparse_epsilon_limit
from ..utils import check_random_state, derive_seed
from .callbacks import CallbackList, example_stats_source
from .compiled_epoch import CompiledEpoch, batch_callbacks
from .input_rows import dense_rows
from .neumiss import MISSING_BLOCKS, NeuMissBlock
from .flops import FlopCounter
from .fused_step import make_fused_step
from .network import ACTIVATIONS, build_mlp, input_importance, linear_layers

OPTIMIZERS = ("sgd", "adam")

_MISSING_HINT = (
    "SparseMLP models need complete inputs. Handle missing values first: impute them "
    "(dualsparse.data.make_representation('impute-mean')), or use the 'observed' representation, "
    "which stores only the observed entries as sparse input"
)


class _BaseSparseMLP(BaseEstimator):
    """Shared training machinery; subclasses define the loss and the output transform."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        algorithm="set",
        algorithm_options=None,
        epsilon=None,
        sparsity=None,
        distribution="er",
        zeta=0.3,
        activation="relu",
        optimizer="adam",
        learning_rate=0.001,
        momentum=0.9,
        weight_decay=0.0,
        dropout=0.0,
        missing_block=None,
        neumiss_depth=3,
        batch_size=32,
        max_epochs=100,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        callbacks=None,
        track_examples=False,
        random_state=None,
        device="cpu",
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.algorithm = algorithm
        self.algorithm_options = algorithm_options
        self.epsilon = epsilon
        self.sparsity = sparsity
        self.distribution = distribution
        self.zeta = zeta
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.missing_block = missing_block
        self.neumiss_depth = neumiss_depth
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.track_examples = track_examples
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ sklearn plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = self.missing_block is not None
        tags.non_deterministic = False
        return tags

    def _validate_params(self):
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, numbers.Integral):
            hidden = (hidden,)
        hidden = tuple(hidden)
        if any(int(h) != h or h < 1 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {self.distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}")
        eps = self.epsilon
        if eps is not None and (isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0):
            raise ValueError(f"epsilon must be a positive number or None (SET's {DEFAULT_EPSILON:g}, layers too "
                             f"small for it fully connected), got {eps!r}")
        s = self.sparsity
        if s is not None and (isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0 <= s < 1):
            raise ValueError(f"sparsity must be in [0, 1) or None, got {s!r}; e.g. sparsity=0.9 keeps 10 % of weights")
        algorithm = _make_algorithm(self.algorithm, self.zeta, self.algorithm_options)
        for name, lo, hi in (("learning_rate", 0, None), ("momentum", 0, 1), ("weight_decay", 0, None),
                             ("dropout", 0, 1), ("validation_fraction", 0, 1)):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or v < lo or (hi is not None and v >= hi) or (name == "learning_rate" and v == 0):
                raise ValueError(f"{name} must be a number in [{lo}, {hi if hi is not None else 'inf'}), got {v!r}")
        if self.missing_block not in (None, *MISSING_BLOCKS):
            raise ValueError(f"missing_block must be None or one of {', '.join(map(repr, MISSING_BLOCKS))} "
                             f"(a NeuMiss block in front of the MLP, reading NaN as missing), got {self.missing_block!r}")
        for name in ("batch_size", "max_epochs", "n_iter_no_change", "neumiss_depth"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.track_examples is not False:
            # the shortcut used to build dualsparse.dynamics.ExampleTracker from here, which made
            # train reach up into dynamics; the tracker is an ordinary callback now
            raise ValueError(
                f"track_examples is deprecated and no longer attaches a tracker (got {self.track_examples!r}); "
                "pass the tracker as a callback instead: from dualsparse.dynamics import ExampleTracker; "
                "tracker = ExampleTracker(**options); est.set_params(callbacks=[tracker]); after fit read "
                "tracker.example_stats_ and tracker.epoch_stats_"
            )
        if getattr(algorithm, "needs_example_stats", False) and example_stats_source(self.callbacks) is None:
            raise ValueError(f"algorithm {algorithm!r} removes examples by their forgetting statistics, which the "
                             f"per-example tracker collects: pass callbacks=[ExampleTracker()] "
                             f"(from dualsparse.dynamics import ExampleTracker), or turn the option off")
        return hidden, algorithm

    def _check_X(self, X, reset: bool):
        if reset is False:
            check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=reset, accept_sparse="csr", dtype=np.float32, ensure_all_finite=False)
        if self.missing_block is None:
            _reject_non_finite(X, "X", _MISSING_HINT)
        elif sp.issparse(X):
            raise ValueError(f"missing_block={self.missing_block!r} reads missing values as NaN in dense input (the "
                             "'native-nan' representation); a sparse matrix has no NaN to read: pass the dense "
                             "array, or drop missing_block for the 'observed' CSR input")
        elif np.isinf(X).any():
            raise ValueError("Input X contains infinity; NaN marks a missing value, infinity is not one: "
                             "replace it (e.g. with NaN) first")
        if sp.issparse(X):
            X = sp.csr_matrix(X)
            X.sort_indices()
        return X

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y):
        """Train for up to ``max_epochs`` epochs (from scratch unless ``warm_start``)."""
        return self._fit(X, y, epochs=self.max_epochs, incremental=False, classes=None)

    def partial_fit(self, X, y, classes=None):
        """One epoch on (X, y), keeping everything learned so far (continual / streaming use)."""
        return self._fit(X, y, epochs=1, incremental=True, classes=classes)

    def _fit(self, X, y, epochs, incremental, classes):
        hidden, algorithm = self._validate_params()
        first = not (hasattr(self, "module_") and (incremental or self.warm_start))
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        _reject_non_finite(y, "y", "remove or fill those targets")
        X = self._check_X(X, reset=first)
        if first:
            _warn_if_unscaled(X)
        y = self._encode_y(y, X.shape[0], first, classes, incremental)
        rng = self._rng if not first else check_random_state(self.random_state)
        self._rng = rng
        device = torch.device(self.device)
        if first:
            self.algorithm_ = algorithm
            block = self.missing_block is not None  # NeuMiss: d x d first, then the MLP on [h, mask]
            d = X.shape[1]
            sizes = [2 * d if block else d, *hidden, self._n_outputs]
            shapes = [(d, d)] * block + list(zip(sizes[:-1], sizes[1:]))
            # the densities the network should have; an algorithm whose density changes (GMP,
            # GraNet, SNIP) builds it at its own initial densities and prunes towards these
            targets = layer_densities(shapes, self.distribution, epsilon=self.epsilon if self.sparsity is None else None,
                                      sparsity=self.sparsity) if algorithm.sparse else [1.0] * len(shapes)
            self._target_densities = targets
            initial = algorithm.initial_densities(targets) if algorithm.sparse else [1.0] * len(shapes)
            self.module_ = build_mlp(
                sizes[0], hidden, self._n_outputs, sparse=algorithm.sparse, distribution=self.distribution,
                densities=initial[block:] if algorithm.sparse else None,
                activation=self.activation, dropout=self.dropout, rng=rng, device=device,
            )
            if block:
                neumiss = NeuMissBlock(d, self.neumiss_depth, density=initial[0], sparse=algorithm.sparse,
                                       random_state=derive_seed(rng), device=device)
                self.module_ = nn.Sequential(neumiss, *self.module_.children())
            if algorithm.sparse and self.epsilon is None and self.sparsity is None:
                _warn_if_fully_connected(self, targets)
            self.optimizer_ = self._make_optimizer()
            self.flop_counter_ = FlopCounter(self.module_)
            self.history_ = []
            self.n_iter_ = 0
            self._step = 0
            self._pending_update = None
            self._capture = self._pending_capture = None
        train_index, val_index = self._split(X, y, rng, use_validation=self.early_stopping and not incremental)
        self.train_index_, self.validation_index_ = train_index, val_index
        if first:
            self.algorithm_.set_targets(self._target_densities, horizon=self.max_epochs,
                                        steps_per_epoch=-(-train_index.size // self.batch_size))
            self.algorithm_.prepare(_rows(X, train_index))
        callbacks = list(self.callbacks or [])
        callbacks = CallbackList(callbacks)
        callbacks.on_fit_begin(self, X, y, train_index, val_index)
        torch_seed = derive_seed(rng)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(torch_seed)
            if first and self.algorithm_.updates_at_init:
                self._update_at_init(X, y, train_index, rng, device)
            self._train(X, y, train_index, val_index, epochs, rng, device, callbacks)
        self.flops_ = self.flop_counter_.summary(_rows(X, train_index))
        callbacks.on_fit_end(self)
        return self

    def _train(self, X, y, train_index, val_index, epochs, rng, device, callbacks):
        # a small CSR input is read as dense rows, expanded once (see input_rows); a dense
        # network's FLOPs do not depend on the input, so it simply trains on them
        X_rows = dense_rows(X, self.algorithm_.sparse)
        if X_rows is not None and not self.algorithm_.sparse:
            X, X_rows = X_rows.X, None
        best_score, best_state, stall = -np.inf, None, 0
        y_t = torch.as_tensor(y, device=device)
        loss_fn = self._loss_fn()
        # SGD steps without autograd where the fit allows (see fused_step); None: autograd always
        fused = make_fused_step(self, X if X_rows is None else X_rows.X, loss_fn)
        # whole epochs in one compiled call where the fit allows (see compiled_epoch); callbacks
        # that only read on_batch_end's arguments get every batch after each compiled run
        compiled = CompiledEpoch.make(self, X, y, loss_fn, callbacks, fused, X_rows)
        replay = batch_callbacks(callbacks)[0]
        for _ in range(epochs):
            epoch = self.n_iter_
            t0 = time.perf_counter()
            self._apply_pending_update(rng, callbacks)
            if getattr(self.algorithm_, "needs_example_stats", False):
                train_index = self._keep_examples(epoch, train_index)
            callbacks.on_epoch_begin(self, epoch)
            self.module_.train()
            order = train_index[rng.permutation(train_index.size)]
            total, count = 0.0, 0
            size = self.batch_size
            n_batches = -(-order.size // size)
            # batches captured for a gradient-informed update, and steps followed by an update
            captures, updates = self._update_steps(epoch, n_batches)
            stops = sorted(captures | updates)
            b = 0
            try:
                while b < n_batches:
                    if compiled is not None and (not stops or stops[0] != b):
                        stop = stops[0] if stops else n_batches
                        rows = order[b * size : stop * size]
                        if fused is not None:
                            fused.flush()
                        ran = compiled.run(rows, record=replay)
                        if ran is not None:
                            self._step += stop - b
                            self.flop_counter_.count_rows(X, rows, compiled.first_products)
                            loss_sum, outputs, batch_losses = ran if replay else (ran, None, None)
                            total += loss_sum
                            count += rows.size
                            if replay:
                                for j, start in enumerate(range(0, rows.size, size)):
                                    idx = rows[start : start + size]
                                    out = torch.from_numpy(outputs[start : start + size])
                                    callbacks.on_batch_end(self, epoch, idx, out, y_t[idx], float(batch_losses[j]))
                            b = stop
                            continue
                        compiled = None  # the model left the compiled path's conditions: step from here
                    if stops and stops[0] == b:
                        stops.pop(0)
                    idx = order[b * size : (b + 1) * size]
                    total += self._train_batch(X, y_t, idx, epoch, device, loss_fn, fused, rng, callbacks,
                                               capture=b in captures, update=b in updates, X_rows=X_rows)
                    count += idx.size
                    b += 1
            finally:
                if fused is not None:  # tiled copies (see fused_step) go back into the model
                    fused.flush()
            self.n_iter_ += 1
            logs = {"epoch": epoch, "loss": total / max(count, 1), "time_s": time.perf_counter() - t0}
            if val_index.size:
                logs["validation_score"] = self._validation_score(X, y, val_index, device)
            callbacks.on_epoch_end(self, epoch, logs)
            self.history_.append(logs)
            if self.algorithm_.due(epoch, self._step, True):
                self._pending_update = epoch
                self._pending_capture, self._capture = self._capture, None
            if self.verbose:
                extra = f", validation {logs['validation_score']:.4f}" if "validation_score" in logs else ""
                print(f"epoch {epoch + 1}: loss {logs['loss']:.4f}{extra} ({logs['time_s']:.2f} s)")
            if not np.isfinite(logs["loss"]):
                raise FloatingPointError(
                    f"training diverged at epoch {epoch + 1} (loss {logs['loss']}); lower learning_rate "
                    f"(now {self.learning_rate}) or standardise the inputs"
                )
            if self.early_stopping and val_index.size:
                score = logs["validation_score"]
                if score > best_score + self.tol:
                    best_score, best_state, stall = score, copy.deepcopy(self.module_.state_dict()), 0
                else:
                    stall += 1
                    if stall >= self.n_iter_no_change:
                        break
        else:
            if epochs > 1:  # a fit, not a partial_fit epoch
                self._warn_if_not_converged(self.history_[-epochs:])
        if best_state is not None:
            self._restore_structure(best_state)
            self.module_.load_state_dict(best_state)
            for layer in self.module_.modules():
                if hasattr(layer, "_csc_cache"):
                    layer._csc_cache = None
            self.best_validation_score_ = best_score

    def _warn_if_not_converged(self, logs: list[dict]) -> None:
        """scikit-learn's MLP rule, as its users expect: a fit that used every one of its epochs
        while still improving warns (``ConvergenceWarning``) instead of looking finished. Still
        improving: with early stopping, the validation score had not stalled; without, the training
        loss fell by more than ``tol`` below its best within the last ``n_iter_no_change`` epochs.
        Why: a small sparse network learns slower per epoch (wine, 13-100-3 at sparsity 0.9: 0.90
        training accuracy after the default 100 epochs, 0.99 after 400), and nothing said so."""
        if self.early_stopping and self.validation_index_.size:
            still = True  # the loop ended without n_iter_no_change stalled epochs
        else:
            best, stalled = np.inf, 0
            for entry in logs:
                loss = entry["loss"]
                stalled = stalled + 1 if loss > best - self.tol else 0
                best = min(best, loss)
            still = stalled <= self.n_iter_no_change
        if still:
            warnings.warn(
                f"{type(self).__name__} used all max_epochs={self.max_epochs} epochs and was still improving "
                f"(the {'validation score' if self.early_stopping else 'training loss'} had improved by more than "
                f"tol={self.tol:g} within the last n_iter_no_change={self.n_iter_no_change} epochs); raise "
                f"max_epochs (or learning_rate) for a converged fit",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _restore_structure(self, state: dict) -> None:
        """Give each sparse layer the connections it had in ``state`` (early stopping's best
        epoch) when their number has changed since (pruning, redistribution), so the state loads;
        the optimiser state of connections present in both is carried, that of others zeroed."""
        for name, layer in self.module_.named_modules():
            if not isinstance(layer, SparseLinear):
                continue
            values = state[f"{name}.values" if name else "values"]
            if values.shape == layer.values.shape:
                continue
            prefix = f"{name}." if name else ""
            rows = row_of_each(state[prefix + "row_ptr"].cpu().numpy())
            old = layer.values
            old_position = layer.set_connections(rows, state[prefix + "col_idx"].cpu().numpy(), values)
            remap_state(self.optimizer_, old, layer.values, old_position, n_old=old.shape[0])

    def _update_steps(self, epoch: int, n_batches: int) -> tuple[set, set]:
        """(batches of this epoch to capture, batches after whose step the topology is updated).

        A gradient-informed algorithm gets its ``capture_batches`` last batches before each
        update captured: before a step-scheduled one, and at the end of the epoch before an
        epoch-end one (kept for the update, which runs when the next epoch begins)."""
        algorithm = self.algorithm_
        if not algorithm.evolves:
            return set(), set()
        updates = {b for b in range(n_batches) if algorithm.due(epoch, self._step + b + 1, False)}
        captures: set = set()
        if algorithm.needs_gradient:
            window = max(1, int(algorithm.capture_batches))
            ends = sorted(updates)
            if algorithm.due(epoch, self._step + n_batches, True):
                ends.append(n_batches - 1)
            for end in ends:
                captures.update(range(max(0, end - window + 1), end + 1))
        return captures, updates

    def _update_at_init(self, X, y, train_index, rng, device):
        """One-shot pruning before training (SNIP): one batch's forward and backward, captured,
        no optimiser step; then the algorithm's update."""
        rows = train_index[rng.permutation(train_index.size)[: self.batch_size]]
        xb = _batch(X, rows, device, dense=not self.algorithm_.sparse)
        y_t = torch.as_tensor(y[rows], device=device)
        with LayerIOCapture(self.module_) as cap:
            self._loss_fn()(self.module_(xb), y_t).backward()
        self.optimizer_.zero_grad(set_to_none=True)
        self.initial_update_ = self.algorithm_.update(self.module_, self.optimizer_, 0, 0, rng, cap)

    def _keep_examples(self, epoch: int, train_index: np.ndarray) -> np.ndarray:
        """The training rows left once the algorithm removes examples by their forgetting
        statistics (MEST's data efficiency), read from the per-example tracker."""
        stats = example_stats_source(self.callbacks).example_stats_
        forgetting = stats["forgetting_events"].to_numpy(dtype=np.int64, na_value=0)[train_index]
        learned = ~stats["never_learned"].to_numpy(dtype=bool, na_value=True)[train_index]
        keep = self.algorithm_.examples_to_keep(epoch, forgetting, learned)
        if keep is None:
            return train_index
        self.removed_examples_ = np.sort(train_index[~keep])
        return train_index[keep]

    def _train_batch(self, X, y_t, idx, epoch, device, loss_fn, fused, rng, callbacks, capture=False,
                     update=False, X_rows=None) -> float:
        """One optimiser step on rows ``idx`` (captured for a gradient-informed update, and followed
        by a topology update, where the algorithm asks); returns the batch's summed loss.
        ``X_rows``: a CSR ``X`` read as dense rows (:class:`~.input_rows.DenseRows`; its FLOPs still
        follow X's stored values)."""
        xb = _batch(X if X_rows is None else X_rows.X, idx, device, dense=not self.algorithm_.sparse)
        if fused is not None and capture:
            fused.flush()  # the autograd step below reads the layers' own tensors
        if capture:
            if self._capture is None:
                self._capture = LayerIOCapture(self.module_)
            with self._capture:
                out, loss = self._step_batch(xb, y_t[idx], loss_fn)
        elif fused is not None:
            out, loss = fused(xb, y_t[idx])
        else:
            out, loss = self._step_batch(xb, y_t[idx], loss_fn)
        self._step += 1
        if X_rows is None:
            self.flop_counter_.count_batch(xb, idx.size)
        else:
            self.flop_counter_.count_rows(X, idx, X_rows.first_products(linear_layers(self.module_)[0], idx))
        if fused is not None and fused.live and (update or batch_callbacks(callbacks)[1]):
            fused.flush()  # the callback or the update reads the layers' own tensors
        if callbacks:
            callbacks.on_batch_end(self, epoch, idx, out.detach(), y_t[idx], float(loss))
        if update:
            cap, self._capture = self._capture, None
            info = self.algorithm_.update(self.module_, self.optimizer_, epoch, self._step, rng, cap)
            callbacks.on_topology_update(self, epoch, info)
        return float(loss) * idx.size

    def _apply_pending_update(self, rng, callbacks):
        """Evolve the topology between epochs.

        An epoch-end update is deferred to the start of the next epoch, so a model returned by
        fit never carries freshly regrown, untrained weights (SET's reference code likewise does
        not evolve after its last epoch); partial_fit / warm_start pick the pending update up.
        """
        epoch = getattr(self, "_pending_update", None)
        if epoch is None:
            return
        self._pending_update = None
        cap, self._pending_capture = getattr(self, "_pending_capture", None), None
        t1 = time.perf_counter()
        info = self.algorithm_.update(self.module_, self.optimizer_, epoch, self._step, rng, cap)
        if self.history_:
            self.history_[-1]["evolution_time_s"] = time.perf_counter() - t1
            self.history_[-1]["topology"] = info
        callbacks.on_topology_update(self, epoch, info)

    def _step_batch(self, xb, yb, loss_fn):
        out = self.module_(xb)
        loss = loss_fn(out, yb)
        self.optimizer_.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer_.step()
        return out, loss.detach()

    def _make_optimizer(self):
        params = list(self.module_.parameters())
        # One fused kernel per step instead of several passes over every value (measured: a
        # 24 M-weight SGD step 29 ms instead of 47-64 ms).
        fused = all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in params)
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.learning_rate, momentum=self.momentum,
                                   weight_decay=self.weight_decay, fused=fused)
        return torch.optim.Adam(params, lr=self.learning_rate, weight_decay=self.weight_decay, fused=fused)

    def _split(self, X, y, rng, use_validation):
        n = X.shape[0]
        index = np.arange(n)
        if not use_validation:
            return index, np.empty(0, dtype=np.int64)
        n_val = int(np.ceil(self.validation_fraction * n))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves no training or validation rows for {n} samples")
        stratify = y if self._stratify_ok(y, n_val) else None
        train, val = train_test_split(index, test_size=n_val, random_state=derive_seed(rng), stratify=stratify)
        return np.sort(train), np.sort(val)

    def _stratify_ok(self, y, n_val):
        return False

    @property
    def feature_importances_(self) -> np.ndarray:
        """Input ranking: sum of |w| leaving each input in the first layer, normalised to sum 1."""
        check_is_fitted(self, "module_")
        imp = input_importance(self.module_).double().numpy()
        total = imp.sum()
        return imp / total if total > 0 else imp

    @property
    def density_(self) -> dict:
        """The density the fitted network has, read from its layers (weights only, no biases).

        ``{"overall": live weights / dense weights, "layers": [per-layer density], "nnz": [live
        weights per layer], "dense_weights": [n_in * n_out per layer]}``, input layer first. A
        dense layer (``algorithm="dense"``) counts all its weights as live.
        """
        check_is_fitted(self, "module_")
        layers = linear_layers(self.module_)
        nnz = [int(m.nnz) if isinstance(m, SparseLinear) else int(m.weight.numel()) for m in layers]
        full = [int(m.in_features) * int(m.out_features) for m in layers]
        return {"overall": sum(nnz) / sum(full), "layers": [n / f for n, f in zip(nnz, full)],
                "nnz": nnz, "dense_weights": full}

    # ------------------------------------------------------------------ inference
    def _forward(self, X):
        X = self._check_X(X, reset=False)
        device = torch.device(self.device)
        self.module_.eval()
        outs = []
        with torch.no_grad():
            for start in range(0, X.shape[0], 4096):
                idx = np.arange(start, min(start + 4096, X.shape[0]))
                outs.append(self.module_(_batch(X, idx, device, dense=not self.algorithm_.sparse)).float().cpu())
        return torch.cat(outs).numpy()


class SparseMLPClassifier(ClassifierMixin, _BaseSparseMLP):
    """Multi-layer perceptron classifier with truly sparse, evolving connectivity.

    ``algorithm``: ``"set"`` (Sparse Evolutionary Training), ``"rigl"``, ``"static"`` (sparse, fixed)
    or ``"dense"``; all train through the same loop. After ``fit``, ``flops_`` compares the
    training and inference cost with the equivalent dense network.

    Density. ``epsilon`` (SET's Erdős–Rényi rule, ``distribution="er"``) gives each layer the
    density ε (n_in + n_out) / (n_in n_out), capped at 1 per layer: a layer too small for ε is
    fully connected, as in SET's reference code. ``epsilon=None`` (the default) uses ε = 20 and
    never fails, so the defaults fit any data scikit-learn's MLP fits; on small data every layer
    may come out fully connected, and a sparse algorithm then issues one
    :class:`~dualsparse.sparse.density.DensityWarning` per process and network shape (not one
    per fit, so grid searches and cross-validation stay quiet). An explicit ``epsilon`` that
    leaves no layer sparse (ε >= n_in n_out / (n_in + n_out) for every layer) is an error that
    names the largest ε that would work. ``sparsity`` (fraction of all weights removed, in
    [0, 1), with ``distribution`` "er", "erk" or "uniform") sets a global target instead and
    takes precedence over ``epsilon``.

    Missing values. ``missing_block="neumiss"`` puts a NeuMiss block
    (:class:`~dualsparse.train.neumiss.NeuMissBlock`, ``neumiss_depth`` Neumann steps) in front
    of the MLP: X may then hold NaN for missing values (the ``native-nan`` representation), and
    the block's ``W`` is one more sparse layer (first in ``density_``). Without it X must be
    complete: impute, or pass the ``observed`` CSR input.

    Fitted attributes include ``density_``, the density the network has: ``{"overall": live
    weights / dense weights, "layers": [density per layer], "nnz": [live weights per layer],
    "dense_weights": [n_in * n_out per layer]}``, input layer first, weights only (no biases).
    """

    def _loss_fn(self):
        return torch.nn.CrossEntropyLoss()

    def _encode_y(self, y, n, first, classes, incremental):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; pass a 1-D array of labels (e.g. y.ravel())", DataConversionWarning, stacklevel=3)
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per row), got shape {y.shape}")
        if y.shape[0] != n:
            raise ValueError(f"X has {n} rows but y has {y.shape[0]} labels; pass one label per row")
        check_classification_targets(y)
        if first:
            if incremental:
                if classes is None:
                    raise ValueError("classes must be passed on the first call to partial_fit (all labels that will ever appear)")
                self.classes_ = np.unique(np.asarray(classes))
            else:
                self.classes_ = np.unique(y)
            if self.classes_.size < 2 and not incremental:
                raise ValueError(
                    f"the training data has only one class ({self.classes_[0]!r}); a classifier needs at least 2 classes"
                )
            self._n_outputs = max(2, self.classes_.size)
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"y contains labels {np.unique(y[unknown])[:10].tolist()} not in classes {self.classes_.tolist()}; "
                "pass every label to the first partial_fit via classes=..."
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _stratify_ok(self, y, n_val):
        counts = np.bincount(y)
        counts = counts[counts > 0]
        return counts.min() >= 2 and n_val >= counts.size

    def _validation_score(self, X, y, val_index, device):
        return float((self._predict_index(X, val_index, device) == y[val_index]).mean())

    def _predict_index(self, X, index, device):
        was_training = self.module_.training
        self.module_.eval()
        with torch.no_grad():
            out = self.module_(_batch(X, index, device, dense=not self.algorithm_.sparse))
        self.module_.train(was_training)
        return out.argmax(1).cpu().numpy()

    def _logits(self, X):
        check_is_fitted(self, "module_")
        return self._forward(X)[:, : self.classes_.size]

    def decision_function(self, X):
        """Logits, (n_samples, n_classes); for two classes the margin of the second, (n_samples,)."""
        logits = self._logits(X)
        return logits[:, 1] - logits[:, 0] if self.classes_.size == 2 else logits

    def predict_proba(self, X):
        logits = self._logits(X)
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]


class SparseMLPRegressor(RegressorMixin, _BaseSparseMLP):
    """Multi-layer perceptron regressor with truly sparse, evolving connectivity (squared loss).

    Targets are standardised internally (mean and scale from the first fit) and mapped back by
    ``predict``, so one learning rate suits targets of any scale. Density (``epsilon``,
    ``sparsity``, the ``DensityWarning``) and ``density_`` work as for
    :class:`SparseMLPClassifier`.
    """

    def _loss_fn(self):
        return torch.nn.MSELoss()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _encode_y(self, y, n, first, classes, incremental):
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1 if first else self._y_1d
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        if y2.ndim != 2:
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        if y2.shape[0] != n:
            raise ValueError(f"X has {n} rows but y has {y2.shape[0]} targets; pass one target per row")
        if first:
            self._n_outputs = y2.shape[1]
            self._y_mean = y2.mean(axis=0)
            scale = y2.std(axis=0)
            self._y_scale = np.where(scale > 0, scale, 1.0)
        elif y2.shape[1] != self._n_outputs:
            raise ValueError(f"y has {y2.shape[1]} targets per row but the model was fit with {self._n_outputs}")
        return ((y2 - self._y_mean) / self._y_scale).astype(np.float32)

    def _validation_score(self, X, y, val_index, device):
        self.module_.eval()
        with torch.no_grad():
            pred = self.module_(_batch(X, val_index, device, dense=not self.algorithm_.sparse)).cpu().numpy()
        self.module_.train()
        resid = ((pred - y[val_index]) ** 2).sum()
        total = ((y[val_index] - y[val_index].mean(0)) ** 2).sum()
        return float(1 - resid / total) if total > 0 else float(-resid)

    def predict(self, X):
        check_is_fitted(self, "module_")
        pred = self._forward(X).astype(np.float64) * self._y_scale + self._y_mean
        return pred.ravel() if self._y_1d else pred


# ---------------------------------------------------------------------- helpers
# (algorithm, layer shapes) already warned about in this process: see _warn_if_fully_connected
_WARNED_FULLY_CONNECTED: set = set()


def _warn_if_fully_connected(est, targets):
    """A ``DensityWarning`` when the default ε left a sparse algorithm no sparse layer.

    Called once per network built (a fit from scratch), never for ``partial_fit`` / ``warm_start``
    continuations, and shown once per process for each algorithm and network shape: the
    condition belongs to the configuration and the data's shape, not to one fit, so a grid
    search, a cross-validation or scikit-learn's check battery (which re-fit clones, each under
    fresh warning filters that defeat Python's own once-per-place registry) report it once.
    """
    if min(targets) < 1.0:
        return
    shapes = tuple((m.in_features, m.out_features) for m in linear_layers(est.module_))
    key = (repr(est.algorithm), shapes)
    if key in _WARNED_FULLY_CONNECTED:
        return
    _WARNED_FULLY_CONNECTED.add(key)
    arch = "-".join(str(n) for n in [shapes[0][0], *(o for _, o in shapes)])
    warnings.warn(
        f"every layer of the {arch} network is fully connected at the default epsilon "
        f"(SET's {DEFAULT_EPSILON:g}; a layer n_in x n_out is sparse only for epsilon < n_in n_out / "
        f"(n_in + n_out), here at most {sparse_epsilon_limit(shapes):.4g}), so algorithm={est.algorithm!r} "
        f"trains a dense network. For a sparse one give sparsity=... (e.g. 0.9) or a smaller epsilon; "
        f"algorithm='dense' trains this network without sparse machinery. Shown once per network shape.",
        DensityWarning,
        stacklevel=4,
    )


def _make_algorithm(algorithm, zeta, options=None):
    """The algorithm by name with its ``algorithm_options``; the estimator's ``zeta`` reaches every
    registered algorithm whose constructor takes it (unless the options give their own)."""
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"algorithm_options must be a dict of the algorithm's options (e.g. {{'gamma': 0.5}}) or None, "
                         f"got {options!r}")
    options = dict(options or {})
    if not isinstance(algorithm, str):
        if options:
            raise ValueError("algorithm_options apply to an algorithm given by name; an algorithm instance "
                             "already has its options: set them when constructing it")
        return make_algorithm(algorithm)
    if algorithm_info(algorithm).accepts("zeta"):
        options.setdefault("zeta", zeta)
    return make_algorithm(algorithm, **options)


class ScaleWarning(UserWarning):
    """Input features far from unit scale: silence it with
    ``warnings.filterwarnings("ignore", category=ScaleWarning)``."""


#: column standard deviation above which a fit warns (Breast Cancer's raw 'worst area': 569;
#: pixel intensities 0-255: up to ~110; digits' 0-16: at most ~6.5)
UNSCALED_STD = 50.0


def _warn_if_unscaled(X) -> None:
    """Warn when dense input columns are far from unit scale.

    Why: the layers are initialised for unit-scale inputs; on raw Breast Cancer features (first
    400 rows) the default classifier reached 0.80 / 0.94 / 0.91 test accuracy for seeds 0-2
    (scikit-learn's MLPClassifier 0.96), 0.99 once standardised. CSR input is left alone: its
    zeros mean "absent", and centring would fill them in.
    """
    if sp.issparse(X) or X.shape[0] < 2:
        return
    sample = X[: min(X.shape[0], 2000)]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        std = np.nan_to_num(np.nanstd(sample, axis=0, dtype=np.float64), nan=0.0)
    j = int(np.argmax(std))
    if std[j] > UNSCALED_STD:
        warnings.warn(
            f"input features are far from unit scale (column {j} has standard deviation {std[j]:.3g}); "
            f"MLPs, sparse or dense, train unstably on raw scales: standardise X first "
            f"(sklearn.preprocessing.StandardScaler, e.g. in a Pipeline)",
            ScaleWarning,
            stacklevel=4,
        )


def _reject_non_finite(a, name, hint):
    """A clear error for NaN/inf, naming the representation that handles missing values."""
    if sp.issparse(a):
        data = a.tocsr().data
    elif hasattr(a, "to_numpy"):
        try:
            data = a.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            return
    else:
        try:
            data = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError):
            return
    if data.size and not np.isfinite(data).all():
        kind = "NaN" if np.isnan(data).any() else "infinity"
        raise ValueError(f"Input {name} contains {kind}. {hint}.")


def _rows(X, index: np.ndarray):
    """Rows ``index`` of X; X itself when they are all its rows in order (no copy: a fit without
    a validation split trains on every row)."""
    n = X.shape[0]
    if index.size == n and (n == 0 or (index[0] == 0 and index[-1] == n - 1 and np.all(np.diff(index) == 1))):
        return X
    return X[index]


def _batch(X, idx, device, dense: bool):
    """Rows ``idx`` of X as a torch tensor: dense, or ``sparse_csr`` for sparse layers."""
    if sp.issparse(X):
        sub = X[idx]
        if dense:
            return torch.from_numpy(sub.toarray()).to(device)
        return torch.sparse_csr_tensor(
            torch.from_numpy(sub.indptr.astype(np.int64)),
            torch.from_numpy(sub.indices.astype(np.int64)),
            torch.from_numpy(sub.data),
            size=sub.shape,
        ).to(device)
    return torch.from_numpy(X[idx]).to(device)
