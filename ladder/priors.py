"""The prior interface and the Normal prior; the other priors with a closed-form density are the
GMM (:mod:`ladder.prior_gmm`) and the VampPrior (:mod:`ladder.prior_vamp`).

Every prior gives the ELBO's term 3 of Eq (2), the cross-entropy E_q(z|x)[log p(z)] (or a lower bound
on it), through one method, so the trainer never asks which prior it has:

* ``cross_entropy(mu, std, z)``: an estimate of E_q(z|x)[log p(z)] per data point, where
  q(z|x) = N(mu, diag std^2) and ``z`` is the reparameterised sample the decoder also sees.
* ``log_prob(z)``: the exact log-density where it is tractable (Normal, GMM, VampPrior).
* ``log_prob_estimate(z, n_samples)``: log p(z) itself or an importance-sampled estimate of it
  (the generative priors of :mod:`ladder.prior_vae`).
* ``sample(n)``: draws from the prior.
* ``refit(z)``: the end-of-epoch coordinate-ascent hook (Algorithm 1's xi update for LaDDer; the EM
  refit of the GMM prior); a no-op by default.
* ``decoder_scales()``: the std of p(z|t) at each prior-VAE level, for the epoch log.
* ``diagnostics(z)``: plain numbers on the prior's own health at encodings ``z`` (its used
  components, its latent's activity); what :mod:`ladder.diagnose` reports. Empty by default.
* ``init_from_data(images, seed)``: called once on the training images before training (the
  VampPrior's ``init="data"``); a no-op by default.

And what callers would otherwise find out by type:

* ``exact_density``: whether ``log_prob`` is the density itself (not for a prior VAE);
* ``levels()``, ``to_hyper_space(z)``: the prior and the hyper priors beneath it, and a code's
  image one level down (a prior VAE's mean of q(t|z));
* ``is_mixture``, ``mixture_components()``, ``assign_components(z)``: a mixture's weights, means
  and covariances and each code's most responsible component (Fig 4);
* ``set_sample_noise(flag)``: whether a prior VAE samples p(z|t) with its noise;
* ``importance_fan_out(n_samples)``: the memory ``log_prob_estimate`` needs per row of z.

The hierarchical and LaDDer priors live in :mod:`ladder.prior_vae`; :mod:`ladder.prior_registry`
builds each prior from a model config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.distributions import MixtureSameFamily

from ladder.distributed import batch_noise

if TYPE_CHECKING:
    from ladder.config import ModelConfig
    from ladder.image_sets import ImageSet

LOG_2PI = math.log(2 * math.pi)


def gaussian_entropy(std: Tensor) -> Tensor:
    """H[N(mu, diag std^2)] per row: term 2 of Eq (2) with its sign flipped."""
    d = std.shape[-1]
    return 0.5 * d * (1.0 + LOG_2PI) + std.log().sum(-1)


def reparameterise(mu: Tensor, std: Tensor, n: int | None = None) -> Tensor:
    """z = mu + std * eps with eps ~ N(0, I); ``n`` samples stacked in front when given. In a
    data-parallel training step eps is this process's rows of the whole batch's
    (:func:`ladder.distributed.batch_noise`)."""
    shape = mu.shape if n is None else (n, *mu.shape)
    return mu + std * batch_noise(tuple(shape), mu.dtype, mu.device)


ACTIVITY_THRESHOLD = 0.01
"""A latent dimension is active when Cov_x(E_q[z]) exceeds this (Burda et al. 2016)."""

FLOOR_TOLERANCE = 0.01
"""A posterior std within this fraction above its floor counts as sitting on the floor."""


def active_dimensions(mu: Tensor, threshold: float = ACTIVITY_THRESHOLD) -> Tensor:
    """Burda et al.'s activity: bool [d], whether the variance over the rows of the posterior
    means ``mu`` [N, d] (Cov_x(E_q(z|x)[z]) per dimension) exceeds ``threshold``."""
    return mu.double().var(0, correction=0) > threshold


def signal_to_noise(mu: Tensor, std: Tensor) -> Tensor:
    """Per dimension [d], the variance over the rows of the posterior means ``mu`` [N, d] against
    the posteriors' own mean variance E_x[std^2] (``std`` [N, d]): how far apart the images' codes
    lie in units of their width. Unlike :func:`active_dimensions` it is unchanged when the latent
    is rescaled, so a latent shrunk around narrow posteriors still reads as used."""
    return mu.double().var(0, correction=0) / std.double().square().mean(0)


def principal_shares(mu: Tensor) -> list[float]:
    """The share of the total variance of the rows of ``mu`` [N, d] along each principal axis,
    largest first (the eigenvalues of Cov(mu) over their sum; zeros when mu does not vary). A
    latent collapsed onto a line has every dimension active but one share near 1."""
    centred = mu.double() - mu.double().mean(0)
    variances = torch.linalg.eigvalsh(centred.T @ centred / mu.shape[0]).clamp(min=0).flip(0)
    total = variances.sum()
    return (variances / total if total > 0 else variances).tolist()


def floor_share(std: Tensor, floor: float) -> float:
    """The share of posterior std entries within :data:`FLOOR_TOLERANCE` of their ``floor``
    (``std = ReLU(FC) + floor``: an entry there has a dead ReLU and no gradient)."""
    return float((std <= floor * (1 + FLOOR_TOLERANCE)).double().mean())


def standard_normal_cross_entropy(mu: Tensor, std: Tensor) -> Tensor:
    """E_N(mu, std^2)[log N(z; 0, I)] in closed form: -d/2 log 2 pi - 1/2 sum(mu^2 + std^2)."""
    d = mu.shape[-1]
    return -0.5 * d * LOG_2PI - 0.5 * (mu.square() + std.square()).sum(-1)


@dataclass
class MixtureComponents:
    """A mixture prior's components (Fig 4): weights [K], means [K, d], covariances [K, d, d]."""

    weights: Tensor
    means: Tensor
    covariances: Tensor


