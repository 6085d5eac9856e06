"""Experiment configs: a TOML file describing a grid of runs, checked before anything runs.

The schema is documented for users in ``docs/experiments.md``. In short, a config has the
sections ``[experiment]``, ``[data]``, ``[split]``, ``[missingness]``, ``[representations]``,
``[models]`` (with optional per-model tables ``[models.<name>]``) and ``[mlp]`` (settings shared by
every dualsparse MLP), and optionally ``[dynamics]`` (per-example tracking, subset runs) or
``[continual]`` (a continual-learning study instead of the grid; see :mod:`.studies`). The sweep
is the Cartesian product

    datasets x mechanisms x rates x representations x models x (sparsities | epsilons) x seeds
    (x folds with k-fold cross-validation)

where a model with its own ``representations`` list uses that list instead of the global one,
sparsities/epsilons apply to sparse models only, and rate 0 (no amputation) is run once for all
mechanisms (its mechanism is recorded as ``"none"``).

Validation collects every problem it finds and raises one :class:`ConfigError` listing them, each
naming the section and key, what is wrong and the valid choices. Nothing runs before it passes.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import numbers
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .models import (
    MLP_PARAM_EXCLUDED,
    ModelInfo,
    baseline_param_names,
    check_model_params,
    list_models,
    model_info,
    mlp_param_names,
)

SPLIT_METHODS = ("holdout", "kfold")
APPLY_TO = ("train", "both")
DEFAULT_MECHANISMS = ("mcar", "mar", "mnar")
NAN_REPRESENTATIONS = ("native-nan",)  # representations whose output keeps NaN for missing values

_SECTIONS = ("experiment", "data", "split", "missingness", "representations", "models", "mlp", "dynamics", "continual")
_STUDY_SECTIONS = ("dynamics", "continual")  # optional; validated in .studies
_KEYS = {
    "experiment": ("name", "description", "seeds"),
    "data": ("datasets", "options"),
    "split": ("method", "test_size", "validation_size", "folds", "stratify"),
    "missingness": ("mechanisms", "rates", "apply_to", "per_feature", "options"),
    "representations": ("names", "options"),
    "models": ("names", "sparsities", "epsilons"),  # plus one table per model name
}
_SPLIT_DEFAULTS = {"method": "holdout", "test_size": 0.25, "validation_size": 0.2, "folds": 5, "stratify": True}


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
    dynamics: dict | None = None  # [dynamics]: tracking (and subsets) on the grid
    continual: dict | None = None  # [continual]: a continual study instead of the grid

    def runs(self) -> list["RunSpec"]:
        """Every run, in a stable order, each once: the grid (rate 0 shared by all mechanisms), then
        any subset runs; or, with ``[continual]``, the continual runs."""
        from .studies import continual_runs, subset_runs, tracked_dynamics

        if self.continual is not None:
            return continual_runs(self)
        specs, seen = [], set()
        folds = list(range(self.split["folds"])) if self.split["method"] == "kfold" else [None]
        for dataset in self.datasets:
            task = self.dataset_tasks[dataset]
            for mechanism in self.mechanisms:
                for rate in self.rates:
                    mech = "none" if rate == 0 else mechanism
                    for model in self.models:
                        info = model_info(model)
                        if not info.supports(task):
                            continue
                        params = _model_params(self, model)
                        levels = _sparsity_levels(self, info)
                        for representation in self.model_representations.get(model, self.representations):
                            if representation in NAN_REPRESENTATIONS and not info.accepts_nan:
                                continue
                            for sparsity, epsilon in levels:
                                for seed in self.seeds:
                                    for fold in folds:
                                        spec = RunSpec(
                                            experiment=self.name,
                                            dataset=dataset,
                                            dataset_options=self.dataset_options.get(dataset, {}),
                                            task=task,
                                            split=dict(self.split),
                                            fold=fold,
                                            mechanism=mech,
                                            mechanism_options={} if rate == 0 else self.mechanism_options.get(mechanism, {}),
                                            apply_to="train" if rate == 0 else self.apply_to,
                                            per_feature=False if rate == 0 else self.per_feature,
                                            rate=float(rate),
                                            representation=representation,
                                            representation_options=self.representation_options.get(representation, {}),
                                            model=model,
                                            model_params=params,
                                            sparsity=sparsity,
                                            epsilon=epsilon,
                                            seed=seed,
                                            dynamics=tracked_dynamics(self, model) if self.dynamics is not None else None,
                                        )
                                        if spec.key in seen:
                                            continue
                                        seen.add(spec.key)
                                        specs.append(spec)
        if self.dynamics is not None:
            specs += subset_runs(self, specs)
        return specs


@dataclass
class RunSpec:
    """One run: everything that determines its result (and so its key in the store)."""

    experiment: str
    dataset: str
    dataset_options: dict
    task: str
    split: dict
    fold: int | None
    mechanism: str
    mechanism_options: dict
    apply_to: str
    per_feature: bool
    rate: float
    representation: str
    representation_options: dict
    model: str
    model_params: dict
    sparsity: float | None
    epsilon: float | None
    seed: int
    # learning-dynamics studies (absent from the key of a plain grid run, so old keys hold):
    kind: str = "grid"  # "grid", "subset" or "continual"
    dynamics: dict | None = None  # {data_seed, label_noise, tracking} of a [dynamics] config
    subset: dict | None = None  # subset runs: reference run key, strategy, fraction, ...
    continual: dict | None = None  # continual runs: scenario, replay, buffer_size, ...

    _OPTIONAL = ("kind", "dynamics", "subset", "continual")

    def to_dict(self) -> dict:
        extra = {k: getattr(self, k) for k in self._OPTIONAL
                 if getattr(self, k) is not None and not (k == "kind" and self.kind == "grid")}
        return {
            "experiment": self.experiment,
            "dataset": self.dataset,
            "dataset_options": self.dataset_options,
            "task": self.task,
            "split": self.split,
            "fold": self.fold,
            "mechanism": self.mechanism,
            "mechanism_options": self.mechanism_options,
            "apply_to": self.apply_to,
            "per_feature": self.per_feature,
            "rate": self.rate,
            "representation": self.representation,
            "representation_options": self.representation_options,
            "model": self.model,
            "model_params": self.model_params,
            "sparsity": self.sparsity,
            "epsilon": self.epsilon,
            "seed": self.seed,
            **extra,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        return cls(**{k: copy.deepcopy(d[k]) for k in cls.__dataclass_fields__ if k in d or k not in cls._OPTIONAL})

    @property
    def key(self) -> str:
        return run_key(self.to_dict())

    @property
    def label(self) -> str:
        level = f" s={self.sparsity:g}" if self.sparsity is not None else (f" eps={self.epsilon:g}" if self.epsilon is not None else "")
        fold = f" fold {self.fold}" if self.fold is not None else ""
        study = ""
        if self.kind == "subset":
            study = f" subset {self.subset['strategy']} {self.subset['fraction']:g} of {self.subset['stats_from']}'s stats"
        elif self.kind == "continual":
            c = self.continual
            study = f" {c['scenario']} replay {c['replay']}" + (f" {c['buffer_size']} rows" if c["replay"] != "none" else "")
            return f"{self.dataset} {self.representation} {self.model}{level}{study} seed {self.seed}"
        return (f"{self.dataset} {self.mechanism} {self.rate:g} {self.representation} {self.model}{level} "
                f"seed {self.seed}{fold}{study}")


def run_key(config: dict) -> str:
    """Deterministic key of a run: SHA-256 of its canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


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


