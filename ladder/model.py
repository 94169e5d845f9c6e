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

import torch
from torch import Tensor, nn

from ladder.config import ModelConfig
from ladder.likelihoods import LaplaceLikelihood
from ladder.nets import build_autoencoder
from ladder.prior_vae import DPGMMHyperPrior, PriorVAE
from ladder.priors import (
    GMMPrior,
    NormalPrior,
    Prior,
    VampPrior,
    gaussian_entropy,
    reparameterise,
    standard_normal_cross_entropy,
)

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


def ladder_dims(d_z: int, d_t: int, n_levels: int) -> list[int]:
    """Latent sizes of a ladder of ``n_levels`` prior VAEs, geometric from d_z down to d_t."""
    return [max(d_t, round(d_z * (d_t / d_z) ** (i / n_levels))) for i in range(1, n_levels + 1)]


def build_prior(
    cfg: ModelConfig,
    encoder: nn.Module,
    image_shape: tuple[int, int, int],
    seed: int = 0,
) -> Prior:
    """The prior named by ``cfg.prior`` (one of the five of Sec 4)."""
    if cfg.prior == "normal":
        return NormalPrior(cfg.d_z)
    if cfg.prior == "gmm":
        return GMMPrior(cfg.d_z, cfg.n_components, cfg.gmm_fit, cfg.gmm_covariance_reg, cfg.n_mc,
                        seed)
    if cfg.prior == "vamp":
        return VampPrior(encoder, cfg.d_z, image_shape, cfg.n_components, cfg.n_mc, seed,
                         cfg.vamp_init, cfg.vamp_constrain)
    if cfg.prior == "hierarchical":
        return _prior_vae(cfg, cfg.d_z, cfg.d_t, NormalPrior(cfg.d_t))
    if cfg.prior == "ladder":
        dims = ladder_dims(cfg.d_z, cfg.d_t, cfg.n_levels)
        prior: Prior = DPGMMHyperPrior(
            dims[-1],
            cfg.n_components,
            cfg.weight_concentration_prior,
            cfg.dpgmm_priors,
            cfg.hyper_log_prob,
            cfg.density_kind,
            cfg.n_mc,
            cfg.dpgmm_max_iter,
            seed,
        )
        for d_in, d_out in reversed(list(zip([cfg.d_z, *dims[:-1]], dims, strict=True))):
            prior = _prior_vae(cfg, d_in, d_out, prior)
        return prior
    raise ValueError(f"unknown prior {cfg.prior!r}")


def _prior_vae(cfg: ModelConfig, dim: int, latent_dim: int, hyper: Prior) -> PriorVAE:
    return PriorVAE(
        dim,
        latent_dim,
        hyper,
        hidden=cfg.prior_hidden,
        n_layers=cfg.prior_layers,
        slope=cfg.prior_slope,
        std_floor=cfg.std_floor,
        scale_mode=cfg.prior_scale_mode,
        scale_init=cfg.prior_scale_init,
        scale_bounds=tuple(cfg.prior_scale_bounds),
        sample_noise=cfg.sample_noise,
    )


def build_model(cfg: ModelConfig, dataset: str, image_shape: tuple[int, int, int],
                seed: int = 0) -> VAE:
    """The data VAE of SM E for ``dataset`` with the configured likelihood and prior."""
    torch.manual_seed(seed)
    encoder, decoder = build_autoencoder(
        dataset, cfg.d_z, cfg.activation, cfg.output_activation, cfg.std_floor, cfg.output_slope
    )
    likelihood = LaplaceLikelihood(cfg.sigma_mode, cfg.sigma_init)
    prior = build_prior(cfg, encoder, image_shape, seed)
    return VAE(encoder, decoder, likelihood, prior)
