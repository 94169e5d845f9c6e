"""The fitted attributes of :class:`ladder.dpgmm.DPGMM`, with scikit-learn's names: the
variational posterior q of Sec 3.2 (the xi of Eq (6)) and what it gives, the mixture weights
E_q[w_k] and the components active in it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ladder.dpgmm_cavi import Posterior, expected_weights

__all__ = ["FittedAttributes"]


class FittedAttributes:
    """The read-only fitted attributes of :class:`ladder.dpgmm.DPGMM`, from the posterior q it
    stores in ``_params`` (None until a fit or a loaded state); torch tensors on its device."""

    _params: Posterior | None
    mean_prior: Tensor | None
    covariance_prior: Tensor | None

    def _require_fitted(self) -> Posterior:
        if self._params is None:
            raise ValueError("this DPGMM is not fitted yet; call fit(X) or load_state_dict first")
        return self._params

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``load_state_dict`` of a fitted state) has run."""
        return self._params is not None

    @property
    def n_features_in_(self) -> int | None:
        """The dimension d_t, once known from a fit or from a user-supplied prior."""
        if self._params is not None:
            return int(self._params.m.shape[1])
        return self._prior_features()

    def _prior_features(self) -> int | None:
        for prior in (self.mean_prior, self.covariance_prior):
            if prior is not None:
                return int(prior.shape[0])
        return None

    # ---------------------------------------------------------- fitted attributes

    @property
    def posterior(self) -> Posterior:
        """The variational parameters xi of q(v) q(mu, Lambda) (:mod:`ladder.dpgmm_cavi`)."""
        return self._require_fitted()

    @property
    def weight_concentration_(self) -> tuple[Tensor, Tensor]:
        """(gamma_k1, gamma_k2) of the Beta sticks q(v_k)."""
        p = self._require_fitted()
        return p.g1, p.g2

    @property
    def mean_precision_(self) -> Tensor:
        return self._require_fitted().beta

    @property
    def means_(self) -> Tensor:
        return self._require_fitted().m

    @property
    def degrees_of_freedom_(self) -> Tensor:
        return self._require_fitted().nu

    @property
    def covariances_(self) -> Tensor:
        """E[Lambda_k]^-1 = (nu_k W_k)^-1, (K, d, d)."""
        return self._require_fitted().cov

    @property
    def precisions_cholesky_(self) -> Tensor:
        """Upper-triangular U_k with U_k U_k^T = E[Lambda_k] (scikit-learn's convention)."""
        return self._require_fitted().chol

    @property
    def precisions_(self) -> Tensor:
        return self._require_fitted().precision

    @property
    def weights_(self) -> Tensor:
        """E_q[w_k] of the stick-breaking weights, renormalised over the K components."""
        return expected_weights(self._require_fitted())

    # ----------------------------------------------------------------- pruning

    def active_components(self, threshold: float = 0.01) -> Tensor:
        """Indices of the components with weight >= threshold (the reference code keeps >= 0.01
        for plots and its saved GM_prior_info)."""
        return torch.nonzero(self.weights_ >= threshold).flatten()

    def active_mixture(self, threshold: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
        """(weights renormalised, means, covariances) of :meth:`active_components`."""
        idx, weights = self.active_components(threshold), self.weights_
        if idx.numel() == 0:
            raise ValueError(
                f"no component has weight >= {threshold}; the largest is "
                f"{float(weights.max()):.3g}"
            )
        w = weights[idx]
        return w / w.sum(), self.means_[idx], self.covariances_[idx]
