"""ladder.metrics: importance-sampled log p(x) and log p(z), KL(q(z) || p(z)), the fixed Laplace
scale, generation statistics."""

import math
import warnings

import pytest
import torch
from conftest import few_components
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import MultivariateNormal

from ladder.classifier import LeNetClassifier
from ladder.config import preset_config
from ladder.image_sets import TensorImageSet
from ladder.metrics import (
    cross_entropy_statistics,
    fixed_laplace_scale,
    generate,
    generation_statistics,
    importance_log_px,
    log_likelihood,
)
from ladder.model import VAE, build_model, elbo_statistics
from ladder.prior_gmm import GMMPrior
from ladder.prior_vae import PriorVAE
from ladder.priors import NormalPrior


class _LinearEncoder(nn.Module):
    """q(. | x) = N(G x + h, diag std^2) on the flattened input."""

    def __init__(self, G, h, std):
        super().__init__()
        self.G, self.h, self.std = G, h, std

    def forward(self, x):
        flat = x.flatten(-3) if x.dim() == 4 else x
        return flat @ self.G.T + self.h, self.std.expand(*flat.shape[:-1], -1)


class _ImageDecoder(nn.Module):
    """z [..., d_z] -> A z + c shaped [..., 1, 1, d_x]."""

    def __init__(self, A, c):
        super().__init__()
        self.A, self.c = A, c

    def forward(self, z):
        return (z @ self.A.T + self.c).unsqueeze(-2).unsqueeze(-2)


class _ImageGaussian(nn.Module):
    """p(x | z) = N(x; x_hat, s^2 I) summed over (C, H, W)."""

    def __init__(self, s):
        super().__init__()
        self.s = s

    def log_prob(self, x, x_hat):
        d = math.prod(x.shape[-3:])
        sq = (x - x_hat).square().sum((-3, -2, -1))
        return -sq / (2 * self.s**2) - d * math.log(self.s) - 0.5 * d * math.log(2 * math.pi)


def _posterior(A, c, s, mean, cov, widen=1.3):
    """A diagonal proposal for y = A u + c + s eps, u ~ N(mean, cov): the exact posterior mean and
    the diagonal of its covariance widened ``widen`` times (a good but inexact q)."""
    cov_inv = torch.linalg.inv(cov)
    post = torch.linalg.inv(cov_inv + A.T @ A / s**2)
    G = post @ A.T / s**2
    h = post @ (cov_inv @ mean - A.T @ c / s**2)
    return _LinearEncoder(G, h, widen * post.diagonal().sqrt())


