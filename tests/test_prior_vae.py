"""The prior-VAE unit (Eq (4)-(7)): bounds, importance sampling, the DP-GMM hyper prior."""

import io

import torch
from torch import nn
from torch.distributions import MultivariateNormal

from ladder.config import preset_config
from ladder.model import build_prior
from ladder.prior_vae import DPGMMHyperPrior, PriorVAE
from ladder.priors import NormalPrior


class _FixedEncoder(nn.Module):
    def __init__(self, b, gain, std):
        super().__init__()
        self.b, self.gain, self.std = b, gain, std

    def forward(self, z):
        return (z - self.b) @ self.gain.T, self.std.expand(*z.shape[:-1], -1)


def _linear_hierarchical(d_z=3, d_t=2, scale=0.3, seed=0):
    """A hierarchical prior with a linear p(z|t): p(z) = N(b, W W^T + s^2 I) in closed form."""
    torch.manual_seed(seed)
    prior = PriorVAE(d_z, d_t, NormalPrior(d_t), hidden=32, n_layers=2, scale_init=scale)
    prior.decoder = nn.Linear(d_t, d_z)
    W, b = prior.decoder.weight.detach(), prior.decoder.bias.detach()
    exact = MultivariateNormal(b, W @ W.T + scale**2 * torch.eye(d_z))
    # A sensible proposal q(t|z), as training would give: the exact posterior mean with the
    # diagonal of its covariance, widened 1.5x so its tails cover the posterior's.
    cov = torch.linalg.inv(torch.eye(d_t) + W.T @ W / scale**2)
    gain = cov @ W.T / scale**2
    std = 1.5 * cov.diagonal().sqrt()
    prior.encoder = _FixedEncoder(b, gain, std)
    return prior, exact


def test_bound_is_below_and_importance_sampling_agrees_with_closed_form():
    prior, exact = _linear_hierarchical()
    z = exact.sample((20,))
    with torch.no_grad():
        log_pz = exact.log_prob(z)
        bound = torch.stack([prior.bound(z) for _ in range(200)]).mean(0)
        estimate = prior.log_prob_estimate(z, n_samples=4000)
    assert (bound < log_pz + 0.05).all()  # Eq (4) is a lower bound
    torch.testing.assert_close(estimate, log_pz, atol=0.15, rtol=0)


def test_ladder_prior_uses_unit_gaussian_until_the_first_refit():
    torch.manual_seed(0)
    hyper = DPGMMHyperPrior(2, n_components=5, n_mc=7)
    mu, std = torch.randn(4, 2), torch.rand(4, 2) + 0.1
    torch.testing.assert_close(hyper.cross_entropy(mu, std, mu),
                               NormalPrior(2).cross_entropy(mu, std, mu))
    t = torch.cat([torch.randn(300, 2) * 0.3 - 2, torch.randn(300, 2) * 0.3 + 2])
    info = hyper.refit(t)
    assert bool(hyper.fitted) and info["dpgmm_active"] >= 2
    assert hyper.log_prob(t).mean() > NormalPrior(2).log_prob(t).mean()
    mu.requires_grad_(True)
    hyper.cross_entropy(mu, std, mu).sum().backward()
    assert torch.isfinite(mu.grad).all() and mu.grad.abs().sum() > 0


def test_ladder_state_survives_a_weights_only_round_trip():
    cfg = preset_config("paper", "mnist", "ladder").model
    cfg.n_mc = 5
    cfg.n_components = 6
    prior = build_prior(cfg, None, (1, 28, 28))
    prior.refit(torch.randn(400, 16))
    buffer = io.BytesIO()
    torch.save(prior.state_dict(), buffer)
    buffer.seek(0)
    restored = build_prior(cfg, None, (1, 28, 28))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    t = torch.randn(10, 2)
    torch.testing.assert_close(restored.hyper.log_prob(t), prior.hyper.log_prob(t))
    torch.manual_seed(3)
    a = prior.sample(4)
    torch.manual_seed(3)
    b = restored.sample(4)
    torch.testing.assert_close(a, b)  # the same seed gives the same samples
    assert not torch.equal(prior.sample(4), prior.sample(4))  # and successive calls differ


def test_a_ladder_of_two_prior_vaes():
    cfg = preset_config("paper", "mnist", "ladder").model
    cfg.n_levels, cfg.n_mc = 2, 3
    prior = build_prior(cfg, None, (1, 28, 28))
    assert isinstance(prior.hyper, PriorVAE) and prior.hyper.latent_dim == 2
    z = torch.randn(6, 16)
    assert torch.isfinite(prior.bound(z)).all()
    prior.refit(torch.randn(200, 16))
    assert bool(prior.hyper.hyper.fitted)
    assert torch.isfinite(prior.log_prob_estimate(z, n_samples=20)).all()


def test_prior_vae_diagnostics_recurse_through_a_ladder():
    torch.manual_seed(0)
    cfg = preset_config("paper", "mnist", "ladder").model
    cfg.n_levels, cfg.n_components, cfg.d_t, cfg.prior_layers = 2, 5, 2, 1
    prior = build_prior(cfg, nn.Identity(), (1, 28, 28))
    z = 3 * torch.randn(200, 16)
    before = prior.diagnostics(z)
    assert set(before) == {"active_t", "floor_share_t", "hyper_active_t", "hyper_floor_share_t"}
    prior.refit(z)  # fits the DP-GMM at the innermost level
    found = prior.diagnostics(z)
    dpgmm = prior.hyper.hyper.dpgmm
    assert found["hyper_hyper_active_components"] == len(dpgmm.active_components()) >= 1
    assert 0 <= found["active_t"] <= prior.latent_dim and 0 <= found["floor_share_t"] <= 1
    with torch.no_grad():  # every std of q(t|z) on its floor, every mean the same: collapsed
        prior.encoder.head.pre_std.bias.fill_(-100.0)
        prior.encoder.head.mu.weight.zero_()
    collapsed = prior.diagnostics(z)
    assert collapsed["floor_share_t"] == 1.0 and collapsed["active_t"] == 0
