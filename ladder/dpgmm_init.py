"""Initial responsibilities of a DP-GMM fit, as scikit-learn's ``init_params``, on any device.

``"kmeans"`` one-hot encodes the labels of Lloyd's k-means from k-means++ seeds; ``"k-means++"``
and ``"random_from_data"`` put each component on one data point; ``"random"`` draws uniform
responsibilities and normalises them per point.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["INIT_PARAMS", "initial_responsibilities", "kmeans", "kmeans_plusplus"]

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


def _sq_dist(X: Tensor, C: Tensor, x2: Tensor) -> Tensor:
    """Squared Euclidean distances (N, M) between rows of X and C, clamped at 0."""
    return (x2[:, None] - 2.0 * X @ C.T + (C * C).sum(1)[None]).clamp_min_(0.0)


def kmeans_plusplus(X: Tensor, K: int, gen: torch.Generator) -> Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, 2 + log K local trials as in
    scikit-learn); indices of K rows of X. Zero potential (duplicates) falls back to uniform."""
    n = X.shape[0]
    x2 = (X * X).sum(1)
    idx = torch.empty(K, dtype=torch.long, device=X.device)
    idx[0] = torch.randint(n, (1,), generator=gen, device=X.device)[0]
    closest = _sq_dist(X, X[idx[:1]], x2)[:, 0]
    trials = 2 + int(math.log(K))
    for k in range(1, K):
        weights = closest + (closest.sum() <= 0).to(closest.dtype)
        cand = torch.multinomial(weights, trials, replacement=True, generator=gen)
        pot = torch.minimum(closest[None], _sq_dist(X, X[cand], x2).T)
        best = pot.sum(1).argmin()
        idx[k] = cand[best]
        closest = pot[best]
    return idx


def kmeans(X: Tensor, K: int, gen: torch.Generator, max_iter: int = 300,
           tol: float = 1e-4) -> Tensor:
    """Lloyd's k-means from k-means++ seeds with scikit-learn's defaults (300 iterations; stop when
    the labels repeat or the squared centre shift is below tol times the mean feature variance);
    an empty cluster keeps its centre. Returns labels (N,)."""
    centers = X[kmeans_plusplus(X, K, gen)]
    tol_abs = tol * float(X.var(0).mean()) if X.shape[0] > 1 else 0.0

    def assign(centers: Tensor) -> Tensor:
        dist = torch.addmm((centers * centers).sum(1), X, centers.T, alpha=-2.0)
        return dist.min(1).indices  # faster than argmin on CPU

    labels = None
    for _ in range(max_iter):
        new_labels = assign(centers)
        if labels is not None and torch.equal(new_labels, labels):
            break
        labels = new_labels
        counts = torch.bincount(labels, minlength=K).to(X.dtype)
        sums = torch.zeros_like(centers).index_add_(0, labels, X)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1.0)[:, None], centers)
        shift = float((new - centers).square().sum())
        centers = new
        if shift <= tol_abs:
            break
    return assign(centers)


def initial_responsibilities(X: Tensor, K: int, init_params: str,
                             gen: torch.Generator) -> Tensor:
    """(N, K) responsibilities to start CAVI from, by ``init_params`` (one of
    :data:`INIT_PARAMS`); with N <= K each point gets its own component and the others start
    empty."""
    n = X.shape[0]
    resp = torch.zeros(n, K, dtype=X.dtype, device=X.device)
    if init_params == "random":
        resp = torch.rand(n, K, generator=gen, dtype=X.dtype, device=X.device)
        return resp / resp.sum(1, keepdim=True)
    if n <= K:
        perm = torch.randperm(n, generator=gen, device=X.device)
        resp[torch.arange(n, device=X.device), perm] = 1.0
        return resp
    if init_params == "random_from_data":
        idx = torch.randperm(n, generator=gen, device=X.device)[:K]
        resp[idx, torch.arange(K, device=X.device)] = 1.0
    elif init_params == "k-means++":
        resp[kmeans_plusplus(X, K, gen), torch.arange(K, device=X.device)] = 1.0
    else:
        resp[torch.arange(n, device=X.device), kmeans(X, K, gen)] = 1.0
    return resp