def _linear_vae(nested: bool, d_x=6, d_z=3, d_t=2, s=0.4, s_p=0.3, seed=0):
    """A linear-Gaussian VAE whose marginal p(x) is Gaussian in closed form; with ``nested`` its
    prior is a hierarchical prior with a linear p(z|t), p(z) = N(b, W W^T + s_p^2 I)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d_x, d_z, generator=g, dtype=torch.float64)
    c = torch.randn(d_x, generator=g, dtype=torch.float64)
    if nested:
        prior = PriorVAE(d_z, d_t, NormalPrior(d_t), hidden=8, n_layers=1, scale_init=s_p).double()
        W = torch.randn(d_z, d_t, generator=g, dtype=torch.float64)
        b = torch.randn(d_z, generator=g, dtype=torch.float64)
        prior.decoder = nn.Linear(d_t, d_z).double()
        with torch.no_grad():
            prior.decoder.weight.copy_(W)
            prior.decoder.bias.copy_(b)
        eye_t = torch.eye(d_t, dtype=torch.float64)
        prior.encoder = _posterior(W, b, s_p, torch.zeros(d_t, dtype=torch.float64), eye_t, 1.5)
        mean_z, cov_z = b, W @ W.T + s_p**2 * torch.eye(d_z, dtype=torch.float64)
    else:
        prior = NormalPrior(d_z).double()
        mean_z, cov_z = torch.zeros(d_z, dtype=torch.float64), torch.eye(d_z, dtype=torch.float64)
    model = VAE(_posterior(A, c, s, mean_z, cov_z), _ImageDecoder(A, c), _ImageGaussian(s), prior)
    marginal = MultivariateNormal(A @ mean_z + c,
                                  A @ cov_z @ A.T + s**2 * torch.eye(d_x, dtype=torch.float64))
    return model, marginal, MultivariateNormal(mean_z, cov_z)


@pytest.mark.parametrize("nested", [False, True])
def test_importance_sampled_log_px_of_a_linear_gaussian_vae_is_exact(nested):
    torch.manual_seed(0)
    model, marginal, _ = _linear_vae(nested)
    x = marginal.sample((40,))
    exact = marginal.log_prob(x)
    images = x.view(40, 1, 1, -1)
    stats = log_likelihood(model, images, n_samples=400, n_inner=4, batch_size=16)
    mean_exact = float(exact.mean())
    assert stats["nested"] is nested and stats["n_images"] == 40
    assert 0 < stats["mc_stderr"] < 0.05  # small enough that the next check has teeth
    assert abs(stats["log_px"] - mean_exact) < 3 * stats["mc_stderr"]
    assert stats["nll"] == -stats["log_px"]
    assert 50 < stats["ess_mean"] <= 400  # a good proposal: many effective samples of the 400
    # One sample is an ELBO sample: below log p(x) by the KL of the inexact proposal.
    single, _ = importance_log_px(model, images, n_samples=1, n_inner=1)
    assert float(single.mean()) < mean_exact - 10 * stats["mc_stderr"]


class _DoubleImages(TensorImageSet):
    """An image set whose batches are float64, for the float64 linear models."""

    def _float(self, x):
        return x.double()


def test_cross_entropy_two_ways_agree_for_a_normal_prior_and_bound_the_hierarchical_one():
    torch.manual_seed(1)
    for nested in (False, True):
        model, marginal, prior_z = _linear_vae(nested)
        images = _DoubleImages("synthetic", marginal.sample((600,)).view(600, 1, 1, -1).float())
        stats = cross_entropy_statistics(model, images, n_is=200, batch_size=256)
        assert stats["exact"] is (not nested) and stats["n_images"] == 600
        # Reference E_q(z)[log p(z)]: 50 z per image and the closed-form log p(z).
        mu, std = model.encoder(images.take(600))
        ref = prior_z.log_prob(mu + std * torch.randn(50, *mu.shape, dtype=mu.dtype)).mean(0)
        ref_mean, ref_se = float(ref.mean()), float(ref.std() / math.sqrt(600))
        tol = 3 * math.hypot(stats["importance_sampled_stderr"], ref_se)
        assert abs(stats["importance_sampled"] - ref_mean) < tol
        if nested:  # the prior-VAE bound L(z) of Eq (4) lies below log p(z)
            assert stats["gap"] > 3 * stats["gap_stderr"]
        else:  # analytic E_q(z|x)[log p(z)] and exact log p(z) at a sample: same expectation
            assert abs(stats["gap"]) < 3 * stats["gap_stderr"]


def _scaled_gmm_vae(c, d, k, seed, n=60, d_x=5):
    """A linear encoder and a GMM prior (k = 1: a Gaussian) in float64, both scaled by ``c``:
    z -> c z maps the model at c = 1 onto this one. Returns it and n images."""
    g = torch.Generator().manual_seed(seed)
    G, h = torch.randn(d, d_x, generator=g), torch.randn(d, generator=g)
    std = 0.1 + torch.rand(d, generator=g)
    encoder = _LinearEncoder(c * G.double(), c * h.double(), c * std.double())
    prior = GMMPrior(d, n_components=k).double()
    root = torch.randn(k, d, d, generator=g, dtype=torch.float64)
    with torch.no_grad():
        prior.means.copy_(c * torch.randn(k, d, generator=g))
        prior.covariances.copy_(c**2 * (root @ root.mT + 0.5 * torch.eye(d)))
        prior.weights.copy_(torch.softmax(torch.randn(k, generator=g), 0))
    zero = torch.zeros(d_x, d, dtype=torch.float64)
    model = VAE(encoder, _ImageDecoder(zero, zero[:, 0]), _ImageGaussian(1.0), prior)
    images = _DoubleImages("synthetic", torch.randn(n, 1, 1, d_x, generator=g))
    return model, images


@settings(max_examples=20, deadline=None)
@given(c=st.floats(0.05, 20.0), d=st.integers(1, 4), k=st.integers(1, 3),
       seed=st.integers(0, 10**6))
def test_kl_is_scale_invariant_where_the_cross_entropy_is_not(c, d, k, seed):
    """Scale the encoder's output and the prior by c: E_q(z)[log p(z)] shifts by -d log c (Table
    2's quantity rewards a shrunken latent), H[q(z)] by +d log c, KL(q || p) not at all."""
    stats = {}
    for scale in (1.0, c):
        model, images = _scaled_gmm_vae(scale, d, k, seed)
        torch.manual_seed(0)
        stats[scale] = cross_entropy_statistics(model, images, n_is=2, batch_size=25)
    one, scaled, shift = stats[1.0], stats[c], d * math.log(c)
    for key, moves in (("importance_sampled", -shift), ("bound", -shift),
                       ("aggregate_entropy", shift), ("aggregate_entropy_loo", shift),
                       ("kl", 0.0), ("kl_loo", 0.0)):
        assert scaled[key] == pytest.approx(one[key] + moves, abs=1e-6), key
    for key in ("kl", "kl_loo", "aggregate_entropy"):
        assert scaled[f"{key}_stderr"] == pytest.approx(one[f"{key}_stderr"], abs=1e-6)
    # KL = E[log q] - E[log p] with E[log q] = -H, as the keys say.
    assert one["kl"] == pytest.approx(-one["aggregate_entropy"] - one["importance_sampled"])


