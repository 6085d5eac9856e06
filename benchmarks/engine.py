"""Training-epoch time of a truly sparse MLP against the same dense MLP (and SparseProp), CPU.

What is measured (one fresh subprocess per configuration, so peak memory is attributable):

* network: ``IN -> H -> H -> H -> 10`` with ReLU, every linear layer at the weight density (the
  10-way output layer too); default IN = 4096, H = 4000 (``--inputs``, ``--hidden``);
* batch 128 (``--batch``), ``--threads`` threads for torch, Numba and OpenMP (default 2);
* input density 100 % (dense ``x``) or less: ``x`` is then a ``torch.sparse_csr`` tensor for
  dualsparse, and the dense matrix (same values, zeros included) for the dense and SparseProp
  networks, which have no sparse-input path;
* one epoch = ``--samples`` / batch steps on synthetic data (default 20 steps); each step is
  forward + cross-entropy + backward ("fwd+bwd", the figure SparseProp reports), and, timed
  separately, ``torch.optim.SGD(momentum=0.9).step()`` ("+SGD");
* time per epoch: median over ``--epochs`` epochs after one warm-up epoch;
* ``--repeats`` R: the subprocesses run R times, interleaved (dense, ours, SparseProp for every
  configuration, then again), so slow phases of a shared machine hit all of them alike; times are
  the median over repetitions and each ratio is the median (min-max) of the per-repetition ratios;
* memory: peak RSS of the subprocess (``ru_maxrss``) and its growth over the RSS measured after the
  imports and the synthetic data, before the model is built ("model+training" memory).

Ratios are dense time / our time (> 1: we are faster). SparseProp (Nikdan et al., ICML 2023;
``pip install sparseprop``) runs side by side when importable, built from the same masked weights.

    .venv/bin/python -W ignore benchmarks/engine.py                       # the full table
    .venv/bin/python -W ignore benchmarks/engine.py --densities 0.01 --input-densities 1 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from _memory import peak_rss_mb, rss_mb

HERE = os.path.abspath(__file__)


# ---------------------------------------------------------------------------- worker
def _warm_up(impl, batch, input_density):
    """Load the compiled code (Numba JIT cache, BLAS, OpenMP pools) before the RSS baseline."""
    import torch

    from dualsparse.sparse import SparseLinear

    x = torch.randn(batch, 64)
    x[:, 32:] = 0
    if impl == "dense":
        net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    elif impl == "ours":
        net = torch.nn.Sequential(SparseLinear(64, 64, 0.5), torch.nn.ReLU(), SparseLinear(64, 10, 0.5))
        if input_density < 1.0:
            x = x.to_sparse_csr()
    else:
        from sparseprop.modules import SparseLinear as SPLinear

        lin = torch.nn.Linear(64, 64)
        net = torch.nn.Sequential(SPLinear.from_dense(lin), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    for _ in range(2):
        net(x).sum().backward()


def worker(args) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from dualsparse.sparse import SparseLinear, kernels

    kernels.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_steps = max(1, args.samples // args.batch)
    sizes = [args.inputs, args.hidden, args.hidden, args.hidden, 10]

    # synthetic data: one set of batches reused every epoch
    xs, ys = [], []
    for _ in range(n_steps):
        x = torch.from_numpy(rng.standard_normal((args.batch, args.inputs), dtype=np.float32))
        if args.input_density < 1.0:
            x[torch.from_numpy(rng.random((args.batch, args.inputs)) >= args.input_density)] = 0.0
        xs.append(x)
        ys.append(torch.from_numpy(rng.integers(0, 10, args.batch)))
    if args.impl == "ours" and args.input_density < 1.0:
        xs = [x.to_sparse_csr() for x in xs]
    _warm_up(args.impl, args.batch, args.input_density)
    base_rss = rss_mb()

    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if args.impl == "dense":
            layers.append(torch.nn.Linear(n_in, n_out))
        else:
            layer = SparseLinear(n_in, n_out, density=args.density, random_state=i)
            if args.impl == "sparseprop":
                from sparseprop.modules import SparseLinear as SPLinear

                dense = torch.nn.Linear(n_in, n_out)
                with torch.no_grad():
                    dense.weight.copy_(layer.to_dense())
                    dense.bias.zero_()
                layer = SPLinear.from_dense(dense)
                del dense
            layers.append(layer)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        t_fb = t_opt = 0.0
        for x, y in zip(xs, ys):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            t1 = time.perf_counter()
            opt.step()
            t2 = time.perf_counter()
            t_fb += t1 - t0
            t_opt += t2 - t1
        return t_fb, t_opt

    epoch()  # warm-up (JIT caches, allocator, optimiser state)
    runs = [epoch() for _ in range(args.epochs)]
    # bytes of training state actually held: parameters, gradients, optimiser moments, index
    # buffers (CSR pattern) and cached transposed patterns (CSC) -- the part that scales with nnz
    state = 0
    for prm in model.parameters():
        state += prm.numel() * prm.element_size() * (2 + len(opt.state.get(prm, {})))
    for buf in model.buffers():
        state += buf.numel() * buf.element_size()
    for mod in model.modules():
        for t in getattr(mod, "_csc_cache", None) or ():
            state += t.numel() * t.element_size()
        for t in getattr(mod, "W_idx", None) or ():  # SparseProp's CSR indices
            state += t.numel() * t.element_size()
    fb = sorted(r[0] for r in runs)
    tot = sorted(r[0] + r[1] for r in runs)
    return {
        "impl": args.impl,
        "density": args.density,
        "input_density": args.input_density,
        "steps": n_steps,
        "params": n_params,
        "fb_s": fb[len(fb) // 2],
        "fb_min_s": fb[0],
        "total_s": tot[len(tot) // 2],
        "peak_mb": peak_rss_mb(),
        "delta_mb": peak_rss_mb() - base_rss,
        "state_mb": state / 2**20,
        "load": os.getloadavg()[0],
    }


# ---------------------------------------------------------------------------- driver
def run_one(args, impl, density, input_density) -> dict | None:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(args.threads)  # SparseProp's OpenMP loops
    cmd = [
        sys.executable, "-W", "ignore", HERE, "--worker", impl,
        "--density", str(density), "--input-density", str(input_density),
        "--threads", str(args.threads), "--batch", str(args.batch), "--samples", str(args.samples),
        "--epochs", str(args.epochs), "--inputs", str(args.inputs), "--hidden", str(args.hidden),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"  [{impl} d={density} xd={input_density}] failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--densities", default="0.1,0.01,0.001", help="weight densities (comma separated)")
    p.add_argument("--input-densities", default="1,0.1", help="input densities (comma separated)")
    p.add_argument("--inputs", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=4000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--samples", type=int, default=2560, help="samples per epoch")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs (median reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of every subprocess")
    p.add_argument("--no-sparseprop", action="store_true")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--density", type=float, help=argparse.SUPPRESS)
    p.add_argument("--input-density", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.impl = args.worker
        print(json.dumps(worker(args)))
        return

    have_sp = False
    if not args.no_sparseprop:
        try:
            import sparseprop  # noqa: F401

            have_sp = True
        except ImportError:
            print("(sparseprop not importable: its column is skipped; pip install sparseprop)")
    densities = [float(d) for d in args.densities.split(",")]
    input_densities = [float(d) for d in args.input_densities.split(",")]
    print(
        f"MLP {args.inputs}-{args.hidden}-{args.hidden}-{args.hidden}-10, batch {args.batch}, "
        f"{args.samples // args.batch} steps/epoch, {args.threads} threads, median of {args.epochs} epochs"
    )
    results = []
    runs = {}  # (impl, density, input density) -> one result per repetition
    for _ in range(max(1, args.repeats)):
        for xd in input_densities:
            runs.setdefault(("dense", 1.0, xd), []).append(run_one(args, "dense", 1.0, xd))
            for d in densities:
                runs.setdefault(("ours", d, xd), []).append(run_one(args, "ours", d, xd))
                if have_sp:
                    runs.setdefault(("sparseprop", d, xd), []).append(run_one(args, "sparseprop", d, xd))
    for reps in runs.values():
        results += reps
    rows = [(d, xd, runs[("dense", 1.0, xd)], runs[("ours", d, xd)], runs.get(("sparseprop", d, xd), []))
            for xd in input_densities for d in densities]

    def median(reps, key):
        vals = [r[key] for r in reps if r]
        return float(np.median(vals)) if vals else None

    def ms(reps, key="fb_s"):
        v = median(reps, key)
        return f"{1e3 * v:9.1f}" if v is not None else f"{'-':>9}"

    def ratio(num, den, key="fb_s"):
        """Median (min-max) of per-repetition ratios num / den."""
        pairs = [a[key] / b[key] for a, b in zip(num, den) if a and b]
        if not pairs:
            return f"{'-':>16}"
        return f"{np.median(pairs):5.1f}x ({min(pairs):.1f}-{max(pairs):.1f})".rjust(16)

    def mem(reps):
        r = next((r for r in reps if r), None)
        return f"{r['peak_mb']:6.0f} ({r['delta_mb']:+5.0f}) {r['state_mb']:6.1f}" if r else f"{'-':>21}"

    print()
    print("time per epoch in ms, median over repetitions (fwd+bwd; '+SGD' adds optimizer.step()); "
          "ratio = dense / other, median (min-max) over repetitions")
    print(
        f"{'w.dens':>7} {'x.dens':>6} | {'dense':>9} {'ours':>9} {'ratio':>16} | {'dense+SGD':>9} {'ours+SGD':>9} "
        f"{'ratio':>16} | {'SparseProp':>10} {'ratio':>16} | {'SP/ours':>16}"
    )
    for d, xd, dn, ou, sp in rows:
        print(
            f"{d:7.3%} {xd:6.0%} | {ms(dn)} {ms(ou)} {ratio(dn, ou)} | {ms(dn, 'total_s')} {ms(ou, 'total_s')}"
            f" {ratio(dn, ou, 'total_s')} | {ms(sp):>10} {ratio(dn, sp)} | {ratio(sp, ou)}"
        )
    print()
    print("memory in MB: peak RSS (its growth over the RSS before the model was built) and the training")
    print("state held (parameters + gradients + optimiser moments + index buffers + cached CSC)")
    print(f"{'w.dens':>7} {'x.dens':>6} | {'dense':>21} {'ours':>21} {'SparseProp':>21} | {'params ours':>12} {'params dense':>12}")
    for d, xd, dn, ou, sp in rows:
        o = next((r for r in ou if r), None)
        n = next((r for r in dn if r), None)
        print(
            f"{d:7.3%} {xd:6.0%} | {mem(dn)} {mem(ou)} {mem(sp)} | {o['params'] if o else '-':>12} "
            f"{n['params'] if n else '-':>12}"
        )
    loads = [r["load"] for r in results if r]
    print(f"\n1-minute load average during the runs: {min(loads):.1f} .. {max(loads):.1f} (machine shared => noise)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
