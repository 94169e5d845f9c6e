"""EM for a full-covariance Gaussian mixture in torch float64, on the data's device.

The end-of-epoch refit of the GMM prior (:class:`ladder.prior_gmm.GMMPrior`, ``model.gmm.fit = em``,
the reference code's choice). :func:`fit_gmm` mirrors scikit-learn 1.9's
``GaussianMixture(covariance_type="full", n_init=1).fit`` step for step
(``sklearn/mixture/_base.py``: ``fit_predict``; ``_gaussian_mixture.py``: ``_initialize``,
``_m_step``, ``_estimate_log_gaussian_prob``, ``_compute_precision_cholesky`` and
``_compute_precision_cholesky_from_precisions``):

* parameters are held as (weights, means, U_k), U_k upper triangular with U_k U_k^T = Lambda_k
  (scikit-learn's ``precisions_cholesky_``); a warm start factors the given precisions so;
* E-step: ``log N(x; m_k, Lambda_k^-1) = -(d log 2 pi + |x U_k - m_k U_k|^2) / 2 + log|U_k|``;
* M-step: N_k = sum_i r_ik + 10 eps, m_k = sum_i r_ik x_i / N_k, S_k = sum_i r_ik (x_i - m_k)
  (x_i - m_k)^T / N_k + ``reg_covar`` I, w_k = N_k / sum_j N_j, U_k = (chol S_k)^-T;
* stop when the mean per-sample log-likelihood (the lower bound, computed in the E-step before
  each M-step) changes by less than ``tol``; the returned parameters are the last M-step's;
* a cold start takes its responsibilities from scikit-learn's ``KMeans(n_init=1)`` labels with the
  same ``random_state`` (``init_params="kmeans"``).

Everything is batched over the K components: the E-step is one (n, d) @ (d, K d) product per chunk
of points, the M-step one batched (K, d, n) @ (K, n, d) product per chunk; chunks keep the
(n, K, d) intermediates in cache (:data:`CHUNK_ELEMENTS`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from torch import Tensor

from ladder.numerics import logsumexp

__all__ = ["GMMFit", "fit_gmm"]

LOG_2PI = math.log(2 * math.pi)
CHUNK_ELEMENTS = 2**17  # float64 entries of one chunk's (n, K, d) intermediate: 1 MiB, in cache
# exp() of float64 stays on its vectorised path while its result is a normal float (the reason of
# ladder.numerics); e^-700 = 1e-304 is a responsibility of 0 to float64 resolution
LOG_RESP_FLOOR = -700.0
SINGULAR = ("Fitting the mixture model failed because some components have ill-defined empirical "
            "covariance (for instance caused by singleton or collapsed samples). Try to decrease "
            "the number of components, increase reg_covar, or scale the input data.")


@dataclass(frozen=True)
class GMMFit:
    """A fitted mixture (scikit-learn's ``weights_``, ``means_``, ``covariances_``,
    ``precisions_``, ``n_iter_``, ``converged_``, ``lower_bounds_``), float64 on X's device."""

    weights: Tensor  # (K,)
    means: Tensor  # (K, d)
    covariances: Tensor  # (K, d, d), reg_covar included
    precisions: Tensor  # (K, d, d)
    n_iter: int
    converged: bool
    lower_bounds: list[float]  # the mean log-likelihood at each iteration's E-step


def _rows(n_components: int, d: int) -> int:
    """Points per chunk: their (n, K, d) intermediates hold about :data:`CHUNK_ELEMENTS` floats."""
    return max(1, CHUNK_ELEMENTS // (n_components * d))


def _precision_cholesky(covariances: Tensor) -> Tensor:
    """U_k = (chol S_k)^-T, upper triangular with U_k U_k^T = S_k^-1; a ValueError where S_k is not
    positive definite or not finite (scikit-learn's LinAlgError and scipy's finiteness check)."""
    chol, info = torch.linalg.cholesky_ex(covariances)
    if bool((info != 0).any()) or not bool(torch.isfinite(chol).all()):
        raise ValueError(SINGULAR)
    eye = torch.eye(covariances.shape[-1], dtype=chol.dtype, device=chol.device)
    return torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False).mT


def _precision_cholesky_from_precisions(precisions: Tensor) -> Tensor:
    """The upper U_k with U_k U_k^T = Lambda_k: J chol(J Lambda_k J) J, J the exchange matrix."""
    return torch.linalg.cholesky(precisions.flip(-1, -2)).flip(-1, -2)


def _e_step(X: Tensor, weights: Tensor, means: Tensor, prec_chol: Tensor) -> tuple[float, Tensor]:
    """The mean log p(x_i) and the log responsibilities (N, K)."""
    K, d = means.shape
    log_det = prec_chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    shift = (means[:, None, :] @ prec_chol).squeeze(1)  # m_k U_k, (K, d)
    factors = prec_chol.permute(1, 0, 2).reshape(d, K * d)  # [U_1 ... U_K]
    squares = torch.cat([((chunk @ factors).view(-1, K, d) - shift).square().sum(-1)
                         for chunk in X.split(_rows(K, d))])
    weighted = -0.5 * (d * LOG_2PI + squares) + log_det + weights.log()
    log_norm = logsumexp(weighted, -1)
    return float(log_norm.mean()), weighted - log_norm[:, None]


