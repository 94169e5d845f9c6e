from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Laplace, Normal

from ladder.likelihoods import GaussianLikelihood, LaplaceLikelihood, moving_maximiser


def test_laplace_matches_torch_distribution():
    torch.manual_seed(0)
    lik = LaplaceLikelihood("learned", sigma_init=0.3)
    x = torch.rand(4, 1, 5, 6)
    x_hat = torch.rand(3, 4, 1, 5, 6)  # [S, B, C, H, W] broadcasts against [B, C, H, W]
    got = lik.log_prob(x, x_hat)
    want = Laplace(x_hat, torch.tensor(0.3)).log_prob(x).sum(dim=(-3, -2, -1))
    assert got.shape == (3, 4)
    assert torch.allclose(got, want, atol=1e-4)
    # Eq (14): the -D log(2 sigma) term is included
    zero = lik.log_prob(x, x)
    assert torch.allclose(zero, torch.full((4,), -30 * math.log(0.6)), atol=1e-4)
    assert lik.scale().item() == pytest.approx(0.3)


def test_laplace_learned_sigma_optimum_is_the_mae():
    """Eq (15): d/dsigma [-L1/sigma - D log 2 sigma] = 0 at sigma = L1 / D (the MAE)."""
    x, x_hat = torch.rand(8, 3, 4, 4), torch.rand(8, 3, 4, 4)
    mae = (x - x_hat).abs().mean().item()
    lik = LaplaceLikelihood("learned", sigma_init=mae)
    lik.log_prob(x, x_hat).sum().backward()
    assert abs(lik.log_sigma.grad.item()) < 1e-3
    off = LaplaceLikelihood("learned", sigma_init=2 * mae)
    off.log_prob(x, x_hat).sum().backward()
    assert off.log_sigma.grad.item() < -1  # too large: the ELBO pushes sigma down


def test_laplace_batch_mae_mode():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.full((2, 1, 2, 2), 0.2, requires_grad=True)
    lik = LaplaceLikelihood("batch_mae", sigma_init=0.5)
    assert lik.scale().item() == pytest.approx(0.5)  # before any batch: sigma_init
    assert lik.scale(x, x_hat).item() == pytest.approx(0.5)  # |v| = 0.5 > MAE = 0.2
    with torch.no_grad():
        lik.v.fill_(-0.05)  # |v| < MAE: sigma is the batch MAE
    assert lik.scale(x, x_hat).item() == pytest.approx(0.2)
    lp = lik.log_prob(x, x_hat)
    want = Laplace(x_hat, torch.tensor(0.2)).log_prob(x).sum(dim=(-3, -2, -1))
    assert torch.allclose(lp, want)
    assert lik.scale().item() == pytest.approx(0.2)  # remembered from the last batch
    lp.sum().backward()
    assert lik.v.grad.item() == 0  # the max picks the MAE: no gradient to v
    # sigma = MAE maximises the sum of Eq (14) over the batch: only the fixed-sigma term -1/sigma
    assert torch.allclose(x_hat.grad, torch.full_like(x_hat, -1 / 0.2))
    x_hat.grad = None
    lik.scale(x, x_hat).backward()  # the batch MAE itself is differentiable (reference code)
    assert torch.allclose(x_hat.grad, torch.full_like(x_hat, 1 / 8))


def test_gaussian_matches_torch_distribution():
    torch.manual_seed(0)
    lik = GaussianLikelihood("learned", scale_init=0.1)
    z, z_hat = torch.randn(5, 16), torch.randn(3, 5, 16)
    got = lik.log_prob(z, z_hat)
    want = Normal(z_hat, 0.1).log_prob(z).sum(-1)
    assert got.shape == (3, 5) and torch.allclose(got, want, atol=1e-3)
    assert lik.scale().item() == pytest.approx(0.1)


@pytest.mark.parametrize(("u", "s"), [(0.2, 0.1), (-0.07, 0.07), (0.01, 0.05)])
def test_gaussian_clamped_scale(u, s):
    lik = GaussianLikelihood("clamped", scale_init=u if u > 0 else 0.1, bounds=(0.05, 0.1))
    with torch.no_grad():
        lik.u.fill_(u)
    assert lik.scale().item() == pytest.approx(s)
    z = torch.randn(4, 3)
    lp = lik.log_prob(z, torch.zeros(4, 3))
    assert torch.allclose(lp, Normal(0.0, s).log_prob(z).sum(-1), atol=1e-4)
    lp.sum().backward()
    inside = 0.05 < abs(u) < 0.1
    assert (lik.u.grad.item() != 0) == inside  # the clamp passes no gradient outside the bounds


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma_mode"):
        LaplaceLikelihood("fixed")
    with pytest.raises(ValueError, match="sigma_init"):
        LaplaceLikelihood(sigma_init=0.0)
    with pytest.raises(ValueError, match="bounds"):
        GaussianLikelihood("clamped", bounds=(0.1, 0.05))
    with pytest.raises(ValueError, match="images"):
        LaplaceLikelihood().log_prob(torch.zeros(3, 4), torch.zeros(3, 4))


