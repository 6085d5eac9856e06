"""The models an experiment can run, declared once: every registered topology algorithm, and baselines.

* Every algorithm registered in :mod:`dualsparse.dst` (built-in or a user's own, added with
  :func:`dualsparse.dst.register_algorithm`) is a model of the same name: a
  :class:`dualsparse.SparseMLPClassifier` / :class:`~dualsparse.SparseMLPRegressor` with that
  ``algorithm``, its display name and sparsity read from :func:`dualsparse.dst.algorithm_info`.
  Shared settings come from the config's ``[mlp]`` table, per-model ones from ``[models.<name>]``;
  any estimator parameter not in :data:`MLP_PARAM_EXCLUDED` may be set (``algorithm_options``, for
  one, where the estimator has it).
* ``hgb``: scikit-learn HistGradientBoostingClassifier/Regressor (takes NaN natively).
* ``logreg``: LogisticRegression (classification); ``ridge``: Ridge (regression).
* ``sklearn-mlp``: scikit-learn MLPClassifier/MLPRegressor (dense, needs complete inputs).

Configs, ``--dry-run`` and reports ask :func:`model_info` what a model is (display name, family,
sparse, what inputs and tasks it takes); nothing else lists model names. Baselines get
scikit-learn's defaults except where their :class:`Baseline` entry says otherwise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor

from ..dst import ALGORITHMS, algorithm_info, algorithm_names
from ..sparse.density import layer_densities
from ..train import SparseMLPClassifier, SparseMLPRegressor

TASKS = ("classification", "regression")

# parameters of the dualsparse MLP that a config may not set, and why
MLP_PARAM_EXCLUDED = {
    "callbacks": "experiments attach their own (progress bars)",
    "random_state": "it is derived from [experiment] seeds",
    "sparsity": "give sparsity levels as [models] sparsities = [...]",
    "epsilon": "give epsilon levels as [models] epsilons = [...]",
    "algorithm": "the model name is the algorithm (any name of dualsparse.dst.algorithm_names())",
    "verbose": "progress is shown by the runner (use --quiet to hide it)",
    "warm_start": "every run trains from scratch",
    "track_examples": "add a [dynamics] section: the runner attaches the tracker and stores its statistics",
}


@dataclass(frozen=True)
class ModelInfo:
    """What a model is, without building it."""

    name: str
    display_name: str  # what reports print
    family: str  # "mlp" (dualsparse) or "baseline"
    sparse: bool
    accepts_nan: bool
    accepts_sparse: bool
    tasks: tuple
    summary: str = ""

    def supports(self, task: str) -> bool:
        return task in self.tasks


@dataclass(frozen=True)
class Baseline:
    """A scikit-learn baseline: its facts, its estimator class per task, and the defaults experiments give it."""

    info: ModelInfo
    classes: dict  # task -> estimator class
    defaults: dict = field(default_factory=dict)
    density: float | None = 1.0  # share of weights live (dense models: 1; None: a model without weights)


_BASELINES = {
    "hgb": Baseline(ModelInfo("hgb", "HistGradientBoosting", "baseline", False, True, False, TASKS,
                              "gradient-boosted trees; takes NaN natively"),
                    {"classification": HistGradientBoostingClassifier, "regression": HistGradientBoostingRegressor},
                    density=None),
    "logreg": Baseline(ModelInfo("logreg", "logistic regression", "baseline", False, False, True, ("classification",)),
                       {"classification": LogisticRegression}, {"max_iter": 1000}),
    "ridge": Baseline(ModelInfo("ridge", "ridge regression", "baseline", False, False, True, ("regression",)),
                      {"regression": Ridge}),
    "sklearn-mlp": Baseline(ModelInfo("sklearn-mlp", "sklearn MLP", "baseline", False, False, True, TASKS,
                                      "scikit-learn's dense MLP"),
                            {"classification": MLPClassifier, "regression": MLPRegressor}),
}


def list_models() -> list[str]:
    """Every model name, in reading order: the registered algorithms (registration order), then the baselines."""
    return [*algorithm_names(), *_BASELINES]


def mlp_models(sparse: bool | None = None) -> list[str]:
    """The dualsparse MLP models (only the sparse or only the dense ones when ``sparse`` is given)."""
    return [n for n in algorithm_names() if sparse is None or algorithm_info(n).sparse == sparse]


def model_order(name: str) -> int:
    """Position of a model in reading order (unknown names last)."""
    names = list_models()
    return names.index(name) if name in names else len(names)


def model_info(name: str) -> ModelInfo:
    if name in ALGORITHMS:
        return _mlp_info(name, ALGORITHMS[name])
    if name in _BASELINES:
        return _BASELINES[name].info
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")


@functools.lru_cache(maxsize=None)
def _mlp_info(name: str, cls: type) -> ModelInfo:  # keyed by the class: a re-registered name is read afresh
    a = algorithm_info(cls)
    return ModelInfo(name, a.display_name, "mlp", a.sparse, False, True, TASKS, a.summary)


#: MLP parameters that only mean something on input with NaN for missing values
NAN_ONLY_PARAMS = ("missing_block", "neumiss_depth")


def params_on(name: str, params: dict, takes_nan_input: bool) -> dict | None:
    """The parameters model ``name`` runs with on a representation (``takes_nan_input``: one whose
    output keeps NaN for missing values), or None when it cannot take that representation.

    A dualsparse MLP takes NaN input only with a ``missing_block`` (NeuMiss); on the other
    representations it runs without the block, so one config compares both (and those runs keep
    the keys they have without it)."""
    info = model_info(name)
    block = info.family == "mlp" and params.get("missing_block") is not None
    if takes_nan_input:
        return params if info.accepts_nan or block else None
    if block:
        return {k: v for k, v in params.items() if k not in NAN_ONLY_PARAMS}
    return params


def display_name(name: str) -> str:
    """What reports call a model (its own name if it is not registered any more)."""
    try:
        return model_info(name).display_name
    except ValueError:
        return name


def mlp_param_names() -> list[str]:
    """Every parameter of the dualsparse MLP estimator a config may set."""
    return [p for p in SparseMLPClassifier().get_params() if p not in MLP_PARAM_EXCLUDED]


def baseline_param_names(name: str) -> list[str]:
    names = set()
    for cls in _BASELINES[name].classes.values():
        names |= set(cls().get_params())
    names.discard("random_state")
    return sorted(names)


def param_names(name: str) -> list[str]:
    """The parameters ``[models.<name>]`` may set."""
    return mlp_param_names() if model_info(name).family == "mlp" else baseline_param_names(name)


def _tuples(kwargs: dict) -> dict:
    if "hidden_layer_sizes" in kwargs and isinstance(kwargs["hidden_layer_sizes"], list):
        kwargs["hidden_layer_sizes"] = tuple(kwargs["hidden_layer_sizes"])
    return kwargs


def make_estimator(name: str, task: str, params: dict, sparsity=None, epsilon=None, random_state=None,
                   callbacks=None):
    """A fresh, unfitted estimator for one run.

    For an MLP every entry of ``params`` is an estimator parameter (so ``algorithm_options``, when
    the estimator takes it, reaches the algorithm's constructor untouched).
    """
    info = model_info(name)
    if not info.supports(task):
        raise ValueError(f"model {name!r} does not support {task} (it supports {', '.join(info.tasks)})")
    if info.family == "mlp":
        kwargs = _tuples(dict(params))
        if info.sparse:
            if sparsity is not None:
                kwargs["sparsity"] = sparsity
            elif epsilon is not None:
                kwargs["epsilon"] = epsilon
        cls = SparseMLPClassifier if task == "classification" else SparseMLPRegressor
        return cls(algorithm=name, random_state=random_state, callbacks=callbacks, **kwargs)
    baseline = _BASELINES[name]
    cls = baseline.classes[task]
    kwargs = _tuples({**baseline.defaults, **params})
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
    hidden = est.hidden_layer_sizes
    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    sizes = [int(n_in), *map(int, hidden), 2]
    shapes = list(zip(sizes[:-1], sizes[1:]))
    if kind == "sparsity":
        layer_densities(shapes, est.distribution, sparsity=value)
    elif kind == "epsilon":
        layer_densities(shapes, est.distribution, epsilon=value)


def baseline_density(name: str) -> float | None:
    """What a baseline's run stores as density: 1.0 for the dense ones, None for trees."""
    return _BASELINES[name].density


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
