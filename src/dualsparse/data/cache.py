"""The local cache of converted data sets: one compressed ``.npz`` per data set, checked by hash.

Where: ``$DUALSPARSE_DATA`` if set, else the platform's user cache folder for "dualsparse"
(``pooch.os_cache``: ``~/.cache/dualsparse`` on Linux). Archives fetched for a data set stay in
its ``archives/`` subfolder, so converting again needs no registry.

Why a hash beside every file: a truncated or overwritten cache file must be an error that says
what to do (fetch again), not a confusing failure deep inside NumPy or, worse, silently different
data. Each ``NAME.npz`` is written to a temporary file and renamed into place, with its SHA-256 in
``NAME.npz.sha256``; :func:`read` checks it before use. The ``.npz`` holds no Python objects
(read with ``allow_pickle=False``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pooch
import scipy.sparse as sp

from .archives import Converted

FORMAT_VERSION = 1
ENV = "DUALSPARSE_DATA"


class NotCachedError(FileNotFoundError):
    """The data set has not been fetched into the cache."""


class CorruptCacheError(ValueError):
    """A cache file does not match its recorded hash (truncated, overwritten or half-written)."""


def cache_dir() -> Path:
    """The cache folder (not created here)."""
    return Path(os.environ.get(ENV) or pooch.os_cache("dualsparse")).expanduser()


def archive_dir() -> Path:
    return cache_dir() / "archives"


def path_of(name: str) -> Path:
    return cache_dir() / f"{name}.npz"


def fetch_command(name: str) -> str:
    return f"dualsparse data fetch {name}"


def is_cached(name: str) -> bool:
    return path_of(name).is_file() and Path(f"{path_of(name)}.sha256").is_file()


def write(name: str, conv: Converted, meta: dict) -> Path:
    """Store a converted data set atomically (temporary file, then rename) with its hash."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if conv.class_names is not None:
        classes, codes = np.asarray(conv.class_names), np.asarray(conv.labels)
    else:
        classes, codes = np.unique(np.asarray(conv.labels), return_inverse=True)
    arrays = {
        "y": codes.astype(np.int64),
        "target_names": np.asarray([str(c) for c in classes]) if classes.dtype.kind in "OUS" else classes,
        "feature_names": np.asarray(conv.feature_names, dtype=str),
        "categorical": np.asarray(conv.categorical, dtype=bool),
        "meta": np.asarray(json.dumps({**meta, "notes": conv.notes, "format": FORMAT_VERSION})),
    }
    if sp.issparse(conv.X):
        X = sp.csr_matrix(conv.X)
        arrays |= {"X_data": X.data, "X_indices": X.indices, "X_indptr": X.indptr, "X_shape": np.asarray(X.shape)}
    else:
        arrays["X"] = conv.X
    missing = np.zeros((0, 2), np.int64) if conv.missing is None else np.argwhere(conv.missing)
    arrays["missing_cells"] = missing.astype(np.int32)
    if conv.test_mask is not None:
        arrays["test_mask"] = np.asarray(conv.test_mask, dtype=bool)
    target = path_of(name)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".npz.part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        digest = pooch.file_hash(tmp)
        side_tmp = f"{tmp}.sha256"
        Path(side_tmp).write_text(digest + "\n")
        os.replace(tmp, target)
        os.replace(side_tmp, f"{target}.sha256")
    except BaseException:
        for leftover in (tmp, f"{tmp}.sha256"):
            Path(leftover).unlink(missing_ok=True)
        raise
    return target


def read(name: str) -> dict:
    """The cached arrays of ``name``, after checking the file against its hash."""
    path = path_of(name)
    if not is_cached(name):
        raise NotCachedError(
            f"data set {name!r} is not in the cache ({str(path)!r} not found); fetch it once with "
            f"`{fetch_command(name)}` (set {ENV} to choose the cache folder)"
        )
    recorded = Path(f"{path}.sha256").read_text().strip()
    if pooch.file_hash(str(path)) != recorded:
        raise CorruptCacheError(
            f"the cache file {str(path)!r} of {name!r} does not match its recorded SHA-256 (truncated or "
            f"overwritten); fetch it again with `{fetch_command(name)} --force`"
        )
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["meta"] = json.loads(str(arrays["meta"]))
    if "X_data" in arrays:
        arrays["X"] = sp.csr_matrix((arrays.pop("X_data"), arrays.pop("X_indices"), arrays.pop("X_indptr")),
                                    shape=tuple(arrays.pop("X_shape")))
    return arrays


def size_of(name: str) -> int:
    """Bytes the cache file takes (0 when absent)."""
    path = path_of(name)
    return path.stat().st_size if path.is_file() else 0
