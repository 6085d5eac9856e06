import pytest

from dualsparse.sparse.density import DEFAULT_EPSILON, layer_densities, sparse_epsilon_limit


def test_er_rule_matches_formula():
    shapes = [(3312, 3000), (3000, 3000), (3000, 5)]
    d = layer_densities(shapes, "er", epsilon=20)
    assert d[0] == pytest.approx(20 * (3312 + 3000) / (3312 * 3000))
    assert d[1] == pytest.approx(20 * 6000 / 9e6)
    assert d[2] == 1.0  # too thin for epsilon: fully connected, as in SET's reference code


def test_each_layer_is_capped_at_full_on_its_own():
    # Breast Cancer with the default (100,) hidden layer: 20 (30 + 100) + 20 (100 + 2) = 4640
    # connections asked for, 3200 exist. SET caps per layer: the input layer stays sparse at its
    # own ER density, only the output layer is full (a network-level cap would change both).
    shapes = [(30, 100), (100, 2)]
    for d in (layer_densities(shapes), layer_densities(shapes, "er", epsilon=20)):
        assert d == [pytest.approx(20 * 130 / 3000), 1.0]
    # a thin layer in the middle is full while the wide ones around it keep their ER density
    d = layer_densities([(500, 400), (400, 3), (3, 400), (400, 10)], epsilon=5)
    assert d == [pytest.approx(5 * 900 / 200_000), 1.0, 1.0, pytest.approx(5 * 410 / 4000)]


@pytest.mark.parametrize("shapes", [[(4, 100), (100, 3)], [(1, 100), (100, 1)], [(2, 100), (100, 2)], [(64, 2)]])
def test_default_epsilon_never_fails_even_when_every_layer_is_full(shapes):
    assert DEFAULT_EPSILON == 20
    assert layer_densities(shapes) == [1.0] * len(shapes)


def test_explicit_epsilon_that_leaves_no_sparse_layer_is_an_error_naming_the_fix():
    shapes = [(4, 100), (100, 3)]
    limit = 100 * 4 / 104  # the widest layer is the input one here
    assert sparse_epsilon_limit(shapes) == pytest.approx(limit)
    with pytest.raises(ValueError, match=r"epsilon=20 makes every layer of the 4-100-3 network fully connected.*"
                                         r"lower epsilon below 3\.846.*sparsity=0\.9.*leave epsilon unset"):
        layer_densities(shapes, "er", epsilon=20)
    with pytest.raises(ValueError, match="lower epsilon"):
        layer_densities(shapes, "er", epsilon=limit)
    below = layer_densities(shapes, "er", epsilon=0.99 * limit)
    assert below[0] < 1.0 and below[1] == 1.0


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
                                 dict(distribution="erk", sparsity=None, epsilon=1), dict(distribution="er", epsilon=-1),
                                 dict(distribution="erk"), dict(distribution="er", epsilon=0),
                                 dict(distribution="er", epsilon="20"), dict(distribution="er", epsilon=float("nan"))])
def test_bad_density_arguments(bad):
    with pytest.raises(ValueError):
        layer_densities([(10, 10)], **bad)
