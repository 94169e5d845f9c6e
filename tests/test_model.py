"""The data VAE and its ELBO (Eq (2)); model building for every prior."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from ladder.config import preset_config
from ladder.likelihoods import GaussianLikelihood
from ladder.model import VAE, build_model
from ladder.prior_vae import ladder_dims
from ladder.priors import NormalPrior


class _LinearEncoder(nn.Module):
    def __init__(self, A, b, std):
        super().__init__()
        self.A, self.b, self.std = A, b, std

    def forward(self, x):
        return x @ self.A.T + self.b, self.std.expand(x.shape[0], -1)


def _linear_gaussian(seed=0, d_x=5, d_z=2, noise=0.5):
    """x = W z + c + noise * eps, z ~ N(0, I), with orthogonal columns of W, so that the exact
    posterior has a diagonal covariance and a diagonal-Gaussian encoder can be exact."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d_x, d_z, generator=g, dtype=torch.float64))
    W = q * torch.tensor([2.0, 0.7], dtype=torch.float64)
    c = torch.randn(d_x, generator=g, dtype=torch.float64)
    decoder = nn.Linear(d_z, d_x).double()
    with torch.no_grad():
        decoder.weight.copy_(W)
        decoder.bias.copy_(c)
    likelihood = GaussianLikelihood("learned", noise).double()
    precision = torch.eye(d_z, dtype=torch.float64) + W.T @ W / noise**2
    cov = torch.linalg.inv(precision)  # diagonal because W's columns are orthogonal
    encoder = _LinearEncoder(cov @ W.T / noise**2, -(cov @ W.T @ c) / noise**2,
                             cov.diagonal().sqrt())
    marginal = MultivariateNormal(c, W @ W.T + noise**2 * torch.eye(d_x, dtype=torch.float64))
    x = marginal.sample((64,))
    model = VAE(encoder, decoder, likelihood, NormalPrior(d_z)).double()
    return model, x, marginal.log_prob(x)


def test_elbo_is_exact_at_the_true_posterior_and_below_log_px_elsewhere():
    torch.manual_seed(0)
    model, x, log_px = _linear_gaussian()
    # Entropy and cross-entropy are in closed form and only the reconstruction term is sampled,
    # so the bound is tight in expectation: average 4000 samples (MC error about 0.01 nats).
    elbo = torch.stack([model.elbo_terms(x)["elbo"] for _ in range(4000)]).mean(0)
    torch.testing.assert_close(elbo, log_px, atol=0.05, rtol=0)
    model.encoder.b = model.encoder.b + 0.3  # a worse q(z|x): the gap is its KL to the posterior
    worse = torch.stack([model.elbo_terms(x)["elbo"] for _ in range(4000)]).mean(0)
    assert (worse < log_px - 0.05).all()


def test_terms_sum_to_the_elbo_and_parameter_blocks_are_disjoint():
    cfg = preset_config("paper", "mnist", "vamp")
    cfg.model.n_mc = 3
    model = build_model(cfg.model, "mnist", (1, 28, 28))
    terms = model.elbo_terms(torch.rand(4, 1, 28, 28))
    total = terms["reconstruction"] + terms["entropy"] + terms["cross_entropy"]
    torch.testing.assert_close(terms["elbo"], total)
    vae_ids = {id(p) for p in model.vae_parameters()}
    prior_ids = {id(p) for p in model.prior.parameters()}
    assert vae_ids.isdisjoint(prior_ids) and prior_ids
    assert vae_ids | prior_ids == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("prior", ["normal", "gmm", "vamp", "hierarchical", "ladder"])
