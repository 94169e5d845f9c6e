"""ladder.aggregate: the aggregate posterior q(z) of Eq (3) as an exact density, with and without
each code's own posterior."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.aggregate import aggregate_log_density, aggregate_log_density_at_codes
from ladder.latent2d import grid_points


def _posteriors(n, d, seed, width=(0.2, 1.2)):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, d, generator=g, dtype=torch.float64)
    std = width[0] + (width[1] - width[0]) * torch.rand(n, d, generator=g, dtype=torch.float64)
    return mu, std, g


def _mixture(mu, std):
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=torch.zeros(mu.shape[0], dtype=mu.dtype)),
        torch.distributions.Independent(torch.distributions.Normal(mu, std), 1),
    )


def test_aggregate_density_integrates_to_one_and_matches_a_mixture():
    g = torch.Generator().manual_seed(0)
    mu, std = torch.randn(300, 2, generator=g), 0.2 + torch.rand(300, 2, generator=g)
    xs, ys, points = grid_points(7.0, 0.1)
    log_q = aggregate_log_density(points, mu, std, chunk=1000)
    mass = float(log_q.double().exp().sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]))
    assert abs(mass - 1.0) < 1e-3
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=torch.zeros(300)),
        torch.distributions.Independent(torch.distributions.Normal(mu, std), 1),
    )
    torch.testing.assert_close(log_q[::97], mixture.log_prob(points[::97]))
    t = aggregate_log_density(torch.zeros(5, 1), mu[:, :1], std[:, :1])  # any dimension
    assert t.shape == (5,)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 30), d=st.integers(1, 4), seed=st.integers(0, 10**6),
       chunk=st.integers(1, 40))
def test_leaving_one_out_is_the_mixture_of_the_others(n, d, seed, chunk):
    mu, std, g = _posteriors(n, d, seed)
    points = torch.randn(n + 3, d, generator=g, dtype=torch.float64)
    exclude = torch.randint(0, n, (n + 3,), generator=g)
    got = aggregate_log_density(points, mu, std, chunk, exclude=exclude)
    for i, k in enumerate(exclude.tolist()):
        keep = torch.arange(n) != k
        torch.testing.assert_close(got[i], _mixture(mu[keep], std[keep]).log_prob(points[i]))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 40), d=st.integers(1, 5), seed=st.integers(0, 10**6))
def test_at_codes_with_and_without_the_own_posterior(n, d, seed):
    mu, std, g = _posteriors(n, d, seed)
    z = mu + std * torch.randn(n, d, generator=g, dtype=torch.float64)
    with_own, held_out = aggregate_log_density_at_codes(z, mu, std)
    torch.testing.assert_close(with_own, _mixture(mu, std).log_prob(z))
    torch.testing.assert_close(held_out, aggregate_log_density(z, mu, std,
                                                               exclude=torch.arange(n)))
    # The own posterior only adds mass: N q_N = (N - 1) q_-n + q(z_n | x_n) >= (N - 1) q_-n.
    assert (with_own + math.log(n) >= held_out + math.log(n - 1) - 1e-9).all()


def test_the_two_entropies_bracket_the_population_entropy():
    """Codes u ~ N(0, I), posteriors N(u, s^2 I): the population's q(z) is N(0, (1 + s^2) I), with
    a known entropy; q_N of 300 narrow posteriors is peakier (lower entropy), leaving one out
    over-spreads it (higher entropy)."""
    d, n, s = 2, 300, 0.05
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(n, d, generator=g, dtype=torch.float64)
    std = torch.full_like(mu, s)
    z = mu + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    with_own, held_out = aggregate_log_density_at_codes(z, mu, std)
    population = 0.5 * d * (1 + math.log(2 * math.pi * (1 + s**2)))
    assert -float(with_own.mean()) < population - 0.5
    assert -float(held_out.mean()) > population + 1.0
    assert -float(with_own.mean()) <= math.log(n) + d * (0.5 + 0.5 * math.log(2 * math.pi * s**2))


@pytest.mark.parametrize("call", [
    lambda mu, std: aggregate_log_density_at_codes(mu[:1], mu[:1], std[:1]),  # N = 1
    lambda mu, std: aggregate_log_density_at_codes(mu[:2], mu, std),
    lambda mu, std: aggregate_log_density(mu, mu, std, exclude=torch.arange(2)),
])
def test_bad_shapes_are_refused(call):
    mu, std, _ = _posteriors(3, 2, 0)
    with pytest.raises(ValueError, match="need|exclude"):
        call(mu, std)
