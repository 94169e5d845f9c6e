"""Tests of the variational DP-GMM hyper prior (Sec 3.2, Eq (6)-(7)): ladder/dpgmm.py, the class
and its scikit-learn-compatible behaviour."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from conftest import blobs, quiet
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import gammaln
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture
from sklearn.mixture.tests.test_gaussian_mixture import RandomData

from ladder.dpgmm import DPGMM

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "mean_precision_",
         "degrees_of_freedom_")


def sklearn_dropped_constant(sk: BayesianGaussianMixture, n: int) -> float:
    """The terms of Eq (6) that scikit-learn's lower bound leaves out (module docstring)."""
    K, d = sk.n_components, sk.means_.shape[1]
    a0, b0, nu0 = sk.weight_concentration_prior_, sk.mean_precision_prior_, \
        sk.degrees_of_freedom_prior_
    log_b0 = (0.5 * nu0 * np.linalg.slogdet(sk.covariance_prior_)[1] - 0.5 * nu0 * d * math.log(2)
              - 0.25 * d * (d - 1) * math.log(math.pi)
              - sum(gammaln(0.5 * (nu0 - i)) for i in range(d)))
    return (K * math.log(a0) - 0.5 * n * d * math.log(2 * math.pi)
            + K * (0.5 * d * math.log(b0) + log_b0 + 0.25 * d * (d - 1) * math.log(math.pi)))


def assert_matches_sklearn(ours: DPGMM, sk: BayesianGaussianMixture, X: np.ndarray,
                           rtol: float = 1e-5) -> None:
    for name in ATTRS:  # relative to each entry, or to the array's scale near 0 (prior mean 0)
        want = getattr(sk, name)
        np.testing.assert_allclose(getattr(ours, name).cpu().numpy(), want, rtol=rtol,
                                   atol=1e-10 * np.abs(want).max(), err_msg=name)
    for a, b in zip(ours.weight_concentration_, sk.weight_concentration_, strict=True):
        np.testing.assert_allclose(a.numpy(), b, rtol=rtol, atol=0)
    np.testing.assert_allclose(ours.score_samples(X).numpy(), sk.score_samples(X), rtol=rtol)
    np.testing.assert_allclose(ours.predict_proba(X).numpy(), sk.predict_proba(X), atol=1e-8)
    assert (ours.predict(X).numpy() == sk.predict(X)).all()
    assert ours.n_iter_ == sk.n_iter_


# ------------------------------------------------------------------- scikit-learn equivalence


@pytest.mark.parametrize("d", [1, 3])
def test_fit_reproduces_sklearn_from_the_same_random_responsibilities(d):
    X = blobs(300, d, 4, seed=d)
    K, seed = 6, 7
    # scikit-learn's init_params='random': RandomState(seed).uniform(size=(N, K)), row-normalised
    resp = np.random.RandomState(seed).uniform(size=(len(X), K))
    resp /= resp.sum(1, keepdims=True)
    kw = dict(n_components=K, max_iter=25, tol=0.0, reg_covar=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = BayesianGaussianMixture(init_params="random", random_state=seed, **kw).fit(X)
    ours = quiet(DPGMM(**kw), X, init_resp=resp)
    assert_matches_sklearn(ours, sk, X)
    # the bound agrees at every iteration up to the constant scikit-learn drops
    offset = sklearn_dropped_constant(sk, len(X))
    np.testing.assert_allclose(np.array(ours.lower_bounds_) - offset, sk.lower_bounds_,
                               rtol=1e-9, atol=1e-8)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_ + offset, rel=1e-10)


