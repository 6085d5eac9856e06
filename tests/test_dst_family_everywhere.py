"""The DST family everywhere: estimators (SGD/Adam, dense/CSR input, classifier/regressor), seeds,
compiled epochs and FLOPs while nnz changes, the per-example tracker, continual learning,
algorithm options and bad input."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits

from dualsparse import SparseMLPClassifier, SparseMLPRegressor
from dualsparse.dst import GMP, MagnitudeDrop, ResizingAlgorithm, register_algorithm, unregister_algorithm
from dualsparse.dst.registry import algorithm_info
from dualsparse.dynamics import ExampleTracker, make_task_sequence, run_continual
from dualsparse.sparse import SparseLinear
from dualsparse.sparse.flops import backward_flops, forward_flops
from dualsparse.train.compiled_epoch import CompiledEpoch

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILY = ["snfs", "mest", "gmp", "granet", "snip"]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    keep = rng.choice(X.shape[0], 400, replace=False)
    return (X[keep] / 16).astype(np.float32), y[keep]


def est_for(algorithm, **kw):
    params = dict(hidden_layer_sizes=(32, 32), algorithm=algorithm, sparsity=0.8, max_epochs=5, batch_size=32,
                  random_state=0)
    params.update(kw)
    return SparseMLPClassifier(**params)


def weights(est):
    return [(m.row_ptr.clone(), m.col_idx.clone(), m.values.detach().clone())
            for m in est.module_.modules() if isinstance(m, SparseLinear)]


@pytest.mark.parametrize("algorithm", FAMILY)
@pytest.mark.parametrize("opt", [dict(optimizer="adam", learning_rate=0.01), dict(optimizer="sgd", learning_rate=0.05)],
                         ids=["adam", "sgd"])
@pytest.mark.parametrize("csr", [False, True], ids=["dense", "csr"])
def test_fits_and_is_reproducible(digits, algorithm, opt, csr):
    X, y = digits
    X = sp.csr_matrix(X) if csr else X
    a = est_for(algorithm, **opt).fit(X, y)
    b = est_for(algorithm, **opt).fit(X, y)
    for (pa, ca, va), (pb, cb, vb) in zip(weights(a), weights(b)):
        assert torch.equal(pa, pb) and torch.equal(ca, cb) and torch.equal(va, vb)
    assert a.score(X, y) > 0.5
    d = a.density_
    layers = [m for m in a.module_.modules() if isinstance(m, SparseLinear)]
    assert d["nnz"] == [m.nnz for m in layers] and d["overall"] == pytest.approx(sum(d["nnz"]) / sum(d["dense_weights"]))
    # every algorithm ends at the estimator's overall density (GMP/GraNet pruned by 75 % of max_epochs)
    if algorithm != "mest":
        assert d["overall"] == pytest.approx(0.2, abs=0.01)
    info = algorithm_info(algorithm)
    assert info.display_name in ("SNFS MLP", "MEST MLP", "GMP MLP", "GraNet MLP", "SNIP MLP")
    assert info.needs_momentum == (algorithm == "snfs") and info.changes_density == (algorithm != "mest")
    assert info.needs_gradient == (algorithm != "gmp")


@pytest.mark.parametrize("algorithm", FAMILY)
def test_regressor(algorithm):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 20)).astype(np.float32)
    y = X[:, 0] - 2 * X[:, 1]
    est = SparseMLPRegressor(hidden_layer_sizes=(32,), algorithm=algorithm, sparsity=0.7, max_epochs=4,
                             random_state=0).fit(X, y)
    assert np.isfinite(est.predict(X)).all()


def test_compiled_epochs_follow_a_layer_whose_nnz_changes(digits, monkeypatch):
    """GMP prunes between compiled epochs and inside them (every=3 steps): the compiled path reads
    the layers' arrays afresh and trains exactly as the per-step autograd path."""
    X, y = digits
    calls = []
    original = CompiledEpoch.run
    monkeypatch.setattr(CompiledEpoch, "run", lambda self, order, record=False: calls.append(len(order)) or original(self, order, record))
    runs = {}
    for compiled in (True, False):
        for every, end in (("epoch", 4), (3, 30)):
            est = est_for("gmp", algorithm_options=dict(every=every, end=end), optimizer="adam", learning_rate=0.01)
            est._use_compiled_epoch = compiled
            est._use_fused_step = False
            runs[compiled, every] = est.fit(X, y)
    assert calls  # the compiled path ran
    for every in ("epoch", 3):
        a, b = runs[True, every], runs[False, every]
        assert a.density_["nnz"] == b.density_["nnz"]
        for (pa, ca, va), (pb, cb, vb) in zip(weights(a), weights(b)):
            assert torch.equal(pa, pb) and torch.equal(ca, cb)
            torch.testing.assert_close(va, vb, rtol=1e-4, atol=1e-5)
        assert a.flops_ == b.flops_
    # the step schedule pruned inside epochs, to the final density at step 30
    assert runs[True, 3].density_["overall"] == pytest.approx(0.2, abs=0.01)


