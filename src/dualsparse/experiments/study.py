"""Study kinds: the one interface through which configs, the runner, the store and the report
drive a kind of study, and the registry that lists them.

A study kind (:class:`StudyKind`) owns, for its kind of run: validating its config section
(:meth:`~StudyKind.validate`, then :meth:`~StudyKind.check_data` once the datasets are loaded),
expanding the config into runs (:meth:`~StudyKind.expand`), executing one run
(:meth:`~StudyKind.execute`, after :meth:`~StudyKind.prepare` in the driver for a run that needs
stored results of others), the study tables it stores (:attr:`~StudyKind.tables`) and its report
sections (:meth:`~StudyKind.report`). The built-in kinds are the grid
(:mod:`.grid_study`), per-example tracking with subset runs (:mod:`.tracking_study`, section
``[dynamics]``) and continual learning (:mod:`.continual_study`, section ``[continual]``); a kind
from outside the package is added with :func:`register_study_kind`.

Which kind executes a run: the most recently registered kind that :meth:`~StudyKind.claims` it
(the grid claims every run, so a later, more specific kind takes over the runs it claims).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .record import RunSpec

STUDY_KINDS: dict[str, "StudyKind"] = {}


@dataclass(frozen=True)
class StudyTable:
    """A table a study kind stores next to ``runs``: its columns ((name, SQLite type), ``run_key``
    first), its primary key (None: ``run_key`` alone, declared on the column), and where a result
    carries its rows: ``result[source]``, laid out as ``"columns"`` ({column: [values]}),
    ``"records"`` ([{column: value}]) or ``"record"`` (one {column: value})."""

    columns: tuple
    key: tuple | None
    source: str
    layout: str = "records"

    @property
    def names(self) -> list[str]:
        return [c for c, _ in self.columns]


@dataclass
class ConfigContext:
    """What a kind's section validator may read of the rest of a config (after the static checks
    of the shared sections; ``dataset_tasks`` and ``loaded`` only in :meth:`StudyKind.check_data`)."""

    raw: dict
    models: list
    model_params: dict  # model -> its parameters ([mlp] under [models.<name>] for MLPs)
    sparsities: list | None
    epsilons: list | None
    split: dict = field(default_factory=dict)  # the normalised [split]
    dataset_tasks: dict = field(default_factory=dict)
    loaded: dict = field(default_factory=dict)


class StudyKind:
    """The interface of a study kind; every method has a do-nothing default."""

    #: the kind's name (also the ``kind`` of the runs it makes, unless it says otherwise)
    name: str = ""
    #: the config section it owns (``[name]``); None: always active (the grid)
    section: str | None = None
    #: the study tables it stores, {table name: StudyTable}
    tables: dict = {}
    #: whether its runs replace the grid's (then the grid's own checks and runs do not apply)
    replaces_grid: bool = False

    # ----------------------------------------------------------------- config
    def validate(self, section, ctx: ConfigContext, problems) -> dict:
        """Check the kind's section statically; return its normalised settings."""
        return {}

    def check_data(self, settings, ctx: ConfigContext, problems) -> None:
        """Checks that need the loaded datasets (``ctx.loaded``, ``ctx.dataset_tasks``)."""

    def expand(self, cfg, settings, runs: list[RunSpec]) -> list[RunSpec]:
        """The runs of a config with this kind active, given the runs so far (the grid's)."""
        return runs

    def describe(self, cfg, settings, runs) -> list[str]:
        """Extra ``--dry-run`` lines."""
        return []

    def describe_overrides(self, cfg, settings) -> dict:
        """``--dry-run`` lines of the shared sections this kind words differently:
        {"missingness" or "split": the text, or None to leave the line out}."""
        return {}

    # ----------------------------------------------------------------- running
    def claims(self, spec: RunSpec) -> bool:
        """Whether this kind executes ``spec``."""
        return spec.kind == self.name

    def phase(self, spec: RunSpec) -> int:
        """Runs of phase 1 start after every run of phase 0 has finished (they read its results)."""
        return 0

    def prepare(self, spec: RunSpec, store):
        """Driver side, before a phase-1 run: what it needs from the store (sent with the spec);
        raise ``LookupError`` when that is not there yet (the run is then recorded as failed)."""
        return None

    def execute(self, spec: RunSpec, callbacks=None, payload=None) -> dict:
        """Run one spec; the result's fields (metrics, flops, ...) and its study rows."""
        raise NotImplementedError

    # ----------------------------------------------------------------- reporting
    def report(self, store, frame, out_dir, plots: bool, experiment=None) -> dict:
        """Report sections: ``{"head": blocks, "detail": blocks, "methods": [items], "tables":
        {name: rows}, "summary": [DataFrame]}`` (missing keys: nothing)."""
        return {}


def register_study_kind(kind: StudyKind, replace: bool = False) -> StudyKind:
    """Make ``kind`` (a :class:`StudyKind` instance) available to configs, runs, the store and reports."""
    if not isinstance(kind, StudyKind):
        raise TypeError(f"register_study_kind expects a StudyKind instance, got {kind!r}")
    if not kind.name:
        raise ValueError(f"{type(kind).__name__} needs a name: set the class attribute name = '...'")
    taken = STUDY_KINDS.get(kind.name)
    if taken is not None and taken is not kind and not replace:
        raise ValueError(f"a study kind named {kind.name!r} is already registered ({type(taken).__name__}); "
                         "pick another name or pass replace=True")
    sections = {k.section: k.name for k in STUDY_KINDS.values() if k.section and k.name != kind.name}
    if kind.section in sections:
        raise ValueError(f"section [{kind.section}] already belongs to study kind {sections[kind.section]!r}")
    STUDY_KINDS[kind.name] = kind
    return kind


def unregister_study_kind(name: str) -> None:
    """Remove a registered study kind (for tests and interactive use)."""
    STUDY_KINDS.pop(name, None)


def study_kinds() -> list[StudyKind]:
    """Registered kinds in registration order (the grid first)."""
    return list(STUDY_KINDS.values())


def kind_for(spec: RunSpec) -> StudyKind:
    """The kind that executes ``spec``: the most recently registered one that claims it."""
    for kind in reversed(study_kinds()):
        if kind.claims(spec):
            return kind
    raise ValueError(f"no study kind executes runs of kind {spec.kind!r}; registered: {', '.join(STUDY_KINDS)}")


def study_tables() -> dict:
    """{table name: StudyTable} of every registered kind."""
    out = {}
    for kind in study_kinds():
        out.update(kind.tables)
    return out