def test_fit_reproduces_sklearn_kmeans_init_with_paper_priors_and_reg_covar():
    X = blobs(400, 2, 5, seed=3)
    K, seed = 8, 11
    # scikit-learn's init_params='kmeans' runs KMeans(n_init=1) on RandomState(seed)
    labels = KMeans(K, n_init=1, random_state=np.random.RandomState(seed)).fit(X).labels_
    resp = np.eye(K)[labels]
    ours = DPGMM.paper_prior(2, n_components=K, max_iter=500, tol=1e-3, tol_per_sample=False)
    sk = BayesianGaussianMixture(
        n_components=K, max_iter=500, tol=1e-3, random_state=seed, weight_concentration_prior=0.1,
        mean_prior=np.zeros(2), mean_precision_prior=1.0, degrees_of_freedom_prior=2.0,
        covariance_prior=np.eye(2)).fit(X)
    ours.fit(torch.from_numpy(X), init_resp=resp)
    assert sk.converged_ and ours.converged_
    assert_matches_sklearn(ours, sk, X)
    # reg_covar > 0 makes the M-step inexact, so scikit-learn's collapsed bound is off by about
    # reg_covar / 2 * sum_k N_k tr(E[Lambda_k]); ours is the bound itself
    slack = 1e-6 * len(X) * float(torch.linalg.matrix_norm(ours.precisions_, ord=2).max())
    assert abs(ours.lower_bound_ - sk.lower_bound_ - sklearn_dropped_constant(sk, len(X))) < slack


@pytest.mark.filterwarnings("ignore:Singular sample detected")  # Wishart draws with nu near d
def test_bound_equals_independent_monte_carlo_estimate():
    """L(t; xi) of Eq (6) at a converged fit: sum_i log sum_k rho_ik - KL(q(v) || p(v))
    - KL(q(mu, Lambda) || p(mu, Lambda)), the KLs estimated with torch.distributions."""
    X = blobs(200, 2, 3, seed=5)
    m = DPGMM(n_components=4, tol=1e-13, max_iter=2000, reg_covar=0.0, random_state=0).fit(X)
    g = torch.Generator().manual_seed(0)
    S = 40000
    torch.manual_seed(0)
    g1, g2 = m.weight_concentration_
    v = torch.distributions.Beta(g1, g2).sample((S,))
    kl_v = (torch.distributions.Beta(g1, g2).log_prob(v)
            - torch.distributions.Beta(torch.ones_like(g1), torch.full_like(g2, 1 / 4)).log_prob(v))
    nu, prec = m.degrees_of_freedom_, m.precisions_
    q_lam = torch.distributions.Wishart(nu, covariance_matrix=prec / nu[:, None, None])
    lam = q_lam.sample((S,))
    # mu | Lambda ~ N(m_k, (beta_k Lambda)^-1), drawn with the precision's Cholesky factor
    chol = torch.linalg.cholesky(m.mean_precision_[:, None, None] * lam)
    z = torch.randn(S, 4, 2, 1, generator=g, dtype=lam.dtype)
    mu = m.means_ + torch.linalg.solve_triangular(chol.mT, z, upper=True).squeeze(-1)
    beta0, m0 = 1.0, torch.from_numpy(X.mean(0))
    cov0 = torch.from_numpy(np.cov(X.T))
    log_q = (q_lam.log_prob(lam)
             + torch.distributions.MultivariateNormal(m.means_, precision_matrix=m.mean_precision_[
            :, None, None] * lam).log_prob(mu))
    log_p = (torch.distributions.Wishart(torch.tensor(2.0), precision_matrix=cov0).log_prob(lam)
             + torch.distributions.MultivariateNormal(m0, precision_matrix=beta0 * lam
                                                      ).log_prob(mu))
    kl = (kl_v.sum(-1) + (log_q - log_p).sum(-1))
    expected = float(m.score_samples(X).sum() - kl.mean())
    err = float(kl.std() / math.sqrt(S))
    assert abs(m.lower_bound_ - expected) < 5 * err + 1e-6, (m.lower_bound_, expected, err)


# ---------------------------------------------------------------------------- CAVI behaviour


