"""SET's truly sparse benchmark (Curci, Mocanu & Pechenizkiy; SET, Mocanu et al. 2018) on CPU.

MLPs ``3312-H-H-H-5`` with SET's Erdős–Rényi density (epsilon = 20), trained with SET
(zeta = 0.3, magnitude drop, random regrowth after every epoch), SGD with momentum 0.9, mini-batches
of 2, on synthetic data shaped like the ``lung`` microarray set (203 samples, 3,312 features,
5 classes; two thirds, 135 samples, for training: 68 steps per epoch). For every H, one fresh
subprocess reports

* training time per epoch (forward, loss, backward, optimiser step for all 68 batches),
* topology-evolution time per epoch (``SET.update``: drop 30 % of every layer, regrow as many),
* peak RSS (``ru_maxrss``) and the number of live weights.

``--mode estimator`` (default) trains ``dualsparse.SparseMLPClassifier`` and reads its per-epoch
``history_`` (``time_s`` less the deferred topology update it includes = training,
``evolution_time_s``); the estimator runs SGD through its fused step
(``dualsparse.train.fused_step``; ``DUALSPARSE_FUSED_STEP=0`` in the environment forces autograd;
layers of more than 65,536 inputs train on a tiled copy, ``DUALSPARSE_TILES=0`` keeps them on the
CSR kernels); ``--mode direct`` runs the same model,
optimiser and ``dualsparse.dst.SET`` in a bare loop, to show what the estimator adds. Times are
medians over the epochs after the first (the first pays Numba's cache loading and page faults of
first touch); the first epoch is reported too.

Hyper-parameters: All-ReLU (alpha 0.6), SGD lr 0.01, momentum 0.9, as SET's truly sparse code.
``--seed`` sets the model's seed (initial weights, SET's drops and regrowth, batch order; the data
stay fixed). At H = 600,000 the protocol is on the edge of stability: whether the loss stays finite
through epoch 4 depends on the last bits of the sums (a run whose loss stops being finite is
reported as ``div@<epoch>`` in the accuracy column, its epochs' times kept), so time it with
``--epochs 3`` and compare accuracy over seeds.
That code decays the weights *outside* the momentum, ``w -= 0.0002 * w`` per step; torch's SGD
adds ``weight_decay * w`` to the gradient instead, so ``--weight-decay 0.02`` (= 0.0002 / lr) gives
the same decay in the step it is applied (momentum then carries it on). Without it, or with a
coupled 0.0002, the run diverges to NaN at epoch 4: our layers are He-initialised for the fan-in
each unit actually has (~40), SET's for the dense fan-in (3,312), i.e. with ~9x smaller weights.
SET's code also uses dropout 0.3; here it is 0 (the estimator's fused SGD step, which is what
users of this setting run, needs dropout 0; with dropout it falls back to autograd).

Memory traffic: at batch 2 a step streams, per live weight, its value and column index forward
(8 bytes) and reads value, index and momentum and writes value and momentum backward (20 bytes):
``BYTES_PER_WEIGHT`` = 28. The run measures the machine's copy bandwidth with the same threads
(``_bandwidth.copy_bandwidth``, STREAM's convention) and prints, per H, the bytes per second our
training reaches (28 x weights x steps / training time), its share of the copy bandwidth, and the
training time per epoch that bandwidth would allow (the floor); ``--no-bandwidth`` skips it.

``--reference PATH`` times the SET authors' own truly sparse code (``set_reference.py``: their
SciPy/Cython MLP built from a local checkout the user points to) in the same run, on the same data,
batches, epochs and thread count, interleaving one subprocess of ours and one of theirs per
repetition; the ratio is theirs / ours per repetition (steady-state epochs: training plus
evolution, construction excluded), reported as the median and min-max over repetitions. Without
``--reference`` only our times are printed: a ratio needs the reference measured in the same run.

    .venv/bin/python -W ignore benchmarks/scale.py --hidden 3000,30000 --epochs 4 --reference ~/src/sparse-evolutionary-artificial-neural-networks
    .venv/bin/python -W ignore benchmarks/scale.py --hidden 600000 --epochs 3     # ~1.8 M neurons
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from _memory import peak_rss_mb

HERE = os.path.abspath(__file__)
#: bytes a batch-2 SGD step with momentum must move per live weight (see the module doc)
BYTES_PER_WEIGHT = 28


def lung_like(n_samples=203, n_features=3312, n_classes=5, seed=0):
    """Synthetic stand-in for ``lung``: class-dependent means on a few hundred informative genes,
    standardised features, float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_samples)
    centers = np.zeros((n_classes, n_features))
    informative = rng.choice(n_features, 300, replace=False)
    centers[:, informative] = rng.normal(0, 1.0, (n_classes, informative.size))
    X = centers[y] + rng.normal(0, 1.0, (n_samples, n_features))
    X = (X - X.mean(0)) / X.std(0)
    return X.astype(np.float32), y