# ---------------------------------------------------------------------- validation
class _Problems(list):
    def unknown_keys(self, where: str, table: dict, valid) -> None:
        for key in table:
            if key not in valid:
                self.append(_unknown(f"key {key!r} in {where}", key, valid))


def _unknown(what: str, name, valid) -> str:
    valid = list(valid)
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what}{hint}; valid: {', '.join(map(str, valid))}"


def validate_config(raw: dict, source: str = "config", default_name: str = "experiment", base_dir=None) -> ExperimentConfig:
    """Check a parsed config and return an :class:`ExperimentConfig`; raise ConfigError otherwise."""
    from .. import data as ds_data  # the data package is needed to check names

    problems = _Problems()
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a TOML document of tables", source)
    problems.unknown_keys("the config (top-level sections)", raw, _SECTIONS)
    sections = {}
    for name in _SECTIONS:
        if name in _STUDY_SECTIONS:
            continue
        table = raw.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"[{name}] must be a table (a [{name}] section), got {type(table).__name__}")
            table = {}
        sections[name] = table
    for name in ("experiment", "data", "split", "missingness", "representations"):
        problems.unknown_keys(f"[{name}]", sections[name], _KEYS[name])

    # [experiment]
    exp = sections["experiment"]
    exp_name = exp.get("name", default_name)
    if not isinstance(exp_name, str) or not exp_name.strip():
        problems.append(f"[experiment] name must be a non-empty string, got {exp_name!r}")
        exp_name = default_name
    description = exp.get("description", "")
    if not isinstance(description, str):
        problems.append(f"[experiment] description must be a string, got {description!r}")
        description = ""
    seeds = _check_seeds(exp.get("seeds", None), problems)

    # [data]
    data = sections["data"]
    known_datasets = list(ds_data.list_datasets())
    datasets = _str_list(data, "datasets", "[data]", problems, required=True,
                         hint=f"e.g. datasets = [\"breast_cancer\"]; known names: {', '.join(known_datasets)}")
    dataset_options = _table_of_tables(data.get("options", {}), "[data.options]", problems)
    for name in dataset_options:
        if name not in datasets:
            problems.append(f"[data.options.{name}] gives options for dataset {name!r}, which is not in [data] datasets {datasets}")
    dataset_tasks, loaded, resolved = {}, {}, []
    for name in datasets:
        target = name
        if name not in known_datasets:
            # a file: relative paths are relative to the config file's folder (then the working dir)
            candidates = [Path(base_dir) / name] if base_dir is not None else []
            candidates.append(Path(name))
            found = next((c for c in candidates if c.exists()), None)
            if found is None:
                problems.append(_unknown(f"dataset {name!r} in [data] datasets (not a known name and no such file)", name, known_datasets))
                continue
            target = str(found.resolve())
            if name in dataset_options:
                dataset_options[target] = dataset_options.pop(name)
        resolved.append(target)
        try:
            loaded[target] = ds_data.load_dataset(target, **dataset_options.get(target, {}))
            dataset_tasks[target] = loaded[target].task
        except Exception as err:  # noqa: BLE001 - reported with the dataset name
            problems.append(f"dataset {name!r} cannot be loaded: {err}")
    datasets = resolved

    # [split]
    split = {**_SPLIT_DEFAULTS, **sections["split"]}
    if split["method"] not in SPLIT_METHODS:
        problems.append(_unknown(f"[split] method {split['method']!r}", split["method"], SPLIT_METHODS))
    _check_fraction(split, "test_size", "[split]", problems, lo_open=True)
    _check_fraction(split, "validation_size", "[split]", problems, lo_open=False)
    if not _is_int(split["folds"]) or split["folds"] < 2:
        problems.append(f"[split] folds must be an integer >= 2, got {split['folds']!r}")
    if not isinstance(split["stratify"], bool):
        problems.append(f"[split] stratify must be true or false, got {split['stratify']!r}")
    if split["method"] == "kfold":
        if "test_size" in sections["split"]:
            problems.append("[split] test_size applies to method = \"holdout\" only; with \"kfold\" each fold is the test set once (remove test_size)")
        split = {k: split[k] for k in ("method", "folds", "validation_size", "stratify")}
    else:
        if "folds" in sections["split"]:
            problems.append("[split] folds applies to method = \"kfold\" only (remove folds, or set method = \"kfold\")")
        split = {k: split[k] for k in ("method", "test_size", "validation_size", "stratify")}

    # [missingness]
    miss = sections["missingness"]
    mechanisms_valid = tuple(getattr(ds_data, "MECHANISMS", DEFAULT_MECHANISMS))
    mechanisms = _str_list(miss, "mechanisms", "[missingness]", problems, default=["mcar"])
    for m in mechanisms:
        if m not in mechanisms_valid:
            problems.append(_unknown(f"mechanism {m!r} in [missingness] mechanisms", m, mechanisms_valid))
    rates = _number_list(miss, "rates", "[missingness]", problems, default=[0.0], lo=0.0, hi=1.0, hi_open=True,
                         what="missing rate (share of all cells missing afterwards)")
    apply_to = miss.get("apply_to", "train")
    if apply_to not in APPLY_TO:
        problems.append(_unknown(f"[missingness] apply_to {apply_to!r}", apply_to, APPLY_TO)
                        + " (\"train\": only training rows lose values; \"both\": validation and test rows too)")
    per_feature = miss.get("per_feature", False)
    if not isinstance(per_feature, bool):
        problems.append(f"[missingness] per_feature must be true or false, got {per_feature!r}")
    mechanism_options = _table_of_tables(miss.get("options", {}), "[missingness.options]", problems)
    for m in mechanism_options:
        if m not in mechanisms_valid:
            problems.append(_unknown(f"mechanism {m!r} in [missingness.options]", m, mechanisms_valid))
        elif m not in mechanisms:
            problems.append(f"[missingness.options.{m}] gives options for mechanism {m!r}, which is not in [missingness] mechanisms {mechanisms}")
    if any(r > 0 for r in rates) and not problems_in(problems, "[missingness]"):
        _trial_amputation(loaded, mechanisms, max(rates), mechanism_options, per_feature, apply_to, problems, ds_data)

    # [representations]
    reps_section = sections["representations"]
    known_reps = list(ds_data.list_representations())
    representations = _str_list(reps_section, "names", "[representations]", problems, required=False, default=None)
    rep_options = _table_of_tables(reps_section.get("options", {}), "[representations.options]", problems)

    # [models]
    models_section = sections["models"]
    known_models = list_models()
    for key, value in models_section.items():
        if key in _KEYS["models"]:
            continue
        if key in known_models:
            if not isinstance(value, dict):
                problems.append(f"[models] {key} must be a table ([models.{key}]) of that model's options, got {value!r}")
            continue
        problems.append(_unknown(f"key {key!r} in [models] (neither a setting nor a model name)", key,
                                 list(_KEYS["models"]) + known_models))
    models = _str_list(models_section, "names", "[models]", problems, required=True,
                       hint=f"e.g. names = [\"dense\", \"set\"]; known models: {', '.join(known_models)}")
    for m in models:
        if m not in known_models:
            problems.append(_unknown(f"model {m!r} in [models] names", m, known_models))
    for key, value in models_section.items():
        if key in known_models and isinstance(value, dict) and key not in models:
            problems.append(f"[models.{key}] configures model {key!r}, which is not in [models] names {models}; add it there or remove the table")
    models = [m for m in models if m in known_models]
    infos = {m: model_info(m) for m in models}
    sparse_models = [m for m in models if infos[m].sparse]
    has_sparsities, has_epsilons = "sparsities" in models_section, "epsilons" in models_section
    sparsities = epsilons = None
    if has_sparsities and has_epsilons:
        problems.append("[models] give either sparsities or epsilons, not both (sparsity: fraction of weights removed; epsilon: SET's Erdos-Renyi density parameter)")
    elif has_sparsities:
        sparsities = _number_list(models_section, "sparsities", "[models]", problems, lo=0.0, hi=1.0, hi_open=True,
                                  what="sparsity (fraction of weights removed)")
    elif has_epsilons:
        epsilons = _number_list(models_section, "epsilons", "[models]", problems, lo=0.0, lo_open=True,
                                what="epsilon (Erdos-Renyi density parameter)")
    if sparse_models and not (has_sparsities or has_epsilons):
        problems.append(f"[models] names has sparse model(s) {sparse_models}: give their sparsity levels, "
                        "e.g. sparsities = [0.9] (fraction of weights removed) or epsilons = [10]")
    if (has_sparsities or has_epsilons) and models and not sparse_models:
        problems.append("[models] sparsities/epsilons are given but no sparse model (static, set, rigl) is in names; remove them or add a sparse model")

    # [mlp]: shared dualsparse MLP settings
    mlp = dict(sections["mlp"])
    valid_mlp = mlp_param_names()
    for key in list(mlp):
        if key in MLP_PARAM_EXCLUDED:
            problems.append(f"[mlp] {key} cannot be set here: {MLP_PARAM_EXCLUDED[key]}")
            mlp.pop(key)
        elif key not in valid_mlp:
            problems.append(_unknown(f"key {key!r} in [mlp]", key, valid_mlp))
            mlp.pop(key)

    # per-model tables
    model_options, model_reps = {}, {}
    for m in models:
        table = dict(models_section.get(m, {})) if isinstance(models_section.get(m, {}), dict) else {}
        if "representations" in table:
            reps = table.pop("representations")
            if not isinstance(reps, list) or not reps or not all(isinstance(r, str) for r in reps):
                problems.append(f"[models.{m}] representations must be a non-empty list of names, got {reps!r}")
            else:
                model_reps[m] = list(dict.fromkeys(reps))
        info = infos[m]
        valid = mlp_param_names() if info.family == "mlp" else baseline_param_names(m)
        for key in list(table):
            if info.family == "mlp" and key in MLP_PARAM_EXCLUDED:
                problems.append(f"[models.{m}] {key} cannot be set here: {MLP_PARAM_EXCLUDED[key]}")
                table.pop(key)
            elif key == "random_state":
                problems.append(f"[models.{m}] random_state cannot be set: it is derived from [experiment] seeds")
                table.pop(key)
            elif key not in valid:
                problems.append(_unknown(f"key {key!r} in [models.{m}]", key, list(valid) + ["representations"]))
                table.pop(key)
        model_options[m] = table

    # representations: names, options, and that every model has some
    if representations is None:
        # default: standardise and mean-impute (with complete data: just standardise)
        representations = ["impute-mean"] if any(m not in model_reps for m in models) else []
    used_reps = list(dict.fromkeys(representations + [r for m in models for r in model_reps.get(m, [])]))
    for r in used_reps:
        if r not in known_reps:
            where = "[representations] names" if r in representations else "a [models.<name>] representations list"
            problems.append(_unknown(f"representation {r!r} in {where}", r, known_reps))
    for r, opts in rep_options.items():
        if r not in known_reps:
            problems.append(_unknown(f"representation {r!r} in [representations.options]", r, known_reps))
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
    for r in used_reps:
        if r in known_reps:
            try:
                ds_data.make_representation(r, **rep_options.get(r, {}))
            except Exception as err:  # noqa: BLE001
                problems.append(f"[representations.options.{r}]: {err}")
                continue
            # fit once on a slice of every dataset: catches data a representation cannot take
            for name, ds in loaded.items():
                try:
                    ds_data.make_representation(r, **rep_options.get(r, {})).fit_transform(ds.X[:100])
                except Exception as err:  # noqa: BLE001
                    problems.append(f"representation {r!r} cannot take dataset {name!r}: {err}")

    # parameter values: build each model once per task and let it check its own parameters
    tasks = sorted(set(dataset_tasks.values()))
    for m in models:
        info = infos[m]
        params = {**(mlp if info.family == "mlp" else {}), **model_options.get(m, {})}
        for task in tasks:
            if not info.supports(task):
                continue
            levels = []
            if info.sparse:
                levels = [("sparsity", s) for s in (sparsities or [])] + [("epsilon", e) for e in (epsilons or [])]
            widths = sorted({w for d, ds in loaded.items() if ds.task == task for w in (ds.X.shape[1], 2 * ds.X.shape[1])}) or [10]
            for msg in check_model_params(m, task, params, levels, widths):
                where = f"[models.{m}]" if info.family != "mlp" else f"[mlp]/[models.{m}]"
                problems.append(f"{where}: {msg}")
        unsupported = [d for d, t in dataset_tasks.items() if not info.supports(t)]
        if unsupported and len(unsupported) == len(dataset_tasks) and dataset_tasks:
            problems.append(f"model {m!r} supports {info.tasks} only, and every dataset ({', '.join(unsupported)}) is "
                            f"{dataset_tasks[unsupported[0]]}; remove it or add a dataset it can fit")

    # the study sections
    from .studies import validate_continual, validate_dynamics

    dynamics = continual = None
    params_of = {m: {**(mlp if infos[m].family == "mlp" else {}), **model_options.get(m, {})} for m in models}
    if "dynamics" in raw:
        dynamics = validate_dynamics(raw["dynamics"], models=models, model_params=params_of, dataset_tasks=dataset_tasks,
                                     loaded=loaded, sparsities=sparsities, epsilons=epsilons, problems=problems)
    if "continual" in raw:
        continual = validate_continual(raw["continual"], raw=raw, models=models, dataset_tasks=dataset_tasks,
                                       loaded=loaded, problems=problems)

    # split feasibility per dataset (a continual study has its own split)
    if continual is None:
        for name, ds in loaded.items():
            _check_split_feasible(name, ds, split, problems)

    if problems:
        raise ConfigError(problems, source)

    cfg = ExperimentConfig(
        name=exp_name.strip(),
        description=description,
        seeds=seeds,
        datasets=datasets,
        dataset_options=dataset_options,
        dataset_tasks=dataset_tasks,
        split=split,
        mechanisms=mechanisms,
        rates=rates,
        apply_to=apply_to,
        per_feature=per_feature,
        mechanism_options={m: mechanism_options.get(m, {}) for m in mechanisms},
        representations=representations,
        representation_options=rep_options,
        models=models,
        sparsities=sparsities,
        epsilons=epsilons,
        mlp=_normalise_params(mlp),
        model_options={m: _normalise_params(o) for m, o in model_options.items()},
        model_representations=model_reps,
        raw=raw,
        source=source,
        dynamics=dynamics,
        continual=continual,
    )
    cfg.skipped = _skipped_combinations(cfg)
    if not cfg.runs():
        detail = f" ({'; '.join(cfg.skipped)})" if cfg.skipped else ""
        raise ConfigError("the grid is empty: no (dataset, model, representation) combination can run" + detail
                          + "; add a representation without NaN (e.g. impute-mean) or a model that fits these datasets", source)
    return cfg