@pytest.mark.parametrize("reg_covar", [0.0, 1e-6])
@pytest.mark.parametrize("init_params", ["kmeans", "random", "k-means++", "random_from_data"])
def test_bound_never_decreases(init_params, reg_covar):
    X = blobs(300, 3, 5, seed=1)
    m = quiet(DPGMM(n_components=10, max_iter=60, tol=0.0, init_params=init_params,
                    reg_covar=reg_covar, random_state=2), X)
    bounds = np.array(m.lower_bounds_)
    assert len(bounds) == 60 and np.isfinite(bounds).all()
    assert (np.diff(bounds) >= -1e-9 * np.abs(bounds[1:])).all(), np.diff(bounds).min()
    assert bounds[-1] > bounds[0]


def test_warm_start_continues_the_previous_fit_exactly():
    X = blobs(300, 2, 4, seed=4)
    full = quiet(DPGMM(n_components=6, max_iter=12, tol=0.0, random_state=0), X)
    half = quiet(DPGMM(n_components=6, max_iter=6, tol=0.0, random_state=0, warm_start=True), X)
    half.random_state = 123  # a warm start must not re-initialise
    quiet(half, X)
    for name in ATTRS:
        torch.testing.assert_close(getattr(half, name), getattr(full, name), rtol=1e-10, atol=0)
    assert half.lower_bounds_ == pytest.approx(full.lower_bounds_[6:], rel=1e-12)


@pytest.mark.parametrize("max_iter,calls", [(1, 45), (3, 15)])
def test_warm_start_converges_over_calls_as_sklearn(max_iter, calls):
    """scikit-learn's warm start compares a fit's first iteration with the previous fit's bound:
    on its own test set (RandomData(scale=20)), fitted again and again from the same k-means start,
    both stop being refitted at the same call, with the same n_iter_ and bound at every call."""
    X = RandomData(np.random.RandomState(0), scale=20).X["full"]
    K, seed = 4, 0
    kw = dict(n_components=K, max_iter=max_iter, tol=1e-3, reg_covar=0.0, warm_start=True)
    sk = BayesianGaussianMixture(random_state=seed, **kw)
    labels = KMeans(K, n_init=1, random_state=np.random.RandomState(seed)).fit(X).labels_
    ours = DPGMM(tol_per_sample=False, **kw)
    for call in range(1, 100):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk.fit(X)
        quiet(ours, X, init_resp=np.eye(K)[labels] if call == 1 else None)
        assert (ours.n_iter_, ours.converged_) == (sk.n_iter_, sk.converged_), call
        offset = sklearn_dropped_constant(sk, len(X))
        assert ours.lower_bound_ == pytest.approx(sk.lower_bound_ + offset, rel=1e-10)
        if sk.converged_:
            break
    assert sk.converged_ and ours.converged_ and call == calls


def test_warm_start_with_max_iter_0_keeps_the_state_and_has_no_bound():
    """scikit-learn: a fit with max_iter=0 computes no bound (lower_bound_ = -inf), so the next
    warm fit's first iteration is not converged, whatever it gives."""
    X = blobs(200, 2, 3, seed=2)
    m = DPGMM(n_components=4, random_state=0, warm_start=True, max_iter=50).fit(X)
    means = m.means_.clone()
    m.max_iter = 0
    m.fit(X)
    assert torch.equal(m.means_, means) and m.lower_bound_ == -math.inf
    assert m.n_iter_ == 0 and not m.converged_ and m.lower_bounds_ == []
    m.max_iter = 1
    quiet(m, X)
    assert m.n_iter_ == 1 and not m.converged_ and math.isfinite(m.lower_bound_)
    quiet(m, X)
    assert m.converged_  # the previous call's bound is now finite and equal to this one


def test_warm_refit_on_fresh_samples_is_cheap():
    """The trainer's refit at the end of an epoch: new samples from the same distribution."""
    m = DPGMM.paper_prior(2, n_components=20, max_iter=500, warm_start=True, random_state=0)
    m.fit(blobs(2048, 2, 6, seed=0))
    cold_iters = m.n_iter_
    m.fit(blobs(2048, 2, 6, seed=0)[::-1] + 0.01)
    # the first iteration is compared with the previous fit's bound, so one can be enough
    assert m.converged_ and 1 <= m.n_iter_ < max(cold_iters, 2)
    assert m.n_iter_ <= 30


