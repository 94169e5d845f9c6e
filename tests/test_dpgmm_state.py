"""Tests of the DP-GMM's persistence: ladder/dpgmm_state.py (through DPGMM.state_dict and
DPGMM.load_state_dict)."""

from __future__ import annotations

import io
import math

import pytest
import torch
from conftest import blobs, quiet

from ladder.dpgmm import DPGMM

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "mean_precision_",
         "degrees_of_freedom_")


def test_state_dict_round_trip_through_weights_only_load():
    X = blobs(300, 2, 4, seed=8)
    m = DPGMM.paper_prior(2, n_components=6, random_state=0, warm_start=True, max_iter=3)
    quiet(m, X)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    new = DPGMM.paper_prior(2, n_components=6)
    new.load_state_dict(state)
    assert new.is_fitted and new.warm_start and new.max_iter == 3
    assert new.weight_concentration_prior == 0.1
    for name in ATTRS:
        assert torch.equal(getattr(new, name), getattr(m, name))
    t = torch.from_numpy(X[:20]).float()
    for kind in ("bound", "plugin", "predictive"):
        assert torch.equal(new.log_prob(t, kind), m.log_prob(t, kind))
    assert new.lower_bounds_ == m.lower_bounds_ and new.n_iter_ == m.n_iter_
    # the warm start continues identically from the restored state
    quiet(m, X)
    quiet(new, X)
    assert torch.equal(new.means_, m.means_)
    unfitted = DPGMM(n_components=4)
    unfitted.load_state_dict(DPGMM(n_components=4, tol=0.5).state_dict())
    assert not unfitted.is_fitted and unfitted.tol == 0.5


def test_load_state_dict_rejects_the_wrong_state():
    X = blobs(100, 2, 2, seed=9)
    state = DPGMM(n_components=3, random_state=0).fit(X).state_dict()
    with pytest.raises(ValueError, match="n_components=3"):
        DPGMM(n_components=4).load_state_dict(state)
    with pytest.raises(ValueError, match="n_features=2"):
        DPGMM.paper_prior(3, n_components=3).load_state_dict(state)
    with pytest.raises(ValueError, match="not a DPGMM state_dict"):
        DPGMM(n_components=3).load_state_dict({"means_": torch.zeros(3, 2)})
    bad = {**state, "fitted": {**state["fitted"], "covariances_": torch.zeros(3, 2, 3)}}
    with pytest.raises(ValueError, match="covariances_ must have shape"):
        DPGMM(n_components=3).load_state_dict(bad)


@pytest.fixture(scope="module")
def saved_state() -> dict:
    X = blobs(100, 2, 2, seed=9)
    return DPGMM(n_components=3, random_state=0, max_iter=20).fit(X).state_dict()


def _set(part: str, key: str, value):  # noqa: ANN202 - a state mutation for the table below
    def mutate(state: dict) -> None:
        state[part][key] = value(state[part][key]) if callable(value) else value
    return mutate


def _drop(part: str, key: str):  # noqa: ANN202
    return lambda state: state[part].pop(key)


def _entry(name: str, index: tuple, value: float):  # noqa: ANN202
    def mutate(state: dict) -> None:
        state["fitted"][name] = state["fitted"][name].clone()
        state["fitted"][name][index] = value
    return mutate


