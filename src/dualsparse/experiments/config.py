"""Experiment configs: a TOML file describing a grid of runs, checked before anything runs.

The schema is documented for users in ``docs/experiments.md``. In short, a config has the
sections ``[experiment]``, ``[data]``, ``[split]``, ``[missingness]``, ``[representations]``,
``[models]`` (with optional per-model tables ``[models.<name>]``) and ``[mlp]`` (settings shared by
every dualsparse MLP), and optionally the section of a study kind (``[dynamics]``: per-example
tracking and subset runs; ``[continual]``: a continual-learning study instead of the grid; see
:mod:`.study`). The grid is the Cartesian product

    datasets x mechanisms x rates x representations x models x (sparsities | epsilons) x seeds
    (x folds with k-fold cross-validation)

where a model with its own ``representations`` list uses that list instead of the global one,
sparsities/epsilons apply to sparse models only, and rate 0 (no amputation) is run once for all
mechanisms (its mechanism is recorded as ``"none"``).

Validation runs in two steps and collects every problem it finds into one :class:`ConfigError`,
each naming the section and key, what is wrong and the valid choices. First the static checks,
one validator per section (``check_experiment``, ``check_data``, ``check_split``,
``check_missingness``, ``check_models``, ``check_mlp``, ``check_model_tables``,
``check_representations``, then each active study kind's own); then the data trials
(:func:`data_trials`): loading the datasets, trial amputations at the lowest and highest rates, fitting
every representation on a slice of every dataset, each model's parameters for the tasks and
input widths it will meet, and the study kinds' checks that need the data (split feasibility for
the grid). Nothing runs before both pass.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .. import data as ds_data
from .checks import (Problems, fraction_key, is_int, number_list, str_list, table_of_tables,
                     unknown)
from .models import (MLP_PARAM_EXCLUDED, ModelInfo, check_model_params, list_models, mlp_models, mlp_param_names,
                     model_info, param_names, params_on)
from .record import RunSpec
from .seeding import run_key
from .study import ConfigContext, study_kinds

SPLIT_METHODS = ("holdout", "kfold")
APPLY_TO = ("train", "both")
DEFAULT_MECHANISMS = ("mcar", "mar", "mnar")
NAN_REPRESENTATIONS = ("native-nan",)  # representations whose output keeps NaN for missing values

SHARED_SECTIONS = ("experiment", "data", "split", "missingness", "representations", "models", "mlp")
_KEYS = {
    "experiment": ("name", "description", "seeds"),
    "data": ("datasets", "options"),
    "split": ("method", "test_size", "validation_size", "folds", "stratify"),
    "missingness": ("mechanisms", "rates", "apply_to", "per_feature", "options"),
    "representations": ("names", "options"),
    "models": ("names", "sparsities", "epsilons"),  # plus one table per model name
}
_SPLIT_DEFAULTS = {"method": "holdout", "test_size": 0.25, "validation_size": 0.2, "folds": 5, "stratify": True}

__all__ = ["ConfigError", "ExperimentConfig", "RunSpec", "describe", "load_config", "loads_config", "run_key",
           "validate_config"]


class ConfigError(ValueError):
    """A config that cannot run; the message lists every problem found."""

    def __init__(self, problems, source: str = "config"):
        self.problems = list(problems) if not isinstance(problems, str) else [problems]
        self.source = source
        if len(self.problems) == 1:
            msg = f"{source}: {self.problems[0]}"
        else:
            msg = f"{source}: {len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(msg)


# ---------------------------------------------------------------------- the validated config
@dataclass
class ExperimentConfig:
    """A validated config; :meth:`runs` expands it into the list of runs."""

    name: str
    description: str
    seeds: list[int]
    datasets: list[str]
    dataset_options: dict
    dataset_tasks: dict
    split: dict
    mechanisms: list[str]
    rates: list[float]
    apply_to: str
    per_feature: bool
    mechanism_options: dict
    representations: list[str]
    representation_options: dict
    models: list[str]
    sparsities: list[float] | None
    epsilons: list[float] | None
    mlp: dict
    model_options: dict  # model -> params (without "representations")
    model_representations: dict  # model -> list of representations (override of the global list)
    raw: dict = field(default_factory=dict, repr=False)
    source: str = "config"
    skipped: list[str] = field(default_factory=list, repr=False)
    studies: dict = field(default_factory=dict)  # study section -> its normalised settings

    @property
    def dynamics(self) -> dict | None:
        """The normalised ``[dynamics]`` section (None without one)."""
        return self.studies.get("dynamics")

    @property
    def continual(self) -> dict | None:
        """The normalised ``[continual]`` section (None without one)."""
        return self.studies.get("continual")

    def active_kinds(self) -> list:
        return active_kinds(self.studies)

    def runs(self) -> list[RunSpec]:
        """Every run, in a stable order, each once: each active study kind expands the runs before it
        (the grid first, unless a kind replaces it)."""
        runs: list[RunSpec] = []
        for kind in self.active_kinds():
            runs = kind.expand(self, self.studies.get(kind.section), runs)
        return runs


def active_kinds(sections) -> list:
    """The study kinds a config with these study ``sections`` uses, in registration order."""
    kinds = [k for k in study_kinds() if k.section is None or k.section in sections]
    if any(k.replaces_grid for k in kinds):
        kinds = [k for k in kinds if k.section is not None]
    return kinds


def model_params(cfg: ExperimentConfig, model: str) -> dict:
    """A model's parameters: ``[mlp]`` (for dualsparse MLPs) under ``[models.<name>]``, keys sorted."""
    info = model_info(model)
    base = dict(cfg.mlp) if info.family == "mlp" else {}
    base.update(cfg.model_options.get(model, {}))
    return dict(sorted(base.items()))


