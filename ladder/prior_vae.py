"""The prior-VAE unit (Sec 3.1, Eq (4)-(5)) and the DP-GMM hyper prior in its place (Eq (6)-(7)).

A prior VAE is itself a prior over z: p_alpha(z) = int p_alpha(z | t) p(t) dt, with an encoder
q_beta(t | z) and a hyper prior p(t). Its cross-entropy term is the prior ELBO of Eq (4),

    L(z; alpha, beta) = E_q(t|z)[log p_alpha(z|t)] - E_q(t|z)[log q_beta(t|z)] + E_q(t|z)[log p(t)],

and ``p(t)`` is any :class:`~ladder.priors.Prior`. That one recursion gives all the generative priors:

* hierarchical prior [23]: ``PriorVAE(hyper=NormalPrior)``, the plain ELBO with an N(0, I) p(t);
* LaDDer: ``PriorVAE(hyper=DPGMMHyperPrior)``: Eq (7), with the DP-GMM bound L(t; xi) of Eq (6)
  in place of log p(t);
* a ladder of several prior VAEs (Fig 1): ``PriorVAE(hyper=PriorVAE(hyper=DPGMMHyperPrior))``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from ladder.dpgmm import DPGMM
from ladder.likelihoods import GaussianLikelihood
from ladder.nets import GaussianMLPEncoder, MLPDecoder
from ladder.priors import (
    MixtureComponents,
    NormalPrior,
    Prior,
    PriorContext,
    active_dimensions,
    floor_share,
    gaussian_entropy,
    principal_shares,
    reparameterise,
    standard_normal_cross_entropy,
)

if TYPE_CHECKING:
    from ladder.config import ModelConfig


class PriorVAE(Prior):
    """A VAE over z whose own prior is ``hyper`` (Eq (4); Eq (7) when ``hyper`` is the DP-GMM).

    Its cross-entropy estimate uses the data VAE's sample z (the reference code feeds the sample,
    not the mean), one sample t ~ q(t|z) for the reconstruction term, the Gaussian entropy in
    closed form, and ``hyper.cross_entropy`` for E_q(t|z)[log p(t)].
    """

    exact_density = False
    IMPORTANCE_CHUNK = 100
    """The importance samples of t drawn at once by :meth:`log_prob_estimate`."""

    @staticmethod
    def hyper_samples(n_samples: int) -> int:
        """The importance samples a nested level gets for each t (a tenth of this level's)."""
        return max(1, n_samples // 10)

    def __init__(
        self,
        dim: int,
        latent_dim: int,
        hyper: Prior,
        hidden: int = 512,
        n_layers: int = 3,
        slope: float = 0.2,
        std_floor: float = 1e-3,
        scale_mode: str = "learned",
        scale_init: float = 0.1,
        scale_bounds: tuple[float, float] = (0.05, 0.1),
        sample_noise: bool = False,
    ) -> None:
        super().__init__(dim)
        if hyper.dim != latent_dim:
            raise ValueError(f"hyper prior has dimension {hyper.dim}, expected {latent_dim}")
        self.latent_dim = latent_dim
        self.encoder = GaussianMLPEncoder(dim, latent_dim, hidden, n_layers, slope, std_floor)
        self.decoder = MLPDecoder(latent_dim, dim, hidden, n_layers, slope)
        self.likelihood = GaussianLikelihood(scale_mode, scale_init, scale_bounds)
        self.hyper = hyper
        self.sample_noise = sample_noise

    def bound_terms(self, z: Tensor) -> dict[str, Tensor]:
        """The three terms of Eq (4) (Eq (7) for LaDDer) at the samples ``z``, one value per row.

        A closed-form decoder std s (``scale_mode="closed_form"``) moves only in a step of the
        prior block: when alpha is trainable here. The trainer's data-VAE block holds alpha, beta
        fixed (``ladder.prior_block.frozen``) and evaluation runs in eval mode or without gradients, so
        neither moves s."""
        mu_t, std_t = self.encoder(z)
        t = reparameterise(mu_t, std_t)
        alpha_trains = any(p.requires_grad for p in self.decoder.parameters())
        return {
            "reconstruction": self.likelihood.log_prob(z, self.decoder(t), fit_scale=alpha_trains),
            "entropy": gaussian_entropy(std_t),
            "cross_entropy": self.hyper.cross_entropy(mu_t, std_t, t),
        }

    def bound(self, z: Tensor) -> Tensor:
        """L(z; alpha, beta) of Eq (4), or L'(z; alpha, beta, xi) of Eq (7): a bound on log p(z)."""
        return sum(self.bound_terms(z).values())

    def cross_entropy(self, mu: Tensor, std: Tensor, z: Tensor) -> Tensor:
        """E_q(z|x)[L(z)] estimated at the one sample ``z`` (Eq (5) and Eq (8))."""
        return self.bound(z)

    def log_prob_estimate(self, z: Tensor, n_samples: int = 1000,
                          chunk: int = IMPORTANCE_CHUNK) -> Tensor:
        """Importance-sampled log p(z) with proposal q(t|z):

        log (1/K) sum_k p(z | t_k) p(t_k) / q(t_k | z),  t_k ~ q(t | z).

        A stochastic lower bound in expectation that tightens as K grows; for a nested ladder,
        log p(t_k) is itself estimated by the next level. The K samples are drawn in chunks.
        """
        mu_t, std_t = self.encoder(z)
        q = torch.distributions.Normal(mu_t, std_t)
        total = None
        for start in range(0, n_samples, chunk):
            k = min(chunk, n_samples - start)
            t = reparameterise(mu_t, std_t, k)
            log_w = (
                self.likelihood.log_prob(z.expand(k, *z.shape), self.decoder(t))
                + self.hyper.log_prob_estimate(t, self.hyper_samples(n_samples))
                - q.log_prob(t).sum(-1)
            )
            chunk_lse = torch.logsumexp(log_w, 0)
            total = chunk_lse if total is None else torch.logaddexp(total, chunk_lse)
        return total - math.log(n_samples)

    def importance_fan_out(self, n_samples: int) -> int:
        """A chunk of t samples per row, times what each t costs the next level
        (:meth:`hyper_samples`)."""
        return (min(n_samples, self.IMPORTANCE_CHUNK)
                * self.hyper.importance_fan_out(self.hyper_samples(n_samples)))

    def levels(self) -> list[Prior]:
        return [self, *self.hyper.levels()]

    def to_hyper_space(self, z: Tensor) -> Tensor:
        """The mean of q(t|z)."""
        return self.encoder(z)[0]

    def set_sample_noise(self, sample_noise: bool) -> bool:
        self.sample_noise = bool(sample_noise)
        self.hyper.set_sample_noise(sample_noise)
        return True

    def encode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """q_beta(t | z) as (mean, std)."""
        return self.encoder(z)

    def decode(self, t: Tensor) -> Tensor:
        """The mean of p_alpha(z | t)."""
        return self.decoder(t)

    def sample(self, n: int) -> Tensor:
        """t ~ p(t), then the mean of p(z | t) (the reference code's sampler). ``sample_noise``
        adds p(z | t)'s noise, s times N(0, I) with the s in use in any ``scale_mode``, which
        samples p(z) = int p(z|t) p(t) dt itself: Cov z = Cov z_hat(t) + s^2 I. In a ladder each
        level draws its t from the next level's ``sample``, with that level's noise."""
        z = self.decoder(self.hyper.sample(n))
        if self.sample_noise:
            z = z + self.likelihood.scale() * torch.randn_like(z)
        return z

    @torch.no_grad()
    def diagnostics(self, z: Tensor) -> dict[str, Any]:
        """At t = the mean of q(t|z): ``active_t`` (active dimensions of t), ``axis_shares_t``
        (:func:`principal_shares` of t), ``floor_share_t`` (of q(t|z)'s std on its floor), then
        the hyper prior's own diagnostics at t, each key prefixed ``hyper_`` (so a ladder
        reports every level)."""
        mu_t, std_t = self.encoder(z)
        hyper = self.hyper.diagnostics(mu_t)
        return {"active_t": int(active_dimensions(mu_t).sum()),
                "axis_shares_t": principal_shares(mu_t),
                "floor_share_t": floor_share(std_t, self.encoder.head.std_floor),
                **{f"hyper_{key}": value for key, value in hyper.items()}}

    @torch.no_grad()
    def refit(self, z: Tensor) -> dict[str, Any]:
        """Pass samples t ~ q(t|z) of the aggregate hyper posterior (SM A.2) to the hyper prior."""
        mu_t, std_t = self.encoder(z)
        return self.hyper.refit(reparameterise(mu_t, std_t))

    def decoder_scales(self) -> list[float]:
        return [float(self.likelihood.scale().detach()), *self.hyper.decoder_scales()]


class DPGMMHyperPrior(Prior):
    """The variational DP-GMM hyper prior p(t) of Sec 3.2, fitted by CAVI at the end of each epoch.

    Before the first fit it is the unit Gaussian (Sec 3.3: "we initialise the GMM hyper prior as an
    uninformative unit Gaussian"). After it, the cross-entropy E_q(t|z)[log p(t)] is estimated with
    ``n_mc`` samples of q(t|z) of ``DPGMM.log_prob(t, kind=train_kind)``:

    * ``"bound"`` (the paper, Eq (7)): the per-point term of L(t; xi), Eq (6);
    * ``"plugin"`` (the reference code): the mixture density at the point estimates.

    ``density_kind`` ("predictive" or "plugin") is the normalised density used where a true log p(t)
    is needed: importance sampling, shortest likely paths and plots.
    """

    is_mixture = True

    def __init__(
        self,
        dim: int,
        n_components: int = 50,
        weight_concentration_prior: float = 0.1,
        priors: str = "paper",
        train_kind: str = "bound",
        density_kind: str = "predictive",
        n_mc: int = 100,
        max_iter: int = 200,
        seed: int = 0,
    ) -> None:
        super().__init__(dim)
        self.n_mc = n_mc
        self.train_kind = train_kind
        self.density_kind = density_kind
        self.dpgmm = make_dpgmm(dim, n_components, weight_concentration_prior, priors, max_iter,
                                seed)
        self.register_buffer("fitted", torch.tensor(False))  # for checkpoints; read dpgmm.is_fitted

    def cross_entropy(self, mu: Tensor, std: Tensor, t: Tensor) -> Tensor:
        if not self.dpgmm.is_fitted:
            return standard_normal_cross_entropy(mu, std)
        samples = reparameterise(mu, std, self.n_mc)
        return self.dpgmm.log_prob(samples, kind=self.train_kind).mean(0)

    def log_prob(self, t: Tensor) -> Tensor:
        if not self.dpgmm.is_fitted:
            return -0.5 * self.dim * math.log(2 * math.pi) - 0.5 * t.square().sum(-1)
        return self.dpgmm.log_prob(t, kind=self.density_kind)

    def sample(self, n: int) -> Tensor:
        """Draws from the fitted mixture at its point estimates, with torch's global RNG (so a
        caller's seed governs them; ``DPGMM.sample``, like scikit-learn's, re-seeds each call)."""
        if not self.dpgmm.is_fitted:
            return torch.randn(n, self.dim, device=self.device)
        dtype = torch.get_default_dtype()
        mixture = MixtureSameFamily(
            Categorical(probs=self.dpgmm.weights_.to(self.device, dtype)),
            MultivariateNormal(self.dpgmm.means_.to(self.device, dtype),
                               covariance_matrix=self.dpgmm.covariances_.to(self.device, dtype)),
        )
        return mixture.sample((n,))

    def mixture_components(self) -> MixtureComponents:
        """The fitted DP-GMM's weights, means and covariances at their point estimates."""
        self._require_fit()
        d = self.dpgmm
        return MixtureComponents(d.weights_, d.means_, d.covariances_)

    def assign_components(self, t: Tensor) -> Tensor:
        """The most responsible component by the variational responsibilities (``DPGMM.predict``,
        Bishop 10.49)."""
        self._require_fit()
        return self.dpgmm.predict(t).to(t.device)

    def _require_fit(self) -> None:
        if not self.dpgmm.is_fitted:
            raise ValueError("the DP-GMM hyper prior has not been fitted yet (train at least one "
                             "epoch); it has no components before its first refit")

    def diagnostics(self, t: Tensor) -> dict[str, Any]:
        """``active_components``: the DP-GMM's components with weight >= 0.01 (once fitted)."""
        if not self.dpgmm.is_fitted:
            return {}
        return {"active_components": int(len(self.dpgmm.active_components()))}

    @torch.no_grad()
    def refit(self, t: Tensor) -> dict[str, Any]:
        """Coordinate ascent on L(t; xi) (Eq (6)), warm started from the previous epoch's xi."""
        self.dpgmm.to(t.device)
        self.dpgmm.fit(t.detach())
        self.fitted.fill_(True)
        return {
            "dpgmm_iter": int(self.dpgmm.n_iter_),
            "dpgmm_converged": bool(self.dpgmm.converged_),
            "dpgmm_lower_bound": float(self.dpgmm.lower_bound_),
            "dpgmm_active": int(len(self.dpgmm.active_components())),
        }

    def get_extra_state(self) -> dict[str, Any]:
        return {"dpgmm": self.dpgmm.state_dict() if self.dpgmm.is_fitted else None}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("dpgmm") is not None:
            self.dpgmm.load_state_dict(state["dpgmm"])
            self.dpgmm.to(self._anchor.device)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - nn.Module's own signature
        module = super()._apply(fn, recurse)
        if self.dpgmm.is_fitted:
            self.dpgmm.to(self._anchor.device)
        return module


def make_dpgmm(
    dim: int,
    n_components: int = 50,
    weight_concentration_prior: float = 0.1,
    priors: str = "paper",
    max_iter: int = 200,
    seed: int = 0,
) -> DPGMM:
    """A warm-starting DP-GMM with the paper's priors (mu ~ N(0, I), Sigma ~ W(d_t, I), Sec 3.2)
    or scikit-learn's data-dependent ones (what the reference code's BayesianGaussianMixture uses)."""
    kwargs: dict[str, Any] = {}
    if priors == "paper":
        kwargs = {
            "mean_prior": torch.zeros(dim, dtype=torch.float64),
            "mean_precision_prior": 1.0,
            "degrees_of_freedom_prior": float(dim),
            "covariance_prior": torch.eye(dim, dtype=torch.float64),
        }
    elif priors != "sklearn":
        raise ValueError(f"DP-GMM priors must be 'paper' or 'sklearn', got {priors!r}")
    return DPGMM(
        n_components=n_components,
        weight_concentration_prior=weight_concentration_prior,
        max_iter=max_iter,
        random_state=seed,
        warm_start=True,
        **kwargs,
    )


def ladder_dims(d_z: int, d_t: int, n_levels: int) -> list[int]:
    """Latent sizes of a ladder of ``n_levels`` prior VAEs, geometric from d_z down to d_t."""
    return [max(d_t, round(d_z * (d_t / d_z) ** (i / n_levels))) for i in range(1, n_levels + 1)]


def hierarchical_prior(cfg: ModelConfig, context: PriorContext) -> PriorVAE:
    """The hierarchical prior of Sec 4: one prior VAE from z (d_z) to t (d_t) with p(t) = N(0, I)."""
    d_t = cfg.prior_vae.d_t
    return prior_vae_level(cfg, cfg.d_z, d_t, NormalPrior(d_t))


def ladder_prior(cfg: ModelConfig, context: PriorContext) -> PriorVAE:
    """LaDDer's prior (Sec 3): ``model.prior_vae.n_levels`` prior VAEs from z down to t
    (:func:`ladder_dims`) over the DP-GMM hyper prior p(t) of Sec 3.2 (``model.dpgmm``)."""
    dims = ladder_dims(cfg.d_z, cfg.prior_vae.d_t, cfg.prior_vae.n_levels)
    dp = cfg.dpgmm
    prior: Prior = DPGMMHyperPrior(dims[-1], dp.truncation, dp.concentration, dp.priors,
                                   dp.train_kind, dp.density_kind, cfg.n_mc, dp.max_iter,
                                   context.seed)
    for d_in, d_out in reversed(list(zip([cfg.d_z, *dims[:-1]], dims, strict=True))):
        prior = prior_vae_level(cfg, d_in, d_out, prior)
    return prior


def prior_vae_level(cfg: ModelConfig, dim: int, latent_dim: int, hyper: Prior) -> PriorVAE:
    """One prior VAE from ``dim`` to ``latent_dim`` over ``hyper``, with ``cfg``'s prior-net
    settings (``model.prior_vae`` and ``model.std_floor``)."""
    pv = cfg.prior_vae
    return PriorVAE(
        dim,
        latent_dim,
        hyper,
        hidden=pv.hidden,
        n_layers=pv.layers,
        slope=pv.slope,
        std_floor=cfg.std_floor,
        scale_mode=pv.scale_mode,
        scale_init=pv.scale_init,
        scale_bounds=tuple(pv.scale_bounds),
        sample_noise=pv.sample_noise,
    )