def problems_in(problems, prefix: str) -> bool:
    return any(str(p).find(prefix) >= 0 for p in problems)


def _skipped_combinations(cfg: ExperimentConfig) -> list[str]:
    notes = []
    for m in cfg.models:
        info = model_info(m)
        for r in cfg.model_representations.get(m, cfg.representations):
            if r in NAN_REPRESENTATIONS and not info.accepts_nan:
                notes.append(f"{m} x {r}: {m} cannot take NaN inputs")
        for d, t in cfg.dataset_tasks.items():
            if not info.supports(t):
                notes.append(f"{m} x {d}: {m} is for {'/'.join(info.tasks)}, {d} is {t}")
    return notes


def _model_params(cfg: ExperimentConfig, model: str) -> dict:
    info = model_info(model)
    base = dict(cfg.mlp) if info.family == "mlp" else {}
    base.update(cfg.model_options.get(model, {}))
    return dict(sorted(base.items()))


def _sparsity_levels(cfg: ExperimentConfig, info: ModelInfo) -> list[tuple]:
    if not info.sparse:
        return [(None, None)]
    if cfg.sparsities is not None:
        return [(float(s), None) for s in cfg.sparsities]
    return [(None, float(e)) for e in cfg.epsilons]


def _normalise_params(params: dict) -> dict:
    """TOML arrays become lists; keep them lists (JSON-stable); sort keys."""
    return {k: params[k] for k in sorted(params)}


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


