import pytest

from dualsparse.sparse.density import layer_densities


def test_er_rule_matches_formula():
    shapes = [(3312, 3000), (3000, 3000), (3000, 5)]
    d = layer_densities(shapes, "er", epsilon=20)
    assert d[0] == pytest.approx(20 * (3312 + 3000) / (3312 * 3000))
    assert d[1] == pytest.approx(20 * 6000 / 9e6)
    assert d[2] == 1.0  # too thin for epsilon: fully connected, as in SET's reference code


def test_epsilon_asking_for_more_than_exists_is_an_error():
    with pytest.raises(ValueError, match="lower epsilon"):
        layer_densities([(4, 10), (10, 3)], "er", epsilon=20)


@pytest.mark.parametrize("distribution", ["er", "erk", "uniform"])
@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
def test_global_sparsity_is_met(distribution, sparsity):
    shapes = [(784, 300), (300, 100), (100, 10)]
    d = layer_densities(shapes, distribution, sparsity=sparsity)
    total = sum(a * b for a, b in shapes)
    kept = sum(di * a * b for di, (a, b) in zip(d, shapes))
    assert kept / total == pytest.approx(1 - sparsity, rel=1e-9)
    assert all(0 < di <= 1 for di in d)


def test_erk_gives_thin_layers_more_density_and_caps_at_one():
    d = layer_densities([(1000, 1000), (1000, 2)], "erk", sparsity=0.9)
    assert d[1] == 1.0 and d[0] < 0.1


@pytest.mark.parametrize("bad", [dict(distribution="nope", epsilon=1), dict(distribution="er", sparsity=1.0),
                                 dict(distribution="erk", sparsity=None, epsilon=1), dict(distribution="er", epsilon=-1)])
def test_bad_density_arguments(bad):
    with pytest.raises(ValueError):
        layer_densities([(10, 10)], **bad)