def sparsity_levels(cfg: ExperimentConfig, info: ModelInfo) -> list[tuple]:
    """(sparsity, epsilon) pairs a model runs at: one per level for sparse models, (None, None) otherwise."""
    if not info.sparse:
        return [(None, None)]
    if cfg.sparsities is not None:
        return [(float(s), None) for s in cfg.sparsities]
    return [(None, float(e)) for e in cfg.epsilons]


# ---------------------------------------------------------------------- loading
def load_config(path) -> ExperimentConfig:
    """Read and validate a TOML config file; raises ConfigError (or FileNotFoundError)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"config file not found: {str(path)!r}; pass the path of a TOML file "
            "(see examples/quick.toml and docs/experiments.md)"
        )
    if path.is_dir():
        raise ConfigError(f"{str(path)!r} is a folder; pass the path of a TOML config file", str(path))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}", str(path)) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"not a text file ({err})", str(path)) from None
    return validate_config(raw, source=str(path), default_name=path.stem, base_dir=path.parent)


def loads_config(text: str, source: str = "config", default_name: str = "experiment", base_dir=None) -> ExperimentConfig:
    """Validate a config given as TOML text."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}", source) from None
    return validate_config(raw, source=source, default_name=default_name, base_dir=base_dir)


# ---------------------------------------------------------------------- validation: the driver
def validate_config(raw: dict, source: str = "config", default_name: str = "experiment", base_dir=None) -> ExperimentConfig:
    """Check a parsed config and return an :class:`ExperimentConfig`; raise ConfigError otherwise."""
    problems = Problems()
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a TOML document of tables", source)
    kinds = {k.section: k for k in study_kinds() if k.section}
    problems.unknown_keys("the config (top-level sections)", raw, (*SHARED_SECTIONS, *kinds))
    sections = {}
    for name in SHARED_SECTIONS:
        table = raw.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"[{name}] must be a table (a [{name}] section), got {type(table).__name__}")
            table = {}
        sections[name] = table
    for name in ("experiment", "data", "split", "missingness", "representations"):
        problems.unknown_keys(f"[{name}]", sections[name], _KEYS[name])

    # step 1: the static checks, section by section
    exp_name, description, seeds = check_experiment(sections["experiment"], default_name, problems)
    datasets, dataset_options = check_data(sections["data"], base_dir, problems)
    split = check_split(sections["split"], problems)
    miss = check_missingness(sections["missingness"], problems)
    missingness_ok = not problems.mention("[missingness]")
    models, sparsities, epsilons = check_models(sections["models"], problems)
    mlp = check_mlp(sections["mlp"], problems)
    model_options, model_reps = check_model_tables(sections["models"], models, problems)
    representations, rep_options, used_reps = check_representations(sections["representations"], models, model_reps,
                                                                     miss["rates"], problems)
    params_of = {m: {**(mlp if model_info(m).family == "mlp" else {}), **model_options.get(m, {})} for m in models}
    ctx = ConfigContext(raw=raw, models=models, model_params=params_of, sparsities=sparsities, epsilons=epsilons,
                        split=split)
    active = active_kinds({s for s in kinds if s in raw})
    studies = {k.section: k.validate(raw[k.section], ctx, problems) for k in active if k.section}

    # step 2: the data trials
    data_trials(ctx, datasets, dataset_options, miss if missingness_ok else None, rep_options, used_reps,
                sparsities, epsilons, problems)
    for kind in active:
        kind.check_data(studies.get(kind.section), ctx, problems)

    if problems:
        raise ConfigError(problems, source)

    cfg = ExperimentConfig(
        name=exp_name.strip(), description=description, seeds=seeds,
        datasets=list(datasets), dataset_options=dataset_options, dataset_tasks=ctx.dataset_tasks,
        split=split, mechanisms=miss["mechanisms"], rates=miss["rates"], apply_to=miss["apply_to"],
        per_feature=miss["per_feature"],
        mechanism_options={m: miss["options"].get(m, {}) for m in miss["mechanisms"]},
        representations=representations, representation_options=rep_options,
        models=models, sparsities=sparsities, epsilons=epsilons,
        mlp=_normalise_params(mlp), model_options={m: _normalise_params(o) for m, o in model_options.items()},
        model_representations=model_reps, raw=raw, source=source, studies=studies,
    )
    cfg.skipped = _skipped_combinations(cfg)
    if not cfg.runs():
        detail = f" ({'; '.join(cfg.skipped)})" if cfg.skipped else ""
        raise ConfigError("the grid is empty: no (dataset, model, representation) combination can run" + detail
                          + "; add a representation without NaN (e.g. impute-mean) or a model that fits these datasets", source)
    return cfg