def test_tol_per_sample_stops_earlier_than_the_total():
    X = blobs(2000, 2, 4, seed=8)
    per_sample = DPGMM(n_components=10, random_state=0, max_iter=1000).fit(X)
    total = DPGMM(n_components=10, random_state=0, max_iter=1000, tol_per_sample=False).fit(X)
    assert per_sample.converged_ and total.converged_
    assert per_sample.n_iter_ < total.n_iter_
    assert abs(per_sample.lower_bounds_[-1] - per_sample.lower_bounds_[-2]) < 1e-3 * len(X)


def test_n_init_keeps_the_best_bound():
    X = blobs(300, 2, 6, seed=9)
    one = quiet(DPGMM(n_components=8, n_init=1, init_params="random", random_state=3), X)
    three = quiet(DPGMM(n_components=8, n_init=3, init_params="random", random_state=3), X)
    assert three.lower_bound_ >= one.lower_bound_


def test_fit_predict_matches_predict_and_recovers_blobs():
    X = blobs(600, 2, 3, seed=10, spread=10.0)
    m = DPGMM(n_components=10, random_state=0, max_iter=500)
    labels = m.fit_predict(X)
    assert torch.equal(labels, m.predict(X))
    assert len(m.active_components(0.05)) == 3
    truth = np.random.RandomState(10)
    truth.randn(3, 2)
    true_labels = truth.randint(3, size=600)
    pairs = set(zip(true_labels.tolist(), labels.tolist(), strict=True))
    assert len(pairs) == 3 and len(set(labels.tolist())) == 3  # a one-to-one relabelling


# ------------------------------------------------------------------------------ degeneracies


def assert_finite(m: DPGMM, X) -> None:
    for name in ATTRS:
        assert torch.isfinite(getattr(m, name)).all(), name
    assert math.isfinite(m.lower_bound_)
    for kind in ("bound", "plugin", "predictive"):
        assert torch.isfinite(m.log_prob(torch.as_tensor(X, dtype=torch.float64), kind)).all()
    assert torch.isfinite(m.sample(50)[0]).all()


@pytest.mark.parametrize("init_params", ["kmeans", "random", "k-means++", "random_from_data"])
def test_fewer_points_than_components(init_params):
    X = blobs(5, 2, 2, seed=0)
    m = quiet(DPGMM.paper_prior(2, n_components=10, init_params=init_params, random_state=0), X)
    assert_finite(m, X)
    assert m.weights_.sum() == pytest.approx(1.0)


def test_duplicated_points_and_identical_points():
    X = np.repeat(blobs(4, 3, 2, seed=1), 25, axis=0)
    m = quiet(DPGMM(n_components=10, random_state=0), X)
    assert_finite(m, X)
    same = np.ones((30, 2))
    m = quiet(DPGMM.paper_prior(2, n_components=5, random_state=0), same)
    assert_finite(m, same)
    with pytest.raises(ValueError, match="singular"):
        DPGMM(n_components=5).fit(same)  # the data covariance cannot be the prior


def test_a_singular_data_covariance_is_refused_whatever_its_rounding():
    """A constant feature or collinear features make the data-dependent covariance_prior
    singular; rounding leaves about half of them positive definite by a last bit (they used to
    be fitted, on rounding errors), and all are refused. Valid data at mixed scales is not."""
    for value in np.linspace(-7.3, 9.1, 40):
        for column in ("constant", "collinear"):
            X = blobs(30, 2, 2, seed=1)
            X[:, 1] = value if column == "constant" else value * X[:, 0] + 0.7
            with pytest.raises(ValueError, match="singular"):
                DPGMM(n_components=2).fit(X)
    X = blobs(30, 2, 2, seed=1) * np.array([1e-6, 1e6]) + 1e3
    assert DPGMM(n_components=2, random_state=0).fit(X).is_fitted


