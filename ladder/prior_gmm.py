"""The GMM prior baseline: a finite Gaussian mixture in z-space with full covariances."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from ladder.gmm_em import fit_gmm
from ladder.numerics import gaussian_mixture_log_prob
from ladder.priors import (
    MixturePrior,
    PriorContext,
)

if TYPE_CHECKING:
    from ladder.config import ModelConfig


class GMMPrior(MixturePrior):
    """A finite Gaussian mixture in z-space with full covariances (the "GMM prior" baseline).

    ``fit="em"`` (the reference code's choice; the paper does not say): the mixture is refitted by
    EM at the end of every epoch on the encodings (:func:`ladder.gmm_em.fit_gmm`: scikit-learn's
    ``GaussianMixture`` in torch, on the encodings' device, warm started from the previous fit) and
    ``covariance_reg`` times I is added to each covariance (the reference code adds 0.01 I); before
    the first refit the prior is N(0, I), as in the reference code.
    ``fit="gradient"``: weights, means and Cholesky factors are parameters learned by Adam in the
    prior block of Algorithm 1.
    """

    @classmethod
    def from_config(cls, cfg: ModelConfig, context: PriorContext) -> GMMPrior:
        return cls(cfg.d_z, cfg.gmm.n_components, cfg.gmm.fit, cfg.gmm.covariance_reg, cfg.n_mc,
                   context.seed)

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

    def torch_mixture(self) -> MixtureSameFamily:
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

    @torch.no_grad()
    def diagnostics(self, z: Tensor) -> dict[str, Any]:
        """``active_components``: the components with weight above 1 / (10 K)."""
        weights = self.torch_mixture().mixture_distribution.probs
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
