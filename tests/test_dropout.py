"""The CPU dropout's mask: Bernoulli(1 - p) at the exact rate, independent elements and calls,
nn.Dropout's scaling and modes, seeded by torch, the same on any number of threads."""

import numpy as np
import pytest
import torch
from torch import nn

from dualsparse.sparse import kernels
from dualsparse.train.dropout import Dropout, dropout_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_keep_rate_is_one_minus_p_within_binomial_noise(p):
    n = 1_000_000
    mask = dropout_mask((n,), p, seed=2024)
    kept = (mask > 0).double()
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(kept.mean().item() - (1 - p)) < 5 * sigma  # a rate off by 1 % of p fails at p >= 0.3
    assert torch.all((mask == 0) | (mask == torch.tensor(1 / (1 - p), dtype=torch.float32)))


def test_elements_and_calls_are_uncorrelated():
    a = (dropout_mask((1000, 1000), 0.3, seed=1) > 0).double().ravel().numpy()
    b = (dropout_mask((1000, 1000), 0.3, seed=2) > 0).double().ravel().numpy()
    # |r| of independent Bernoulli pairs over 1e6 elements: ~1e-3; a shared or shifted stream ~1
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.005
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.005
    assert abs(np.corrcoef(a[:-1], b[1:])[0, 1]) < 0.005


def test_module_follows_nn_dropout_semantics_and_torch_seeding():
    x = torch.randn(64, 300)
    d = Dropout(0.3)
    torch.manual_seed(0)
    first = d(x)
    torch.manual_seed(0)
    assert torch.equal(d(x), first)  # torch's generator seeds the mask
    assert not torch.equal(d(x), first)  # and each call draws a new one
    kept = first != 0
    assert torch.allclose(first[kept], x[kept] / 0.7)
    d.eval()
    assert d(x) is x
    assert torch.equal(Dropout(1.0)(x), nn.Dropout(1.0)(x))  # p = 1: all zeros, as torch
    half = x.half()
    assert Dropout(0.3)(half).dtype == torch.float16  # other dtypes: torch's own dropout


def test_gradient_is_the_mask():
    x = torch.randn(32, 50, requires_grad=True)
    torch.manual_seed(3)
    y = Dropout(0.4)(x)
    y.sum().backward()
    torch.manual_seed(3)
    seed = int(torch.randint(0, 2**63 - 1, (1,)).item())
    assert torch.equal(x.grad, dropout_mask(x.shape, 0.4, seed))


def test_same_mask_on_any_number_of_threads():
    try:
        kernels.set_num_threads(1)
        one = dropout_mask((200_001,), 0.3, seed=7)
        kernels.set_num_threads(2)
        two = dropout_mask((200_001,), 0.3, seed=7)
    finally:
        kernels.set_num_threads(2)
    assert torch.equal(one, two)
