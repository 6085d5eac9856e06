"""Algorithms by name: what an algorithm *is* is declared once, on its class, and read from here.

An algorithm class declares ``name`` (what configs and estimators call it), ``display_name``
(what reports print), ``sparse`` (False only for the dense control), ``needs_momentum`` and
``changes_density`` (False unless set) and its options — the
keyword parameters of its ``__init__``, which is the one place they are written. Whether it
needs a captured gradient is its instances' ``needs_gradient``. Estimators, configs,
``--dry-run`` and reports read all of this through :func:`algorithm_info`; a user adds an
algorithm from outside the package with :func:`register_algorithm` and then uses it by name.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from .algorithm import SET, Dense, RigL, Static, TopologyAlgorithm
from .chts import CHTs
from .gmp import GMP
from .granet import GraNet
from .gse import GSE
from .mest import MEST
from .observed import ObservedSET
from .snfs import SNFS
from .snip import SNIP
from .srigl import SRigL

ALGORITHMS: dict[str, type[TopologyAlgorithm]] = {}


@dataclass(frozen=True)
class AlgorithmInfo:
    """What the registry knows about one algorithm, without building it."""

    name: str
    display_name: str
    cls: type
    options: tuple[str, ...]  # keyword options its constructor accepts, in order
    defaults: dict
    sparse: bool
    needs_gradient: bool
    summary: str  # first line of the class docstring
    needs_momentum: bool = False  # reads the optimiser's momentum (SNFS): SGD with momentum > 0 or Adam
    changes_density: bool = False  # layers' numbers of live weights change during training

    def accepts(self, option: str) -> bool:
        return option in self.options


def register_algorithm(cls=None, *, name: str | None = None, replace: bool = False):
    """Make ``cls`` (a :class:`TopologyAlgorithm` subclass) available by name; usable as a decorator.

    ``name`` defaults to ``cls.name``. Registering a taken name raises unless ``replace=True``.
    """

    def register(klass):
        if not (isinstance(klass, type) and issubclass(klass, TopologyAlgorithm)):
            raise TypeError(f"register_algorithm expects a TopologyAlgorithm subclass, got {klass!r}")
        key = str(name if name is not None else klass.name).lower()
        if not key or key == TopologyAlgorithm.name:
            raise ValueError(f"{klass.__name__} needs a name: set the class attribute name = '...' or pass name=")
        if key in ALGORITHMS and ALGORITHMS[key] is not klass and not replace:
            raise ValueError(f"an algorithm named {key!r} is already registered ({ALGORITHMS[key].__name__}); "
                             f"pick another name or pass replace=True")
        ALGORITHMS[key] = klass
        return klass

    return register if cls is None else register(cls)


def unregister_algorithm(name: str) -> None:
    """Remove a registered algorithm (for tests and interactive use)."""
    ALGORITHMS.pop(str(name).lower(), None)


def algorithm_names() -> list[str]:
    """Registered names in registration order (built-ins first)."""
    return list(ALGORITHMS)


def _lookup(name) -> type[TopologyAlgorithm]:
    key = str(name).lower()
    if key not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)} "
                         f"(or register your own with dualsparse.dst.register_algorithm)")
    return ALGORITHMS[key]


def algorithm_info(name) -> AlgorithmInfo:
    """The declared facts of a registered algorithm (by name) or of an algorithm class/instance."""
    if isinstance(name, TopologyAlgorithm):
        cls, instance = type(name), name
    elif isinstance(name, type) and issubclass(name, TopologyAlgorithm):
        cls, instance = name, None
    else:
        cls, instance = _lookup(name), None
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    if instance is None:
        try:
            instance = cls()
        except TypeError:
            instance = None
    needs_gradient = bool(getattr(instance, "needs_gradient", False)) if instance is not None else False
    doc = inspect.getdoc(cls) or ""
    return AlgorithmInfo(
        name=str(cls.name), display_name=str(getattr(cls, "display_name", None) or cls.name), cls=cls,
        options=tuple(p.name for p in params), defaults=defaults, sparse=bool(getattr(cls, "sparse", True)),
        needs_gradient=needs_gradient, summary=doc.splitlines()[0] if doc else "",
        needs_momentum=bool(getattr(cls, "needs_momentum", False)),
        changes_density=bool(getattr(cls, "changes_density", False)),
    )


def make_algorithm(name, **options) -> TopologyAlgorithm:
    """Build an algorithm from its name (or return an algorithm instance unchanged)."""
    if isinstance(name, TopologyAlgorithm):
        return name
    cls = _lookup(name)
    info = algorithm_info(cls)
    unknown = [k for k in options if k not in info.options]
    if unknown:
        accepted = ", ".join(info.options) or "none"
        raise ValueError(f"bad options for algorithm {info.name!r}: {', '.join(map(repr, unknown))} "
                         f"not accepted; it takes: {accepted}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"bad options for algorithm {info.name!r}: {exc}") from None


for _cls in (Dense, Static, SET, RigL, ObservedSET, SNFS, MEST, GMP, GraNet, SNIP, SRigL, CHTs, GSE):
    register_algorithm(_cls)