@pytest.mark.parametrize("mutate,match", [
    (_drop("fitted", "means_"), r"'fitted' lacks \['means_'\]"),
    (_set("fitted", "extra_", 1.0), r"'fitted' has unknown keys \['extra_'\]"),
    (_drop("hyper", "tol"), r"'hyper' lacks \['tol'\]"),
    (lambda s: s.__setitem__("fitted", [1, 2]), "'fitted' must be a dict, got list"),
    (_set("hyper", "tol", -1.0), "'hyper': tol must be a finite number >= 0"),
    (_set("hyper", "mean_prior", {"a": 1}), "'hyper': mean_prior must be an array of numbers"),
    (_set("hyper", "mean_prior", torch.zeros(3)), "priors of 3 features but the fitted means_ "
                                                  "have 2"),
    (_set("fitted", "means_", [[0.0, 0.0]] * 3), "means_ must be a floating tensor, got list"),
    (_set("fitted", "means_", lambda m: m.long()), "means_ must be a floating tensor, got "
                                                   "torch.int64"),
    (_set("fitted", "covariances_", torch.zeros(3, 2, 3)), r"covariances_ must have shape "
                                                           r"\(3, 2, 2\)"),
    (_set("fitted", "mean_prior_", torch.zeros(3)), r"mean_prior_ must have shape \(2,\)"),
    (_entry("means_", (1, 0), math.nan), "means_ contains NaN or infinity"),
    (_entry("covariances_", (0, 1, 1), math.inf), "covariances_ contains NaN or infinity"),
    (_entry("precisions_cholesky_", (2, 0, 0), math.nan), "precisions_cholesky_ contains NaN"),
    (_entry("covariances_", (1, 0, 0), -1.0), r"covariances_ is not positive definite "
                                              r"\(components \[1\]\)"),
    (_entry("covariances_", (2, 0, 1), 0.123), r"covariances_ is not symmetric \(components "
                                               r"\[2\]\)"),
    (_set("fitted", "covariance_prior_", -torch.eye(2, dtype=torch.float64)),
     "covariance_prior_ is not positive definite"),
    (_entry("precisions_cholesky_", (0, 1, 1), -0.5), "precisions_cholesky_ must be upper "
                                                      "triangular with a positive diagonal"),
    (_entry("precisions_cholesky_", (0, 1, 0), 0.5), "upper triangular"),
    (_entry("degrees_of_freedom_", (1,), 0.5), "degrees_of_freedom_ must be > 1 everywhere, got "
                                               "0.5 at component 1"),
    (_entry("mean_precision_", (0,), 0.0), "mean_precision_ must be > 0"),
    (_entry("weight_concentration_b", (2,), -1.0), "weight_concentration_b must be > 0"),
    (_set("fitted", "degrees_of_freedom_prior_", math.nan), "degrees_of_freedom_prior_ must be a "
                                                            "finite number > 1"),
    (_set("fitted", "weight_concentration_prior_", "0.1"), "weight_concentration_prior_ must be"),
    (_set("fitted", "lower_bound_", None), "lower_bound_ must be a number below inf, got None"),
    (_set("fitted", "lower_bounds_", [1.0, math.nan]), "lower_bounds_ must be a list of finite"),
    (_set("fitted", "converged_", "yes"), "converged_ must be a bool"),
    (_set("fitted", "n_iter_", -1), "n_iter_ must be an int >= 0"),
])
def test_a_damaged_state_is_refused_in_one_line(saved_state, mutate, match):
    """A damaged fitted state (e.g. in a checkpoint) fails on load with one line that names the
    entry, and the DPGMM it was loaded into keeps its own fit."""
    state = {**saved_state, "hyper": dict(saved_state["hyper"]),
             "fitted": dict(saved_state["fitted"])}
    mutate(state)
    target = DPGMM(n_components=3, random_state=1, max_iter=5)
    quiet(target, blobs(50, 2, 2, seed=1))
    before = target.means_.clone()
    with pytest.raises(ValueError, match=match) as err:
        target.load_state_dict(state)
    assert "\n" not in str(err.value) and "not loaded" in str(err.value)
    assert torch.equal(target.means_, before)


def test_edge_states_that_are_valid_load():
    """A fit with max_iter=0 (lower_bound_ -inf, no bounds) and a float32 fit both round-trip."""
    X = blobs(100, 2, 2, seed=3)
    for model in (quiet(DPGMM(n_components=3, random_state=0, max_iter=0), X),
                  DPGMM(n_components=3, random_state=0, dtype=torch.float32).fit(X)):
        new = DPGMM(n_components=3)
        new.load_state_dict(model.state_dict())
        assert new.lower_bound_ == model.lower_bound_ and new.dtype == model.dtype
        assert torch.equal(new.covariances_, model.covariances_)