def test_one_dimensional_data_and_single_point():
    X = blobs(200, 1, 3, seed=2)
    m = quiet(DPGMM(n_components=6, random_state=0), X)
    assert m.means_.shape == (6, 1) and m.covariances_.shape == (6, 1, 1)
    assert_finite(m, X)
    one = quiet(DPGMM.paper_prior(1, n_components=3), [[0.5]])
    assert_finite(one, [[0.5]])
    with pytest.raises(ValueError, match="at least 2 samples"):
        DPGMM(n_components=3).fit([[0.5]])


def test_components_that_lose_all_their_points_return_to_the_prior():
    X = blobs(400, 2, 2, seed=3, spread=20.0)
    m = quiet(DPGMM(n_components=20, random_state=0, max_iter=300, tol=0.0, reg_covar=0.0), X)
    n_k = m.degrees_of_freedom_ - 2.0  # nu_k = nu_0 + N_k
    empty = n_k < 0.05  # the broad leftovers keep a few thousandths of a point in the tails
    assert empty.sum() == 18 and (n_k > 100).sum() == 2
    assert_finite(m, X)
    # an emptied component's posterior returns to its prior: beta = beta_0, E[Sigma] = Sigma_0/nu_0
    torch.testing.assert_close(m.mean_precision_[empty], torch.ones_like(n_k[empty]), rtol=0.05,
                               atol=0)
    cov0 = torch.from_numpy(np.cov(X.T)) / 2.0
    torch.testing.assert_close(m.covariances_[empty], cov0.expand_as(m.covariances_[empty]),
                               rtol=1e-2, atol=0)


@pytest.mark.parametrize("scale,offset", [(1e-5, 0.0), (1e5, 1e7), (1.0, 1e6)])
def test_badly_scaled_data_is_equivariant(scale, offset):
    X = blobs(300, 2, 3, seed=4, spread=8.0)
    # reg_covar is absolute, so only reg_covar=0 is equivariant (as in scikit-learn)
    base = DPGMM(n_components=6, random_state=0, init_params="random", reg_covar=0.0).fit(X)
    moved = DPGMM(n_components=6, random_state=0, init_params="random", reg_covar=0.0).fit(
        X * scale + offset)
    assert_finite(moved, X * scale + offset)
    assert_finite(DPGMM(n_components=6, random_state=0).fit(X * scale + offset), X * scale + offset)
    torch.testing.assert_close(moved.weights_, base.weights_, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close((moved.means_ - offset) / scale, base.means_, rtol=1e-4,
                               atol=1e-6)
    assert moved.n_iter_ == base.n_iter_


def test_mixed_feature_scales():
    X = blobs(300, 2, 3, seed=5) * np.array([1e-4, 1e4])
    m = DPGMM(n_components=6, random_state=0).fit(X)
    assert_finite(m, X)
    assert m.converged_


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("X,match", [
    (np.zeros((0, 2)), "empty"),
    (np.zeros((5, 0)), "empty"),
    (np.array([[0.0, np.nan]] * 5), "NaN"),
    (np.array([[0.0, np.inf]] * 5), "NaN or infinity"),
    (np.zeros(5), "2-D"),
    (np.zeros((2, 3, 4)), "2-D"),
    (np.array([["a", "b"]]), "numeric"),
])
def test_bad_input_is_a_clear_error(X, match):
    with pytest.raises(ValueError, match=match):
        DPGMM(n_components=2).fit(X)


def test_bad_hyper_parameters_and_calls_are_clear_errors():
    for kwargs, match in [
        ({"n_components": 0}, "n_components"),
        ({"init_params": "spectral"}, "init_params"),
        ({"covariance_type": "diag"}, "full"),
        ({"weight_concentration_prior_type": "dirichlet_distribution"}, "dirichlet_process"),
        ({"tol": -1.0}, "tol"),
        ({"weight_concentration_prior": 0.0}, "weight_concentration_prior"),
        ({"mean_prior": np.zeros((2, 2))}, "mean_prior"),
        ({"covariance_prior": -np.eye(2)}, "positive definite"),
        ({"covariance_prior": np.eye(2), "mean_prior": np.zeros(3)}, "features"),
        ({"random_state": 1.5}, "random_state"),
        ({"dtype": torch.int64}, "dtype"),
    ]:
        with pytest.raises(ValueError, match=match):
            DPGMM(**kwargs)
    X = blobs(50, 2, 2)
    with pytest.raises(ValueError, match="greater than"):
        DPGMM(n_components=2, degrees_of_freedom_prior=0.5).fit(X)
    with pytest.raises(ValueError, match="3 features but this DPGMM expects 2"):
        DPGMM(n_components=2, mean_prior=np.zeros(2)).fit(blobs(50, 3, 2))
    with pytest.raises(ValueError, match="init_resp"):
        DPGMM(n_components=2).fit(X, init_resp=np.ones((50, 3)))
    with pytest.raises(ValueError, match="not fitted"):
        DPGMM(n_components=2).log_prob(torch.zeros(3, 2))
    m = DPGMM(n_components=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="expects 2"):
        m.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        m.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="kind"):
        m.log_prob(torch.zeros(4, 2), kind="elbo")
    with pytest.raises(ValueError, match="n_samples"):
        m.sample(0)
    with pytest.raises(ValueError, match="no component"):
        m.active_mixture(threshold=2.0)