def test_flops_count_the_nnz_each_epoch_trained_with(digits):
    X, y = digits
    est = est_for("gmp", batch_size=50).fit(X, y)  # 400 rows: 8 batches of 50
    layers = [m for m in est.module_.modules() if isinstance(m, SparseLinear)]
    dims = [m.out_features for m in layers]
    nnz = [m.in_features * m.out_features for m in layers]  # GMP starts dense
    total = 0
    for h in est.history_:
        for i, (n, out) in enumerate(zip(nnz, dims)):
            total += 8 * (forward_flops(n * 50, out, 50) + backward_flops(n * 50, i == 0))
        if "topology" in h:
            nnz = [d["nnz"] for d in h["topology"]]
    assert est.flops_["train"] == total
    assert est.flops_["inference_per_sample"] == sum(forward_flops(m.nnz, m.out_features, 1) for m in layers)


@pytest.mark.parametrize("algorithm", FAMILY)
def test_tracker_sees_every_topology_update(digits, algorithm):
    X, y = digits
    tracker = ExampleTracker()
    est = est_for(algorithm, callbacks=[tracker]).fit(X, y)
    stats = tracker.epoch_stats_
    updated = [i for i, h in enumerate(est.history_) if "topology" in h]
    assert stats["topology_update"].to_numpy().nonzero()[0].tolist() == updated
    for i in updated:
        info = est.history_[i]["topology"]
        assert stats["dropped"].iloc[i] == sum(d["dropped"] for d in info)
        assert stats["grown"].iloc[i] == sum(d["grown"] for d in info)
    if algorithm == "snip":
        assert updated == [] and sum(d["dropped"] for d in est.initial_update_) > 0
    else:
        assert updated


@pytest.mark.parametrize("algorithm", FAMILY)
def test_continual_learning_runs(digits, algorithm):
    X, y = digits
    tasks = make_task_sequence(X, y, "class-incremental", 2, random_state=0)
    est = est_for(algorithm, hidden_layer_sizes=(32,), optimizer="sgd", learning_rate=0.05)
    result = run_continual(est, tasks, replay=None, epochs_per_task=2, random_state=0)
    assert result.accuracy_matrix.shape == (2, 2) and np.isfinite(result.accuracy_matrix).all()


def test_algorithm_options_reach_the_algorithm_and_bad_ones_name_what_is_accepted(digits):
    X, y = digits
    est = est_for("mest", zeta=0.2, algorithm_options={"gamma": 0.5}, max_epochs=2).fit(X, y)
    assert est.algorithm_.gamma == 0.5 and est.algorithm_.schedule.zeta == 0.2
    est = est_for("snfs", zeta=0.2, algorithm_options={"zeta": 0.4}, max_epochs=1).fit(X, y)
    assert est.algorithm_.zeta == 0.4  # the algorithm's own option wins over the estimator's zeta
    with pytest.raises(ValueError, match=r"'gama' not accepted; it takes: zeta, gamma"):
        est_for("mest", algorithm_options={"gama": 0.5}).fit(X, y)
    with pytest.raises(ValueError, match="algorithm_options must be a dict"):
        est_for("mest", algorithm_options=0.5).fit(X, y)
    with pytest.raises(ValueError, match="final density 0.5 > initial density 0.3"):
        est_for("gmp", algorithm_options={"initial_density": 0.3, "final_density": 0.5}).fit(X, y)
    with pytest.raises(ValueError, match="end > start"):
        est_for("granet", algorithm_options={"start": 3, "end": 2}).fit(X, y)


def test_sparse_start_and_dense_start_build_at_the_initial_density(digits):
    X, y = digits
    for initial in (1.0, 0.5):
        est = est_for("granet", algorithm_options={"initial_density": initial}, max_epochs=1).fit(X, y)
        # after one epoch no update has been applied yet (epoch-end updates run when the next begins)
        layers = [m for m in est.module_.modules() if isinstance(m, SparseLinear)]
        expected = [max(initial, d) for d in est._target_densities]  # a layer never starts below its target
        assert [m.density for m in layers] == pytest.approx(expected, abs=1e-3)
        assert min(est._target_densities) < 0.5