# ---------------------------------------------------------------------- step 1: one validator per section
def check_experiment(exp: dict, default_name: str, problems) -> tuple:
    """``[experiment]``: (name, description, seeds)."""
    exp_name = exp.get("name", default_name)
    if not isinstance(exp_name, str) or not exp_name.strip():
        problems.append(f"[experiment] name must be a non-empty string, got {exp_name!r}")
        exp_name = default_name
    description = exp.get("description", "")
    if not isinstance(description, str):
        problems.append(f"[experiment] description must be a string, got {description!r}")
        description = ""
    return exp_name, description, check_seeds(exp.get("seeds", None), problems)


def check_seeds(value, problems) -> list[int]:
    if value is None:
        problems.append("[experiment] seeds is missing: give the number of seeds (seeds = 5 means 0..4) or a list (seeds = [0, 1, 2])")
        return []
    if is_int(value):
        if value < 1:
            problems.append(f"[experiment] seeds must be >= 1 (the number of seeds) or a list of seeds, got {value}")
            return []
        return list(range(int(value)))
    if isinstance(value, list) and value and all(is_int(v) and v >= 0 for v in value):
        if len(set(value)) != len(value):
            problems.append(f"[experiment] seeds has duplicates: {value}; each seed once")
        return list(dict.fromkeys(int(v) for v in value))
    problems.append(f"[experiment] seeds must be a positive integer or a non-empty list of non-negative integers, got {value!r}")
    return []


def check_data(data: dict, base_dir, problems) -> tuple:
    """``[data]``: ({dataset: as the config names it}, their options); a name that is not a known dataset is a file, relative
    to the config file's folder (then the working directory), resolved to its absolute path."""
    known_datasets = list(ds_data.list_datasets())
    datasets = str_list(data, "datasets", "[data]", problems, required=True,
                        hint=f"e.g. datasets = [\"breast_cancer\"]; known names: {', '.join(known_datasets)}")
    dataset_options = table_of_tables(data.get("options", {}), "[data.options]", problems)
    for name in dataset_options:
        if name not in datasets:
            problems.append(f"[data.options.{name}] gives options for dataset {name!r}, which is not in [data] datasets {datasets}")
    resolved = {}
    for name in datasets:
        target = name
        if name not in known_datasets:
            candidates = [Path(base_dir) / name] if base_dir is not None else []
            candidates.append(Path(name))
            found = next((c for c in candidates if c.exists()), None)
            if found is None:
                problems.append(unknown(f"dataset {name!r} in [data] datasets (not a known name and no such file)", name, known_datasets))
                continue
            target = str(found.resolve())
            if name in dataset_options:
                dataset_options[target] = dataset_options.pop(name)
        resolved[target] = name
    return resolved, dataset_options


