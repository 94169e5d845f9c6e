"""Tests of the CAVI updates and the bound of Eq (6): ladder/dpgmm_cavi.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blobs, quiet
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.dpgmm import DPGMM
from ladder.dpgmm_cavi import (
    ConjugatePrior,
    Posterior,
    break_sticks,
    coordinate_ascent,
    elbo,
    expected_log_likelihood,
    expected_weights,
    log_rho,
    m_step,
    responsibilities,
    sufficient_statistics,
)
from ladder.dpgmm_init import initial_responsibilities

BEFORE_SPLIT = Path(__file__).parent / "data" / "dpgmm_before_split.pt"
# the fits whose results tests/data/dpgmm_before_split.pt holds, made by the packed implementation
# (log rho and the statistics as products with quadratic features) before ladder/dpgmm.py was split
# into these modules
CASES = {
    "2d_paper_reg0": (blobs(500, 2, 5, 1), dict(paper=2, n_components=12, reg_covar=0.0,
                                                 random_state=1, max_iter=300)),
    "8d_default": (blobs(400, 8, 4, 3), dict(n_components=8, random_state=0)),
    "10d_default": (blobs(300, 10, 3, 5), dict(n_components=6, random_state=0)),
}


def paper_prior(d: int, alpha0: float = 0.1) -> ConjugatePrior:
    return ConjugatePrior(alpha0, torch.zeros(d, dtype=torch.float64), 1.0, float(d),
                 torch.eye(d, dtype=torch.float64))


def random_start(X: torch.Tensor, K: int, seed: int, prior: ConjugatePrior) -> Posterior:
    gen = torch.Generator().manual_seed(seed)
    return m_step(sufficient_statistics(X, initial_responsibilities(X, K, "random", gen)), prior,
                  0.0)


@pytest.mark.parametrize("case", list(CASES))
def test_fits_equal_the_packed_implementation_before_the_split(case):
    """Same iterations and, in float64, the same fitted mixture, bound and log densities (and
    gradient) as the implementation with packed quadratic features, to a relative 1e-10."""
    want = torch.load(BEFORE_SPLIT, weights_only=True)[case]
    X, kw = CASES[case]
    kw = dict(kw)
    d = kw.pop("paper", None)
    m = quiet(DPGMM.paper_prior(d, **kw) if d else DPGMM(**kw), X)
    assert len(m.lower_bounds_) == len(want["lower_bounds_"])
    bounds = torch.tensor(m.lower_bounds_, dtype=torch.float64)
    torch.testing.assert_close(bounds, want["lower_bounds_"], rtol=1e-10, atol=0)
    for name in ("weights_", "means_", "covariances_"):
        torch.testing.assert_close(getattr(m, name), want[name], rtol=1e-10, atol=1e-12)
    gen = torch.Generator().manual_seed(0)
    t = torch.from_numpy(X[::7]) + 0.3 * torch.randn(len(X[::7]), X.shape[1], generator=gen,
                                                     dtype=torch.float64)
    for kind in ("bound", "plugin", "predictive"):
        torch.testing.assert_close(m.log_prob(t, kind), want[f"lp_{kind}"], rtol=1e-10, atol=0)
    t.requires_grad_(True)
    m.log_prob(t, "bound").sum().backward()
    torch.testing.assert_close(t.grad, want["grad_bound"], rtol=1e-9, atol=1e-12)


data = st.tuples(st.integers(0, 2**16), st.integers(2, 60), st.integers(1, 4), st.integers(1, 8),
                 st.floats(-2.0, 2.0))  # seed, N, d, K, log10 of the data's scale


def random_data(seed: int, n: int, d: int, scale: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, d, generator=gen, dtype=torch.float64) * 3
    X = centres[torch.randint(3, (n,), generator=gen)] + torch.randn(n, d, generator=gen,
                                                                     dtype=torch.float64)
    return X * 10.0 ** scale


@settings(max_examples=25, deadline=None)
@given(data)
def test_the_bound_never_decreases_over_cavi_iterations(args):
    """Every CAVI update maximises L exactly over its factor (reg_covar = 0), so on any data, from
    any start, L(t; xi) never decreases (up to float64 rounding of |L|)."""
    seed, n, d, K, scale = args
    X = random_data(seed, n, d, scale)
    prior = paper_prior(d)
    run = coordinate_ascent(X, random_start(X, K, seed, prior), prior, reg_covar=0.0,
                            max_iter=15, tol=0.0, per_point=False, previous_bound=-np.inf)
    bounds = np.array(run.bounds)
    assert len(bounds) == 15 and np.isfinite(bounds).all()
    assert (np.diff(bounds) >= -1e-9 * np.abs(bounds[1:])).all(), np.diff(bounds).min()


@settings(max_examples=25, deadline=None)
@given(data)
def test_responsibilities_are_a_distribution_and_the_entropy_is_theirs(args):
    """Each row of r sums to 1 with r >= 0; the entropy returned is -sum r log r; the bound's data
    term from the statistics (Bishop 10.71-10.72) is sum r log rho."""
    seed, n, d, K, scale = args
    X = random_data(seed, n, d, scale)
    prior = paper_prior(d)
    q = random_start(X, K, seed, prior)
    rho = log_rho(X, q)
    resp, entropy = responsibilities(rho)
    assert (resp >= 0).all()
    torch.testing.assert_close(resp.sum(1), torch.ones(n, dtype=torch.float64))
    direct = -torch.xlogy(resp, resp).sum()
    torch.testing.assert_close(entropy, direct, rtol=1e-9, atol=1e-9)
    stats = sufficient_statistics(X, resp)
    direct_data = (resp * rho).sum()
    torch.testing.assert_close(expected_log_likelihood(stats, q), direct_data, rtol=1e-9,
                               atol=1e-8 * float(rho.abs().max()))


def test_the_updates_are_coordinate_maximisers():
    """Moving the sticks or the Normal-Wishart factors away from the M-step's values, with the
    responsibilities fixed, lowers the bound; so does another r than the E-step's."""
    X = torch.from_numpy(blobs(200, 2, 3, seed=5))
    prior = paper_prior(2)
    q = random_start(X, 5, 0, prior)
    resp, entropy = responsibilities(log_rho(X, q))
    stats = sufficient_statistics(X, resp)
    best = m_step(stats, prior, 0.0)
    top = float(elbo(stats, entropy, best, prior))
    for field in ("g1", "g2", "beta", "nu"):
        for factor in (0.9, 1.1):
            moved = Posterior(**{**best.__dict__, field: getattr(best, field) * factor})
            assert float(elbo(stats, entropy, moved, prior)) < top, (field, factor)
    moved = Posterior(**{**best.__dict__, "m": best.m + 0.05})
    assert float(elbo(stats, entropy, moved, prior)) < top
    optimal, optimal_entropy = responsibilities(log_rho(X, best))
    top = float(elbo(sufficient_statistics(X, optimal), optimal_entropy, best, prior))
    other = torch.softmax(torch.log(optimal + 1e-3) + torch.randn(200, 5, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(1)), 1)
    other_entropy = -torch.xlogy(other, other).sum()
    assert float(elbo(sufficient_statistics(X, other), other_entropy, best, prior)) < top


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 30), st.floats(0.01, 100.0))
def test_break_sticks_shares_out_the_stick(seed, M, alpha):
    """w_m = v_m prod_{j<m} (1 - v_j) (Sec 3.2): the weights and what is left of the stick sum to
    1, and E_q[w] is the stick breaking of E_q[v]."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    v = torch.distributions.Beta(1.0, alpha).sample((M,)).double()
    w = break_sticks(v)
    torch.testing.assert_close(w.sum() + torch.prod(1 - v), torch.tensor(1.0, dtype=v.dtype))
    expected = [float(v[m] * torch.prod(1 - v[:m])) for m in range(M)]
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-12)
    g1, g2 = 1.0 + torch.rand(M, generator=gen, dtype=torch.float64), torch.full(
        (M,), alpha, dtype=torch.float64)
    q = Posterior(g1, g2, *(None,) * 5)
    mean = break_sticks(g1 / (g1 + g2))
    torch.testing.assert_close(expected_weights(q), mean / mean.sum())
