"""Small fits, the ones studies are made of: wall time against scikit-learn, plain PyTorch and our dense path.

    .venv/bin/python benchmarks/small_data.py                  # every setting, 5 interleaved repeats
    .venv/bin/python benchmarks/small_data.py --repeats 3 --settings reference sweep
    .venv/bin/python benchmarks/small_data.py --json out.json  # also write the numbers

Settings (issue 13), each timed in this run, interleaved repeat by repeat:

* ``reference`` — Breast Cancer Wisconsin (standardised; 75 % of the 569 rows train, 25 % test),
  MLP 30-200-200-2, 100 epochs, batch 32, Adam (lr 1e-3), the machine's threads.
* ``digits`` — digits (1,347 train rows), MLP 64-256-256-10, 50 epochs, batch 32, Adam.
* ``sweep`` — the shape of ``examples/missingness_broad.toml``: digits, MLP 100-100, 60 epochs,
  batch 32, SGD (lr 0.01, momentum 0.9, weight decay 2e-4), ONE thread, values removed
  completely at random at ``--sweep-rate`` (0.4), fed to the same model as dense
  ``impute-mean`` rows and as the ``observed`` CSR matrix.

Models: scikit-learn's ``MLPClassifier`` (same architecture, solver and epochs: the loss-plateau
stop is disabled, alpha 0), a plain PyTorch loop (``nn.Sequential`` of ``nn.Linear`` + ReLU, the
same optimiser, a random permutation per epoch), and ours: ``dense``, ``static`` and ``set`` at
sparsity 0.9 (ER), ``rigl`` too in the sweep. ``--before`` adds our sparse models with whole
compiled epochs turned off (``_use_compiled_epoch = False``: the per-step paths), so the speed-up
is measured in the same run.

Columns: median wall time of ``fit`` (s) and spread (min-max) over the repeats; ratios of medians
against scikit-learn and against our ``dense``; the training-FLOP ratio against the dense network
(``flops_['train_ratio']``); ``time/FLOP`` = (time ratio vs our dense) / (FLOP ratio), which is 1
where time follows FLOPs exactly; test accuracy, mean and sd over repeats (repeat r uses
``random_state=r``, so the sd is seed noise). In the sweep, each model's observed-CSR fit runs
right after its dense-input twin with the same seed, and a second table gives their per-repeat
ratio (median, min-max, how many repeats the CSR fit was slower): on a shared machine the ratio of
medians of ~0.1-0.2 s fits taken seconds apart drifts by 15-30 %, the paired ratio much less.

Targets (issue 13): ``set`` at sparsity 0.9 at most 0.5x scikit-learn's time; sparse-vs-our-dense
time within 2x of the FLOP ratio (``time/FLOP`` <= 2); ``observed`` CSR input no slower than
dense input to the same model.

The cold first fit (``--cold``, on by default) runs in fresh processes: import time, the first
``fit`` (Numba loads its cached kernels; torch imports ``torch._dynamo`` the first time an
optimiser is built, ~1.5 s here, measured separately), and a second ``fit``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

SPARSITY = 0.9


# ---------------------------------------------------------------------------- data
def _split(X, y, seed=0):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)


def _standardised(name):
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = (load_breast_cancer if name == "breast_cancer" else load_digits)(return_X_y=True)
    X_tr, X_te, y_tr, y_te = _split(X, y)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr).astype(np.float32), scaler.transform(X_te).astype(np.float32), y_tr, y_te


def _sweep_inputs(rate):
    """Digits with MCAR values removed at ``rate`` (train and test), as impute-mean rows and as observed CSR."""
    from sklearn.datasets import load_digits

    from dualsparse.data import ampute_split, make_representation

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = _split(X.astype(np.float64), y)
    X_tr, X_te, _, _ = ampute_split(X_tr, X_te, "mcar", rate, random_state=0, apply_to="both")
    out = {}
    for name in ("impute-mean", "observed"):
        rep = make_representation(name).fit(X_tr)
        Z_tr, Z_te = rep.transform(X_tr), rep.transform(X_te)
        out[name] = (Z_tr.astype(np.float32), Z_te.astype(np.float32), y_tr, y_te)
    return out


# ---------------------------------------------------------------------------- models
def _ours(algorithm, hidden, epochs, opt, seed, compiled=True):
    from dualsparse import SparseMLPClassifier

    kw = dict(hidden_layer_sizes=hidden, algorithm=algorithm, max_epochs=epochs, batch_size=32, random_state=seed)
    if algorithm != "dense":
        kw["sparsity"] = SPARSITY
    kw.update(opt)
    est = SparseMLPClassifier(**kw)
    est._use_compiled_epoch = compiled
    return est


def _sklearn(hidden, epochs, opt, seed):
    from sklearn.neural_network import MLPClassifier

    kw = dict(hidden_layer_sizes=hidden, max_iter=epochs, batch_size=32, alpha=0.0, random_state=seed,
              n_iter_no_change=epochs + 1, tol=0.0, shuffle=True)
    if opt.get("optimizer") == "sgd":
        kw.update(solver="sgd", learning_rate_init=opt["learning_rate"], momentum=opt["momentum"],
                  nesterovs_momentum=False, alpha=opt.get("weight_decay", 0.0))
    else:
        kw.update(solver="adam", learning_rate_init=opt.get("learning_rate", 1e-3))
    return MLPClassifier(**kw)


class _TorchLoop:
    """The loop a PyTorch user writes: nn.Linear + ReLU, the optimiser, shuffled mini-batches."""

    def __init__(self, hidden, epochs, opt, seed):
        self.hidden, self.epochs, self.opt, self.seed = hidden, epochs, opt, seed

    def fit(self, X, y):
        import torch
        from torch import nn

        torch.manual_seed(self.seed)
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        y = torch.as_tensor(np.asarray(y, dtype=np.int64))
        sizes = [X.shape[1], *self.hidden, int(y.max()) + 1]
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.model = model = nn.Sequential(*layers)
        if self.opt.get("optimizer") == "sgd":
            optim = torch.optim.SGD(model.parameters(), lr=self.opt["learning_rate"], momentum=self.opt["momentum"],
                                    weight_decay=self.opt.get("weight_decay", 0.0))
        else:
            optim = torch.optim.Adam(model.parameters(), lr=self.opt.get("learning_rate", 1e-3))
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(self.epochs):
            perm = torch.randperm(X.shape[0])
            for s in range(0, X.shape[0], 32):
                idx = perm[s : s + 32]
                optim.zero_grad()
                loss_fn(model(X[idx]), y[idx]).backward()
                optim.step()
        return self

    def score(self, X, y):
        import torch

        with torch.no_grad():
            pred = self.model(torch.as_tensor(np.asarray(X, dtype=np.float32))).argmax(1).numpy()
        return float((pred == np.asarray(y)).mean())


# ---------------------------------------------------------------------------- settings
def _settings(args):
    adam = dict(optimizer="adam", learning_rate=1e-3)
    sgd = dict(optimizer="sgd", learning_rate=0.01, momentum=0.9, weight_decay=2e-4)
    out = {}
    if "reference" in args.settings:
        data = _standardised("breast_cancer")
        out["reference"] = dict(title="Breast Cancer, 30-200-200-2, 100 epochs, batch 32, Adam", threads=None,
                                cases=_cases(data, (200, 200), 100, adam, ["static", "set"], args.before))
    if "digits" in args.settings:
        data = _standardised("digits")
        out["digits"] = dict(title="digits, 64-256-256-10, 50 epochs, batch 32, Adam", threads=None,
                             cases=_cases(data, (256, 256), 50, adam, ["static", "set"], args.before))
    if "sweep" in args.settings:
        inputs = _sweep_inputs(args.sweep_rate)
        cases = _cases(inputs["impute-mean"], (100, 100), 60, sgd, ["static", "set", "rigl"], args.before,
                       suffix=" (dense input)")
        obs = _cases(inputs["observed"], (100, 100), 60, sgd, ["static", "set", "rigl"], args.before,
                     suffix=" (observed CSR)", baselines=False)
        # each model's observed-CSR fit runs right after its dense-input twin (same seed), so their
        # paired ratio sees the same machine state; the table keeps the dense-input rows first
        twins = cases[:2] + [c for pair in zip(cases[2:], obs) for c in pair]
        out["sweep"] = dict(title=f"sweep shape: digits MCAR {args.sweep_rate}, 100-100, 60 epochs, batch 32, "
                                  "SGD momentum 0.9, 1 thread", threads=1, cases=twins,
                            order=[c[0] for c in cases + obs], paired=(" (dense input)", " (observed CSR)"))
    return out


def _cases(data, hidden, epochs, opt, sparse, before, suffix="", baselines=True):
    cases = []
    if baselines:
        cases.append(("scikit-learn", lambda s: _sklearn(hidden, epochs, opt, s), data))
        cases.append(("PyTorch loop", lambda s: _TorchLoop(hidden, epochs, opt, s), data))
    cases.append(("dense" + suffix, lambda s: _ours("dense", hidden, epochs, opt, s), data))
    for alg in sparse:
        cases.append((alg + suffix, lambda s, a=alg: _ours(a, hidden, epochs, opt, s), data))
        if before:
            cases.append((alg + " per-step" + suffix, lambda s, a=alg: _ours(a, hidden, epochs, opt, s, False), data))
    return cases


# ---------------------------------------------------------------------------- timing
def _run_setting(setting, repeats):
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    threads = setting["threads"]
    saved = torch.get_num_threads(), numba.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
        numba.set_num_threads(threads)
    names = setting.get("order") or [name for name, _, _ in setting["cases"]]
    results = {name: {"times": [], "acc": [], "flop_ratio": None} for name in names}
    try:
        with threadpool_limits(threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, make, (X_tr, X_te, y_tr, y_te) in setting["cases"]:  # warm-up: kernels, caches
                make(0).fit(X_tr[:64], y_tr[:64])
            for r in range(repeats):
                for name, make, (X_tr, X_te, y_tr, y_te) in setting["cases"]:
                    model = make(r)
                    t0 = time.perf_counter()
                    model.fit(X_tr, y_tr)
                    results[name]["times"].append(time.perf_counter() - t0)
                    results[name]["acc"].append(model.score(X_te, y_te))
                    flops = getattr(model, "flops_", None)
                    if flops is not None:
                        results[name]["flop_ratio"] = flops["train_ratio"]
    finally:
        torch.set_num_threads(saved[0])
        numba.set_num_threads(saved[1])
    return results


def _paired(title, results, suffixes):
    """Per-repeat ratio of each model's fit on the second input to its twin fit on the first,
    run back to back with the same seed: the machine's drift between repeats cancels."""
    a, b = suffixes
    lines = [f"\n### {title}: {b.strip(' ()')} / {a.strip(' ()')}, paired per repeat\n",
             "| model | median ratio | min-max | repeats slower |", "|---|---|---|---|"]
    for name in results:
        if not name.endswith(a) or name[: -len(a)] + b not in results:
            continue
        r = np.array(results[name[: -len(a)] + b]["times"]) / np.array(results[name]["times"])
        lines.append(f"| {name[: -len(a)]} | {np.median(r):.2f}x | {r.min():.2f}-{r.max():.2f}x | "
                     f"{int((r > 1).sum())} of {r.size} |")
    return "\n".join(lines)