def check_split(table: dict, problems) -> dict:
    """``[split]``: the normalised split (only the keys its method uses)."""
    split = {**_SPLIT_DEFAULTS, **table}
    if split["method"] not in SPLIT_METHODS:
        problems.append(unknown(f"[split] method {split['method']!r}", split["method"], SPLIT_METHODS))
    fraction_key(split, "test_size", "[split]", problems, lo_open=True)
    fraction_key(split, "validation_size", "[split]", problems, lo_open=False)
    if not is_int(split["folds"]) or split["folds"] < 2:
        problems.append(f"[split] folds must be an integer >= 2, got {split['folds']!r}")
    if not isinstance(split["stratify"], bool):
        problems.append(f"[split] stratify must be true or false, got {split['stratify']!r}")
    if split["method"] == "kfold":
        if "test_size" in table:
            problems.append("[split] test_size applies to method = \"holdout\" only; with \"kfold\" each fold is the test set once (remove test_size)")
        return {k: split[k] for k in ("method", "folds", "validation_size", "stratify")}
    if "folds" in table:
        problems.append("[split] folds applies to method = \"kfold\" only (remove folds, or set method = \"kfold\")")
    return {k: split[k] for k in ("method", "test_size", "validation_size", "stratify")}


def check_missingness(miss: dict, problems) -> dict:
    """``[missingness]``: mechanisms, rates, apply_to, per_feature and per-mechanism options."""
    mechanisms_valid = tuple(getattr(ds_data, "MECHANISMS", DEFAULT_MECHANISMS))
    mechanisms = str_list(miss, "mechanisms", "[missingness]", problems, default=["mcar"])
    for m in mechanisms:
        if m not in mechanisms_valid:
            problems.append(unknown(f"mechanism {m!r} in [missingness] mechanisms", m, mechanisms_valid))
    rates = number_list(miss, "rates", "[missingness]", problems, default=[0.0], lo=0.0, hi=1.0, hi_open=True,
                        what="missing rate (share of all cells missing afterwards)")
    apply_to = miss.get("apply_to", "train")
    if apply_to not in APPLY_TO:
        problems.append(unknown(f"[missingness] apply_to {apply_to!r}", apply_to, APPLY_TO)
                        + " (\"train\": only training rows lose values; \"both\": validation and test rows too)")
    per_feature = miss.get("per_feature", False)
    if not isinstance(per_feature, bool):
        problems.append(f"[missingness] per_feature must be true or false, got {per_feature!r}")
    options = table_of_tables(miss.get("options", {}), "[missingness.options]", problems)
    for m in options:
        if m not in mechanisms_valid:
            problems.append(unknown(f"mechanism {m!r} in [missingness.options]", m, mechanisms_valid))
        elif m not in mechanisms:
            problems.append(f"[missingness.options.{m}] gives options for mechanism {m!r}, which is not in [missingness] mechanisms {mechanisms}")
    return {"mechanisms": mechanisms, "rates": rates, "apply_to": apply_to, "per_feature": per_feature, "options": options}