def _m_step(XT: Tensor, resp: Tensor, reg_covar: float) -> tuple[Tensor, Tensor, Tensor]:
    """N_k, the means and the covariances (``reg_covar`` on the diagonal) given the points as
    columns, XT (d, N), and their responsibilities as rows, (K, N)."""
    K, d = resp.shape[0], XT.shape[0]
    nk = resp.sum(1) + 10 * torch.finfo(resp.dtype).eps
    means = (resp @ XT.T) / nk[:, None]
    scatter = torch.zeros(K, d, d, dtype=XT.dtype, device=XT.device)
    rows = _rows(K, d)
    for chunk, r in zip(XT.split(rows, 1), resp.split(rows, 1), strict=True):
        diff = chunk - means[:, :, None]  # (K, d, n)
        scatter.baddbmm_(diff * r[:, None, :], diff.mT)
    covariances = scatter / nk[:, None, None]
    covariances.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    return nk, means, covariances


def _check_input(X: Tensor, n_components: int, max_iter: int) -> Tensor:
    """X as float64, checked as scikit-learn's ``fit`` checks it (a clearer ValueError each)."""
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must be a 2-D (n_samples >= 2, n_features) tensor, got shape "
                         f"{tuple(X.shape)}")
    if X.shape[0] < n_components:
        raise ValueError(f"EM of {n_components} components needs at least as many points, got "
                         f"{X.shape[0]}; give more points or fewer components")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    X = X.detach().to(torch.float64)
    if not bool(torch.isfinite(X).all()):
        raise ValueError("X contains NaN or infinity; the encodings must be finite (check the "
                         "encoder for a diverged training step)")
    return X


def _check_warm(X: Tensor, n_components: int, weights: Tensor, means: Tensor,
                precisions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The warm start on X's device in float64, checked as scikit-learn's ``_check_parameters``."""
    K, d = n_components, X.shape[1]
    weights, means, precisions = (t.detach().to(X.device, torch.float64)
                                  for t in (weights, means, precisions))
    for name, t, shape in (("weights", weights, (K,)), ("means", means, (K, d)),
                           ("precisions", precisions, (K, d, d))):
        if t.shape != shape:
            raise ValueError(f"warm-start {name} must have shape {shape}, got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"warm-start {name} contain NaN or infinity")
    if bool(((weights < 0) | (weights > 1)).any()) or abs(float(weights.sum()) - 1) > 1e-8:
        raise ValueError("warm-start weights must lie in [0, 1] and sum to 1 (within 1e-8)")
    symmetric = bool(torch.isclose(precisions, precisions.mT).all())
    if not symmetric or bool((torch.linalg.cholesky_ex(precisions).info != 0).any()):
        raise ValueError("warm-start precisions must be symmetric positive definite")
    return weights, means, precisions


def fit_gmm(
    X: Tensor,
    n_components: int,
    *,
    weights: Tensor | None = None,
    means: Tensor | None = None,
    precisions: Tensor | None = None,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    random_state: int | None = None,
) -> GMMFit:
    """EM on the rows of X (N, d), as ``GaussianMixture(n_components, covariance_type="full",
    tol, reg_covar, max_iter, random_state, weights_init, means_init, precisions_init).fit(X)``
    (module docstring); ``weights``, ``means`` and ``precisions`` warm start it (all or none),
    else k-means starts it. Warns a ``ConvergenceWarning`` when ``max_iter`` is reached first."""
    X = _check_input(X, n_components, max_iter)
    XT = X.T.contiguous()
    warm = (weights, means, precisions)
    if any(t is not None for t in warm):
        if any(t is None for t in warm):
            raise ValueError("a warm start needs weights, means and precisions together")
        weights, means, precisions = _check_warm(X, n_components, *warm)  # type: ignore[arg-type]
        prec_chol = _precision_cholesky_from_precisions(precisions)
    else:
        labels = KMeans(n_clusters=n_components, n_init=1,
                        random_state=check_random_state(random_state)).fit(X.cpu().numpy()).labels_
        resp = torch.zeros(n_components, X.shape[0], dtype=X.dtype, device=X.device)
        resp[torch.as_tensor(labels.astype(np.int64), device=X.device),
             torch.arange(X.shape[0], device=X.device)] = 1.0
        nk, means, covariances = _m_step(XT, resp, reg_covar)
        weights = nk / X.shape[0]
        prec_chol = _precision_cholesky(covariances)
    lower_bounds: list[float] = []
    lower_bound, converged = -math.inf, False
    for _ in range(max_iter):
        previous = lower_bound
        lower_bound, log_resp = _e_step(X, weights, means, prec_chol)
        resp = log_resp.clamp_min(LOG_RESP_FLOOR).exp().T.contiguous()
        nk, means, covariances = _m_step(XT, resp, reg_covar)
        weights = nk / nk.sum()
        prec_chol = _precision_cholesky(covariances)
        lower_bounds.append(lower_bound)
        if abs(lower_bound - previous) < tol:
            converged = True
            break
    if not converged:
        warnings.warn("EM of the Gaussian mixture did not converge; increase max_iter or tol, or "
                      "check for degenerate data", ConvergenceWarning, stacklevel=2)
    return GMMFit(weights, means, covariances, prec_chol @ prec_chol.mT, len(lower_bounds),
                  converged, lower_bounds)
