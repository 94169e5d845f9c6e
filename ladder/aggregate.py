"""The aggregate posterior q(z) = (1/N) sum_n q(z|x_n) of Eq (3) (SM A.1) as a density.

* :func:`aggregate_log_density`: log q(z) at any points, exactly, optionally leaving one posterior
  out per point (Fig 2's panel a, the ``"aggregate"`` prior of :mod:`ladder.latent2d`).
* :func:`aggregate_log_density_at_codes`: log q(z_n) at z_n ~ q(z|x_n), two ways, for the entropy
  of q(z) and KL(q(z) || p(z)) of :func:`ladder.metrics.cross_entropy_statistics`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ladder.numerics import logsumexp
from ladder.priors import LOG_2PI

MAX_PAIR_ELEMENTS = 2**24
"""Memory bound of :func:`aggregate_log_density_at_codes`: at most this many (point, posterior,
dimension) entries at once (64 MB in float32)."""


def aggregate_log_density(
    points: Tensor, mu: Tensor, std: Tensor, chunk: int = 512, exclude: Tensor | None = None
) -> Tensor:
    """log q(z) at ``points`` ``[P, d]`` for the aggregate posterior of Eq (3) and SM A.1,
    q(z) = (1/N) sum_i N(z; mu_i, diag std_i^2), exactly (a log-sum-exp over all N posteriors,
    ``chunk`` points at a time). Works in any dimension, e.g. for the aggregate hyper posterior
    q(t) of SM A.2. ``exclude`` ``[P]`` (indices into the N posteriors): leave posterior
    ``exclude[p]`` out of the mixture at point p, which then averages the other N - 1."""
    if mu.shape != std.shape or mu.dim() != 2 or points.shape[-1] != mu.shape[-1]:
        raise ValueError(
            f"need points [P, d] and mu, std [N, d]; got {tuple(points.shape)}, "
            f"{tuple(mu.shape)}, {tuple(std.shape)}"
        )
    if exclude is not None and (exclude.shape != points.shape[:1] or mu.shape[0] < 2):
        raise ValueError(f"exclude needs one index per point and N >= 2 posteriors; got "
                         f"{tuple(exclude.shape)} for {points.shape[0]} points, N = {mu.shape[0]}")
    d, n = mu.shape[-1], mu.shape[0] - (exclude is not None)
    log_norm = -0.5 * d * LOG_2PI - std.log().sum(-1) - math.log(n)  # [N]
    out = []
    with torch.no_grad():
        for start in range(0, points.shape[0], chunk):
            p = points[start:start + chunk]
            maha = ((p[:, None, :] - mu[None]) / std[None]).square().sum(-1)  # [chunk, N]
            terms = log_norm[None] - 0.5 * maha
            if exclude is not None:
                rows = torch.arange(p.shape[0], device=p.device)
                terms[rows, exclude[start:start + chunk]] = -math.inf
            out.append(logsumexp(terms, dim=1))
    return torch.cat(out)


def aggregate_log_density_at_codes(z: Tensor, mu: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """``(log q(z_n), log q_-n(z_n))`` per row n, for z_n ~ q(z|x_n) [N, d] and the N posteriors
    ``(mu, std)`` [N, d] that drew them (N >= 2).

    * log q(z_n): the mixture of all N posteriors, the sample's own included. With one z_n per
      posterior (a stratified draw from q) its mean is an unbiased estimate of -H[q_N] for
      q_N = (1/N) sum_n q(z|x_n), the aggregate posterior of *these* N images. q_N is peakier than
      the population's aggregate posterior q (E H[q_N] <= H[q], entropy being concave), so
      -mean - E[log p(z)] is, in expectation, an upper bound on KL(q || p); the excess grows
      as the posteriors narrow against the spacing of the codes (H[q_N] <= log N + mean H[q(z|x)]).
    * ``log q_-n(z_n)``: the mixture of the other N - 1 posteriors (leave one out), an unbiased
      estimate of q(z_n) whose log is biased low (Jensen), so the same KL from it is, in
      expectation, a lower bound on KL(q || p) (a kernel density estimate; it can be negative).

    The two bracket KL(q || p) and meet as N grows. Chunked within :data:`MAX_PAIR_ELEMENTS`.
    """
    n, d = mu.shape
    if z.shape != mu.shape or n < 2:
        raise ValueError(f"need z, mu, std [N, d] with N >= 2; got {tuple(z.shape)}, "
                         f"{tuple(mu.shape)}")
    chunk = max(1, MAX_PAIR_ELEMENTS // (n * d))
    held_out = aggregate_log_density(z, mu, std, chunk, exclude=torch.arange(n, device=z.device))
    own = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)
    with_own = torch.logaddexp(held_out + math.log(n - 1), own) - math.log(n)
    return with_own, held_out