def _fmt(x, spec, unit=""):
    return "-" if x is None or not np.isfinite(x) else format(x, spec) + unit


def _table(title, results):
    med = {k: float(np.median(v["times"])) for k, v in results.items()}
    sk = med.get("scikit-learn")
    lines = [f"\n## {title}\n",
             "| model | median s | spread s | vs scikit-learn | vs our dense | FLOP ratio | time/FLOP | test accuracy |",
             "|---|---|---|---|---|---|---|---|"]
    for name, v in results.items():
        suffix = name[name.index(" ("):] if " (" in name else ""
        t, dense, fr = med[name], med.get("dense" + suffix), v["flop_ratio"]
        vs_dense = t / dense if dense else None
        time_flop = vs_dense / fr if vs_dense is not None and fr is not None and fr < 1 else None
        lines.append(
            f"| {name} | {t:.3f} | {min(v['times']):.3f}-{max(v['times']):.3f} | "
            f"{_fmt(t / sk if sk else None, '.2f', 'x')} | {_fmt(vs_dense, '.2f', 'x')} | {_fmt(fr, '.3f')} | "
            f"{_fmt(time_flop, '.2f')} | {np.mean(v['acc']):.3f} ± {np.std(v['acc']):.3f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- cold start
_COLD = r"""
import sys, time
t0 = time.perf_counter()
import dualsparse, numpy as np
from dualsparse import SparseMLPClassifier
from sklearn.datasets import load_breast_cancer
t1 = time.perf_counter()
if sys.argv[1] == "dynamo":
    import torch._dynamo
t2 = time.perf_counter()
X, y = load_breast_cancer(return_X_y=True)
X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
kw = dict(hidden_layer_sizes=(200, 200), sparsity=0.9, max_epochs=100, random_state=0)
t3 = time.perf_counter(); SparseMLPClassifier(**kw).fit(X, y); t4 = time.perf_counter()
SparseMLPClassifier(**kw).fit(X, y); t5 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {t4 - t3:.3f} {t5 - t4:.3f}")
"""


def _cold(repeats=2):
    rows = []
    for variant in ("plain", "dynamo"):
        for _ in range(repeats):
            out = subprocess.run([sys.executable, "-W", "ignore", "-c", _COLD, variant], capture_output=True,
                                 text=True, check=True).stdout.split()
            rows.append((variant, *map(float, out)))
    lines = ["\n## cold first fit (fresh processes; SET 30-200-200-2 at sparsity 0.9, 100 epochs, defaults otherwise)\n",
             "| process | import dualsparse s | import torch._dynamo first s | first fit s | second fit s |",
             "|---|---|---|---|---|"]
    for variant, imp, dyn, first, second in rows:
        lines.append(f"| {variant} | {imp:.2f} | {dyn:.2f} | {first:.2f} | {second:.2f} |")
    return "\n".join(lines), rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", default=["reference", "digits", "sweep"],
                   choices=["reference", "digits", "sweep"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sweep-rate", type=float, default=0.4)
    p.add_argument("--before", action="store_true", help="also time our sparse models through the per-step paths")
    p.add_argument("--no-cold", dest="cold", action="store_false", help="skip the fresh-process first-fit timing")
    p.add_argument("--json", help="write the numbers to this file")
    args = p.parse_args()
    import dualsparse  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
    import numba
    import torch

    print(f"# small-data fits: torch {torch.__version__}, {torch.get_num_threads()} torch / "
          f"{numba.get_num_threads()} numba threads, {args.repeats} interleaved repeats")
    dump = {}
    for key, setting in _settings(args).items():
        results = _run_setting(setting, args.repeats)
        print(_table(setting["title"], results), flush=True)
        if setting.get("paired"):
            print(_paired(key, results, setting["paired"]), flush=True)
        dump[key] = {"title": setting["title"], "results": results}
    if args.cold:
        text, rows = _cold()
        print(text)
        dump["cold"] = rows
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dump, fh, indent=1)


if __name__ == "__main__":
    main()
