"""A log-sum-exp that stays fast on CPUs, for every mixture density of the package.

``torch.exp`` is vectorised on CPUs only while its result is a normal float: an argument below
about -87.3 (float32) drops to a scalar path some 50 times slower. A mixture's log-density
``log sum_k exp(a_k)`` meets such arguments for every component far from the point, which made the
DP-GMM cross-entropy of Eq (7) a quarter of a LaDDer training step. Flooring ``a_k - max_k a_k`` at
-80 keeps every exponent normal and changes no result: a term e^-80 times the largest is below the
resolution of float32 and float64 alike (and its gradient, the component's responsibility, is 0).

:func:`gaussian_mixture_log_prob` is the density of the GMM prior and the VampPrior, evaluated on
the 100 Monte Carlo samples per image of their cross-entropy (term 3 of Eq (2)) in every step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

EXPONENT_FLOOR = -80.0
LOG_2PI = math.log(2 * math.pi)


def logsumexp(x: Tensor, dim: int = -1) -> Tensor:
    """``torch.logsumexp(x, dim)`` with the shifted exponents floored at ``EXPONENT_FLOOR``.

    Rows that are all ``-inf`` give ``-inf``, as in torch.
    """
    top = x.amax(dim, keepdim=True).detach()
    empty = torch.isneginf(top)
    top = torch.where(empty, torch.zeros_like(top), top)
    out = (x - top).clamp_min(EXPONENT_FLOOR).exp().sum(dim).log() + top.squeeze(dim)
    return torch.where(empty.squeeze(dim), torch.full_like(out, float("-inf")), out)


def quadratic_features(u: Tensor) -> Tensor:
    """phi(u) = [u_i u_j (i <= j), u_i, 1] of the rows of u, (N, d (d + 3) / 2 + 1), the pairs in
    the order of ``torch.triu_indices(d, d)``. Built from d row slices, not a gather of index
    pairs, whose backward (a scatter-add) took half the time of the GMM prior's density."""
    products = [u[:, i:i + 1] * u[:, i:] for i in range(u.shape[1])]
    return torch.cat([*products, u, torch.ones_like(u[:, :1])], 1)


def gaussian_mixture_log_prob(x: Tensor, log_weights: Tensor, means: Tensor,
                              scale: Tensor) -> Tensor:
    """log sum_k w_k N(x; m_k, S_k) over the last dimension of ``x``, for all its leading indices
    and all K components at once; differentiable in every argument.

    ``scale`` is (K, d) standard deviations (diagonal S_k, as the VampPrior's components) or
    (K, d, d) lower Cholesky factors L_k of S_k = L_k L_k^T (the GMM prior); ``log_weights`` (K,)
    are normalised. Each component's exponent, log w_k - log|L_k| - d/2 log 2 pi
    - (u - m_k)^T P_k (u - m_k) / 2 with P_k = S_k^-1, is one product phi(u) @ C_k of quadratic
    features of u = x - c (c: the mean of the means): no (..., K, d) tensor is formed, forward or
    backward. Its terms cancel for tight components, so that product is taken in float64; the
    log-sum-exp (:func:`logsumexp`) in x's dtype. Equals ``torch.distributions``' MixtureSameFamily
    to float rounding."""
    d = x.shape[-1]
    center = means.detach().double().mean(0)
    u = x.reshape(-1, d).double() - center
    m = means.double() - center
    scale = scale.double()
    ones = torch.ones_like(u[:, :1])
    if scale.ndim == 2:  # diagonal: phi(u) = [u_i^2, u_i, 1]
        precision = scale.square().reciprocal()
        features = torch.cat([u.square(), u, ones], 1)
        quadratic = -0.5 * precision
        linear = precision * m
        log_det = scale.log().sum(-1)
    else:  # full: phi(u) = [u_i u_j (i <= j), u_i, 1] (:func:`quadratic_features`)
        pairs = torch.triu_indices(d, d, device=x.device)
        precision = torch.cholesky_inverse(scale.tril())  # as torch, only the lower triangle
        features = quadratic_features(u)
        off_diagonal = (pairs[0] != pairs[1]).to(precision.dtype)
        quadratic = -0.5 * (1.0 + off_diagonal) * precision[:, pairs[0], pairs[1]]
        linear = (precision @ m[:, :, None]).squeeze(-1)
        log_det = scale.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    constant = (log_weights.double() - log_det - 0.5 * d * LOG_2PI
                - 0.5 * (m * linear).sum(-1))
    exponents = features @ torch.cat([quadratic, linear, constant[:, None]], 1).T
    return logsumexp(exponents.to(x.dtype), -1).view(x.shape[:-1])
