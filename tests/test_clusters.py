"""ladder.clusters: Fig 4 as data (the mixture view) and as a number (components against labels)."""

import pytest
import torch
from test_metrics import _ImageDecoder, _ImageGaussian, _LinearEncoder

from ladder.clusters import component_assignments, has_components, mixture_view
from ladder.features import cluster_agreement
from ladder.image_sets import TensorImageSet
from ladder.model import VAE
from ladder.prior_gmm import GMMPrior
from ladder.prior_vae import DPGMMHyperPrior, PriorVAE
from ladder.prior_vamp import VampPrior
from ladder.priors import NormalPrior


def _two_clusters(n=200, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    centres = torch.tensor([[-3.0] * d, [3.0] * d])
    return centres[labels] + 0.3 * torch.randn(n, d, generator=g), labels


def test_component_assignments_recover_separated_clusters():
    z, labels = _two_clusters()
    gmm = GMMPrior(2, n_components=2, seed=0)
    gmm.refit(z)
    assert cluster_agreement(component_assignments(gmm, z), labels)["nmi"] == pytest.approx(1.0)

    encoder = _LinearEncoder(torch.eye(2), torch.zeros(2), torch.full((2,), 0.5))
    vamp = VampPrior(encoder, 2, (1, 1, 2), n_components=2)
    with torch.no_grad():
        vamp.pseudo_inputs.copy_(torch.tensor([[-3.0, -3.0], [3.0, 3.0]]).view(2, 1, 1, 2))
    assignments = component_assignments(vamp, z)
    assert torch.equal(assignments, labels)

    ladder = PriorVAE(2, 2, DPGMMHyperPrior(2, n_components=5), hidden=8, n_layers=1)
    ladder.encoder = _LinearEncoder(torch.eye(2), torch.zeros(2), torch.full((2,), 0.1))
    with pytest.raises(ValueError, match="not been fitted"):
        component_assignments(ladder, z)
    ladder.hyper.refit(z)
    assert cluster_agreement(component_assignments(ladder, z), labels)["ari"] == pytest.approx(1.0)
    assert has_components(gmm) and has_components(vamp) and has_components(ladder)

    hierarchical = PriorVAE(2, 2, NormalPrior(2), hidden=8, n_layers=1)
    for prior in (NormalPrior(2), hierarchical):
        assert not has_components(prior)
        with pytest.raises(ValueError, match="no mixture components"):
            component_assignments(prior, z)


def test_mixture_view_gives_codes_and_components_in_the_mixture_space():
    z, labels = _two_clusters()
    images = TensorImageSet("toy", z.view(-1, 1, 1, 2).contiguous(), labels)
    identity = _LinearEncoder(torch.eye(2), torch.zeros(2), torch.full((2,), 0.1))
    decoder = _ImageDecoder(torch.eye(2), torch.zeros(2))

    gmm = GMMPrior(2, n_components=2, seed=0)
    gmm.refit(z)
    view = mixture_view(VAE(identity, decoder, _ImageGaussian(1.0), gmm), images, batch_size=64)
    assert view.space == "z" and torch.allclose(view.codes, z)
    assert view.weights.sum().item() == pytest.approx(1.0, abs=1e-5)
    centres = view.means[view.means[:, 0].argsort()]
    assert torch.allclose(centres, torch.tensor([[-3.0, -3.0], [3.0, 3.0]]), atol=0.1)
    assert view.covariances.shape == (2, 2, 2)

    ladder = PriorVAE(2, 2, DPGMMHyperPrior(2, n_components=5), hidden=8, n_layers=1)
    ladder.encoder = _LinearEncoder(2 * torch.eye(2), torch.ones(2), torch.full((2,), 0.1))
    ladder.hyper.refit(2 * z + 1)
    view = mixture_view(VAE(identity, decoder, _ImageGaussian(1.0), ladder), images)
    assert view.space == "t" and torch.allclose(view.codes, 2 * z + 1)  # the mean of q(t|z)
    assert view.means.shape == (5, 2) and view.covariances.shape == (5, 2, 2)
    with pytest.raises(ValueError, match="no mixture components"):
        mixture_view(VAE(identity, decoder, _ImageGaussian(1.0), NormalPrior(2)), images)