def test_mest_removes_examples_never_forgotten(digits):
    X, y = digits
    opts = {"remove_unforgettable": 0.25, "remove_at": 2}
    with pytest.raises(ValueError, match=r"callbacks=\[ExampleTracker\(\)\]"):
        est_for("mest", algorithm_options=opts).fit(X, y)
    tracker = ExampleTracker()
    est = est_for("mest", algorithm_options=opts, callbacks=[tracker]).fit(X, y)
    removed = est.removed_examples_
    assert 0 < removed.size <= 100  # a quarter of 400, if that many were never forgotten
    n = 400 - removed.size
    assert tracker.epoch_stats_["presentations"].tolist() == [400, 400, n, n, n]
    # those removed had been learned and never forgotten (no longer presented, the counts stay)
    ex = tracker.example_stats_
    assert np.all(ex["forgetting_events"].to_numpy()[removed] == 0)
    assert not ex["never_learned"].to_numpy()[removed].any()
    # the examples kept that were removable: none, unless more than a quarter were
    kept = np.setdiff1d(np.arange(400), removed)
    if removed.size < 100:
        first = ex["first_learned_epoch"].to_numpy(dtype=float, na_value=np.nan)[kept]
        assert not np.any((ex["forgetting_events"].to_numpy()[kept] == 0) & (first < 2))


class PruneHalfOnce(ResizingAlgorithm):
    """A user's pure-pruning algorithm: halve every layer by magnitude after the first epoch."""

    name = "prune-half-once"

    def __init__(self):
        super().__init__(MagnitudeDrop())

    def due(self, epoch, step, end_of_epoch):
        return end_of_epoch and epoch == 0

    def plan(self, layers, optimizer, epoch, step, context):
        return [(layer.nnz // 2, 0) for layer in layers]


def test_a_users_resizing_algorithm_by_name(digits):
    X, y = digits
    register_algorithm(PruneHalfOnce)
    try:
        est = est_for("prune-half-once", max_epochs=3).fit(X, y)
    finally:
        unregister_algorithm("prune-half-once")
    info = est.history_[0]["topology"]
    assert [d["dropped"] for d in info] and all(d["grown"] == 0 for d in info)
    assert est.density_["nnz"] == [d["nnz"] for d in info]


def test_plain_pytorch_gmp_needs_its_targets():
    model = torch.nn.Sequential(SparseLinear(10, 8, density=1.0, random_state=0))
    with pytest.raises(RuntimeError, match="final_density"):
        GMP(end=3).update(model, None, epoch=0)
    with pytest.raises(RuntimeError, match="pass end="):
        GMP(final_density=0.5).update(model, None, epoch=0)
    GMP(final_density=0.5, end=1).update(model, None, epoch=0)
    assert model[0].nnz == 40


@pytest.mark.parametrize("algorithm", ["gmp", "snfs"])
def test_fused_sgd_step_follows_a_layer_whose_nnz_changes(digits, algorithm):
    """Batches of two train through the fused SGD step, which must pick up each new Parameter."""
    X, y = digits
    fits = []
    for fused in (True, False):
        est = est_for(algorithm, optimizer="sgd", learning_rate=0.02, batch_size=2, max_epochs=3,
                      algorithm_options={"end": 2} if algorithm == "gmp" else None)
        est._use_fused_step = fused
        est._use_compiled_epoch = False
        fits.append(est.fit(X[:120], y[:120]))
    a, b = fits
    assert a.density_["nnz"] == b.density_["nnz"]
    for (pa, ca, va), (pb, cb, vb) in zip(weights(a), weights(b)):
        assert torch.equal(pa, pb) and torch.equal(ca, cb)
        torch.testing.assert_close(va, vb, rtol=1e-4, atol=1e-5)


def test_early_stopping_restores_the_best_epochs_structure(digits):
    """The best epoch may have had another number of live weights than the last (GMP prunes)."""
    X, y = digits
    # tol=1: no epoch beats the first by that much, so the best state is epoch 0's, still dense,
    # while two epoch-end prunes have run by the time training stops
    est = est_for("gmp", early_stopping=True, n_iter_no_change=2, tol=1.0, max_epochs=8, validation_fraction=0.2,
                  learning_rate=0.01, algorithm_options={"end": 6}).fit(X, y)
    layers = [m for m in est.module_.modules() if isinstance(m, SparseLinear)]
    assert est.n_iter_ == 3 and any("topology" in h for h in est.history_)
    assert est.density_["layers"] == [1.0, 1.0, 1.0]
    assert est.best_validation_score_ == est.history_[0]["validation_score"]
    assert est.score(X, y) > 0.5
    held = {id(p) for g in est.optimizer_.param_groups for p in g["params"]}
    assert all(id(m.values) in held for m in layers)
    for m in layers:
        assert m.values.shape[0] == int(m.row_ptr[-1]) == m.col_idx.shape[0]
        state = est.optimizer_.state.get(m.values, {})
        assert all(v.shape == m.values.shape for v in state.values() if torch.is_tensor(v) and v.dim() == 1)
    est.partial_fit(X, y)  # and training continues from there