# ---------------------------------------------------------------------------------- log_prob


@pytest.fixture(scope="module")
def fitted() -> tuple[DPGMM, np.ndarray]:
    X = blobs(400, 2, 4, seed=6)
    return DPGMM.paper_prior(2, n_components=8, random_state=0, max_iter=500).fit(X), X


@pytest.mark.parametrize("kind", ["bound", "plugin", "predictive"])
def test_log_prob_gradcheck(fitted, kind):
    m, _ = fitted
    t = torch.randn(2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: m.log_prob(x, kind), (t,))


def test_log_prob_kinds_match_independent_formulas(fitted):
    m, X = fitted
    t = torch.from_numpy(X[:50])
    w, mu, cov = (a.numpy() for a in (m.weights_, m.means_, m.covariances_))
    plugin = np.log(sum(w[k] * stats.multivariate_normal(mu[k], cov[k]).pdf(X[:50])
                        for k in range(len(w))))
    np.testing.assert_allclose(m.log_prob(t, "plugin").numpy(), plugin, rtol=1e-10)
    d, nu, beta = 2, m.degrees_of_freedom_.numpy(), m.mean_precision_.numpy()
    dof = nu + 1 - d
    shape = cov * ((1 + beta) * nu / (dof * beta))[:, None, None]  # L_k^-1 (Bishop 10.82)
    predictive = np.log(sum(w[k] * stats.multivariate_t(mu[k], shape[k], df=dof[k]).pdf(X[:50])
                            for k in range(len(w))))
    np.testing.assert_allclose(m.log_prob(t, "predictive").numpy(), predictive, rtol=1e-10)
    torch.testing.assert_close(m.log_prob(t, "bound"), m.score_samples(X[:50]))
    # the bound is a lower bound of the predictive density's log (Jensen, per point)
    assert (m.log_prob(t, "bound") <= m.log_prob(t, "predictive") + 1e-9).all()


@pytest.mark.parametrize("kind", ["plugin", "predictive"])
def test_normalised_kinds_integrate_to_one(fitted, kind):
    m, X = fitted
    lo, hi = X.min(0) - 15, X.max(0) + 15
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], 600), np.linspace(lo[1], hi[1], 600))
    grid = torch.from_numpy(np.stack([g0, g1], -1))
    area = (hi[0] - lo[0]) / 599 * (hi[1] - lo[1]) / 599
    mass = float(m.log_prob(grid, kind).exp().sum()) * area
    assert mass == pytest.approx(1.0, abs=2e-3 if kind == "plugin" else 2e-2)