def _check_seeds(value, problems) -> list[int]:
    if value is None:
        problems.append("[experiment] seeds is missing: give the number of seeds (seeds = 5 means 0..4) or a list (seeds = [0, 1, 2])")
        return []
    if _is_int(value):
        if value < 1:
            problems.append(f"[experiment] seeds must be >= 1 (the number of seeds) or a list of seeds, got {value}")
            return []
        return list(range(int(value)))
    if isinstance(value, list) and value and all(_is_int(v) and v >= 0 for v in value):
        if len(set(value)) != len(value):
            problems.append(f"[experiment] seeds has duplicates: {value}; each seed once")
        return list(dict.fromkeys(int(v) for v in value))
    problems.append(f"[experiment] seeds must be a positive integer or a non-empty list of non-negative integers, got {value!r}")
    return []


def _str_list(table, key, where, problems, required=False, default=None, hint=""):
    if key not in table:
        if required:
            problems.append(f"{where} {key} is missing" + (f": {hint}" if hint else ""))
            return []
        return default
    value = table[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where} {key} must be a list of names, got {value!r}")
        return []
    if not value:
        problems.append(f"{where} {key} is empty: the grid would have no runs" + (f"; {hint}" if hint else ""))
        return []
    dup = sorted({v for v in value if value.count(v) > 1})
    if dup:
        problems.append(f"{where} {key} lists {dup} more than once; give each once")
    return list(dict.fromkeys(value))


