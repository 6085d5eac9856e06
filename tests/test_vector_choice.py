"""The vector kernels run where they measured faster on this host, or as DUALSPARSE_VECTOR says,
and the choice never changes a fit's numbers."""

import numpy as np
import pytest
import torch

from dualsparse import SparseMLPClassifier
from dualsparse.sparse import column_blocks as CB
from dualsparse.sparse import vector_choice


def _timer(scalar, vector):
    return lambda rng: (scalar, vector)


def test_decision_follows_the_timings(monkeypatch):
    monkeypatch.delenv(vector_choice.ENV_VAR, raising=False)
    monkeypatch.setattr(vector_choice, "HAS_GATHER", True)
    fast = vector_choice._decide(_timer(1.0, 0.5))
    assert fast.vector and fast.how == "measured" and fast.best_s == (1.0, 0.5)
    assert not vector_choice._decide(_timer(1.0, 2.0)).vector  # slower (as on AMD Zen 4): the loops
    assert not vector_choice._decide(_timer(1.0, 0.95)).vector  # within the margin: the loops


def test_no_hardware_gathers_means_the_loops(monkeypatch):
    monkeypatch.delenv(vector_choice.ENV_VAR, raising=False)
    monkeypatch.setattr(vector_choice, "HAS_GATHER", False)
    got = vector_choice._decide(_timer(1.0, 0.1))
    assert not got.vector and got.how == "no hardware gathers"


@pytest.mark.parametrize("value", ["0", "1"])
def test_environment_forces_either_path(monkeypatch, value):
    monkeypatch.setenv(vector_choice.ENV_VAR, value)
    got = vector_choice._decide(_timer(1.0, 0.5 if value == "0" else 2.0))  # against the timings
    assert got.vector == (value == "1") and got.best_s is None


def test_bad_environment_value_says_what_to_use(monkeypatch):
    monkeypatch.setenv(vector_choice.ENV_VAR, "yes")
    with pytest.raises(ValueError, match=r"DUALSPARSE_VECTOR='yes'.*0 .*1 .*unset"):
        vector_choice._decide(_timer(1.0, 0.5))


def test_real_timings_run_both_paths():
    """The timers return two positive best times for each family (whatever this host decides)."""
    for timer in (vector_choice._time_tiles, vector_choice._time_rows):
        scalar, vector = timer(np.random.default_rng(0))
        assert 0 < scalar < 1 and 0 < vector < 1


def _fit(monkeypatch, value):
    monkeypatch.setenv(vector_choice.ENV_VAR, value)
    vector_choice.tiles.cache_clear()
    vector_choice.rows.cache_clear()
    used = []
    real = CB.ColumnBlocks.__init__

    def spy(self, *a, **k):
        real(self, *a, **k)
        used.append(self.vector)

    monkeypatch.setattr(CB.ColumnBlocks, "__init__", spy)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, CB.TILED_ABOVE + 100)).astype(np.float32)
    y = np.arange(12) % 3
    est = SparseMLPClassifier(hidden_layer_sizes=(40,), sparsity=0.99, optimizer="sgd", batch_size=2, max_epochs=2,
                              momentum=0.9, random_state=0).fit(X, y)
    monkeypatch.undo()
    vector_choice.tiles.cache_clear()
    vector_choice.rows.cache_clear()
    return est, used


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_fused_step_follows_the_choice_and_gets_the_same_numbers(monkeypatch):
    on, used_on = _fit(monkeypatch, "1")
    off, used_off = _fit(monkeypatch, "0")
    assert used_on and all(used_on) and used_off and not any(used_off)
    for p, q in zip(on.module_.parameters(), off.module_.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=0)