def test_laplace_mae_mode_sets_sigma_to_its_maximiser():
    """sigma = the bias-corrected moving average of the training batches' MAE; fixed in eval."""
    torch.manual_seed(0)
    lik = LaplaceLikelihood("mae", sigma_init=0.5)
    x, x_hat = torch.rand(8, 1, 4, 4), torch.rand(8, 1, 4, 4)
    first = (x - x_hat).abs().mean()
    lik.log_prob(x, x_hat)
    torch.testing.assert_close(lik.scale(), first)  # the first step uses the batch's MAE exactly
    for _ in range(60):
        lik.log_prob(x, 0.5 * (x + x_hat))
    torch.testing.assert_close(lik.scale(), 0.5 * first, rtol=1e-3, atol=0)
    lik.eval()
    before = lik.scale()
    lik.log_prob(x, x)  # evaluation never moves sigma
    assert lik.scale() == before
    # at sigma = MAE the ELBO is maximal in sigma: Eq (15)'s derivative vanishes there
    s = lik.scale().requires_grad_(True)
    l1 = (x - 0.5 * (x + x_hat)).abs().sum(dim=(-3, -2, -1))
    value = (-l1 / s - 16 * torch.log(2 * s)).mean()
    (grad,) = torch.autograd.grad(value, s)
    assert abs(float(grad)) < 1e-2 * 16 / float(s.detach())


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**16), rows=st.integers(2, 40), d=st.integers(1, 8),
       spread=st.floats(0.01, 3.0))
def test_gaussian_closed_form_scale_is_the_maximiser_of_eq4(seed, rows, d, spread):
    """closed_form: the first prior-block step sets s^2 to the batch's mean squared error, where
    d/ds of the Gaussian term of Eq (4) vanishes; no gradient flows to s."""
    torch.manual_seed(seed)
    z, z_hat = torch.randn(rows, d), spread * torch.randn(rows, d)
    lik = GaussianLikelihood("closed_form", scale_init=0.1)
    assert lik.scale().item() == pytest.approx(0.1)  # before any step: scale_init
    z_hat.requires_grad_(True)
    lp = lik.log_prob(z, z_hat, fit_scale=True)
    s = (z - z_hat.detach()).square().mean().sqrt()
    torch.testing.assert_close(lik.scale(), s)
    torch.testing.assert_close(lp, Normal(z_hat.detach(), s).log_prob(z).sum(-1))
    assert list(lik.parameters()) == []  # s is a buffer: nothing for Adam
    lp.sum().backward()  # only the fixed-s term reaches z_hat
    torch.testing.assert_close(z_hat.grad, (z - z_hat.detach()) / s**2)
    at = GaussianLikelihood("learned", scale_init=float(s))  # Eq (4)'s derivative in log s
    at.log_prob(z, z_hat.detach()).mean().backward()
    assert abs(at.log_s.grad.item()) < 1e-4 * d


def test_gaussian_closed_form_moves_only_in_a_training_step_of_its_block():
    torch.manual_seed(0)
    z, z_hat = torch.randn(16, 4), torch.randn(16, 4)
    lik = GaussianLikelihood("closed_form", scale_init=0.1)
    lik.log_prob(z, z_hat)  # the data-VAE block's call: fit_scale is False
    with torch.no_grad():
        lik.log_prob(z, z_hat, fit_scale=True)  # no gradients: an evaluation
    lik.eval()
    lik.log_prob(z, z_hat, fit_scale=True)  # eval mode
    assert lik.scale().item() == pytest.approx(0.1) and int(lik.mse_steps) == 0
    lik.train()
    first = (z - z_hat).square().mean()
    lik.log_prob(z, z_hat, fit_scale=True)
    for _ in range(60):  # the moving average follows the batches' maximiser, as "mae" does
        lik.log_prob(z, 0.5 * (z + z_hat), fit_scale=True)
    torch.testing.assert_close(lik.scale() ** 2, first / 4, rtol=1e-3, atol=0)


def test_moving_maximiser_is_bias_corrected():
    average, steps = torch.tensor(0.0), torch.tensor(0, dtype=torch.long)
    assert moving_maximiser(average, steps, torch.tensor(2.0)).item() == pytest.approx(2.0)
    assert moving_maximiser(average, steps, torch.tensor(2.0)).item() == pytest.approx(2.0)
    third = moving_maximiser(average, steps, torch.tensor(5.0)).item()
    assert 2.0 < third < 5.0 and int(steps) == 3
