"""The prior-VAE unit (Eq (4)-(7)): bounds, importance sampling, the DP-GMM hyper prior."""

import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import MultivariateNormal

from ladder.config import preset_config
from ladder.prior_registry import build_prior
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
    cfg.dpgmm.truncation = 6
    prior = build_prior(cfg, None, (1, 28, 28))
    prior.refit(torch.randn(400, 16))
    buffer = io.BytesIO()
    torch.save(prior.state_dict(), buffer)
    buffer.seek(0)
    restored = build_prior(cfg, None, (1, 28, 28))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    t = torch.randn(10, cfg.prior_vae.d_t)
    torch.testing.assert_close(restored.hyper.log_prob(t), prior.hyper.log_prob(t))
    torch.manual_seed(3)
    a = prior.sample(4)
    torch.manual_seed(3)
    b = restored.sample(4)
    torch.testing.assert_close(a, b)  # the same seed gives the same samples
    assert not torch.equal(prior.sample(4), prior.sample(4))  # and successive calls differ


def test_a_ladder_of_two_prior_vaes():
    cfg = preset_config("paper", "mnist", "ladder").model
    cfg.n_mc = 3
    cfg.prior_vae.n_levels, cfg.prior_vae.d_t = 2, 2
    prior = build_prior(cfg, None, (1, 28, 28))
    assert isinstance(prior.hyper, PriorVAE) and prior.hyper.latent_dim == 2
    z = torch.randn(6, 16)
    assert torch.isfinite(prior.bound(z)).all()
    prior.refit(torch.randn(200, 16))
    assert bool(prior.hyper.hyper.fitted)
    assert torch.isfinite(prior.log_prob_estimate(z, n_samples=20)).all()


def _noisy_prior(scale_mode, s, d_z=3, d_t=2, hyper=None):
    """A small prior VAE that samples with p(z|t)'s noise at std ``s``; a closed-form s is set
    in its buffer (away from scale_init), as training would leave it."""
    prior = PriorVAE(d_z, d_t, hyper or NormalPrior(d_t), hidden=16, n_layers=2,
                     scale_mode=scale_mode, scale_init=1.0 if scale_mode == "closed_form" else s,
                     scale_bounds=(0.01, 2.0), sample_noise=True)
    if scale_mode == "closed_form":
        prior.likelihood.s.fill_(s)
    return prior


@settings(deadline=None, max_examples=12)
@given(scale_mode=st.sampled_from(["learned", "clamped", "closed_form"]),
       s=st.floats(0.05, 1.5), seed=st.integers(0, 2**16))
def test_sampling_with_noise_draws_the_prior_itself(scale_mode, s, seed):
    """p(z) = int p(z|t) p(t) dt: Cov z = Cov z_hat(t) + s^2 I, for the s of every scale mode."""
    torch.manual_seed(seed)
    prior = _noisy_prior(scale_mode, s)
    assert prior.decoder_scales() == [pytest.approx(s)]
    n = 20_000
    with torch.no_grad():
        torch.manual_seed(seed)
        z = prior.sample(n)
        torch.manual_seed(seed)
        means = prior.decode(prior.hyper.sample(n))  # the decoded means of the same t
    want = torch.cov(means.T) + s**2 * torch.eye(3)
    tolerance = 8 * s * (s + means.std(0).max().item()) / math.sqrt(n)  # Monte Carlo error
    torch.testing.assert_close(torch.cov(z.T), want, atol=tolerance, rtol=0)


def test_a_ladder_samples_with_each_levels_noise():
    """Each level draws t from the next level's sample (its noise included), then adds its own."""
    torch.manual_seed(0)
    inner = _noisy_prior("closed_form", 0.3, d_z=4, d_t=2)
    outer = _noisy_prior("learned", 0.2, d_z=6, d_t=4, hyper=inner)
    assert outer.decoder_scales() == [pytest.approx(0.2), pytest.approx(0.3)]
    with torch.no_grad():
        torch.manual_seed(5)
        z = outer.sample(8)
        torch.manual_seed(5)
        t2 = inner.hyper.sample(8)
        t1 = inner.decode(t2) + 0.3 * torch.randn(8, 4)
        want = outer.decode(t1) + 0.2 * torch.randn(8, 6)
    torch.testing.assert_close(z, want)