def test_log_prob_batches_dtypes_and_devices(fitted):
    m, X = fitted
    t64 = torch.from_numpy(X[:24]).reshape(2, 3, 4, 2)
    for kind in ("bound", "plugin", "predictive"):
        out64 = m.log_prob(t64, kind)
        assert out64.shape == (2, 3, 4) and out64.dtype == torch.float64
        out32 = m.log_prob(t64.float(), kind)
        assert out32.dtype == torch.float32
        torch.testing.assert_close(out32.double(), out64, rtol=1e-5, atol=1e-4)
        assert m.log_prob(torch.zeros(0, 2), kind).shape == (0,)
    t = t64.float().requires_grad_(True)
    m.log_prob(t).sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()


def test_sample_statistics_match_the_fitted_mixture(fitted):
    m, _ = fitted
    n = 40000
    X, labels = m.sample(n)
    assert X.shape == (n, 2) and labels.shape == (n,) and X.dtype == torch.float64
    assert not torch.equal(labels, labels.sort().values)  # shuffled, not grouped by component
    X2, labels2 = m.sample(n)
    assert torch.equal(X, X2) and torch.equal(labels, labels2)  # seeded by random_state
    freq = torch.bincount(labels, minlength=m.n_components).double() / n
    se = (m.weights_ * (1 - m.weights_) / n).sqrt()
    assert ((freq - m.weights_).abs() <= 5 * se + 1e-12).all()
    mix_mean = m.weights_ @ m.means_
    diff = m.means_ - mix_mean
    mix_cov = (m.weights_[:, None, None] * (m.covariances_ + diff[:, :, None] * diff[:, None]))
    torch.testing.assert_close(X.mean(0), mix_mean, rtol=0, atol=0.05)
    torch.testing.assert_close(torch.cov(X.T), mix_cov.sum(0), rtol=0.05, atol=0.05)
    k = int(m.weights_.argmax())
    torch.testing.assert_close(torch.cov(X[labels == k].T), m.covariances_[k], rtol=0.1,
                               atol=0.02)


# ------------------------------------------------------------------------ devices and state


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices())
def test_device_round_trip(device):
    X = blobs(300, 2, 3, seed=7)
    cpu = DPGMM(n_components=5, random_state=0, init_params="random").fit(X)
    on = DPGMM(n_components=5, random_state=0, init_params="random", device=device).fit(
        torch.from_numpy(X))
    assert on.means_.device.type == device
    torch.testing.assert_close(on.means_.cpu(), cpu.means_, rtol=1e-6, atol=1e-8)
    t = torch.from_numpy(X[:10]).to(device)
    assert on.log_prob(t).device.type == device
    back = on.to("cpu")
    assert back is on and on.means_.device.type == "cpu"
    torch.testing.assert_close(on.log_prob(t.cpu()), cpu.log_prob(t.cpu()), rtol=1e-6, atol=1e-8)
    assert on.sample(5)[0].device.type == "cpu"


@pytest.mark.parametrize("d", [2, 12])  # the quadratic-feature paths (fused or not), Cholesky's
def test_log_prob_of_far_and_infinite_points_is_minus_infinity(d):
    """A point whose distance to every component overflows t's dtype (a coordinate of 3e4 in
    float16, 1e20 in float32, 1e160 in float64) or an infinite one has density 0: -inf, never NaN;
    NaN stays NaN and the other rows of the batch keep their values."""
    m = DPGMM.paper_prior(d, n_components=4, random_state=0, max_iter=20).fit(
        blobs(200, d, 3, seed=d))
    for dtype, far in ((torch.float16, 3e4), (torch.bfloat16, 1e20), (torch.float32, 1e20),
                       (torch.float32, 3e38), (torch.float64, 1e160), (torch.float64, 1e300)):
        t = torch.zeros(7, d, dtype=dtype)
        t[1, 0], t[2], t[3, -1], t[4, 0], t[6, 0] = far, -far, math.inf, -math.inf, math.nan
        t[5, 0], t[5, -1] = math.inf, -math.inf
        for kind in ("bound", "plugin", "predictive"):
            out = m.log_prob(t, kind)
            assert torch.isneginf(out[1:6]).all(), (dtype, far, kind, out)
            assert torch.isnan(out[6]) and torch.isfinite(out[0]), (dtype, kind, out)
            torch.testing.assert_close(out[:1], m.log_prob(t[:1], kind))
    # in float64 a point at 1e20 is far but its log density is finite (polynomial for the
    # predictive's Student-t)
    t = torch.zeros(2, d, dtype=torch.float64)
    t[1, 0] = 1e20
    for kind in ("bound", "plugin", "predictive"):
        out = m.log_prob(t, kind)
        assert torch.isfinite(out).all() and out[1] < out[0] - 100, (kind, out)


