"""The data VAE: encoder, decoder, Laplace likelihood and any prior, and its ELBO (Eq (2), (5), (8)).

    ELBO(x) = E_q(z|x)[log p_theta(x|z)]  +  H[q_phi(z|x)]  +  E_q(z|x)[log p(z)]
              term 1: reconstruction         term 2: entropy   term 3: cross-entropy wrt the prior

Term 3 is the prior's business (:meth:`ladder.priors.Prior.cross_entropy`): analytic for the Normal
prior, Monte Carlo for the GMM and VampPrior, and the prior-VAE bound L(z) of Eq (4) or L'(z) of
Eq (7) for the hierarchical and LaDDer priors, which turns the ELBO into L' of Eq (5) or L'' of
Eq (8).

Decoder output and images. The Laplace likelihood (Eq (14)) and everything derived from it (the
ELBO, log p(x), the Laplace scale and the ``mae`` it is set to, which Table 3 reports) see the
unclamped decoder output x_hat, so a leaky output unit below 0 keeps its gradient. Everything
shown or compared as a picture (reconstructions, samples, sample grids, classifier features for
FCD/PRDC/FID, the diagnostic's image error) goes through :meth:`VAE.images`: x_hat clamped to the
data range [0, 1]. With a ReLU or sigmoid output the two differ only where a ReLU overshoots 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ladder.autoencoder import build_autoencoder
from ladder.config import ModelConfig
from ladder.likelihoods import LaplaceLikelihood
from ladder.prior_registry import build_prior
from ladder.priors import (
    Prior,
    gaussian_entropy,
    reparameterise,
    standard_normal_cross_entropy,
)

if TYPE_CHECKING:
    from ladder.image_sets import ImageSet

IMAGE_RANGE = (0.0, 1.0)
"""The data range of every data set (SM D: pixels scaled to [0, 1])."""


class VAE(nn.Module):
    """The data VAE of Sec 2 with a pluggable prior p(z)."""

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, likelihood: LaplaceLikelihood, prior: Prior
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.prior = prior

    def elbo_terms(self, x: Tensor, normal_prior: bool = False) -> dict[str, Tensor]:
        """The three terms of Eq (2) per image, their sum ``elbo``, and what the trainer reuses.

        ``normal_prior=True`` puts the analytic N(0, I) cross-entropy in place of the prior's
        (the reference code's warm-up epochs, ``sg_pretraining``).
        """
        mu, std = self.encoder(x)
        z = reparameterise(mu, std)
        x_hat = self.decoder(z)
        reconstruction = self.likelihood.log_prob(x, x_hat)
        entropy = gaussian_entropy(std)
        if normal_prior:
            cross_entropy = standard_normal_cross_entropy(mu, std)
        else:
            cross_entropy = self.prior.cross_entropy(mu, std, z)
        return {
            "elbo": reconstruction + entropy + cross_entropy,
            "reconstruction": reconstruction,
            "entropy": entropy,
            "cross_entropy": cross_entropy,
            "mae": (x_hat - x).abs().flatten(1).mean(1),
            "z": z,
        }

    def vae_parameters(self) -> Iterator[nn.Parameter]:
        """theta, phi and the Laplace scale: the first block of Algorithm 1."""
        for module in (self.encoder, self.decoder, self.likelihood):
            yield from module.parameters()

    @torch.no_grad()
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q_phi(z|x) as (mean, std)."""
        return self.encoder(x)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Decoder output at the posterior mean (the reconstructions of Fig 3, before
        :meth:`images`)."""
        return self.decoder(self.encoder(x)[0])

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """Decoder outputs of n draws of the prior (the samples of Fig 3); no Laplace noise."""
        return self.decoder(self.prior.sample(n))

    @staticmethod
    def images(x_hat: Tensor) -> Tensor:
        """Decoder output as images: clamped to the data range (the one rule for pictures and
        image metrics; the likelihood keeps the unclamped output, see the module docstring)."""
        return x_hat.clamp(*IMAGE_RANGE)

    @torch.no_grad()
    def decode_images(self, z: Tensor) -> Tensor:
        """The images decoded from latents ``z`` [..., d_z] (:meth:`images` of the decoder)."""
        return self.images(self.decoder(z))


def build_model(cfg: ModelConfig, dataset: str, image_shape: tuple[int, int, int],
                seed: int = 0) -> VAE:
    """The data VAE of SM E for ``dataset`` with the configured likelihood and prior."""
    torch.manual_seed(seed)
    encoder, decoder = build_autoencoder(
        dataset, cfg.d_z, cfg.activation, cfg.output_activation, cfg.std_floor, cfg.output_slope,
        cfg.std_activation,
    )
    likelihood = LaplaceLikelihood(cfg.sigma_mode, cfg.sigma_init)
    prior = build_prior(cfg, encoder, image_shape, seed)
    return VAE(encoder, decoder, likelihood, prior)


ELBO_TERMS = ("elbo", "reconstruction", "entropy", "cross_entropy", "mae")
"""The per-image quantities :func:`elbo_statistics` averages (:meth:`VAE.elbo_terms`)."""


@torch.no_grad()
def elbo_statistics(
    model: VAE, images: ImageSet, batch_size: int = 500, progress: bool = False
) -> dict[str, float]:
    """Mean ELBO terms per image over ``images`` (one z sample per image, as the paper's Table 3),
    with the standard error of the mean ELBO across images."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(len(ELBO_TERMS), dtype=torch.float64, device=images.device)
    square_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    count = 0
    batches = images.iter_batches(batch_size, shuffle=False, drop_last=False)
    total = -(-len(images) // batch_size)
    for x, _ in tqdm(batches, total=total, desc="evaluate", disable=not progress, leave=False):
        terms = model.elbo_terms(x)
        stacked = torch.stack([terms[name].double() for name in ELBO_TERMS])
        sums += stacked.sum(1)
        square_sum += terms["elbo"].double().square().sum()
        count += x.shape[0]
    model.train(was_training)
    means = (sums / count).tolist()
    result = dict(zip(ELBO_TERMS, means, strict=True))
    variance = max(square_sum.item() / count - result["elbo"] ** 2, 0.0)
    result["elbo_stderr"] = (variance / max(count - 1, 1)) ** 0.5
    result["n_images"] = count
    return result


class DataVAEBlock(nn.Module):
    """The data VAE's block of Algorithm 1 as a module of theta, phi and the Laplace scale only
    (the prior is used, not owned): its forward is :meth:`VAE.elbo_terms`, so that data-parallel
    training can wrap the block in ``DistributedDataParallel`` (:mod:`ladder.distributed`)."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.encoder, self.decoder, self.likelihood = model.encoder, model.decoder, model.likelihood
        self._elbo_terms = model.elbo_terms  # a bound method: the prior stays unregistered here

    def forward(self, x: Tensor, normal_prior: bool = False) -> dict[str, Tensor]:
        return self._elbo_terms(x, normal_prior=normal_prior)