def _number_list(table, key, where, problems, default=None, lo=None, hi=None, lo_open=False, hi_open=False, what="value"):
    if key not in table:
        return list(default) if default is not None else None
    value = table[key]
    if _is_number(value):
        value = [value]
    if not isinstance(value, list) or not value:
        problems.append(f"{where} {key} must be a non-empty list of numbers, got {value!r}")
        return []
    out = []
    for v in value:
        if not _is_number(v):
            problems.append(f"{where} {key}: {v!r} is not a number")
            continue
        v = float(v)
        bad = (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and (v > hi or (hi_open and v == hi)))
        if bad:
            interval = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
            problems.append(f"{where} {key}: {v!r} is not a valid {what}; each must be in {interval}")
            continue
        out.append(v)
    if len(set(out)) != len(out):
        problems.append(f"{where} {key} has duplicates: {value}; give each value once")
    return list(dict.fromkeys(out))


def _check_fraction(table, key, where, problems, lo_open):
    v = table[key]
    if not _is_number(v) or v >= 1 or v < 0 or (lo_open and v == 0):
        problems.append(f"{where} {key} must be a number in {'(' if lo_open else '['}0, 1), got {v!r}")


def _table_of_tables(value, where, problems) -> dict:
    if not isinstance(value, dict):
        problems.append(f"{where} must be a table of tables, e.g. {where[:-1]}.NAME] with NAME's options; got {value!r}")
        return {}
    out = {}
    for k, v in value.items():
        if not isinstance(v, dict):
            problems.append(f"{where[:-1]}.{k}] must be a table of options, got {v!r}")
            continue
        out[k] = dict(sorted(v.items()))
    return out


