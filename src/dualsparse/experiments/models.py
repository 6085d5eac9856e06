"""The models an experiment can run: dualsparse MLPs (one per topology algorithm) and baselines.

* ``dense``, ``static``, ``set``, ``rigl``: :class:`dualsparse.SparseMLPClassifier` /
  :class:`~dualsparse.SparseMLPRegressor` with that ``algorithm``; shared settings from the
  config's ``[mlp]`` table, per-model ones from ``[models.<name>]``.
* ``hgb``: scikit-learn HistGradientBoostingClassifier/Regressor (takes NaN natively).
* ``logreg``: LogisticRegression (classification); ``ridge``: Ridge (regression).
* ``sklearn-mlp``: scikit-learn MLPClassifier/MLPRegressor (dense, needs complete inputs).

Baselines get scikit-learn's defaults except where noted in ``BASELINE_DEFAULTS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dst.registry import ALGORITHMS
from ..train import SparseMLPClassifier, SparseMLPRegressor

TASKS = ("classification", "regression")

# parameters of the dualsparse MLP that a config may not set, and why
MLP_PARAM_EXCLUDED = {
    "callbacks": "experiments attach their own (progress bars)",
    "random_state": "it is derived from [experiment] seeds",
    "sparsity": "give sparsity levels as [models] sparsities = [...]",
    "epsilon": "give epsilon levels as [models] epsilons = [...]",
    "algorithm": "the model name is the algorithm (models dense, static, set, rigl)",
    "verbose": "progress is shown by the runner (use --quiet to hide it)",
    "warm_start": "every run trains from scratch",
    "track_examples": "add a [dynamics] section: the runner attaches the tracker and stores its statistics",
}

BASELINE_DEFAULTS = {
    "logreg": {"max_iter": 1000},
    "ridge": {},
    "hgb": {},
    "sklearn-mlp": {},
}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str  # "mlp" (dualsparse) or "baseline"
    sparse: bool
    accepts_nan: bool
    accepts_sparse: bool
    tasks: tuple

    def supports(self, task: str) -> bool:
        return task in self.tasks


def _mlp_info(name: str) -> ModelInfo:
    algorithm = ALGORITHMS[name]
    return ModelInfo(name, "mlp", bool(getattr(algorithm, "sparse", True)), False, True, TASKS)


_BASELINES = {
    "hgb": ModelInfo("hgb", "baseline", False, True, False, TASKS),
    "logreg": ModelInfo("logreg", "baseline", False, False, True, ("classification",)),
    "ridge": ModelInfo("ridge", "baseline", False, False, True, ("regression",)),
    "sklearn-mlp": ModelInfo("sklearn-mlp", "baseline", False, False, True, TASKS),
}


def list_models() -> list[str]:
    return [*sorted(ALGORITHMS, key=lambda n: ("dense", "static", "set", "rigl").index(n) if n in ("dense", "static", "set", "rigl") else 9), *_BASELINES]


def model_info(name: str) -> ModelInfo:
    if name in ALGORITHMS:
        return _mlp_info(name)
    if name in _BASELINES:
        return _BASELINES[name]
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")


def mlp_param_names() -> list[str]:
    return [p for p in SparseMLPClassifier().get_params() if p not in MLP_PARAM_EXCLUDED]


def _baseline_class(name: str, task: str):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    table = {
        ("hgb", "classification"): HistGradientBoostingClassifier,
        ("hgb", "regression"): HistGradientBoostingRegressor,
        ("logreg", "classification"): LogisticRegression,
        ("ridge", "regression"): Ridge,
        ("sklearn-mlp", "classification"): MLPClassifier,
        ("sklearn-mlp", "regression"): MLPRegressor,
    }
    return table[(name, task)]


def baseline_param_names(name: str) -> list[str]:
    names = set()
    for task in _BASELINES[name].tasks:
        names |= set(_baseline_class(name, task)().get_params())
    names.discard("random_state")
    return sorted(names)


def make_estimator(name: str, task: str, params: dict, sparsity=None, epsilon=None, random_state=None,
                   callbacks=None):
    """A fresh, unfitted estimator for one run."""
    info = model_info(name)
    if not info.supports(task):
        raise ValueError(f"model {name!r} does not support {task} (it supports {', '.join(info.tasks)})")
    if info.family == "mlp":
        kwargs = dict(params)
        if "hidden_layer_sizes" in kwargs and isinstance(kwargs["hidden_layer_sizes"], list):
            kwargs["hidden_layer_sizes"] = tuple(kwargs["hidden_layer_sizes"])
        if info.sparse:
            if sparsity is not None:
                kwargs["sparsity"] = sparsity
            elif epsilon is not None:
                kwargs["epsilon"] = epsilon
        cls = SparseMLPClassifier if task == "classification" else SparseMLPRegressor
        return cls(algorithm=name, random_state=random_state, callbacks=callbacks, **kwargs)
    cls = _baseline_class(name, task)
    kwargs = {**BASELINE_DEFAULTS.get(name, {}), **params}
    if "hidden_layer_sizes" in kwargs and isinstance(kwargs["hidden_layer_sizes"], list):
        kwargs["hidden_layer_sizes"] = tuple(kwargs["hidden_layer_sizes"])
    if "random_state" in cls().get_params():
        kwargs["random_state"] = random_state
    return cls(**kwargs)


def check_model_params(name: str, task: str, params: dict, levels, n_features=(10,)) -> list[str]:
    """Problems with a model's parameter values (empty if none), found without fitting.

    ``n_features``: input widths the model will see (to check that layer densities exist).
    """
    problems = []
    info = model_info(name)
    try:
        level_list = levels or [(None, None)]
        for kind, value in level_list:
            est = make_estimator(name, task, params, sparsity=value if kind == "sparsity" else None,
                                 epsilon=value if kind == "epsilon" else None, random_state=0)
            if info.family == "mlp":
                est._validate_params()
                if info.sparse:
                    for n in n_features:
                        _check_density(est, kind, value, n)
            elif hasattr(est, "_validate_params"):
                est._validate_params()
    except Exception as err:  # noqa: BLE001 - turned into a config problem
        problems.append(str(err).strip().splitlines()[0] if str(err).strip() else repr(err))
    return problems


def _check_density(est, kind, value, n_in):
    """Compute the layer densities for an input width, to surface impossible epsilons early."""
    from ..sparse.density import layer_densities

    hidden = est.hidden_layer_sizes
    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    sizes = [int(n_in), *map(int, hidden), 2]
    shapes = list(zip(sizes[:-1], sizes[1:]))
    if kind == "sparsity":
        layer_densities(shapes, est.distribution, sparsity=value)
    elif kind == "epsilon":
        layer_densities(shapes, est.distribution, epsilon=value)


def baseline_flops(name: str, est, n_features: int, n_train: int) -> dict:
    """Analytic FLOPs of the dense baselines, with the convention of dualsparse.sparse.flops.

    * sklearn-mlp: a dense MLP: per sample forward 2 x in x out + out per layer, backward
      2 x products (first layer) or 4 x products; times the samples seen (n_iter_ x n_train).
    * logreg / ridge: one linear layer; logreg's lbfgs iterations each cost about one forward
      and one backward pass over the training set (line-search evaluations are not counted),
      ridge is counted as one pass (its direct solver's cost is not multiply-adds of this kind).
    * hgb: trees compare rather than multiply; no FLOP count (None).
    Dense equivalents equal the model's own count: these models are dense.
    """
    if name == "sklearn-mlp":
        sizes = [n_features, *[int(c.shape[1]) for c in est.coefs_]]
        forward = sum(2 * a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        backward = sum(2 * a * b * (1 if i == 0 else 2) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))
        seen = int(getattr(est, "n_iter_", 1)) * n_train
        train = float((forward + backward) * seen)
        return {"train": train, "train_dense": train, "inference_per_sample": float(forward),
                "inference_per_sample_dense": float(forward)}
    if name in ("logreg", "ridge"):
        coef = np.atleast_2d(est.coef_)
        n_out = coef.shape[0]
        forward = 2 * n_features * n_out + n_out
        iters = int(np.max(np.atleast_1d(getattr(est, "n_iter_", 1)) if getattr(est, "n_iter_", None) is not None else 1))
        train = float((forward + 2 * n_features * n_out) * n_train * max(iters, 1))
        return {"train": train, "train_dense": train, "inference_per_sample": float(forward),
                "inference_per_sample_dense": float(forward)}
    return {"train": None, "train_dense": None, "inference_per_sample": None, "inference_per_sample_dense": None}