def check_models(section: dict, problems) -> tuple:
    """``[models]``: (model names, sparsities, epsilons); per-model tables are checked by
    :func:`check_model_tables`."""
    known_models = list_models()
    for key, value in section.items():
        if key in _KEYS["models"]:
            continue
        if key in known_models:
            if not isinstance(value, dict):
                problems.append(f"[models] {key} must be a table ([models.{key}]) of that model's options, got {value!r}")
            continue
        problems.append(unknown(f"key {key!r} in [models] (neither a setting nor a model name)", key,
                                list(_KEYS["models"]) + known_models))
    models = str_list(section, "names", "[models]", problems, required=True,
                      hint=f"e.g. names = [\"dense\", \"set\"]; known models: {', '.join(known_models)}")
    for m in models:
        if m not in known_models:
            problems.append(unknown(f"model {m!r} in [models] names", m, known_models))
    for key, value in section.items():
        if key in known_models and isinstance(value, dict) and key not in models:
            problems.append(f"[models.{key}] configures model {key!r}, which is not in [models] names {models}; add it there or remove the table")
    models = [m for m in models if m in known_models]
    sparse_models = [m for m in models if model_info(m).sparse]
    has_sparsities, has_epsilons = "sparsities" in section, "epsilons" in section
    sparsities = epsilons = None
    if has_sparsities and has_epsilons:
        problems.append("[models] give either sparsities or epsilons, not both (sparsity: fraction of weights removed; epsilon: SET's Erdos-Renyi density parameter)")
    elif has_sparsities:
        sparsities = number_list(section, "sparsities", "[models]", problems, lo=0.0, hi=1.0, hi_open=True,
                                 what="sparsity (fraction of weights removed)")
    elif has_epsilons:
        epsilons = number_list(section, "epsilons", "[models]", problems, lo=0.0, lo_open=True,
                               what="epsilon (Erdos-Renyi density parameter)")
    if sparse_models and not (has_sparsities or has_epsilons):
        problems.append(f"[models] names has sparse model(s) {sparse_models}: give their sparsity levels, "
                        "e.g. sparsities = [0.9] (fraction of weights removed) or epsilons = [10]")
    if (has_sparsities or has_epsilons) and models and not sparse_models:
        problems.append(f"[models] sparsities/epsilons are given but no sparse model ({', '.join(mlp_models(sparse=True))}) "
                        "is in names; remove them or add a sparse model")
    return models, sparsities, epsilons


def check_mlp(table: dict, problems) -> dict:
    """``[mlp]``: settings shared by every dualsparse MLP (any estimator parameter a config may set)."""
    mlp = dict(table)
    valid = mlp_param_names()
    for key in list(mlp):
        if key in MLP_PARAM_EXCLUDED:
            problems.append(f"[mlp] {key} cannot be set here: {MLP_PARAM_EXCLUDED[key]}")
            mlp.pop(key)
        elif key not in valid:
            problems.append(unknown(f"key {key!r} in [mlp]", key, valid))
            mlp.pop(key)
    return mlp


def check_model_tables(section: dict, models, problems) -> tuple:
    """``[models.<name>]``: (options per model, representations per model where given)."""
    model_options, model_reps = {}, {}
    for m in models:
        table = dict(section.get(m, {})) if isinstance(section.get(m, {}), dict) else {}
        if "representations" in table:
            reps = table.pop("representations")
            if not isinstance(reps, list) or not reps or not all(isinstance(r, str) for r in reps):
                problems.append(f"[models.{m}] representations must be a non-empty list of names, got {reps!r}")
            else:
                model_reps[m] = list(dict.fromkeys(reps))
        info = model_info(m)
        valid = param_names(m)
        for key in list(table):
            if info.family == "mlp" and key in MLP_PARAM_EXCLUDED:
                problems.append(f"[models.{m}] {key} cannot be set here: {MLP_PARAM_EXCLUDED[key]}")
                table.pop(key)
            elif key == "random_state":
                problems.append(f"[models.{m}] random_state cannot be set: it is derived from [experiment] seeds")
                table.pop(key)
            elif key not in valid:
                problems.append(unknown(f"key {key!r} in [models.{m}]", key, list(valid) + ["representations"]))
                table.pop(key)
        model_options[m] = table
    return model_options, model_reps


