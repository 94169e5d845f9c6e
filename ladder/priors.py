"""The prior interface and the three priors with a closed-form density: Normal, GMM and VampPrior.

Every prior gives the ELBO's term 3 of Eq (2), the cross-entropy E_q(z|x)[log p(z)] (or a lower bound
on it), through one method, so the trainer never asks which prior it has:

* ``cross_entropy(mu, std, z)``: an estimate of E_q(z|x)[log p(z)] per data point, where
  q(z|x) = N(mu, diag std^2) and ``z`` is the reparameterised sample the decoder also sees.
* ``log_prob(z)``: the exact log-density where it is tractable (all three priors here).
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

The hierarchical and LaDDer priors live in :mod:`ladder.prior_vae`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal
from torch.distributions import Normal as TorchNormal

from ladder.gmm_em import fit_gmm
from ladder.numerics import gaussian_mixture_log_prob

if TYPE_CHECKING:
    from ladder.data import ImageSet

LOG_2PI = math.log(2 * math.pi)
# model.vamp_constrain = sigmoid starts data-initialised pseudo-inputs at logit(image), the image
# clamped to [PIXEL_CLAMP, 1 - PIXEL_CLAMP] so that black and white pixels get finite logits (+-4.6)
PIXEL_CLAMP = 0.01


def gaussian_entropy(std: Tensor) -> Tensor:
    """H[N(mu, diag std^2)] per row: term 2 of Eq (2) with its sign flipped."""
    d = std.shape[-1]
    return 0.5 * d * (1.0 + LOG_2PI) + std.log().sum(-1)


def reparameterise(mu: Tensor, std: Tensor, n: int | None = None) -> Tensor:
    """z = mu + std * eps with eps ~ N(0, I); ``n`` samples stacked in front when given."""
    shape = mu.shape if n is None else (n, *mu.shape)
    return mu + std * torch.randn(shape, dtype=mu.dtype, device=mu.device)


ACTIVITY_THRESHOLD = 0.01
"""A latent dimension is active when Cov_x(E_q[z]) exceeds this (Burda et al. 2016)."""

FLOOR_TOLERANCE = 0.01
"""A posterior std within this fraction above its floor counts as sitting on the floor."""


def active_dimensions(mu: Tensor, threshold: float = ACTIVITY_THRESHOLD) -> Tensor:
    """Burda et al.'s activity: bool [d], whether the variance over the rows of the posterior
    means ``mu`` [N, d] (Cov_x(E_q(z|x)[z]) per dimension) exceeds ``threshold``."""
    return mu.double().var(0, correction=0) > threshold


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


def _components_of(mixture: MixtureSameFamily) -> MixtureComponents:
    """A torch mixture of full or diagonal Gaussians as :class:`MixtureComponents`."""
    components = mixture.component_distribution
    covariances = (components.covariance_matrix if hasattr(components, "covariance_matrix")
                   else torch.diag_embed(components.base_dist.scale.square()))
    return MixtureComponents(mixture.mixture_distribution.probs, components.mean, covariances)


def _most_responsible(mixture: MixtureSameFamily, z: Tensor) -> Tensor:
    """argmax_k w_k p_k(z) for each row of ``z``."""
    log_resp = (mixture.mixture_distribution.logits
                + mixture.component_distribution.log_prob(z.unsqueeze(-2)))
    return log_resp.argmax(-1)


class NormalPrior(Prior):
    """p(z) = N(0, I), the standard VAE prior [21, 33]; its cross-entropy is analytic."""

    def cross_entropy(self, mu: Tensor, std: Tensor, z: Tensor) -> Tensor:
        return standard_normal_cross_entropy(mu, std)

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * self.dim * LOG_2PI - 0.5 * z.square().sum(-1)

    def sample(self, n: int) -> Tensor:
        return torch.randn(n, self.dim, device=self.device)


class _MonteCarloPrior(Prior):
    """A prior whose cross-entropy is the average of log p over ``n_mc`` samples of q(z|x)."""

    def __init__(self, dim: int, n_mc: int) -> None:
        super().__init__(dim)
        self.n_mc = n_mc

    def cross_entropy(self, mu: Tensor, std: Tensor, z: Tensor) -> Tensor:
        """(1/S) sum_s log p(z_s), z_s ~ q(z|x), S = ``n_mc`` (the reference code's estimator)."""
        return self.log_prob(reparameterise(mu, std, self.n_mc)).mean(0)


class GMMPrior(_MonteCarloPrior):
    """A finite Gaussian mixture in z-space with full covariances (the "GMM prior" baseline).

    ``fit="em"`` (the reference code's choice; the paper does not say): the mixture is refitted by
    EM at the end of every epoch on the encodings (:func:`ladder.gmm_em.fit_gmm`: scikit-learn's
    ``GaussianMixture`` in torch, on the encodings' device, warm started from the previous fit) and
    ``covariance_reg`` times I is added to each covariance (the reference code adds 0.01 I); before
    the first refit the prior is N(0, I), as in the reference code.
    ``fit="gradient"``: weights, means and Cholesky factors are parameters learned by Adam in the
    prior block of Algorithm 1.
    """

    is_mixture = True

    def __init__(
        self,
        dim: int,
        n_components: int = 50,
        fit: str = "em",
        covariance_reg: float = 0.01,
        n_mc: int = 100,
        seed: int = 0,
        max_iter: int = 1000,
    ) -> None:
        super().__init__(dim, n_mc)
        if fit not in ("em", "gradient"):
            raise ValueError(f"GMMPrior fit must be 'em' or 'gradient', got {fit!r}")
        self.fit_mode = fit
        self.n_components = n_components
        self.covariance_reg = covariance_reg
        self.seed = seed
        self.max_iter = max_iter
        generator = torch.Generator().manual_seed(seed)
        means = torch.randn(n_components, dim, generator=generator)
        if fit == "gradient":
            self.logits = nn.Parameter(torch.zeros(n_components))
            self.means = nn.Parameter(means)
            self.tril_raw = nn.Parameter(torch.zeros(n_components, dim, dim))
        else:
            self.register_buffer("weights", torch.full((n_components,), 1.0 / n_components))
            self.register_buffer("means", torch.zeros(n_components, dim))
            self.register_buffer("covariances", torch.eye(dim).expand(n_components, dim, dim).clone())
            # EM's own precisions in float64: the warm start of the next refit (a float32 round
            # trip through the covariances is not accurate enough for near-singular components).
            self.register_buffer("precisions", torch.eye(dim, dtype=torch.float64).repeat(
                n_components, 1, 1))
            self.register_buffer("fitted", torch.tensor(False))

    def _scale_tril(self) -> Tensor:
        """``fit="gradient"``: the Cholesky factors, a softplus diagonal under the raw lower part."""
        diag = nn.functional.softplus(self.tril_raw.diagonal(dim1=-2, dim2=-1) + 0.5413) + 1e-4
        return self.tril_raw.tril(-1) + torch.diag_embed(diag)

    def _regularised_covariances(self) -> Tensor:
        """``fit="em"``: the EM covariances plus ``covariance_reg`` I (nothing before the first fit)."""
        eye = torch.eye(self.dim, device=self.means.device, dtype=self.means.dtype)
        reg = self.covariance_reg * self.fitted.to(self.means.dtype)  # 0 before the first fit
        return self.covariances + reg * eye

    def mixture(self) -> MixtureSameFamily:
        """The current mixture as a ``torch.distributions`` object (built every step from our own
        valid parameters, so without torch's argument checks, which read tensors back to Python)."""
        if self.fit_mode == "gradient":
            return MixtureSameFamily(
                Categorical(logits=self.logits, validate_args=False),
                MultivariateNormal(self.means, scale_tril=self._scale_tril(), validate_args=False),
                validate_args=False,
            )
        return MixtureSameFamily(
            Categorical(probs=self.weights, validate_args=False),
            MultivariateNormal(self.means, covariance_matrix=self._regularised_covariances(),
                               validate_args=False),
            validate_args=False,
        )

    def log_prob(self, z: Tensor) -> Tensor:
        """log sum_k w_k N(z; m_k, S_k) (:func:`ladder.numerics.gaussian_mixture_log_prob`)."""
        if self.fit_mode == "gradient":
            log_weights, scale_tril = torch.log_softmax(self.logits, -1), self._scale_tril()
        else:
            log_weights = torch.log(self.weights / self.weights.sum())
            scale_tril = torch.linalg.cholesky(self._regularised_covariances().double())
        return gaussian_mixture_log_prob(z, log_weights, self.means, scale_tril)

    def sample(self, n: int) -> Tensor:
        return self.mixture().sample((n,))

    def mixture_components(self) -> MixtureComponents:
        return _components_of(self.mixture())

    def assign_components(self, z: Tensor) -> Tensor:
        """argmax_k w_k N(z; mu_k, Sigma_k)."""
        return _most_responsible(self.mixture(), z)

    @torch.no_grad()
    def diagnostics(self, z: Tensor) -> dict[str, Any]:
        """``active_components``: the components with weight above 1 / (10 K)."""
        weights = self.mixture().mixture_distribution.probs
        return {"active_components": int((weights > 0.1 / self.n_components).sum())}

    def refit(self, z: Tensor) -> dict[str, Any]:
        """EM on the encodings (``fit="em"``) on their device, warm started from the previous
        solution (:func:`ladder.gmm_em.fit_gmm`, scikit-learn's ``GaussianMixture`` in torch)."""
        if self.fit_mode != "em":
            return {}
        warm: dict[str, Tensor] = {}
        if bool(self.fitted):
            weights = self.weights.double()
            warm = {"weights": weights / weights.sum(), "means": self.means.double(),
                    "precisions": self.precisions}
        fit = fit_gmm(z, self.n_components, max_iter=self.max_iter, random_state=self.seed, **warm)
        self.weights.copy_(fit.weights)
        self.means.copy_(fit.means)
        self.covariances.copy_(fit.covariances)
        self.precisions.copy_(0.5 * (fit.precisions + fit.precisions.mT))
        self.fitted.fill_(True)
        return {"gmm_iter": fit.n_iter, "gmm_converged": fit.converged}


class VampPrior(_MonteCarloPrior):
    """VampPrior [36]: p(z) = (1/K) sum_k q(z | u_k) with K learned pseudo-inputs u_k.

    The pseudo-inputs are encoded by the data VAE's own encoder (shared, not copied, as in the
    reference code), with uniform weights. ``init="random"`` draws them from N(0, 1) (reference
    code); ``init="data"`` starts them at random training images (:meth:`init_from_data`).
    ``constrain="none"`` leaves them unconstrained (reference code); ``"sigmoid"`` keeps them in the
    image range: the pseudo-inputs are sigmoid(a) of the parameters a, and data initialisation
    sets a = logit(image) (:data:`PIXEL_CLAMP`). The parameters are the prior block's in
    Algorithm 1.
    """

    is_mixture = True

    def __init__(
        self,
        encoder: nn.Module,
        dim: int,
        image_shape: tuple[int, int, int],
        n_components: int = 50,
        n_mc: int = 100,
        seed: int = 0,
        init: str = "random",
        constrain: str = "none",
    ) -> None:
        super().__init__(dim, n_mc)
        if init not in ("random", "data") or constrain not in ("none", "sigmoid"):
            raise ValueError(f"VampPrior init must be 'random' or 'data' and constrain 'none' or "
                             f"'sigmoid', got {init!r} and {constrain!r}")
        # Held outside the module tree: the encoder belongs to the data VAE, and registering it
        # here too would put its weights in this prior's parameters and state twice.
        self.__dict__["encoder"] = encoder
        self.init, self.constrain = init, constrain
        generator = torch.Generator().manual_seed(seed)
        self.pseudo_inputs = nn.Parameter(
            torch.randn(n_components, *image_shape, generator=generator)
        )

    def pseudo_images(self) -> Tensor:
        """The pseudo-inputs u_k as the encoder sees them (sigmoid of the parameters if
        ``constrain="sigmoid"``)."""
        return self.pseudo_inputs.sigmoid() if self.constrain == "sigmoid" else self.pseudo_inputs

    def init_from_data(self, images: ImageSet, seed: int = 0) -> None:
        """``init="data"``: start at ``n_components`` images of the training set drawn with
        ``seed``; ``init="random"`` keeps the N(0, 1) draw."""
        if self.init == "data":
            k = self.pseudo_inputs.shape[0]
            pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
            self.init_from_images(images.gather(pick[:k]), seed)

    @torch.no_grad()
    def init_from_images(self, images: Tensor, seed: int = 0) -> None:
        """Start the pseudo-inputs at K distinct random images of ``images`` (at their logits,
        clamped, if ``constrain="sigmoid"``)."""
        k = self.pseudo_inputs.shape[0]
        if images.shape[0] < k:
            raise ValueError(f"VampPrior needs at least {k} images to initialise from")
        generator = torch.Generator().manual_seed(seed)
        pick = torch.randperm(images.shape[0], generator=generator)[:k]
        chosen = images[pick.to(images.device)].to(self.pseudo_inputs.device)
        if self.constrain == "sigmoid":
            chosen = torch.logit(chosen.clamp(PIXEL_CLAMP, 1 - PIXEL_CLAMP))
        self.pseudo_inputs.copy_(chosen)

    def components(self) -> MixtureSameFamily:
        """The mixture of the encoded pseudo-inputs' posteriors."""
        mu, std = self.encoder(self.pseudo_images())
        logits = torch.zeros(mu.shape[0], device=mu.device, dtype=mu.dtype)
        return MixtureSameFamily(Categorical(logits=logits, validate_args=False),
                                 Independent(TorchNormal(mu, std, validate_args=False), 1,
                                             validate_args=False),
                                 validate_args=False)

    def _log_prob_encoded(self, z: Tensor, mu: Tensor, std: Tensor) -> Tensor:
        """log (1/K) sum_k N(z; mu_k, diag std_k^2) given the encoded pseudo-inputs."""
        log_weights = torch.full((mu.shape[0],), -math.log(mu.shape[0]), device=mu.device)
        return gaussian_mixture_log_prob(z, log_weights, mu, std)

    def log_prob(self, z: Tensor) -> Tensor:
        return self._log_prob_encoded(z, *self.encoder(self.pseudo_images()))

    def cross_entropy(self, mu: Tensor, std: Tensor, z: Tensor) -> Tensor:
        """The Monte Carlo estimate of :class:`_MonteCarloPrior`, with the pseudo-inputs encoded
        once for all ``n_mc`` samples."""
        encoded = self.encoder(self.pseudo_images())
        return self._log_prob_encoded(reparameterise(mu, std, self.n_mc), *encoded).mean(0)

    def sample(self, n: int) -> Tensor:
        return self.components().sample((n,))

    def mixture_components(self) -> MixtureComponents:
        return _components_of(self.components())

    def assign_components(self, z: Tensor) -> Tensor:
        """The most responsible pseudo-input, argmax_k q(z | u_k)."""
        return _most_responsible(self.components(), z)

    @torch.no_grad()
    def diagnostics(self, z: Tensor) -> dict[str, Any]:
        """The pseudo-inputs' pixel range (images lie in [0, 1]; ``vamp_init = random`` starts
        them as N(0, 1) noise, which collapsed the VampPrior: results/stall/README.md)."""
        pseudo = self.pseudo_images().detach()
        return {"pseudo_input_min": float(pseudo.min()), "pseudo_input_max": float(pseudo.max())}
