"""Helpers shared by the dynamics modules: batches for a fitted model, argument checks."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
import torch


def rows_as_tensor(X, idx, device, dense: bool) -> torch.Tensor:
    """Rows ``idx`` of X (ndarray or CSR) as the tensor a model of the estimator takes.

    Sparse models take a ``torch.sparse_csr`` batch, dense ones a dense batch (the same rule the
    training loop follows, so statistics see exactly what training sees).
    """
    if sp.issparse(X):
        sub = X[idx]
        if dense:
            return torch.from_numpy(np.asarray(sub.toarray(), dtype=np.float32)).to(device)
        return torch.sparse_csr_tensor(
            torch.from_numpy(sub.indptr.astype(np.int64)),
            torch.from_numpy(sub.indices.astype(np.int64)),
            torch.from_numpy(np.asarray(sub.data, dtype=np.float32)),
            size=sub.shape,
            check_invariants=False,
        ).to(device)
    return torch.from_numpy(np.ascontiguousarray(X[idx], dtype=np.float32)).to(device)


def row_batches(est, X, index: np.ndarray, chunk: int = 4096):
    """Rows ``index`` of X in chunks of ``chunk``, each as the tensor ``est.module_`` takes."""
    device = torch.device(est.device)
    dense = not est.algorithm_.sparse
    for s in range(0, index.size, chunk):
        yield rows_as_tensor(X, index[s : s + chunk], device, dense)


@torch.inference_mode()
def logits_of_batches(est, batches) -> torch.Tensor:
    """Logits, on the CPU and concatenated, of ``est.module_`` in eval mode over prepared batches."""
    module = est.module_
    was_training = module.training
    module.eval()
    try:
        outs = [module(xb).float().cpu() for xb in batches]
    finally:
        module.train(was_training)
    if not outs:
        return torch.empty(0, 0)
    return torch.cat(outs)


def check_fraction(fraction, name: str = "fraction") -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (0.0 < float(fraction) <= 1.0):
        raise ValueError(
            f"{name} must be a number in (0, 1] (the share of rows to keep), got {fraction!r}; "
            "e.g. 0.3 keeps 30 % of the training rows"
        )
    return float(fraction)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def n_rows(X) -> int:
    return X.shape[0] if hasattr(X, "shape") else len(X)


def take_rows(X, idx):
    """Rows ``idx`` of an ndarray, a SciPy sparse matrix or a pandas DataFrame."""
    if hasattr(X, "iloc"):
        return X.iloc[idx]
    if sp.issparse(X):
        return sp.csr_matrix(X)[idx]
    return np.asarray(X)[idx]


def stack_rows(parts):
    """Concatenate row blocks (all ndarray, or any sparse -> CSR)."""
    if any(sp.issparse(p) for p in parts):
        return sp.vstack([sp.csr_matrix(p) for p in parts], format="csr")
    return np.concatenate([np.asarray(p) for p in parts], axis=0)
