"""Data for dualsparse: data sets, simulated missingness and representations of missing data.

* :func:`load_dataset` / :func:`list_datasets`: named sets and files -> :class:`Dataset`.
* :func:`make_sparse_classification`: a sparse (CSR) problem of any width.
* :func:`ampute` / :func:`ampute_split`: MCAR, MAR and MNAR missingness at an exact rate.
* :func:`make_representation` / :func:`list_representations`: imputers, observed-only CSR,
  native NaN, and naturally sparse input; scikit-learn transformers fitted on training data only.

This package knows no model: it imports nothing from the rest of dualsparse.
"""

from .amputation import MECHANISMS, ampute, ampute_split
from .datasets import Dataset, list_datasets, load_dataset
from .representations import (
    ImputedRepresentation,
    NativeNaNRepresentation,
    ObservedRepresentation,
    SparseInputRepresentation,
    list_representations,
    make_representation,
)
from .synthetic import make_sparse_classification

__all__ = [
    "MECHANISMS",
    "Dataset",
    "ImputedRepresentation",
    "NativeNaNRepresentation",
    "ObservedRepresentation",
    "SparseInputRepresentation",
    "ampute",
    "ampute_split",
    "list_datasets",
    "list_representations",
    "load_dataset",
    "make_representation",
    "make_sparse_classification",
]
