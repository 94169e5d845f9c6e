import math

import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from ladder.numerics import logsumexp, mixture_log_prob


def test_matches_torch_including_far_components_and_gradients():
    x = torch.tensor([[0.0, -50.0, -100.0, -1000.0], [3.0, 3.0, -float("inf"), 1.0]],
                     dtype=torch.float64, requires_grad=True)
    ours = logsumexp(x, -1)
    torch.testing.assert_close(ours, torch.logsumexp(x, -1))
    (g,) = torch.autograd.grad(ours.sum(), x)
    torch.testing.assert_close(g, torch.softmax(x, -1), atol=1e-30, rtol=1e-12)


def test_all_minus_infinity_rows_stay_minus_infinity():
    x = torch.full((2, 3), -float("inf"))
    assert torch.isneginf(logsumexp(x, -1)).all()
    torch.testing.assert_close(logsumexp(torch.zeros(4, 3), 0), torch.full((3,), math.log(4)))


def test_mixture_log_prob_equals_the_distribution():
    torch.manual_seed(0)
    mixture = MixtureSameFamily(Categorical(logits=torch.randn(5)),
                                MultivariateNormal(torch.randn(5, 3) * 10, torch.eye(3)))
    z = torch.randn(7, 4, 3) * 10
    torch.testing.assert_close(mixture_log_prob(mixture, z), mixture.log_prob(z))