def test_a_closed_form_scale_moves_only_in_the_prior_blocks_step():
    """s belongs to the prior block: the data-VAE block (prior frozen) and evaluation leave it."""
    torch.manual_seed(0)
    prior = PriorVAE(5, 2, NormalPrior(2), hidden=16, n_layers=2, scale_mode="closed_form")
    z = torch.randn(32, 5, requires_grad=True)  # the data VAE's sample carries gradients
    for p in prior.parameters():
        p.requires_grad_(False)
    prior.bound(z).sum().backward()  # the data-VAE block's forward pass
    prior.eval()
    for p in prior.parameters():
        p.requires_grad_(True)
    prior.bound(z)
    assert prior.decoder_scales() == [pytest.approx(0.1)]
    prior.train()
    prior.bound(z.detach())  # the prior block's step
    assert prior.decoder_scales()[0] > 0.5  # the decoder's residuals on N(0, I) z are near 1
    assert NormalPrior(5).decoder_scales() == []

def test_prior_vae_diagnostics_recurse_through_a_ladder():
    torch.manual_seed(0)
    cfg = preset_config("paper", "mnist", "ladder").model
    cfg.prior_vae.n_levels, cfg.prior_vae.d_t, cfg.prior_vae.layers = 2, 2, 1
    cfg.dpgmm.truncation = 5
    prior = build_prior(cfg, nn.Identity(), (1, 28, 28))
    z = 3 * torch.randn(200, 16)
    before = prior.diagnostics(z)
    assert set(before) == {"active_t", "axis_shares_t", "floor_share_t", "hyper_active_t",
                           "hyper_axis_shares_t", "hyper_floor_share_t"}
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


def test_a_ladder_answers_for_its_levels():
    """What callers used to find out by type: the levels, t = the mean of q(t|z) one level down,
    the importance sampler's fan-out, the sample-noise switch, and the innermost mixture."""
    torch.manual_seed(0)
    cfg = preset_config("paper", "mnist", "ladder").model
    cfg.prior_vae.n_levels, cfg.prior_vae.d_t, cfg.prior_vae.layers = 2, 2, 1
    cfg.dpgmm.truncation = 5
    prior = build_prior(cfg, nn.Identity(), (1, 28, 28))
    outer, inner, hyper = prior.levels()
    assert (outer, inner, hyper) == (prior, prior.hyper, prior.hyper.hyper)
    assert not outer.exact_density and hyper.exact_density and hyper.is_mixture
    assert not outer.is_mixture
    z = torch.randn(9, 16)
    torch.testing.assert_close(outer.to_hyper_space(z), outer.encode(z)[0])
    assert outer.importance_fan_out(1000) == 100 * 100 and hyper.importance_fan_out(7) == 1
    assert prior.set_sample_noise(True) and outer.sample_noise and inner.sample_noise
    assert prior.set_sample_noise(False) and not inner.sample_noise
    assert not hyper.set_sample_noise(True)
    with pytest.raises(ValueError, match="not been fitted"):
        hyper.mixture_components()
    prior.refit(3 * torch.randn(300, 16))
    mixture = hyper.mixture_components()
    k = mixture.weights.shape[0]
    assert mixture.means.shape == (k, 2) and mixture.covariances.shape == (k, 2, 2)
    t = inner.to_hyper_space(outer.to_hyper_space(z))
    torch.testing.assert_close(hyper.assign_components(t), hyper.dpgmm.predict(t))
    with pytest.raises(ValueError, match="no mixture components"):
        NormalPrior(2).assign_components(t)