def test_cross_entropy_statistics_of_one_image_has_no_aggregate_terms():
    model, images = _scaled_gmm_vae(1.0, 2, 2, 0, n=1)
    stats = cross_entropy_statistics(model, images, n_is=2)
    assert stats["n_images"] == 1 and "kl" not in stats and "importance_sampled" in stats


def _small_model(prior="normal", **model):
    cfg = preset_config("paper", "mnist", prior)
    cfg.model.n_mc = 3
    few_components(cfg.model, 4)
    for key, value in model.items():
        setattr(cfg.model, key, value)
    return build_model(cfg.model, "mnist", (1, 28, 28))


def test_fixed_laplace_scale_makes_the_likelihood_independent_of_the_batch():
    torch.manual_seed(2)
    model = _small_model(sigma_mode="batch_mae", sigma_init=0.01).eval()
    images = TensorImageSet("synthetic", torch.rand(40, 1, 28, 28))
    x = images.take(40)
    x_hat = model.reconstruct(x)
    original = model.likelihood
    batch_dependent = original.log_prob(x[:8], x_hat[:8]) - original.log_prob(x, x_hat)[:8]
    assert batch_dependent.abs().max() > 1e-3
    with fixed_laplace_scale(model, images, batch_size=16) as sigma:
        assert model.likelihood is not original
        mae = elbo_statistics(model, images)["mae"]
        assert sigma == pytest.approx(max(0.01, mae), rel=0.05)
        small = model.likelihood.log_prob(x[:8], x_hat[:8])
        torch.testing.assert_close(small, model.likelihood.log_prob(x, x_hat)[:8])
        assert float(model.likelihood.scale().detach()) == pytest.approx(sigma, rel=1e-6)
    assert model.likelihood is original
    with pytest.raises(ValueError, match="fixed_laplace_scale"):
        log_likelihood(model, x[:2], n_samples=2)
    learned = _small_model(sigma_mode="learned", sigma_init=0.3)
    with fixed_laplace_scale(learned, images) as sigma:
        assert sigma == pytest.approx(0.3) and learned.likelihood.sigma_mode == "learned"


def test_generate_draws_distinct_samples_across_batches():
    torch.manual_seed(3)
    model = _small_model("ladder")
    model.prior.hyper.refit(torch.randn(300, model.prior.latent_dim))
    images = generate(model, 12, batch_size=4)
    assert images.shape == (12, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    flat = images.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(12)).min() > 0  # no batch repeats another


def test_generation_statistics_keys_and_difference():
    torch.manual_seed(4)
    model = _small_model("normal")
    classifier = LeNetClassifier().eval()
    test, train = torch.rand(30, 1, 28, 28), torch.rand(30, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 30 samples of 128 features: singular covariances
        stats = generation_statistics(model, test, classifier, train, k=3, batch_size=8)
    assert stats["n_samples"] == 30 and stats["prdc_k"] == 3
    assert stats["fcd_difference"] == pytest.approx(stats["fcd_generated"]
                                                    - stats["fcd_reconstructed"])
    assert all(math.isfinite(v) for v in stats.values())
    assert 0 <= stats["precision"] <= 1 and 0 <= stats["coverage"] <= 1
    with pytest.raises(ValueError, match="as many images"):
        generation_statistics(model, test, classifier, train[:10])