def check_representations(section: dict, models, model_reps, rates, problems) -> tuple:
    """``[representations]``: (global names, options per representation, every representation used)."""
    known_reps = list(ds_data.list_representations())
    representations = str_list(section, "names", "[representations]", problems, required=False, default=None)
    rep_options = table_of_tables(section.get("options", {}), "[representations.options]", problems)
    if representations is None:
        # default: standardise and mean-impute (with complete data: just standardise)
        representations = ["impute-mean"] if any(m not in model_reps for m in models) else []
    used_reps = list(dict.fromkeys(representations + [r for m in models for r in model_reps.get(m, [])]))
    for r in used_reps:
        if r not in known_reps:
            where = "[representations] names" if r in representations else "a [models.<name>] representations list"
            problems.append(unknown(f"representation {r!r} in {where}", r, known_reps))
    for r in rep_options:
        if r not in known_reps:
            problems.append(unknown(f"representation {r!r} in [representations.options]", r, known_reps))
        elif r not in used_reps:
            problems.append(f"[representations.options.{r}] gives options for {r!r}, which no model uses; add it to [representations] names or remove the table")
    # amputation can leave a row with no observed value; representations reject such rows unless
    # told otherwise, and dropping them would bias the comparison, so experiments keep them
    rep_options = {r: {"allow_empty_rows": True, **rep_options.get(r, {})} for r in used_reps if r in known_reps} | {
        r: o for r, o in rep_options.items() if r not in used_reps or r not in known_reps}
    rep_options = {r: dict(sorted(o.items())) for r, o in rep_options.items()}
    if "sparse-input" in used_reps and any(r > 0 for r in rates):
        problems.append("representation 'sparse-input' takes data without missing values (an absent entry is a zero), "
                        "but [missingness] rates include values above 0; use 'observed' for amputed data, or give "
                        "'sparse-input' a config of its own with rates = [0.0]")
    buildable = []
    for r in used_reps:
        if r in known_reps:
            try:
                ds_data.make_representation(r, **rep_options.get(r, {}))
            except Exception as err:  # noqa: BLE001
                problems.append(f"[representations.options.{r}]: {err}")
                continue
            buildable.append(r)
    return representations, rep_options, buildable


# ---------------------------------------------------------------------- step 2: the data trials
def data_trials(ctx: ConfigContext, datasets: dict, dataset_options, miss, rep_options, representations, sparsities,
                epsilons, problems) -> None:
    """Load every dataset (``datasets``: {path or name: as the config wrote it}; filling ``ctx.loaded`` and ``ctx.dataset_tasks``), ampute each at the
    lowest and highest positive rates (``miss`` None: skipped, its section has problems), fit every representation on a
    slice of every dataset, and let every model check its parameters for the tasks and input widths
    it will meet."""
    for target in datasets:
        try:
            ctx.loaded[target] = ds_data.load_dataset(target, **dataset_options.get(target, {}))
            ctx.dataset_tasks[target] = ctx.loaded[target].task
        except Exception as err:  # noqa: BLE001 - reported with the dataset name
            problems.append(f"dataset {datasets[target]!r} cannot be loaded: {err}")
    if miss is not None and any(r > 0 for r in miss["rates"]):
        # the highest rate (can the mechanism remove that much?) and the lowest positive one (a rate
        # counts the data's own missing cells too: real incomplete data may already be above it)
        positive = [r for r in miss["rates"] if r > 0]
        for rate in sorted({min(positive), max(positive)}):
            trial_amputation(ctx.loaded, miss["mechanisms"], rate, miss["options"], miss["per_feature"], problems)
    for r in representations:
        for name, ds in ctx.loaded.items():
            try:
                ds_data.make_representation(r, **rep_options.get(r, {})).fit_transform(ds.X[:100])
            except Exception as err:  # noqa: BLE001
                problems.append(f"representation {r!r} cannot take dataset {name!r}: {err}")

    # parameter values: build each model once per task and let it check its own parameters
    tasks = sorted(set(ctx.dataset_tasks.values()))
    for m in ctx.models:
        info = model_info(m)
        params = ctx.model_params[m]
        for task in tasks:
            if not info.supports(task):
                continue
            levels = []
            if info.sparse:
                levels = [("sparsity", s) for s in (sparsities or [])] + [("epsilon", e) for e in (epsilons or [])]
            widths = sorted({w for ds in ctx.loaded.values() if ds.task == task
                             for w in (ds.X.shape[1], 2 * ds.X.shape[1])}) or [10]
            for msg in check_model_params(m, task, params, levels, widths):
                where = f"[models.{m}]" if info.family != "mlp" else f"[mlp]/[models.{m}]"
                problems.append(f"{where}: {msg}")
        unsupported = [d for d, t in ctx.dataset_tasks.items() if not info.supports(t)]
        if unsupported and len(unsupported) == len(ctx.dataset_tasks) and ctx.dataset_tasks:
            problems.append(f"model {m!r} supports {info.tasks} only, and every dataset ({', '.join(unsupported)}) is "
                            f"{ctx.dataset_tasks[unsupported[0]]}; remove it or add a dataset it can fit")