def worker(args) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from dualsparse.sparse import kernels

    kernels.set_num_threads(args.threads)
    X, y = lung_like()
    n_train = (2 * X.shape[0]) // 3
    Xtr, ytr = X[:n_train], y[:n_train]
    H = args.H
    common = dict(
        hidden_layer_sizes=(H, H, H), algorithm="set", epsilon=20.0, zeta=0.3, activation=args.activation,
        optimizer="sgd", learning_rate=args.lr, momentum=0.9, weight_decay=args.weight_decay, batch_size=2,
        random_state=args.seed,
    )
    t0 = time.perf_counter()
    train_s, evo_s = [], []
    diverged = 0
    if args.mode == "estimator":
        from dualsparse import SparseMLPClassifier

        est = SparseMLPClassifier(max_epochs=args.epochs, **common)
        try:
            est.fit(Xtr, ytr)
        except FloatingPointError:  # the protocol is chaotic at large H: report the epochs it ran
            diverged = len(est.history_)
        # an epoch's ``time_s`` starts before the topology update deferred from the epoch before
        # (``_apply_pending_update``), whose own time is that epoch's ``evolution_time_s``
        previous_evo = 0.0
        for h in est.history_:
            train_s.append(h["time_s"] - previous_evo)
            previous_evo = h.get("evolution_time_s", 0.0)
            if "evolution_time_s" in h:  # fit leaves the last epoch's update pending (not timed)
                evo_s.append(previous_evo)
        model = est.module_
        acc = float("nan") if diverged else float((est.predict(X[n_train:]) == y[n_train:]).mean())
    else:
        from dualsparse.dst import SET
        from dualsparse.train.network import build_mlp

        rng = np.random.default_rng(args.seed)
        model = build_mlp(X.shape[1], (H, H, H), 5, sparse=True, epsilon=20.0, activation=args.activation, rng=rng)
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay,
                              fused=args.fused_sgd or None)
        algo = SET(zeta=0.3)
        loss_fn = torch.nn.CrossEntropyLoss()
        Xt = torch.from_numpy(Xtr)
        yt = torch.from_numpy(ytr.astype(np.int64))
        for epoch in range(args.epochs):
            t1 = time.perf_counter()
            order = torch.from_numpy(rng.permutation(n_train))
            for s in range(0, n_train, 2):
                idx = order[s : s + 2]
                loss = loss_fn(model(Xt[idx]), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            t2 = time.perf_counter()
            algo.update(model, opt, epoch, 0, rng)
            t3 = time.perf_counter()
            train_s.append(t2 - t1)
            evo_s.append(t3 - t2)
        with torch.no_grad():
            acc = float((model(torch.from_numpy(X[n_train:])).argmax(1).numpy() == y[n_train:]).mean())
    nnz = sum(m.nnz for m in model.modules() if hasattr(m, "nnz"))
    try:  # which kernels the fused step takes on this host at batch 2 (timed once per process; same numbers)
        from dualsparse.sparse import vector_choice

        vector = {family: ("vector" if c.vector else "scalar") + f" ({c.how})"
                  for family, c in (("tiles", vector_choice.tiles()), ("rows", vector_choice.rows()))}
    except ImportError:  # a version from before the choice was measured
        vector = None
    later = slice(1, None) if len(train_s) > 1 else slice(0, None)
    evo_later = slice(1, None) if len(evo_s) > 1 else slice(0, None)
    evo_s = evo_s or [0.0]
    return {
        "H": H,
        "mode": args.mode,
        "nnz": int(nnz),
        "neurons": 3312 + 3 * H + 5,
        "train_s": float(np.median(train_s[later])),
        "evo_s": float(np.median(evo_s[evo_later])),
        "first_train_s": train_s[0],
        "first_evo_s": evo_s[0],
        "epochs": len(train_s),
        "steps_per_epoch": -(-n_train // 2),
        "wall_s": time.perf_counter() - t0,
        "peak_mb": peak_rss_mb(),
        "test_acc": acc,
        "diverged_at": diverged,
        "vector": vector,
        "load": os.getloadavg()[0],
    }


def reference_worker(args) -> dict:
    """The SET authors' code on the same data and protocol (see set_reference.py)."""
    import numpy as np

    import set_reference

    module = set_reference.load(args.reference)
    X, y = lung_like()
    n_train = (2 * X.shape[0]) // 3
    t0 = time.perf_counter()
    # their weight decay is per step and outside the momentum: 0.0002 = ours (0.02) x lr (0.01)
    times, net = set_reference.train_epochs(module, X[:n_train], y[:n_train], args.H, args.epochs + 1, seed=args.seed,
                                            lr=args.lr, weight_decay=args.weight_decay * args.lr)
    times = times[:-1]  # their fit does not evolve after the last epoch: drop it, keep `epochs` full ones
    train_s = [t for t, _ in times]
    evo_s = [e for _, e in times]
    later = slice(1, None) if len(times) > 1 else slice(0, None)
    return {
        "H": args.H, "mode": "reference", "nnz": set_reference.nnz(net), "neurons": 3312 + 3 * args.H + 5,
        "train_s": float(np.median(train_s[later])), "evo_s": float(np.median(evo_s[later])),
        "first_train_s": train_s[0], "first_evo_s": evo_s[0], "epochs": len(times),
        "wall_s": time.perf_counter() - t0, "peak_mb": peak_rss_mb(),
        "test_acc": set_reference.accuracy(module, net, X[n_train:], y[n_train:]), "load": os.getloadavg()[0],
    }


def _accuracy(r) -> str:
    """The test accuracy, or the epoch whose loss was not finite (its time is in the medians)."""
    return f"div@{r['diverged_at']}" if r.get("diverged_at") else f"{r['test_acc']:5.2f}"


def _run(cmd, env, what):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"{what} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", default="3000,30000", help="hidden widths H (comma separated), e.g. 3000,30000,600000")
    p.add_argument("--epochs", type=int, default=4, help="epochs per size (the first is reported apart)")
    p.add_argument("--mode", choices=("estimator", "direct"), default="estimator")
    p.add_argument("--activation", default="allrelu", help="hidden activation (SET's truly sparse code uses All-ReLU)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=0.02,
                   help="torch SGD weight decay; 0.02 = SET's per-step 0.0002 / lr (see above)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="the model's seed (initial weights, SET's choices, batches)")
    p.add_argument("--fused-sgd", action="store_true", help="direct mode: torch.optim.SGD(fused=True), one pass over the weights")
    p.add_argument("--reference", metavar="PATH",
                   help="a checkout of dcmocanu/sparse-evolutionary-artificial-neural-networks: time the SET "
                        "authors' code in the same run (needs Cython and a C compiler)")
    p.add_argument("--repeats", type=int, default=1, help="interleaved repetitions (ours, then theirs) per H")
    p.add_argument("--no-bandwidth", dest="bandwidth", action="store_false",
                   help="skip the copy-bandwidth measurement and the traffic columns")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--ref-worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.H = args.worker
        print(json.dumps(worker(args)))
        return
    if args.ref_worker:
        args.H = args.ref_worker
        print(json.dumps(reference_worker(args)))
        return
    if args.reference:
        import set_reference

        try:  # fail before any timing: the folder is checked and the kernel compiled once here
            set_reference.build(set_reference.locate(args.reference))
        except set_reference.ReferenceCodeError as err:
            p.error(str(err))
    print(
        f"3312-H-H-H-5, epsilon 20, SET zeta 0.3, batch 2, SGD lr {args.lr} momentum 0.9 weight decay "
        f"{args.weight_decay}, {args.activation}, "
        f"{args.threads} threads, mode={args.mode}{' (fused SGD)' if args.fused_sgd else ''}, median of epochs 2..{args.epochs}"
    )
    print(
        f"{'H':>8} {'neurons':>9} {'weights':>11} | {'train s':>8} {'evolve s':>8} {'total s':>8} | "
        f"{'1st epoch':>9} | {'peak RSS':>9} | {'acc':>5} | {'SET code s':>10} {'weights':>9} {'acc':>5} {'ratio (min-max)':>20}"
    )
    env = {**os.environ, **{k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    results = []
    bandwidth = None
    if args.bandwidth:
        from _bandwidth import copy_bandwidth

        bandwidth = copy_bandwidth(args.threads)
        print(f"copy bandwidth, {args.threads} threads (STREAM copy, 512 MB, best of 7): {bandwidth / 1e9:.1f} GB/s")
    for H in [int(h) for h in args.hidden.split(",")]:
        common = ["--epochs", str(args.epochs), "--activation", args.activation, "--lr", str(args.lr),
                  "--threads", str(args.threads), "--weight-decay", str(args.weight_decay), "--seed", str(args.seed)]
        ours, theirs = [], []
        for _ in range(max(1, args.repeats)):
            cmd = [sys.executable, "-W", "ignore", HERE, "--worker", str(H), "--mode", args.mode, *common]
            r = _run(cmd + (["--fused-sgd"] if args.fused_sgd else []), env, f"H={H}")
            if r:
                ours.append(r)
            if args.reference:
                ref = _run([sys.executable, "-W", "ignore", HERE, "--ref-worker", str(H), "--reference",
                            args.reference, *common], env, f"H={H} (SET authors' code)")
                if ref:
                    theirs.append(ref)
        if not ours:
            continue
        total = [r["train_s"] + r["evo_s"] for r in ours]
        r = ours[int(np.argsort(total)[len(total) // 2])]  # the median repetition
        row = (f"{H:8d} {r['neurons']:9d} {r['nnz']:11d} | {r['train_s']:8.3f} {r['evo_s']:8.3f} "
               f"{np.median(total):8.3f} | {r['first_train_s'] + r['first_evo_s']:9.2f} | {r['peak_mb']:7.0f}MB | "
               f"{_accuracy(r)} | ")
        if theirs:
            ref_total = [t["train_s"] + t["evo_s"] for t in theirs]
            ratios = [a / b for a, b in zip(ref_total, total)]
            row += (f"{np.median(ref_total):10.3f} {int(np.median([t['nnz'] for t in theirs])):9d} "
                    f"{np.median([t['test_acc'] for t in theirs]):5.2f} "
                    f"{np.median(ratios):7.1f}x ({min(ratios):.1f}-{max(ratios):.1f})")
        else:
            row += f"{'-':>10} {'-':>9} {'-':>5} {'(needs --reference)':>20}"
        print(row, flush=True)
        if r.get("vector"):
            print(f"{'':8} vector kernels on this host: " + ", ".join(f"{k} {v}" for k, v in r["vector"].items()), flush=True)
        if bandwidth:
            moved = BYTES_PER_WEIGHT * r["nnz"] * r["steps_per_epoch"]
            rate = moved / r["train_s"]
            print(f"{'':8} memory traffic: {moved / 1e9:.2f} GB per epoch of training, {rate / 1e9:.1f} GB/s = "
                  f"{rate / bandwidth:.0%} of the copy bandwidth; floor at that bandwidth {moved / bandwidth:.2f} s "
                  f"(training now {r['train_s']:.2f} s)", flush=True)
        results.append({"H": H, "ours": ours, "reference": theirs, "copy_bandwidth": bandwidth})
    if results:
        loads = [r["load"] for res in results for r in res["ours"] + res["reference"]]
        print(f"1-minute load average at the end of each run: {', '.join(f'{x:.1f}' for x in loads)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
