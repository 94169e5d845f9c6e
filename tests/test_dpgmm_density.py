"""Tests of the fast Mahalanobis distances: ladder/dpgmm_density.py."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder import dpgmm_density as density
from ladder.dpgmm_density import MahalanobisForm


def random_components(seed: int, K: int, d: int, scale: float) -> tuple[torch.Tensor, ...]:
    """Means (K, d), upper U_k with U_k U_k^T = P_k SPD, and points (20, d)."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(K, d, generator=gen, dtype=torch.float64) * scale
    a = torch.randn(K, d, d, generator=gen, dtype=torch.float64)
    prec = a @ a.mT / d + 0.1 * torch.eye(d, dtype=torch.float64)
    chol = torch.linalg.cholesky(torch.flip(prec, (-2, -1))).flip((-2, -1))  # upper: U U^T = P
    points = torch.randn(20, d, generator=gen, dtype=torch.float64) * scale
    return means, chol, points


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 6), st.integers(1, 12), st.floats(0.1, 10.0))
def test_both_forms_equal_the_direct_quadratic_form(seed, K, d, scale):
    """The quadratic-feature form (up to MAX_QUADRATIC_D) and the Cholesky form (above) both give
    (t - m_k)^T P_k (t - m_k), whatever the center."""
    means, chol, points = random_components(seed, K, d, scale)
    prec = chol @ chol.mT
    diff = points[:, None, :] - means[None]
    direct = torch.einsum("nki,kij,nkj->nk", diff, prec, diff)
    form = MahalanobisForm.build(means, chol, means.mean(0))
    for max_quadratic_d in (0, 64):
        torch.testing.assert_close(form(points, max_quadratic_d=max_quadratic_d), direct,
                                   rtol=1e-9, atol=1e-9 * float(direct.abs().max()))


def test_the_quadratic_features_are_used_up_to_max_quadratic_d(monkeypatch):
    """Up to MAX_QUADRATIC_D dimensions the distances are one product with quadratic features
    (the fast path), above it they are not."""
    calls = []
    features = density.quadratic_features
    monkeypatch.setattr(density, "quadratic_features", lambda u: calls.append(u.shape[1])
                        or features(u))
    for d in (density.MAX_QUADRATIC_D, density.MAX_QUADRATIC_D + 1):
        means, chol, points = random_components(0, 3, d, 1.0)
        MahalanobisForm.build(means, chol, means.mean(0))(points)
    assert calls == [density.MAX_QUADRATIC_D]