def trial_amputation(loaded, mechanisms, rate, mechanism_options, per_feature, problems):
    """Ampute each dataset once at ``rate`` to check mechanism options and feasibility."""
    for name, ds in loaded.items():
        if sp.issparse(ds.X):
            problems.append(f"dataset {name!r} is a sparse matrix (absent entries are zeros, not missing values): "
                            "amputation needs dense data; give it a config of its own with [missingness] rates = [0.0]")
            continue
        X = np.asarray(ds.X, dtype=float)
        for m in mechanisms:
            try:
                ds_data.ampute(X, m, rate, random_state=0, per_feature=per_feature, **mechanism_options.get(m, {}))
            except Exception as err:  # noqa: BLE001
                problems.append(f"[missingness] {m} at rate {rate:g} fails on dataset {name!r}: {err}")


def _skipped_combinations(cfg: ExperimentConfig) -> list[str]:
    notes = []
    for m in cfg.models:
        info = model_info(m)
        for r in cfg.model_representations.get(m, cfg.representations):
            if params_on(m, model_params(cfg, m), r in NAN_REPRESENTATIONS) is None:
                notes.append(f"{m} x {r}: {m} cannot take NaN inputs"
                             + (" (a dualsparse MLP can, with missing_block = \"neumiss\")" if info.family == "mlp" else ""))
        for d, t in cfg.dataset_tasks.items():
            if not info.supports(t):
                notes.append(f"{m} x {d}: {m} is for {'/'.join(info.tasks)}, {d} is {t}")
    return notes


def _normalise_params(params: dict) -> dict:
    """TOML arrays become lists; keep them lists (JSON-stable); sort keys."""
    return {k: params[k] for k in sorted(params)}


# ---------------------------------------------------------------------- --dry-run
def describe(cfg: ExperimentConfig, runs=None) -> str:
    """A short human summary of the grid (what --dry-run prints)."""
    runs = cfg.runs() if runs is None else runs
    overrides = {}
    for kind in cfg.active_kinds():
        overrides.update(kind.describe_overrides(cfg, cfg.studies.get(kind.section)))
    lines = [f"experiment {cfg.name!r} ({cfg.source})"]
    lines.append(f"  datasets        {', '.join(f'{d} ({cfg.dataset_tasks[d]})' for d in cfg.datasets)}")
    missingness = overrides.get("missingness", f"{', '.join(cfg.mechanisms)} at rates "
                                f"{', '.join(f'{r:g}' for r in cfg.rates)} (applied to {cfg.apply_to})")
    if missingness is not None:
        lines.append(f"  missingness     {missingness}")
    lines.append(f"  representations {', '.join(cfg.representations) or '-'}")
    for m, reps in cfg.model_representations.items():
        lines.append(f"    {m}: {', '.join(reps)}")
    lines.append(f"  models          {', '.join(cfg.models)}")
    if cfg.sparsities is not None:
        lines.append(f"  sparsities      {', '.join(f'{s:g}' for s in cfg.sparsities)}")
    if cfg.epsilons is not None:
        lines.append(f"  epsilons        {', '.join(f'{e:g}' for e in cfg.epsilons)}")
    split = cfg.split
    if "split" in overrides:
        lines.append(f"  split           {overrides['split']}")
    elif split["method"] == "kfold":
        lines.append(f"  split           {split['folds']}-fold CV, validation {split['validation_size']:g} of each training part, stratify={split['stratify']}")
    else:
        lines.append(f"  split           holdout test {split['test_size']:g}, validation {split['validation_size']:g} of the rest, stratify={split['stratify']}")
    lines.append(f"  seeds           {', '.join(map(str, cfg.seeds))}")
    for kind in cfg.active_kinds():
        lines.extend(kind.describe(cfg, cfg.studies.get(kind.section), runs))
    kinds = {}
    for r in runs:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    if set(kinds) - {"grid"}:
        lines.append("  run kinds       " + ", ".join(f"{k} {n}" for k, n in kinds.items()))
    for note in cfg.skipped:
        lines.append(f"  skipped         {note}")
    lines.append(f"  runs            {len(runs)}")
    return "\n".join(lines)