@dataclass(frozen=True)
class PriorContext:
    """What a prior may need to build itself beyond its settings: the data VAE's encoder (the
    VampPrior shares it), the image shape and the seed."""

    encoder: nn.Module | None
    image_shape: tuple[int, int, int]
    seed: int = 0


class Prior(nn.Module):
    """A prior p(z) over a ``dim``-dimensional latent space (see the module docstring)."""

    exact_density: bool = True
    """``log_prob`` is the exact log-density (a prior VAE has only ``log_prob_estimate``)."""
    is_mixture: bool = False
    """The prior is a mixture: ``mixture_components`` and ``assign_components`` apply."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        # An empty buffer that follows .to(device), so parameter-free priors know their device.
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @classmethod
    def from_config(cls, cfg: ModelConfig, context: PriorContext) -> Prior:
        """The prior as ``cfg`` (its ``model`` section) sets it up; what
        :data:`ladder.prior_registry.PRIOR_BUILDERS` calls for ``model.prior``."""
        raise NotImplementedError

    def cross_entropy(self, mu: Tensor, std: Tensor, z: Tensor) -> Tensor:
        """E_q(z|x)[log p(z)] per row (term 3 of Eq (2)), or a lower bound on it."""
        raise NotImplementedError

    def log_prob(self, z: Tensor) -> Tensor:
        """The exact log p(z) over the last dimension."""
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form density; use log_prob_estimate"
        )

    def log_prob_estimate(self, z: Tensor, n_samples: int = 1000) -> Tensor:
        """log p(z), exact for priors with a closed-form density."""
        return self.log_prob(z)

    def sample(self, n: int) -> Tensor:
        """``n`` draws from p(z)."""
        raise NotImplementedError

    def refit(self, z: Tensor) -> dict[str, Any]:
        """End-of-epoch update from encodings ``z`` of the training set; returns log fields."""
        return {}

    def decoder_scales(self) -> list[float]:
        """The std s of each prior-VAE level's p(z|t), outermost first (logged per epoch); empty
        for a prior without a decoder."""
        return []

    def diagnostics(self, z: Tensor) -> dict[str, Any]:
        """The prior's own health at encodings ``z`` [N, dim] (posterior means), as plain numbers."""
        return {}

    def init_from_data(self, images: ImageSet, seed: int = 0) -> None:
        """Start from the training ``images`` before the first step (a no-op by default)."""

    def levels(self) -> list[Prior]:
        """This prior and the hyper priors beneath it, outermost first (one level but for a prior
        VAE)."""
        return [self]

    def to_hyper_space(self, z: Tensor) -> Tensor:
        """``z`` one level down, in the hyper prior's space (a prior VAE: the mean of q(t|z))."""
        raise ValueError(f"{type(self).__name__} has no hyper prior")

    def importance_fan_out(self, n_samples: int) -> int:
        """Samples that one row of z holds in memory at once inside
        ``log_prob_estimate(z, n_samples)`` (1 for a closed-form density)."""
        return 1

    def set_sample_noise(self, sample_noise: bool) -> bool:
        """Sample p(z|t) with or without its noise at every prior-VAE level; returns whether the
        prior has such a level."""
        return False

    def mixture_components(self) -> MixtureComponents:
        """The mixture's weights, means and covariances (``is_mixture`` priors)."""
        raise ValueError(self._no_mixture())

    def assign_components(self, z: Tensor) -> Tensor:
        """The most responsible component of each row of ``z`` [N, dim], long [N]."""
        raise ValueError(self._no_mixture())

    def _no_mixture(self) -> str:
        return (f"{type(self).__name__} has no mixture components; they exist for the LaDDer, "
                "GMM and VampPrior priors")

    @property
    def device(self) -> torch.device:
        return self._anchor.device