# -------------------------------------------------------------------- properties (hypothesis)


def degenerate_data(seed: int, n: int, d: int, log_scale: float, kind: str) -> np.ndarray:
    """n points in R^d at scale 10^log_scale (and an offset 3 times that): Gaussian, or with
    duplicated points (n // 3 distinct ones), a single point, or a constant feature."""
    rng = np.random.RandomState(seed)
    scale = 10.0 ** log_scale
    X = rng.randn(1 if kind == "single" else n, d) * scale + rng.randn(d) * 3 * scale
    if kind == "duplicates":
        X = X[rng.randint(max(1, n // 3), size=n)]
    if kind == "constant":
        X[:, rng.randint(d)] = rng.randn() * scale
    return X


def fit_or_error(model, X, **kwargs):  # noqa: ANN001, ANN201
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(X, **kwargs), None
    except ValueError as err:
        return None, str(err)


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 30), d=st.integers(1, 4),
       K=st.integers(1, 5), log_scale=st.floats(-3, 3),
       kind=st.sampled_from(["gaussian", "duplicates", "single", "constant"]),
       priors=st.sampled_from(["data", "given"]))
def test_random_fits_match_sklearn_and_log_prob_is_never_nan(seed, n, d, K, log_scale, kind,
                                                             priors):
    """From the same random responsibilities, fits of random shapes, scales and degenerate data
    give scikit-learn's weights and means, or both refuse the data, except where documented: we
    fit fewer than max(2, K) points, and we refuse a data-dependent covariance_prior that is
    singular to rounding (scikit-learn takes it, and the fit then rests on rounding errors).
    log_prob of finite or infinite points is finite or -inf, never NaN."""
    X = degenerate_data(seed, n, d, log_scale, kind)
    kw = dict(n_components=K, max_iter=5, tol=0.0, reg_covar=0.0)
    if priors == "given":
        kw["covariance_prior"] = np.eye(d) * 10.0 ** (2 * log_scale)
    resp = np.random.RandomState(seed).uniform(size=(len(X), K))
    resp /= resp.sum(1, keepdims=True)
    sk, sk_error = fit_or_error(BayesianGaussianMixture(init_params="random", random_state=seed,
                                                        **kw), X)
    ours, error = fit_or_error(DPGMM(**kw), X, init_resp=resp)
    if ours is None:
        assert sk is None or (priors == "data" and "singular" in error), error
        return
    if sk is None:
        assert len(X) < max(2, K), sk_error
    else:
        for name in ("weights_", "means_"):
            want = getattr(sk, name)
            np.testing.assert_allclose(getattr(ours, name).numpy(), want, rtol=1e-5,
                                       atol=1e-10 * np.abs(want).max(), err_msg=name)
    far = 10.0 ** (log_scale + np.array([0.0, 5.0, 20.0, 30.0]))
    t = torch.from_numpy(np.concatenate([X[:3], far[:, None] * np.ones((1, d)),
                                         -far[:, None] * np.ones((1, d))]))
    t = torch.cat([t, torch.full((2, d), math.inf), -torch.full((1, d), math.inf)])
    t[-2, :-1] = 0.0  # one infinite coordinate
    for dtype in (torch.float32, torch.float64):
        for kind_ in ("bound", "plugin", "predictive"):
            out = ours.log_prob(t.to(dtype), kind_)
            assert (torch.isfinite(out) | torch.isneginf(out)).all(), (dtype, kind_, out)
            assert torch.isneginf(out[-3:]).all(), (dtype, kind_, out)
