"""Coordinate-ascent variational inference (CAVI) for the DP-GMM of Sec 3.2: the updates and the
bound L(t; xi) of Eq (6), one plain function each.

The model (Sec 3.2, with the conjugate Normal-Wishart reading of :mod:`ladder.dpgmm`'s docstring):
sticks v_k ~ Beta(1, alpha_0) with weights w_k = v_k prod_{j<k} (1 - v_j), components
(mu_k, Lambda_k) ~ N(mu_k | m_0, (beta_0 Lambda_k)^-1) W(Lambda_k | W_0, nu_0), assignments
k_i ~ Cat(w) and points t_i ~ N(mu_{k_i}, Lambda_{k_i}^-1). The mean-field family is
q(v_k) = Beta(gamma_k1, gamma_k2), q(mu_k, Lambda_k) = N(mu_k | m_k, (beta_k Lambda_k)^-1)
W(Lambda_k | W_k, nu_k) and q(k_i) = Discrete(r_i) (Blei & Jordan 2006; Bishop 2006, Sec 10.2).

One CAVI iteration (:func:`coordinate_ascent`) is the E-step :func:`responsibilities` of
:func:`log_rho`, the M-step :func:`update_sticks` and :func:`update_normal_wishart` from the
:func:`sufficient_statistics`, and the bound :func:`elbo`. Each update maximises L exactly over its
factor, so L never decreases (up to ``reg_covar``, module docstring of :mod:`ladder.dpgmm`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ladder.dpgmm_density import MahalanobisForm
from ladder.numerics import LOG_2PI

__all__ = [
    "CaviRun", "ConjugatePrior", "Posterior", "Statistics", "break_sticks", "coordinate_ascent",
    "elbo",
    "expected_log_det_precision", "expected_log_likelihood", "expected_log_sticks",
    "expected_log_weights", "expected_weights", "log_det_expected_precision", "log_rho",
    "log_rho_offset", "log_wishart_norm", "m_step", "normal_wishart_kl", "responsibilities",
    "stick_kl", "sufficient_statistics", "update_normal_wishart", "update_sticks",
]


@dataclass(frozen=True)
class ConjugatePrior:
    """The priors in effect: Beta(1, alpha_0) sticks and the Normal-Wishart
    N(mu | m_0, (beta_0 Lambda)^-1) W(Lambda | W_0, nu_0), with W_0^-1 (scikit-learn's
    ``covariance_prior``) given."""

    alpha0: float
    m0: Tensor  # (d,)
    beta0: float
    nu0: float
    W0_inv: Tensor  # (d, d)


@dataclass(frozen=True)
class Posterior:
    """The variational parameters xi of q(v) q(mu, Lambda)."""

    g1: Tensor  # Beta sticks gamma_k1, (K,)
    g2: Tensor  # gamma_k2, (K,)
    beta: Tensor  # mean precisions beta_k, (K,)
    m: Tensor  # means m_k, (K, d)
    nu: Tensor  # Wishart degrees of freedom nu_k, (K,)
    cov: Tensor  # E[Lambda_k]^-1 = (nu_k W_k)^-1 (scikit-learn's covariances_), (K, d, d)
    chol: Tensor  # upper U_k with U_k U_k^T = E[Lambda_k] (scikit-learn's precisions_cholesky_)

    @property
    def precision(self) -> Tensor:
        """E[Lambda_k] = nu_k W_k, (K, d, d)."""
        return self.chol @ self.chol.mT

    def shifted(self, offset: Tensor) -> Posterior:
        """The same q with the means moved by ``offset`` (d,)."""
        return Posterior(self.g1, self.g2, self.beta, self.m + offset, self.nu, self.cov,
                         self.chol)


@dataclass(frozen=True)
class Statistics:
    """The statistics of the responsibilities r (Bishop 10.51-10.53)."""

    counts: Tensor  # N_k = sum_i r_ik (+ 10 eps, as scikit-learn: an empty mean is 0, not 0/0)
    means: Tensor  # xbar_k = sum_i r_ik x_i / N_k, (K, d)
    scatter: Tensor  # N_k S_k = sum_i r_ik (x_i - xbar_k)(x_i - xbar_k)^T, (K, d, d)


# ------------------------------------------------------------------ sticks


def break_sticks(v: Tensor, rest: Tensor | None = None) -> Tensor:
    """The weights w_m = v_m prod_{j<m} (1 - v_j) of stick fractions v (last axis: m), Sec 3.2;
    ``rest`` stands in for 1 - v where given (E_q[w] takes E_q[1 - v], which 1 - E_q[v] rounds)."""
    rest = 1 - v if rest is None else rest
    left = torch.cumprod(torch.cat([torch.ones_like(v[..., :1]), rest[..., :-1]], -1), -1)
    return v * left


def expected_weights(q: Posterior) -> Tensor:
    """E_q[w_k] = E[v_k] prod_{j<k} E[1 - v_j] (independent sticks), renormalised over the K
    components (the tail beyond K gets no data)."""
    total = q.g1 + q.g2
    w = break_sticks(q.g1 / total, q.g2 / total)
    return w / w.sum()


def expected_log_sticks(q: Posterior) -> tuple[Tensor, Tensor]:
    """E[log v_k] = psi(gamma_k1) - psi(gamma_k1 + gamma_k2) and
    E[log(1 - v_k)] = psi(gamma_k2) - psi(gamma_k1 + gamma_k2) under q(v_k) = Beta."""
    total = torch.digamma(q.g1 + q.g2)
    return torch.digamma(q.g1) - total, torch.digamma(q.g2) - total


def expected_log_weights(q: Posterior) -> Tensor:
    """E[log w_k] = E[log v_k] + sum_{j<k} E[log(1 - v_j)] (Blei & Jordan 2006): stick breaking in
    log space, in place of Bishop 10.66's Dirichlet."""
    elog_v, elog_1mv = expected_log_sticks(q)
    return elog_v + torch.cat([elog_1mv.new_zeros(1), torch.cumsum(elog_1mv, 0)[:-1]])


