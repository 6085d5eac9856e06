"""The SET authors' truly sparse MLP, built from a local copy and timed epoch by epoch.

``SET-MLP-Sparse-Python-Data-Structures`` in ``dcmocanu/sparse-evolutionary-artificial-neural-networks``
(MIT licence; SciPy sparse matrices plus one Cython kernel for the weight gradients) is the
reference every truly sparse SET implementation is measured against. This module never copies
it: the user points to a checkout (``--reference PATH``: the repository or that folder), the
Cython kernel is compiled from their ``sparseoperations.pyx`` into a cache directory, and their
module is imported from their file with three fixes for today's NumPy and SciPy, applied to the
imported module (not to their file): ``np.in1d`` is gone, and their structured-view row
intersection (``array_intersect``) is replaced by the same test on int64 keys
``row * n_cols + col``, which returns the same mask; and ``coo_matrix(w)`` of a CSR matrix now
*shares* ``w``'s data array (SciPy 1.17; the SciPy of their time copied it), so the gradient
their Cython kernel writes into ``dw.data`` (``dw = coo_matrix(self.w[i])``) overwrote the
weights themselves — the weights became the gradient, every exact zero of it was pruned at the
update, and the network lost half its connections in the first epoch (H = 3,000: 378 k stored
weights after construction, 199 k after one epoch, 147 k after three). ``coo_matrix`` of a
sparse matrix therefore copies again, as it did for them.

One epoch is their ``fit`` loop without the per-epoch test pass and printing: shuffle, batches
of ``_feed_forward`` + ``_back_prop`` (their momentum SGD with decoupled weight decay), then
``weightsEvolution_Amar`` (the fast evolution they ship). Training and evolution are timed
apart, as in ``scale.py``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

FOLDER = "SET-MLP-Sparse-Python-Data-Structures"
MODULE = "set_mlp_sparse_data_structures.py"
KERNEL = "sparseoperations.pyx"


class ReferenceCodeError(ValueError):
    pass


def locate(path) -> Path:
    """The folder holding their MLP and Cython kernel, given the repository or the folder itself."""
    root = Path(path).expanduser()
    for candidate in (root, root / FOLDER):
        if (candidate / MODULE).is_file() and (candidate / KERNEL).is_file():
            return candidate
    raise ReferenceCodeError(
        f"--reference {path}: expected the SET authors' code there, i.e. {MODULE} and {KERNEL} in it or in "
        f"{FOLDER}/ below it. Clone https://github.com/dcmocanu/sparse-evolutionary-artificial-neural-networks "
        f"(MIT licence) and pass the clone's path."
    )


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dualsparse" / "set-reference"


def build(folder: Path) -> Path:
    """Compile their ``sparseoperations.pyx`` (once per content) and return the build directory."""
    source = (folder / KERNEL).read_bytes()
    out = _cache_dir() / hashlib.sha256(source + sys.version.encode()).hexdigest()[:16]
    if any(out.glob("sparseoperations*.so")) or any(out.glob("sparseoperations*.pyd")):
        return out
    try:
        import Cython  # noqa: F401
        import numpy as np
    except ImportError:
        raise ReferenceCodeError("building the SET authors' Cython kernel needs Cython: "
                              "pip install 'cython>=3,<4' (or pip install -e '.[bench]')") from None
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / KERNEL, out / KERNEL)
    setup = out / "setup_ref.py"
    setup.write_text(
        "from setuptools import setup, Extension\nfrom Cython.Build import cythonize\nimport numpy\n"
        f"setup(ext_modules=cythonize([Extension('sparseoperations', ['{KERNEL}'], "
        "include_dirs=[numpy.get_include()], extra_compile_args=['-O3'])], language_level=3, quiet=True))\n"
    )
    done = subprocess.run([sys.executable, str(setup), "build_ext", "--inplace", "-q"], cwd=out,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ReferenceCodeError(f"compiling {folder / KERNEL} failed (a C compiler and Python headers are needed):\n"
                              f"{done.stderr[-2000:]}")
    del np
    return out


def load(path):
    """Their module, imported from their file with the NumPy-2 fixes (module docstring)."""
    import numpy as np

    folder = locate(path)
    built = build(folder)
    sys.path.insert(0, str(built))
    try:
        spec = importlib.util.spec_from_file_location("set_reference_mlp", folder / MODULE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(built))

    def array_intersect(A, B):
        """Rows of A (n x 2 int indices) present among the rows of B: int64 keys, same mask."""
        A = np.asarray(A, dtype=np.int64)
        B = np.asarray(B, dtype=np.int64)
        width = int(max(A[:, 1].max(initial=0), B[:, 1].max(initial=0))) + 1
        return np.isin(A[:, 0] * width + A[:, 1], B[:, 0] * width + B[:, 1])

    import scipy.sparse as sp

    def coo_matrix(arg1, *args, **kw):
        """SciPy's coo_matrix, copying a sparse argument as the SciPy their code was written for did."""
        if sp.issparse(arg1):
            kw.setdefault("copy", True)
        return sp.coo_matrix(arg1, *args, **kw)

    module.array_intersect = array_intersect
    module.coo_matrix = coo_matrix
    return module


def train_epochs(module, X, y, H: int, epochs: int, seed: int = 0, lr=0.01, momentum=0.9, weight_decay=0.0002,
                 zeta=0.3, batch_size=2, epsilon=20):
    """Their network (n_in-H-H-H-classes, ReLU x3 + sigmoid, MSE) trained as their ``fit`` does;
    returns per-epoch (training s, evolution s) and the final network."""
    import time

    import numpy as np

    np.random.seed(seed)
    n_classes = int(y.max()) + 1
    Y = np.eye(n_classes)[y]
    X = X.astype(np.float64)
    net = module.SET_MLP((X.shape[1], H, H, H, n_classes),
                         (module.Relu, module.Relu, module.Relu, module.Sigmoid), epsilon=epsilon)
    net.loss = module.MSE(net.activations[net.n_layers])
    net.learning_rate, net.momentum, net.weight_decay, net.zeta = lr, momentum, weight_decay, zeta
    times = []
    for epoch in range(epochs):
        order = np.arange(X.shape[0])
        np.random.shuffle(order)
        x_, y_ = X[order], Y[order]
        t1 = time.perf_counter()
        for j in range(X.shape[0] // batch_size):
            k, l = j * batch_size, (j + 1) * batch_size
            z, a = net._feed_forward(x_[k:l])
            net._back_prop(z, a, y_[k:l])
        t2 = time.perf_counter()
        if epoch < epochs - 1:  # as their fit: no evolution after the last epoch
            net.weightsEvolution_Amar()
        t3 = time.perf_counter()
        times.append((t2 - t1, t3 - t2))
    return times, net


def accuracy(module, net, X, y) -> float:
    import numpy as np

    Y = np.eye(int(y.max()) + 1)[y]
    acc, _ = net.predict(X.astype(np.float64), Y, batch_size=1)
    return float(acc)


def nnz(net) -> int:
    return int(sum(w.nnz for w in net.w.values()))