def _trial_amputation(loaded, mechanisms, rate, mechanism_options, per_feature, apply_to, problems, ds_data):
    """Ampute each dataset once at the highest rate to check mechanism options and feasibility."""
    import numpy as np
    import scipy.sparse as sp

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


def _check_split_feasible(name, ds, split, problems):
    import numpy as np

    n = ds.X.shape[0]
    if ds.task == "classification" and split["stratify"]:
        counts = np.bincount(np.asarray(ds.y, dtype=np.int64))
        counts = counts[counts > 0]
        need = split["folds"] if split["method"] == "kfold" else 2
        if split["validation_size"] > 0:
            need = max(need, 3 if split["method"] == "holdout" else need + 1)
        if counts.min() < need:
            problems.append(
                f"dataset {name!r}: its smallest class has {counts.min()} rows, too few for a stratified "
                f"{split['method']} split{' with validation' if split['validation_size'] > 0 else ''} (needs {need}); "
                "lower [split] folds, set validation_size = 0.0, or stratify = false"
            )
    if split["method"] == "kfold" and split["folds"] > n:
        problems.append(f"dataset {name!r} has {n} rows, fewer than [split] folds = {split['folds']}")


def describe(cfg: ExperimentConfig, runs=None) -> str:
    """A short human summary of the grid (what --dry-run prints)."""
    runs = cfg.runs() if runs is None else runs
    lines = [f"experiment {cfg.name!r} ({cfg.source})"]
    lines.append(f"  datasets        {', '.join(f'{d} ({cfg.dataset_tasks[d]})' for d in cfg.datasets)}")
    if cfg.continual is None:
        lines.append(f"  missingness     {', '.join(cfg.mechanisms)} at rates {', '.join(f'{r:g}' for r in cfg.rates)} (applied to {cfg.apply_to})")
    lines.append(f"  representations {', '.join(cfg.representations) or '-'}")
    for m, reps in cfg.model_representations.items():
        lines.append(f"    {m}: {', '.join(reps)}")
    lines.append(f"  models          {', '.join(cfg.models)}")
    if cfg.sparsities is not None:
        lines.append(f"  sparsities      {', '.join(f'{s:g}' for s in cfg.sparsities)}")
    if cfg.epsilons is not None:
        lines.append(f"  epsilons        {', '.join(f'{e:g}' for e in cfg.epsilons)}")
    split = cfg.split
    if cfg.continual is not None:
        lines.append(f"  split           per task: test {cfg.continual['test_size']:g} (stratified), no validation")
    elif split["method"] == "kfold":
        lines.append(f"  split           {split['folds']}-fold CV, validation {split['validation_size']:g} of each training part, stratify={split['stratify']}")
    else:
        lines.append(f"  split           holdout test {split['test_size']:g}, validation {split['validation_size']:g} of the rest, stratify={split['stratify']}")
    lines.append(f"  seeds           {', '.join(map(str, cfg.seeds))}")
    from .studies import describe_lines

    lines.extend(describe_lines(cfg, runs))
    for note in cfg.skipped:
        lines.append(f"  skipped         {note}")
    lines.append(f"  runs            {len(runs)}")
    return "\n".join(lines)
