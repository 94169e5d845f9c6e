"""Tests of the three log densities of a fitted DP-GMM and their fast paths:
ladder/dpgmm_log_prob.py and ladder/dpgmm_density.py."""

from __future__ import annotations

import pytest
import torch
from conftest import quiet
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder import dpgmm_log_prob
from ladder.dpgmm import DPGMM
from ladder.dpgmm_log_prob import component_log_prob, density_tables
from ladder.numerics import logsumexp


def test_float32_log_prob_is_accurate_for_training():
    """log_prob of float32 points stays within float32 input rounding of the float64 result, in
    both forms of the Mahalanobis distance (quadratic features up to MAX_QUADRATIC_D = 32,
    Cholesky above)."""
    torch.manual_seed(0)
    for d in (2, 8, 33):
        X = torch.cat([torch.randn(2000, d) * 0.2 - 2, torch.randn(2000, d) * 0.05 + 5]).double()
        g = DPGMM.paper_prior(d, n_components=10, random_state=0).fit(X)
        t = X[::5] + 0.3 * torch.randn_like(X[::5])
        for kind in ("bound", "plugin", "predictive"):
            exact = g.log_prob(t, kind)
            single = g.log_prob(t.float(), kind).double()
            assert ((single - exact).abs() / exact.abs().clamp_min(1.0)).max() < 5e-5
            form = density_tables(g.posterior, torch.float64, t.device).distances
            both = [form(t, max_quadratic_d=q) for q in (0, 64)]
            torch.testing.assert_close(both[0], both[1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["bound", "plugin"])
@pytest.mark.parametrize("d", [2, 33])
def test_fused_log_prob_matches_autograd_through_the_components(kind, d):
    """The training kinds' fused path (hand-written gradient) gives the values and gradients of
    autograd through the per-component terms, in float32 too, with tight components whose
    quadratic form cancels, in both forms of the distances (up to MAX_QUADRATIC_D and above)."""
    torch.manual_seed(1)
    X = torch.cat([torch.randn(3000, d) * 0.01 + 4, torch.randn(3000, d) * 0.5 - 1]).double()
    g = DPGMM.paper_prior(d, n_components=10, random_state=0).fit(X)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-4)):
        t = (X[::20] + 0.02 * torch.randn_like(X[::20])).to(dtype).reshape(5, -1, d)
        fused_t, plain_t = t.clone().requires_grad_(True), t.clone().requires_grad_(True)
        fused = g.log_prob(fused_t, kind)
        plain = logsumexp(component_log_prob(plain_t, density_tables(g.posterior, dtype, t.device),
                                            kind), -1)
        assert fused.dtype == dtype and fused.shape == t.shape[:-1]
        torch.testing.assert_close(fused, plain, rtol=tol, atol=tol)
        weights = torch.rand(fused.shape, dtype=dtype)
        (fused * weights).sum().backward()
        (plain * weights).sum().backward()
        scale = plain_t.grad.abs().max()
        torch.testing.assert_close(fused_t.grad / scale, plain_t.grad / scale, rtol=tol, atol=tol)


@pytest.mark.parametrize("d", [2, 32, 33])
def test_the_training_kinds_take_the_fused_path_in_any_dimension(monkeypatch, d):
    """"bound" and "plugin" use the fused log-sum-exp (hand-written gradient) for speed in either
    form of the distances, below and above MAX_QUADRATIC_D; "predictive" never does."""
    calls = []
    apply = dpgmm_log_prob.QuadraticLogSumExp.apply
    monkeypatch.setattr(dpgmm_log_prob.QuadraticLogSumExp, "apply",
                        lambda *args: calls.append(1) or apply(*args))
    X = torch.randn(200, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    g = quiet(DPGMM.paper_prior(d, n_components=3, random_state=0, max_iter=5), X)
    for kind in ("bound", "plugin", "predictive"):
        calls.clear()
        g.log_prob(X[:10], kind)
        assert calls == ([1] if kind != "predictive" else []), kind


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 10), st.integers(1, 5),
       st.sampled_from(["bound", "plugin", "predictive"]))
def test_log_prob_is_the_logsumexp_of_the_component_terms(seed, d, K, kind):
    """On random fits, the fast log_prob equals the log-sum-exp of the per-component terms to
    float64 rounding."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(60, d, generator=gen, dtype=torch.float64) * 2
    g = quiet(DPGMM.paper_prior(d, n_components=K, random_state=seed, max_iter=5), X)
    t = torch.randn(30, d, generator=gen, dtype=torch.float64) * 3
    plain = logsumexp(component_log_prob(t, density_tables(g.posterior, t.dtype, t.device),
                                         kind), -1)
    torch.testing.assert_close(g.log_prob(t, kind), plain, rtol=1e-10, atol=1e-10)
