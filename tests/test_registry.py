"""The algorithm registry: what an algorithm is, declared once and read by name everywhere."""

import numpy as np
import pytest
from sklearn.datasets import load_iris

from dualsparse import SparseMLPClassifier
from dualsparse.dst import (SET, MagnitudeDrop, RandomGrow, Schedule, TopologyAlgorithm, algorithm_info,
                            algorithm_names, make_algorithm, register_algorithm, unregister_algorithm)


class HalfSET(TopologyAlgorithm):
    """SET replacing a given fraction every other epoch (a user's own algorithm)."""

    name = "half-set"
    display_name = "half-SET MLP"

    def __init__(self, zeta: float = 0.3, grow_init: str = "zero"):
        super().__init__(MagnitudeDrop(), RandomGrow(), Schedule(zeta), grow_init)
        self.zeta_given = zeta


@pytest.fixture
def half_set():
    register_algorithm(HalfSET)
    yield HalfSET
    unregister_algorithm("half-set")


def test_builtins_declare_name_display_and_options():
    assert algorithm_names()[:4] == ["dense", "static", "set", "rigl"]
    info = algorithm_info("set")
    assert info.cls is SET and info.display_name == "SET MLP" and info.accepts("zeta") and info.sparse
    assert not info.needs_gradient and algorithm_info("rigl").needs_gradient
    assert not algorithm_info("dense").sparse and algorithm_info("static").options == ()


def test_unknown_option_names_what_is_accepted():
    with pytest.raises(ValueError, match=r"'zeta' not accepted; it takes: none"):
        make_algorithm("static", zeta=0.2)
    with pytest.raises(ValueError, match="register_algorithm"):
        make_algorithm("no-such-algorithm")


def test_user_algorithm_by_name_in_an_estimator(half_set):
    X, y = load_iris(return_X_y=True)
    est = SparseMLPClassifier(hidden_layer_sizes=(16,), algorithm="half-set", zeta=0.2, sparsity=0.5,
                              max_epochs=3, random_state=0).fit(X, y)
    assert isinstance(est.algorithm_, HalfSET) and est.algorithm_.zeta_given == 0.2
    assert est.n_iter_ == 3
    assert np.isfinite(est.predict_proba(X)).all()


def test_taken_name_is_refused_unless_replaced(half_set):
    class Other(HalfSET):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_algorithm(Other)
    register_algorithm(Other, replace=True)
    assert algorithm_info("half-set").cls is Other
    with pytest.raises(TypeError):
        register_algorithm(object)
