"""Dynamic sparse training by hand: SparseLinear layers, a plain PyTorch loop, an algorithm's update.

Run:  .venv/bin/python examples/dst_plain_pytorch.py [--algorithm snfs] [--epochs 10]

The estimators do all of this for you; this is the loop they run, written out, for models of your
own. Three things an algorithm may need from the loop, all declared on it:

* ``algorithm.due(epoch, step, end_of_epoch)``: when to call ``update``;
* ``algorithm.needs_gradient`` / ``capture_batches``: run that many batches before an update
  inside ``with cap:`` (a :class:`~dualsparse.dst.LayerIOCapture`) and pass ``context=cap``
  (RigL, SNFS, MEST with gamma > 0, GraNet; SNIP once before training, ``updates_at_init``);
* ``set_targets`` / ``initial_densities``: the densities to prune towards (GMP, GraNet, SNIP).

When a layer's number of weights changes, its ``values`` becomes a new Parameter that the update
puts in the optimiser in place of the old one (pass the optimiser to ``update``).
"""

import argparse

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from dualsparse.dst import LayerIOCapture, algorithm_info, algorithm_names, make_algorithm
from dualsparse.sparse import SparseLinear


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default="snfs", choices=[n for n in algorithm_names() if n != "dense"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--density", type=float, default=0.1, help="final density of the hidden layers")
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split((X / 16).astype(np.float32), y, random_state=0)
    X_train, y_train = torch.from_numpy(X_train), torch.from_numpy(y_train)
    torch.manual_seed(0)

    options = {}
    info = algorithm_info(args.algorithm)
    if info.accepts("end"):
        options["end"] = max(2, int(0.75 * args.epochs))
    algorithm = make_algorithm(args.algorithm, **options)
    shapes = [(64, 256), (256, 256), (256, 10)]
    targets = [args.density, args.density, 1.0]  # the small output layer stays dense
    densities = algorithm.initial_densities(targets)  # GMP/SNIP start dense, GraNet at 0.5
    algorithm.set_targets(targets, horizon=args.epochs)
    model = torch.nn.Sequential(
        SparseLinear(*shapes[0], density=densities[0], random_state=0), torch.nn.ReLU(),
        SparseLinear(*shapes[1], density=densities[1], random_state=1), torch.nn.ReLU(),
        SparseLinear(*shapes[2], density=densities[2], random_state=2),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)  # every topology decision draws from this seeded generator
    batch = 32

    if algorithm.updates_at_init:  # SNIP: one batch's gradient, no step, then prune once
        with LayerIOCapture(model) as cap:
            loss_fn(model(X_train[:batch]), y_train[:batch]).backward()
        optimizer.zero_grad(set_to_none=True)
        algorithm.update(model, optimizer, rng=rng, context=cap)

    step = 0
    for epoch in range(args.epochs):
        order = torch.from_numpy(rng.permutation(len(X_train)))
        n_batches = -(-len(order) // batch)
        epoch_update = algorithm.evolves and algorithm.due(epoch, step + n_batches, True)
        cap = LayerIOCapture(model)
        for b in range(n_batches):
            idx = order[b * batch:(b + 1) * batch]
            step += 1
            step_update = algorithm.evolves and algorithm.due(epoch, step, False)
            # capture the last capture_batches batches before an update, if the algorithm reads gradients
            near_end = b >= n_batches - algorithm.capture_batches
            capture = algorithm.needs_gradient and (step_update or (epoch_update and near_end))
            with cap if capture else torch.enable_grad():
                loss = loss_fn(model(X_train[idx]), y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            optimizer.step()
            if step_update:
                algorithm.update(model, optimizer, epoch, step, rng, cap)
                cap = LayerIOCapture(model)
        if epoch_update:
            algorithm.update(model, optimizer, epoch, step, rng, cap)
        with torch.no_grad():
            acc = (model(torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean()
        nnz = [m.nnz for m in model if isinstance(m, SparseLinear)]
        print(f"epoch {epoch + 1:2d}  loss {loss.item():.3f}  test accuracy {acc:.3f}  live weights {nnz}")
    print(f"{info.display_name}: {sum(nnz)} of {sum(a * b for a, b in shapes)} weights live")


if __name__ == "__main__":
    main()
