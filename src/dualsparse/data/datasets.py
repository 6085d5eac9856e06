"""Load a data set by name or from a file into one small, uniform container.

Named sets: scikit-learn's bundled ``breast_cancer``, ``wine``, ``digits``, ``iris``,
``diabetes`` (regression); the real sets of :mod:`.sources` (MNIST, Fashion-MNIST, tables with
genuinely missing values, hiva), read from the local cache once ``dualsparse data fetch NAME`` has
put them there (never downloaded here: an uncached one is an error giving that command);
``penguins`` (palmerpenguins: real missing values); ``coil20``
(COIL-20 images: ``COIL20.mat`` in the data cache folder, ``$DUALSPARSE_DATA``, else in
``../shared/data`` beside the repository); ``synthetic`` (see
:func:`make_sparse_classification`). Files: CSV/TSV, Parquet, LibSVM/svmlight, MATLAB ``.mat``,
NumPy ``.npz``, chosen by extension or ``format=``.

Conventions a user must know:

* Missing values in files (empty CSV cells, NaN in arrays, nulls in Parquet) stay NaN; nothing
  is dropped or filled. A missing or infinite *label* is an error.
* Classification labels are encoded as ``y = 0..C-1`` with ``target_names[y]`` the original
  label (as scikit-learn's bundled sets do). The task is inferred unless ``task=`` is given:
  strings and booleans, and integers or whole-number floats with at most 100 distinct values,
  are classification; anything else is regression.
* Non-numeric feature columns are an error unless ``categorical="onehot"``: one column
  ``"name=value"`` per category, and a missing category is NaN in all of its columns (kept
  missing, not turned into zeros). ``penguins`` uses ``"onehot"`` by default: island (3
  columns) and sex (2 columns, NaN where sex is unknown); year stays a numeric feature.
* LibSVM/svmlight files give a SciPy CSR matrix: there an absent entry is 0, not missing.
* Real sets carry what the source says about each cell: ``missing`` (the source's own missing
  mask, feature space; the same as ``np.isnan(X)``, categorical columns included),
  ``categorical`` (which features are one-hot columns) and, for MNIST and Fashion-MNIST,
  ``test_mask`` (the standard / documented test rows).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
import sklearn.datasets

from sklearn.model_selection import train_test_split

from . import cache
from ._validation import check_labels, non_numeric_columns, unknown_name
from .sources import SOURCES, SUBSETS, real_names
from .synthetic import make_sparse_classification

TASKS = ("classification", "regression")
MAX_CLASSES = 100  # auto task: more distinct whole-number labels than this means regression

# where `coil20` is looked for: the cache folder ($DUALSPARSE_DATA), then shared/data beside or inside the repo
_REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Dataset:
    """Features, labels and what they mean."""

    X: np.ndarray | sp.csr_matrix = field(repr=False)  # float64; NaN = missing (dense)
    y: np.ndarray = field(repr=False)  # int codes (classification) or float64 (regression)
    feature_names: list[str] = field(repr=False)
    target_names: list | None  # classification: original label of code i; regression: None
    task: str  # "classification" or "regression"
    name: str
    description: str = field(default="", repr=False)
    # what the source says (real sets; None elsewhere): missing cells, one-hot features, test rows
    missing: np.ndarray | None = field(default=None, repr=False)
    categorical: np.ndarray | None = field(default=None, repr=False)
    test_mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape


def list_datasets() -> list[str]:
    """Names that :func:`load_dataset` accepts (besides file paths)."""
    return sorted(_NAMED)


def load_dataset(name_or_path, *, target=None, task: str = "auto", **options) -> Dataset:
    """Load a named data set or a file; return a :class:`Dataset`.

    Parameters
    ----------
    name_or_path : a name from :func:`list_datasets` or the path of a file.
    target : column holding the labels, for CSV/Parquet (default: the last column) and
        penguins (default: "species").
    task : "auto", "classification" or "regression" (files and penguins).
    **options : per source.
        files: ``format`` ("csv", "tsv", "parquet", "svmlight", "mat", "npz"; default from the
        extension); CSV/Parquet: ``categorical`` ("error" or "onehot") and keyword arguments of
        pandas.read_csv/read_parquet; svmlight: keyword arguments of
        sklearn.datasets.load_svmlight_file; .mat/.npz: ``x_key``, ``y_key`` (defaults: X/x
        and Y/y/gnd/label/labels). synthetic: arguments of
        :func:`make_sparse_classification`. penguins: ``categorical``.
    """
    if target is not None:
        options["target"] = target
    if task != "auto":
        options["task"] = task
    key = str(name_or_path).strip().lower().replace("-", "_")
    if not isinstance(name_or_path, Path) and key in _NAMED:
        loader, args = _NAMED[key], ()
    else:
        path = Path(name_or_path)
        fmt = options.pop("format", None)
        if fmt is not None and fmt not in _READERS:
            raise unknown_name("format", fmt, sorted(_READERS))
        fmt = fmt or _FORMAT_OF_SUFFIX.get(path.suffix.lower())
        if fmt is None and not path.exists() and not path.suffix:
            raise ValueError(
                f"unknown dataset {str(name_or_path)!r}: not a known name and no such file; "
                f"known names are {list_datasets()} (fetched into the cache by `dualsparse data "
                f"fetch NAME`: {real_names()}), or pass the path of a "
                f"{'/'.join(sorted(_FORMAT_OF_SUFFIX))} file"
            )
        if not path.exists():
            raise FileNotFoundError(
                f"no such file: {str(path)!r}; pass an existing path or one of the names "
                f"{list_datasets()}"
            )
        if fmt not in _READERS:
            raise ValueError(
                f"cannot tell the format of {str(path)!r} (suffix {path.suffix!r}); pass "
                f"format= one of {sorted(_READERS)}"
            )
        loader, args = _READERS[fmt], (path, fmt)
    _check_options(loader, str(name_or_path), len(args), options)
    return loader(*args, **options)


def _check_options(loader, what, n_positional, options):
    """A clear TypeError for options the chosen source does not take."""
    params = list(inspect.signature(loader).parameters.values())[n_positional:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return  # the reader's own signature is checked by the reader
    names = [p.name for p in params]
    extra = sorted(set(options) - set(names))
    if extra:
        raise TypeError(
            f"load_dataset({what!r}) does not take option(s) {extra}; "
            f"it takes {names or 'no options'}"
        )


# ---------------------------------------------------------------- named sets


def _sklearn_loader(loader_name: str, task: str):
    def load() -> Dataset:
        bunch = getattr(sklearn.datasets, loader_name)()
        names = getattr(bunch, "target_names", None)
        return Dataset(
            X=np.asarray(bunch.data, dtype=np.float64),
            y=bunch.target.astype(np.int64 if task == "classification" else np.float64),
            feature_names=[str(n) for n in bunch.feature_names],
            target_names=None if names is None else np.asarray(names).tolist(),
            task=task,
            name=loader_name.removeprefix("load_"),
            description=bunch.DESCR,
        )

    return load


def _load_penguins(*, target: str = "species", task: str = "auto", categorical: str = "onehot"):
    from palmerpenguins import load_penguins

    return _from_frame(
        load_penguins(),
        target=target,
        task=task,
        categorical=categorical,
        name="penguins",
        description="Palmer Archipelago penguins (palmerpenguins); real missing values kept "
        "as NaN; island and sex one-hot encoded, NaN where sex is unknown.",
    )


def _coil20_candidates() -> list[Path]:
    dirs = [cache.cache_dir(), _REPO_ROOT.parent / "shared" / "data", _REPO_ROOT / "shared" / "data"]
    return [d / "COIL20.mat" for d in dirs]


def _load_coil20():
    for path in _coil20_candidates():
        if path.is_file():
            data = _read_arrays(path, "mat", x_key="X", y_key="Y", task="classification")
            data.name = "coil20"
            data.description = (
                "COIL-20: 20 objects x 72 poses, 32x32 grey images flattened to 1024 "
                "features in [0, 1]; labels are the object numbers 1..20."
            )
            return data
    raise FileNotFoundError(
        f"COIL20.mat not found (looked at {[str(p) for p in _coil20_candidates()]}); put it in "
        f"the data cache folder ({cache.cache_dir()}; set {cache.ENV} to move it) or in shared/data beside "
        "the repository, or pass "
        "its path: load_dataset('/path/to/COIL20.mat')"
    )


def _load_synthetic(**options):
    inspect.signature(make_sparse_classification).bind(**options)  # TypeError names a bad one
    X, y = make_sparse_classification(**{**options, "return_informative": False})
    n_classes = options.get("n_classes", 2)
    return Dataset(
        X=X,
        y=y.astype(np.int64),
        feature_names=[f"x{i}" for i in range(X.shape[1])],
        target_names=list(range(n_classes)),
        task="classification",
        name="synthetic",
        description=f"make_sparse_classification({options})",
    )


def _real_loader(name: str):
    """Read a fetched set from the cache (an error giving the fetch command when absent)."""

    def load() -> Dataset:
        base, n_rows, seed = SUBSETS.get(name, (name, None, None))
        arrays = cache.read(base)
        X, y = arrays["X"], arrays["y"]
        X = X.astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
        missing = np.zeros(X.shape, dtype=bool) if not sp.issparse(X) else None
        if missing is not None:
            cells = arrays["missing_cells"]
            missing[cells[:, 0], cells[:, 1]] = True
        test_mask = arrays.get("test_mask")
        description = arrays["meta"]["description"]
        if n_rows is not None:
            rows = np.sort(train_test_split(np.arange(len(y)), train_size=n_rows, stratify=y,
                                            random_state=seed)[0])
            X, y = X[rows], y[rows]
            missing = None if missing is None else missing[rows]
            test_mask = None if test_mask is None else test_mask[rows]
            description = f"{n_rows:,} rows of {base} (stratified, seed {seed}). " + description
        return Dataset(X=X, y=y.astype(np.int64), feature_names=arrays["feature_names"].tolist(),
                       target_names=arrays["target_names"].tolist(), task="classification", name=name,
                       description=description, missing=missing,
                       categorical=arrays["categorical"].astype(bool), test_mask=test_mask)

    return load


_NAMED = {
    "breast_cancer": _sklearn_loader("load_breast_cancer", "classification"),
    "wine": _sklearn_loader("load_wine", "classification"),
    "digits": _sklearn_loader("load_digits", "classification"),
    "iris": _sklearn_loader("load_iris", "classification"),
    "diabetes": _sklearn_loader("load_diabetes", "regression"),
    "penguins": _load_penguins,
    "coil20": _load_coil20,
    "synthetic": _load_synthetic,
    **{name: _real_loader(name) for name in [*SOURCES, *SUBSETS]},
}


# ---------------------------------------------------------------- files


def _read(path: Path, fmt: str, read, **kwargs):
    """Run a reader; a file it cannot parse becomes a ValueError that names file and format."""
    try:
        return read(path, **kwargs)
    except OSError:
        raise
    except Exception as err:
        reason = str(err) if len(str(err)) <= 200 else str(err)[:200] + "..."
        raise ValueError(
            f"could not read {str(path)!r} as {fmt} ({type(err).__name__}: {reason}); check that "
            f"it is a valid {fmt} file, or pass format= if the extension is misleading"
        ) from err


def _read_table(path, fmt, *, target=None, task="auto", categorical="error", **read_options):
    """CSV/TSV/Parquet: one column is the target, the others are features."""
    read = pd.read_parquet if fmt == "parquet" else pd.read_csv
    if fmt == "tsv":
        read_options.setdefault("sep", "\t")
    inspect.signature(read).bind(path, **read_options)  # TypeError names a bad option
    frame = _read(path, fmt, read, **read_options)
    return _from_frame(frame, target, task, categorical, name=path.stem, description=str(path))


def _read_svmlight(path, fmt, *, task="auto", **read_options):
    """LibSVM/svmlight: sparse features (absent = 0), one numeric label per row."""
    inspect.signature(sklearn.datasets.load_svmlight_file).bind(path, **read_options)
    if read_options.get("multilabel"):
        raise ValueError("multilabel svmlight files are not supported: one label per row")
    X, y = _read(path, fmt, sklearn.datasets.load_svmlight_file, **read_options)
    return _make_dataset(X.tocsr(), y, None, task, path.stem, str(path))


def _read_arrays(path, fmt, *, x_key=None, y_key=None, task="auto"):
    """.mat / .npz: an X array and a label array stored under known keys."""
    arrays = _read(path, fmt, scipy.io.loadmat if fmt == "mat" else _load_npz)
    keys = [k for k in arrays if not k.startswith("__")]
    X = arrays[_pick_key(keys, x_key, ("X", "x"), "x_key", path)]
    y = arrays[_pick_key(keys, y_key, ("Y", "y", "gnd", "label", "labels"), "y_key", path)]
    if sp.issparse(X):
        X = X.tocsr().astype(np.float64)
    return _make_dataset(X, y, None, task, path.stem, str(path))


def _load_npz(path):
    with np.load(path, allow_pickle=False) as npz:
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive (np.savez writes one)")
        return {k: npz[k] for k in npz.files}


def _pick_key(keys, given, defaults, option, path):
    candidates = [given] if given is not None else defaults
    for key in candidates:
        if key in keys:
            return key
    raise ValueError(
        f"{str(path)!r} has no array named {candidates[0] if given else list(defaults)}; "
        f"it holds {keys}: pass {option}= one of them"
    )


_READERS = {
    "csv": _read_table,
    "tsv": _read_table,
    "parquet": _read_table,
    "svmlight": _read_svmlight,
    "mat": _read_arrays,
    "npz": _read_arrays,
}
_FORMAT_OF_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".svm": "svmlight",
    ".svmlight": "svmlight",
    ".libsvm": "svmlight",
    ".mat": "mat",
    ".npz": "npz",
}


# ---------------------------------------------------------------- building a Dataset


def _from_frame(frame, target, task, categorical, name, description):
    """Split a DataFrame into features and target; encode or reject categorical columns."""
    if frame.shape[1] < 2:
        raise ValueError(
            f"{name}: need a target column and at least one feature column, got columns "
            f"{list(frame.columns)}"
        )
    if categorical not in ("error", "onehot"):
        raise unknown_name("categorical", categorical, ("error", "onehot"))
    target = frame.columns[-1] if target is None else target
    if target not in frame.columns:
        raise ValueError(f"target column {target!r} not found; columns are {list(frame.columns)}")
    features = frame.drop(columns=[target])
    bad = non_numeric_columns(features)
    if bad and categorical == "error":
        raise TypeError(
            f"{name}: non-numeric feature column(s) {bad}; encode them as numbers first, drop "
            "them, or pass categorical='onehot' (one 0/1 column per category, NaN where missing)"
        )
    if bad:
        features = _one_hot(features, bad)
    X = features.to_numpy(dtype=np.float64, na_value=np.nan)
    labels = frame[target]
    if pd.api.types.is_extension_array_dtype(labels) and pd.api.types.is_numeric_dtype(labels):
        y = labels.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable ints: NA -> NaN
    else:
        y = labels.to_numpy()
    return _make_dataset(X, y, [str(c) for c in features.columns], task, name, description)


def _one_hot(features, columns):
    """Replace each categorical column by name=value 0/1 columns; a missing value -> all NaN."""
    parts = []
    for col in features.columns:
        if col not in columns:
            parts.append(features[[col]].astype(np.float64))
            continue
        dummies = pd.get_dummies(features[col], prefix=str(col), prefix_sep="=", dtype=np.float64)
        dummies.loc[features[col].isna()] = np.nan
        parts.append(dummies)
    return pd.concat(parts, axis=1)


def _make_dataset(X, y, feature_names, task, name, description):
    """Check labels and task, encode class labels; the one place every loader ends."""
    if not sp.issparse(X):
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name}: X must be numeric, got dtype {X.dtype}")
        X = X.astype(np.float64)
        if X.ndim != 2:
            raise ValueError(f"{name}: X must be 2-D, got shape {X.shape}")
        if np.isinf(X).any():
            raise ValueError(
                f"{name}: X contains infinite values; replace them with NaN (missing) or finite "
                "numbers"
            )
    y = check_labels(y, X.shape[0])
    if task == "auto":
        task = _infer_task(y)
    if task not in TASKS:
        raise unknown_name("task", task, ("auto",) + TASKS)
    if task == "classification":
        classes, y = np.unique(y, return_inverse=True)
        target_names = classes.tolist()
        y = y.astype(np.int64)
    else:
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{name}: regression needs numeric labels, got dtype {y.dtype}")
        y, target_names = y.astype(np.float64), None
    if feature_names is None:
        feature_names = [f"x{i}" for i in range(X.shape[1])]
    return Dataset(X, y, feature_names, target_names, task, name, description)


def _infer_task(y) -> str:
    if y.dtype.kind in "OUSb":
        return "classification"
    whole = y.dtype.kind in "iu" or bool(np.all(np.mod(y, 1) == 0))
    return "classification" if whole and np.unique(y).size <= MAX_CLASSES else "regression"