def mixture_components_of(mixture: MixtureSameFamily) -> MixtureComponents:
    """A torch mixture of full or diagonal Gaussians as :class:`MixtureComponents`."""
    components = mixture.component_distribution
    covariances = (components.covariance_matrix if hasattr(components, "covariance_matrix")
                   else torch.diag_embed(components.base_dist.scale.square()))
    return MixtureComponents(mixture.mixture_distribution.probs, components.mean, covariances)


def most_responsible(mixture: MixtureSameFamily, z: Tensor) -> Tensor:
    """argmax_k w_k p_k(z) for each row of ``z``."""
    log_resp = (mixture.mixture_distribution.logits
                + mixture.component_distribution.log_prob(z.unsqueeze(-2)))
    return log_resp.argmax(-1)


class NormalPrior(Prior):
    """p(z) = N(0, I), the standard VAE prior [21, 33]; its cross-entropy is analytic."""

    @classmethod
    def from_config(cls, cfg: ModelConfig, context: PriorContext) -> NormalPrior:
        return cls(cfg.d_z)

    def cross_entropy(self, mu: Tensor, std: Tensor, z: Tensor) -> Tensor:
        return standard_normal_cross_entropy(mu, std)

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * self.dim * LOG_2PI - 0.5 * z.square().sum(-1)

    def sample(self, n: int) -> Tensor:
        return torch.randn(n, self.dim, device=self.device)


class MonteCarloPrior(Prior):
    """A prior whose cross-entropy is the average of log p over ``n_mc`` samples of q(z|x)."""

    def __init__(self, dim: int, n_mc: int) -> None:
        super().__init__(dim)
        self.n_mc = n_mc

    def cross_entropy(self, mu: Tensor, std: Tensor, z: Tensor) -> Tensor:
        """(1/S) sum_s log p(z_s), z_s ~ q(z|x), S = ``n_mc`` (the reference code's estimator)."""
        return self.log_prob(reparameterise(mu, std, self.n_mc)).mean(0)


class MixturePrior(MonteCarloPrior):
    """A Monte Carlo prior whose density is a torch mixture (:meth:`torch_mixture`): the GMM prior
    and the VampPrior. Sampling, the mixture view and the component assignment come from it."""

    is_mixture = True

    def torch_mixture(self) -> MixtureSameFamily:
        """The prior as a ``torch.distributions.MixtureSameFamily``."""
        raise NotImplementedError

    def sample(self, n: int) -> Tensor:
        return self.torch_mixture().sample((n,))

    def mixture_components(self) -> MixtureComponents:
        return mixture_components_of(self.torch_mixture())

    def assign_components(self, z: Tensor) -> Tensor:
        """argmax_k w_k p_k(z), the most responsible component of each row of ``z``."""
        return most_responsible(self.torch_mixture(), z)