def update_sticks(counts: Tensor, alpha0: float) -> tuple[Tensor, Tensor]:
    """q(v_k) = Beta(1 + N_k, alpha_0 + sum_{j>k} N_j) (Blei & Jordan 2006, Eq 18-19): a stick
    counts the points of every later component."""
    later = torch.cat([torch.flip(torch.cumsum(torch.flip(counts, [0]), 0), [0])[1:],
                       counts.new_zeros(1)])
    return 1.0 + counts, alpha0 + later


# ------------------------------------------------------------ Normal-Wishart


def log_det_expected_precision(q: Posterior) -> Tensor:
    """log|E[Lambda_k]| = 2 sum_i log (U_k)_ii, (K,)."""
    return 2.0 * torch.log(torch.diagonal(q.chol, dim1=-2, dim2=-1)).sum(-1)


def expected_log_det_precision(q: Posterior) -> Tensor:
    """E[log|Lambda_k|] = sum_{i<d} psi((nu_k - i) / 2) + d log 2 + log|W_k| (Bishop 10.65), with
    log|W_k| = log|E[Lambda_k]| - d log nu_k."""
    d = q.m.shape[1]
    i = torch.arange(d, dtype=q.nu.dtype, device=q.nu.device)
    return (torch.digamma(0.5 * (q.nu[:, None] - i)).sum(-1) + d * math.log(2.0)
            + log_det_expected_precision(q) - d * torch.log(q.nu))


