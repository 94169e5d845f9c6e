"""Tests of the GMM prior's torch EM (ladder/gmm_em.py) against scikit-learn's GaussianMixture."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from ladder.gmm_em import GMMFit, fit_gmm

FIELDS = {"weights_": "weights", "means_": "means", "covariances_": "covariances",
          "precisions_": "precisions"}


def mixture_data(seed: int, n: int, d: int, k: int) -> np.ndarray:
    """n points from k overlapping Gaussian blobs with random covariances in R^d."""
    rng = np.random.RandomState(seed)
    centres = 2.0 * rng.randn(k, d)
    mix = rng.randn(k, d, d) / np.sqrt(d) + 0.3 * np.eye(d)
    labels = rng.randint(k, size=n)
    return centres[labels] + np.einsum("nij,nj->ni", mix[labels], rng.randn(n, d))


def random_start(seed: int, d: int, k: int) -> dict[str, np.ndarray]:
    """Random weights, means and symmetric positive-definite precisions."""
    rng = np.random.RandomState(seed + 1)
    a = rng.randn(k, d, d)
    precisions = a @ a.transpose(0, 2, 1) / d + 0.5 * np.eye(d)
    return {"weights_init": rng.dirichlet(np.ones(k)), "means_init": 2.0 * rng.randn(k, d),
            "precisions_init": 0.5 * (precisions + precisions.transpose(0, 2, 1))}


def both(X: np.ndarray, k: int, start: dict[str, np.ndarray], **kw) -> tuple[GaussianMixture,
                                                                             GMMFit]:
    """scikit-learn's fit and ours from the same start, their ConvergenceWarnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = GaussianMixture(k, covariance_type="full", **start, **kw).fit(X)
        warm = {name.removesuffix("_init"): torch.from_numpy(v) for name, v in start.items()}
        ours = fit_gmm(torch.from_numpy(X), k, **warm, **kw)
    return sk, ours


def assert_same_fit(sk: GaussianMixture, ours: GMMFit, rtol: float = 1e-8) -> None:
    assert (ours.n_iter, ours.converged) == (sk.n_iter_, sk.converged_)
    for sk_name, name in FIELDS.items():  # relative to each entry, or to the array's scale near 0
        want = getattr(sk, sk_name)
        np.testing.assert_allclose(getattr(ours, name).numpy(), want, rtol=rtol,
                                   atol=rtol * np.abs(want).max(), err_msg=name)
    np.testing.assert_allclose(ours.lower_bounds, sk.lower_bounds_, rtol=rtol, atol=0)


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**16), d=st.integers(1, 4), k=st.integers(1, 5),
       extra=st.integers(0, 200), max_iter=st.integers(1, 100))
def test_warm_started_fit_equals_sklearn(seed, d, k, extra, max_iter):
    X = mixture_data(seed, 20 * k + extra, d, k)
    sk, ours = both(X, k, random_start(seed, d, k), max_iter=max_iter)
    assert_same_fit(sk, ours)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cold_start_equals_sklearn_with_the_same_random_state(seed):
    X = mixture_data(seed, 400, 3, 4)
    sk, ours = both(X, 6, {}, random_state=seed, max_iter=200)
    assert sk.n_iter_ > 5  # a fit with some iterations to follow
    assert_same_fit(sk, ours)


def test_cold_start_depends_on_the_random_state():
    X = torch.from_numpy(mixture_data(0, 400, 3, 4))
    a, b = (fit_gmm(X, 6, random_state=s, max_iter=200) for s in (0, 1))
    assert not torch.allclose(a.means, b.means)


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 2**16), d=st.integers(1, 4), k=st.integers(1, 3))
def test_the_lower_bound_never_decreases(seed, d, k):
    """EM's monotonicity, with the exact M-step (reg_covar = 0, as scikit-learn's own test; so at
    most as many components as blobs, none of which collapses)."""
    X = torch.from_numpy(mixture_data(seed, 300, d, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = fit_gmm(X, k, tol=0.0, reg_covar=0.0, max_iter=30, random_state=seed)
    bounds = np.array(fit.lower_bounds)
    assert fit.n_iter == len(bounds) == 30 and not fit.converged
    assert (np.diff(bounds) >= -1e-10 * np.abs(bounds[1:])).all(), np.diff(bounds).min()


def test_reaching_max_iter_warns():
    X = torch.from_numpy(mixture_data(0, 200, 2, 3))
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        fit = fit_gmm(X, 3, max_iter=1, random_state=0)
    assert (fit.n_iter, fit.converged) == (1, False)


def good_start(d: int = 2, k: int = 3) -> dict[str, torch.Tensor]:
    return {name.removesuffix("_init"): torch.from_numpy(v)
            for name, v in random_start(0, d, k).items()}


@pytest.mark.parametrize(("X", "kwargs", "match"), [
    (torch.zeros(2, 2), {}, "needs at least as many points"),
    (torch.zeros(5), {}, "2-D"),
    (torch.ones(10, 2).index_put_((torch.tensor(3), torch.tensor(1)), torch.tensor(float("nan"))),
     {}, "NaN"),
    (torch.full((10, 2), float("inf")), {}, "infinity"),
    (torch.randn(10, 2), {"max_iter": 0}, "max_iter"),
    (torch.randn(10, 2), {"weights": good_start()["weights"]}, "together"),
    (torch.randn(10, 2), {**good_start(), "weights": torch.tensor([0.5, 0.6, -0.1])}, "sum to 1"),
    (torch.randn(10, 2), {**good_start(), "means": torch.zeros(3, 3)}, "shape"),
    (torch.randn(10, 2), {**good_start(), "precisions": -torch.eye(2).repeat(3, 1, 1)},
     "positive definite"),
])
def test_bad_input_raises_a_clear_value_error(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_gmm(X, 3, **kwargs)


def test_collapsed_components_raise_a_value_error():
    X = torch.zeros(10, 2, dtype=torch.float64)  # every covariance is 0 without reg_covar
    with pytest.raises(ValueError, match="increase reg_covar"):
        fit_gmm(X, 2, reg_covar=0.0, random_state=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_equals_the_cpu_fit():
    X = torch.from_numpy(mixture_data(0, 2000, 4, 5))
    start = good_start(4, 6)
    cpu = fit_gmm(X, 6, **start, max_iter=200)
    gpu = fit_gmm(X.cuda(), 6, **{n: v.cuda() for n, v in start.items()}, max_iter=200)
    assert gpu.means.device.type == "cuda" and (gpu.n_iter, gpu.converged) == (cpu.n_iter,
                                                                               cpu.converged)
    for name in FIELDS.values():
        torch.testing.assert_close(getattr(gpu, name).cpu(), getattr(cpu, name), rtol=1e-8,
                                   atol=1e-10)


def test_an_infinite_covariance_raises_a_value_error():
    """A covariance that overflows to infinity has the Cholesky factor inf (no LAPACK error); as
    scikit-learn (scipy's finiteness check), the fit refuses it rather than return it."""
    X = torch.linspace(-1e160, 1e160, 50, dtype=torch.float64)[:, None]  # x^2 overflows
    start = {"weights": torch.ones(1, dtype=torch.float64), "means": torch.zeros(1, 1),
             "precisions": torch.full((1, 1, 1), 1e-300, dtype=torch.float64)}  # x^2 / 1e300 stays finite
    with pytest.raises(ValueError, match="increase reg_covar"):
        fit_gmm(X, 1, max_iter=1, **start)