def test_every_prior_gives_finite_terms_samples_and_gradients(prior):
    torch.manual_seed(0)
    cfg = preset_config("paper", "mnist", prior)
    cfg.model.n_mc = 4
    model = build_model(cfg.model, "mnist", (1, 28, 28))
    x = torch.rand(3, 1, 28, 28)
    terms = model.elbo_terms(x)
    assert all(torch.isfinite(v).all() for v in terms.values())
    assert terms["elbo"].shape == (3,)
    (-terms["elbo"].mean()).backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.sample(5).shape == (5, 1, 28, 28)
    assert model.reconstruct(x).shape == x.shape


def _model(output_activation):
    cfg = preset_config("paper", "mnist", "normal")
    cfg.model.output_activation = output_activation
    return build_model(cfg.model, "mnist", (1, 28, 28), seed=3)


def test_images_are_clamped_and_the_likelihood_sees_the_unclamped_output():
    model = _model("leaky_relu")
    with torch.no_grad():  # push some outputs below 0 and some above 1
        model.decoder.body[-2].weight.mul_(300)
    x = torch.rand(6, 1, 28, 28)
    z = model.encode(x)[0]
    x_hat = model.decoder(z)
    assert (x_hat < 0).any() and (x_hat > 1).any()
    images = model.decode_images(z)
    assert images.min() == 0 and images.max() == 1
    torch.testing.assert_close(images, x_hat.clamp(0, 1))
    torch.testing.assert_close(model.images(model.reconstruct(x)), images)
    torch.manual_seed(0)
    terms = model.elbo_terms(x)
    torch.manual_seed(0)
    z_draw = model.encoder(x)[0] + model.encoder(x)[1] * torch.randn(6, 16)
    unclamped = model.decoder(z_draw)
    torch.testing.assert_close(terms["reconstruction"], model.likelihood.log_prob(x, unclamped))
    torch.testing.assert_close(terms["mae"], (unclamped - x).abs().flatten(1).mean(1))


@pytest.mark.parametrize(("output_activation", "learns"),
                         [("leaky_relu", True), ("relu_leaky_grad", True), ("relu", False)])
def test_an_output_below_zero_everywhere_learns_only_if_leaky(output_activation, learns):
    """Issue 15, point 5: a ReLU output that is negative for every image is dead under L1."""
    model = _model(output_activation)
    with torch.no_grad():
        model.decoder.body[-2].bias.fill_(-10.0)  # every pixel of every image below 0
    model.elbo_terms(torch.rand(4, 1, 28, 28))["reconstruction"].sum().backward()
    assert (model.decoder.body[-2].bias.grad.abs() > 0).item() is learns


def test_the_image_rule_keeps_the_old_clamp_for_the_default_output():
    """generate/reconstruct (FCD inputs) and the sample grid give what they gave before
    VAE.images: decoder output .clamp(0, 1), bit for bit."""
    from ladder.metrics import generate, reconstruct

    model = _model("relu").eval()
    x = torch.rand(5, 1, 28, 28)
    old_recon = model.decoder(model.encoder(x)[0]).clamp(0, 1)
    assert torch.equal(reconstruct(model, x), old_recon)
    torch.manual_seed(7)
    old_samples = model.decoder(model.prior.sample(5)).clamp(0, 1)
    torch.manual_seed(7)
    assert torch.equal(generate(model, 5), old_samples)


def test_warmup_uses_the_normal_cross_entropy():
    cfg = preset_config("paper", "mnist", "hierarchical")
    model = build_model(cfg.model, "mnist", (1, 28, 28))
    x = torch.rand(2, 1, 28, 28)
    torch.manual_seed(0)
    warm = model.elbo_terms(x, normal_prior=True)
    mu, std = model.encode(x)
    expected = -0.5 * 16 * math.log(2 * math.pi) - 0.5 * (mu**2 + std**2).sum(-1)
    torch.testing.assert_close(warm["cross_entropy"], expected)


def test_ladder_dims():
    assert ladder_dims(16, 2, 1) == [2]
    assert ladder_dims(16, 2, 2) == [6, 2]
    assert ladder_dims(256, 32, 3) == [128, 64, 32]