def update_normal_wishart(stats: Statistics, prior: ConjugatePrior,
                          reg_covar: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """q(mu_k, Lambda_k) (Bishop 10.60-10.63): beta_k = beta_0 + N_k, m_k = (beta_0 m_0 + N_k
    xbar_k) / beta_k, nu_k = nu_0 + N_k and W_k^-1 = W_0^-1 + N_k S_k + beta_0 N_k / beta_k
    (xbar_k - m_0)(xbar_k - m_0)^T, with ``reg_covar`` N_k I added to the scatter as scikit-learn
    does. Returns (beta, m, nu, E[Lambda]^-1, U) with U_k U_k^T = E[Lambda_k]."""
    nk, xbar = stats.counts, stats.means
    d = xbar.shape[1]
    beta = prior.beta0 + nk
    m = (prior.beta0 * prior.m0 + nk[:, None] * xbar) / beta[:, None]
    nu = prior.nu0 + nk
    diff = xbar - prior.m0
    eye = torch.eye(d, dtype=xbar.dtype, device=xbar.device)
    scale_inv = (prior.W0_inv + stats.scatter + (nk * reg_covar)[:, None, None] * eye
                 + (nk * prior.beta0 / beta)[:, None, None] * diff[:, :, None] * diff[:, None, :])
    cov = scale_inv / nu[:, None, None]  # E[Lambda_k]^-1 = (nu_k W_k)^-1
    cov = 0.5 * (cov + cov.mT)
    chol_cov, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ValueError("a component covariance is not positive definite (ill-conditioned "
                         "data); increase reg_covar or rescale the data")
    chol = torch.linalg.solve_triangular(chol_cov, eye.expand_as(cov), upper=False).mT
    return beta, m, nu, cov, chol


# ---------------------------------------------------------------- the steps


def log_rho_offset(q: Posterior) -> Tensor:
    """E[log w_k] + E[log|Lambda_k|] / 2 - d/2 log 2 pi - d / (2 beta_k): the part of log rho_ik
    that does not depend on the point (Bishop 10.46 with 10.64)."""
    d = q.m.shape[1]
    return (expected_log_weights(q) + 0.5 * expected_log_det_precision(q) - 0.5 * d * LOG_2PI
            - 0.5 * d / q.beta)


def log_rho(X: Tensor, q: Posterior) -> Tensor:
    """log rho_ik = E[log w_k] + E[log N(x_i | mu_k, Lambda_k^-1)] (Bishop 10.46, 10.64-10.65),
    (N, K), with the quadratic term nu_k (x_i - m_k)^T W_k (x_i - m_k) =
    (x_i - m_k)^T E[Lambda_k] (x_i - m_k)."""
    distances = MahalanobisForm.build(q.m, q.chol, X.new_zeros(X.shape[1]))(X)
    return torch.add(log_rho_offset(q), distances, alpha=-0.5)  # one pass over (N, K)


def responsibilities(log_rho: Tensor) -> tuple[Tensor, Tensor]:
    """E-step: r_ik = rho_ik / sum_j rho_ij (Bishop 10.49), and the entropy -sum_ik r_ik log r_ik
    of q(k) for the bound, as log s_i - sum_k r_ik (log rho_ik - max_j log rho_ij) with
    s_i = sum_k exp(log rho_ik - max_j log rho_ij)."""
    shifted = log_rho - log_rho.amax(1, keepdim=True)
    resp = shifted.exp()
    norm = resp.sum(1, keepdim=True)
    resp /= norm
    entropy = torch.log(norm).sum() - torch.dot(resp.flatten(), shifted.flatten())
    return resp, entropy


def sufficient_statistics(X: Tensor, resp: Tensor) -> Statistics:
    """N_k, xbar_k and N_k S_k of the responsibilities ``resp`` (N, K) (Bishop 10.51-10.53)."""
    n, d = X.shape
    outer = (X[:, :, None] * X[:, None, :]).reshape(n, d * d)
    moments = resp.T @ torch.cat([torch.ones_like(X[:, :1]), X, outer], 1)  # one pass over r
    counts = moments[:, 0] + 10 * torch.finfo(resp.dtype).eps  # sum_i r_ik
    means = moments[:, 1:d + 1] / counts[:, None]  # sum_i r_ik x_i / N_k
    second = moments[:, d + 1:].reshape(-1, d, d)  # sum_i r_ik x_i x_i^T
    return Statistics(counts, means, second - counts[:, None, None] * means[:, :, None]
                      * means[:, None, :])


def m_step(stats: Statistics, prior: ConjugatePrior, reg_covar: float) -> Posterior:
    """M-step: the sticks q(v) and the components q(mu, Lambda) given the statistics."""
    g1, g2 = update_sticks(stats.counts, prior.alpha0)
    return Posterior(g1, g2, *update_normal_wishart(stats, prior, reg_covar))


# ------------------------------------------------------------------ the bound


def log_wishart_norm(logdet_scale_inv: Tensor, nu: Tensor, d: int) -> Tensor:
    """log B(W, nu) of the Wishart W(Lambda | W, nu) (Bishop B.79), given log|W^-1|."""
    i = torch.arange(d, dtype=nu.dtype, device=nu.device)
    return (0.5 * nu * logdet_scale_inv - 0.5 * nu * d * math.log(2.0)
            - 0.25 * d * (d - 1) * math.log(math.pi)
            - torch.lgamma(0.5 * (nu.unsqueeze(-1) - i)).sum(-1))


def expected_log_likelihood(stats: Statistics, q: Posterior) -> Tensor:
    """E[log p(t | k, mu, Lambda)] + E[log p(k | v)] = sum_ik r_ik log rho_ik from the statistics
    (Bishop 10.71-10.72): sum_k N_k (E[log w_k] + E[log|Lambda_k|]/2 - d/2 log 2 pi - d/(2 beta_k)
    - tr(S_k E[Lambda_k])/2 - (xbar_k - m_k)^T E[Lambda_k] (xbar_k - m_k)/2)."""
    prec = q.precision
    gap = stats.means - q.m
    spread = (stats.scatter * prec).sum((-2, -1))  # N_k tr(S_k E[Lambda_k])
    shift = stats.counts * torch.einsum("ki,kij,kj->k", gap, prec, gap)
    return (stats.counts * log_rho_offset(q) - 0.5 * (spread + shift)).sum()


def stick_kl(q: Posterior, prior: ConjugatePrior) -> Tensor:
    """sum_k KL(q(v_k) || Beta(1, alpha_0)) = sum_k E[log q(v_k)] - E[log p(v_k)]."""
    elog_v, elog_1mv = expected_log_sticks(q)
    log_beta_q = torch.lgamma(q.g1) + torch.lgamma(q.g2) - torch.lgamma(q.g1 + q.g2)
    return -(math.log(prior.alpha0) + (prior.alpha0 - 1.0) * elog_1mv + log_beta_q
             - (q.g1 - 1.0) * elog_v - (q.g2 - 1.0) * elog_1mv).sum()


def normal_wishart_kl(q: Posterior, prior: ConjugatePrior) -> Tensor:
    """sum_k KL(q(mu_k, Lambda_k) || p(mu_k, Lambda_k)) (Bishop 10.74 and 10.77 with B.79)."""
    d = q.m.shape[1]
    prec = q.precision
    elog_lam = expected_log_det_precision(q)
    dm = q.m - prior.m0
    logdet_prior = 2.0 * torch.log(torch.diagonal(torch.linalg.cholesky(prior.W0_inv))).sum()
    log_b0 = log_wishart_norm(logdet_prior, q.nu.new_tensor([prior.nu0]), d)
    log_bk = log_wishart_norm(d * torch.log(q.nu) - log_det_expected_precision(q), q.nu, d)
    normal = (0.5 * d * torch.log(prior.beta0 / q.beta) - 0.5 * prior.beta0 * d / q.beta
              + 0.5 * d - 0.5 * prior.beta0 * torch.einsum("ki,kij,kj->k", dm, prec, dm))
    wishart = (log_b0 - log_bk + 0.5 * (prior.nu0 - q.nu) * elog_lam
               - 0.5 * torch.einsum("ij,kji->k", prior.W0_inv, prec) + 0.5 * q.nu * d)
    return -(normal + wishart).sum()


def elbo(stats: Statistics, entropy: Tensor, q: Posterior, prior: ConjugatePrior) -> Tensor:
    """L(t; xi) of Eq (6) with all its terms: sum_ik r_ik log rho_ik - sum_ik r_ik log r_ik
    - KL(q(v) || p(v)) - KL(q(mu, Lambda) || p(mu, Lambda)) (Bishop 10.70-10.77, with the Beta
    sticks of Blei & Jordan 2006)."""
    return (expected_log_likelihood(stats, q) + entropy - stick_kl(q, prior)
            - normal_wishart_kl(q, prior))


# --------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class CaviRun:
    """What :func:`coordinate_ascent` ends with."""

    posterior: Posterior
    bounds: list[float]  # L(t; xi) after every iteration
    converged: bool


def coordinate_ascent(X: Tensor, q: Posterior, prior: ConjugatePrior, *, reg_covar: float, max_iter: int,
                      tol: float, per_point: bool, previous_bound: float) -> CaviRun:
    """CAVI from ``q``: E-step, M-step and bound, until the bound changes by less than ``tol``
    (divided by N first where ``per_point``) from the iteration before (the first iteration is
    compared with ``previous_bound``), or for ``max_iter`` iterations."""
    bounds: list[float] = []
    for _ in range(max_iter):
        resp, entropy = responsibilities(log_rho(X, q))
        stats = sufficient_statistics(X, resp)
        q = m_step(stats, prior, reg_covar)
        bounds.append(float(elbo(stats, entropy, q, prior)))
        change = bounds[-1] - (bounds[-2] if len(bounds) > 1 else previous_bound)
        if abs(change) / (X.shape[0] if per_point else 1) < tol:
            return CaviRun(q, bounds, True)
    return CaviRun(q, bounds, False)
