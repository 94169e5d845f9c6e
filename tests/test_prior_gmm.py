"""ladder.prior_gmm: the GMM prior, its EM refit and its Monte Carlo cross-entropy."""


import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch.distributions import (
    Categorical,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
)

from ladder.prior_gmm import GMMPrior
from ladder.priors import (
    NormalPrior,
)


def _clusters(n=600, d=2, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])[:, :d]
    return torch.tensor(centres[rng.integers(0, 3, n)] + 0.3 * rng.standard_normal((n, d)),
                        dtype=torch.float32)


def test_gmm_em_refit_matches_an_independent_mixture():
    z = _clusters()
    prior = GMMPrior(2, n_components=3, fit="em", covariance_reg=0.01, n_mc=10)
    torch.testing.assert_close(prior.log_prob(z[:5]), NormalPrior(2).log_prob(z[:5]))  # unfitted
    info = prior.refit(z)
    assert info["gmm_converged"]
    independent = MixtureSameFamily(
        Categorical(probs=prior.weights),
        MultivariateNormal(prior.means, prior.covariances + 0.01 * torch.eye(2)),
    )
    torch.testing.assert_close(prior.log_prob(z), independent.log_prob(z))
    assert prior.log_prob(z).mean() > NormalPrior(2).log_prob(z).mean() + 1.0
    sample = prior.sample(20_000)
    torch.testing.assert_close(sample.mean(0), z.mean(0), atol=0.1, rtol=0)
    # warm start: a second refit on the same data keeps the solution
    before = prior.means.clone()
    prior.refit(z)
    torch.testing.assert_close(prior.means, before, atol=1e-3, rtol=0)


def test_gmm_em_refit_is_sklearns_gaussian_mixture():
    """The torch refit (ladder.gmm_em) gives what scikit-learn's GaussianMixture gave in its place:
    a k-means start with the prior's seed, then warm starts from the stored buffers."""
    z = _clusters(d=2)
    prior = GMMPrior(2, n_components=4, fit="em", n_mc=10, seed=3)
    warm: dict = {}
    moved = z + 0.2 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    for points in (z, moved):
        sk = GaussianMixture(4, covariance_type="full", max_iter=prior.max_iter, random_state=3,
                             **warm).fit(points.double().numpy())
        assert prior.refit(points) == {"gmm_iter": sk.n_iter_, "gmm_converged": sk.converged_}
        for name in ("weights", "means", "covariances"):  # float32 buffers
            np.testing.assert_allclose(getattr(prior, name).numpy(), getattr(sk, name + "_"),
                                       rtol=1e-6, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(prior.precisions.numpy(), sk.precisions_, rtol=1e-8, atol=0)
        weights = prior.weights.double()
        warm = {"weights_init": (weights / weights.sum()).numpy(),
                "means_init": prior.means.double().numpy(),
                "precisions_init": prior.precisions.numpy()}
    assert sk.n_iter_ > 1  # the warm start did some work


def test_gmm_cross_entropy_is_monte_carlo_of_log_prob():
    torch.manual_seed(1)
    prior = GMMPrior(2, n_components=4, fit="gradient", n_mc=50_000)
    mu, std = torch.randn(2, 2), torch.rand(2, 2) + 0.1
    ce = prior.cross_entropy(mu, std, mu)
    reference = torch.stack([
        prior.log_prob(Normal(mu[i], std[i]).sample((50_000,))).mean() for i in range(2)
    ])
    torch.testing.assert_close(ce, reference, atol=0.05, rtol=0)
    ce.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in prior.parameters())
