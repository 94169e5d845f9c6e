"""ladder.prior_vamp: the VampPrior and its pseudo-inputs."""

import math

import pytest
import torch
from torch.distributions import (
    Normal,
)

from ladder.nets import GaussianMLPEncoder
from ladder.prior_vamp import VampPrior


def test_vamp_prior_is_the_mixture_of_encoded_pseudo_inputs():
    torch.manual_seed(0)
    encoder = GaussianMLPEncoder(12, 3, hidden=16, n_layers=1)
    flat = torch.nn.Sequential(torch.nn.Flatten(), encoder)
    prior = VampPrior(lambda u: encoder(u.flatten(1)), 3, (1, 3, 4), n_components=5, n_mc=8)
    z = torch.randn(7, 3)
    mu, std = flat(prior.pseudo_inputs)
    manual = torch.logsumexp(Normal(mu, std).log_prob(z[:, None]).sum(-1), 1) - math.log(5)
    torch.testing.assert_close(prior.log_prob(z), manual)
    assert [name for name, _ in prior.named_parameters()] == ["pseudo_inputs"]
    prior.cross_entropy(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3)).sum().backward()
    assert prior.pseudo_inputs.grad.abs().sum() > 0
    assert prior.sample(11).shape == (11, 3)
    images = torch.rand(20, 1, 3, 4)
    prior.init_from_images(images, seed=0)
    matches = (prior.pseudo_inputs.detach()[:, None] == images[None]).flatten(2).all(-1)
    assert matches.any(1).all()  # every pseudo-input is one of the images
    with pytest.raises(ValueError, match="at least 5 images"):
        prior.init_from_images(images[:3])


def test_vamp_sigmoid_pseudo_inputs_stay_in_the_image_range_and_start_at_images():
    encoder = GaussianMLPEncoder(12, 3, hidden=16, n_layers=1)
    prior = VampPrior(lambda u: encoder(u.flatten(1)), 3, (1, 3, 4), n_components=5, n_mc=8,
                      constrain="sigmoid")
    free = VampPrior(lambda u: encoder(u.flatten(1)), 3, (1, 3, 4), n_components=5, n_mc=8)
    torch.testing.assert_close(prior.pseudo_inputs, free.pseudo_inputs)  # the same N(0, 1) draw
    assert (free.pseudo_images() < 0).any()
    images = torch.rand(20, 1, 3, 4)
    images[0, 0, 0] = 0.0  # black and white pixels get finite logits
    images[1, 0, 0] = 1.0
    prior.init_from_images(images, seed=0)
    assert torch.isfinite(prior.pseudo_inputs).all()
    with torch.no_grad():
        prior.pseudo_inputs.mul_(1e3)  # however far Adam pushes them
    pseudo = prior.pseudo_images().detach()
    assert pseudo.min() >= 0 and pseudo.max() <= 1
    prior.init_from_images(images, seed=0)
    clamped = images.clamp(0.01, 0.99)
    close = (prior.pseudo_images().detach()[:, None] - clamped[None]).abs().flatten(2).amax(-1)
    assert (close.min(1).values < 1e-6).all()  # every pseudo-input is one of the images
    prior.cross_entropy(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3)).sum().backward()
    assert prior.pseudo_inputs.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="constrain"):
        VampPrior(encoder, 3, (1, 3, 4), constrain="tanh")


def test_vamp_diagnostics_give_the_median_width_of_the_pseudo_inputs_posteriors():
    torch.manual_seed(0)
    encoder = GaussianMLPEncoder(12, 3, hidden=16, n_layers=1)
    prior = VampPrior(lambda u: encoder(u.flatten(1)), 3, (1, 3, 4), n_components=5, n_mc=8)
    with torch.no_grad():
        _, std = encoder(prior.pseudo_inputs.flatten(1))
    found = prior.diagnostics(torch.zeros(4, 3))
    assert found["pseudo_std_median"] == pytest.approx(float(std.median()))
    with torch.no_grad():  # a std head that is dead for every input: every std on the floor
        encoder.head.pre_std.bias.fill_(-1e3)
    assert prior.diagnostics(torch.zeros(4, 3))["pseudo_std_median"] == pytest.approx(1e-3)
