"""Persistence of :class:`ladder.dpgmm.DPGMM`: its state as tensors and plain Python data (safe for
``torch.load(weights_only=True)``), and the entry-by-entry check of a state before it is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ladder.dpgmm_cavi import Posterior
from ladder.dpgmm_checks import is_int, is_real, spd_problems

__all__ = ["FittedState", "damaged", "read_fitted", "read_header", "state_dict"]

STATE_FORMAT = "ladder.dpgmm.DPGMM"
STATE_VERSION = 1
HYPER = (
    "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init", "init_params",
    "weight_concentration_prior_type", "weight_concentration_prior", "mean_precision_prior",
    "mean_prior", "degrees_of_freedom_prior", "covariance_prior", "random_state", "warm_start",
    "tol_per_sample", "dtype",
)
# the posterior's fields in Posterior's order, then the priors in effect
FITTED_TENSORS = (
    "weight_concentration_a", "weight_concentration_b", "mean_precision_", "means_",
    "degrees_of_freedom_", "covariances_", "precisions_cholesky_", "mean_prior_",
    "covariance_prior_",
)
PRIOR_SCALARS = ("weight_concentration_prior_", "mean_precision_prior_",
                 "degrees_of_freedom_prior_")
FIT_LOG = ("lower_bound_", "lower_bounds_", "converged_", "n_iter_")


@dataclass(frozen=True)
class FittedState:
    """A checked fitted state, by the DPGMM attribute names it restores."""

    device: torch.device
    posterior: Posterior
    mean_prior_: Tensor
    covariance_prior_: Tensor
    weight_concentration_prior_: float
    mean_precision_prior_: float
    degrees_of_freedom_prior_: float
    lower_bound_: float
    lower_bounds_: list[float]
    converged_: bool
    n_iter_: int


def damaged(what: str) -> ValueError:
    return ValueError(f"DPGMM state {what}; the state is damaged and was not loaded: load "
                      "another copy or refit the DP-GMM")


def _check_keys(part: Any, keys: set[str], name: str) -> None:
    """``part`` of a state is a dict with exactly ``keys``; else a ValueError naming the
    difference."""
    if not isinstance(part, dict):
        raise damaged(f"{name} must be a dict, got {type(part).__name__}")
    missing, unknown = sorted(keys - set(part)), sorted(map(str, set(part) - keys))
    if missing or unknown:
        raise damaged(f"{name} " + " and ".join(
            text for text in (f"lacks {missing}" if missing else "",
                              f"has unknown keys {unknown}" if unknown else "") if text))


def state_dict(model: Any) -> dict[str, Any]:
    """A DPGMM's constructor hyper-parameters and, once fitted, xi, the priors in effect and the
    fit log."""
    hyper = {name: getattr(model, name) for name in HYPER}
    for name in ("mean_prior", "covariance_prior"):
        hyper[name] = None if hyper[name] is None else hyper[name].clone()
    hyper["dtype"] = str(model.dtype).replace("torch.", "")
    for name in ("n_components", "max_iter", "n_init", "random_state"):
        hyper[name] = None if hyper[name] is None else int(hyper[name])
    for name in ("tol", "reg_covar", "weight_concentration_prior", "mean_precision_prior",
                 "degrees_of_freedom_prior"):
        hyper[name] = None if hyper[name] is None else float(hyper[name])
    hyper["warm_start"], hyper["tol_per_sample"] = bool(model.warm_start), bool(
        model.tol_per_sample)
    fitted = None
    if model.is_fitted:
        tensors = (*model.weight_concentration_, *(getattr(model, name)
                                                   for name in FITTED_TENSORS[2:]))
        fitted = {
            **{name: t.detach().clone() for name, t in zip(FITTED_TENSORS, tensors, strict=True)},
            **{name: float(getattr(model, name)) for name in PRIOR_SCALARS},
            "lower_bound_": float(model.lower_bound_),
            "lower_bounds_": [float(b) for b in model.lower_bounds_],
            "converged_": bool(model.converged_), "n_iter_": int(model.n_iter_),
        }
    return {"format": STATE_FORMAT, "version": STATE_VERSION, "hyper": hyper, "fitted": fitted}


def read_header(state: Any, n_components: int) -> tuple[dict[str, Any], Any]:
    """(hyper, fitted) of a state for a DPGMM with ``n_components``, after checking its format,
    version and hyper keys."""
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError("not a DPGMM state_dict (missing format key "
                         f"{STATE_FORMAT!r}); pass the dict DPGMM.state_dict() returned")
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"DPGMM state version {state.get('version')!r} is not supported "
                         f"(expected {STATE_VERSION})")
    hyper, fitted = state.get("hyper"), state.get("fitted")
    _check_keys(hyper, set(HYPER), "'hyper'")
    if hyper["n_components"] != n_components:
        raise ValueError(f"the state has n_components={hyper['n_components']} but this DPGMM "
                         f"has {n_components}; build it with the state's value")
    return hyper, fitted


def _check_tensors(fitted: dict[str, Any], K: int, prior_features: int | None) -> int:
    """The fitted tensors' types and shapes; returns d."""
    for name in FITTED_TENSORS:
        value = fitted[name]
        if not isinstance(value, Tensor) or not value.is_floating_point():
            got = value.dtype if isinstance(value, Tensor) else type(value).__name__
            raise damaged(f"entry {name} must be a floating tensor, got {got}")
    means = fitted["means_"]
    if means.ndim != 2 or means.shape[0] != K or means.shape[1] == 0:
        raise damaged(f"entry means_ must have shape ({K}, d), got {tuple(means.shape)}")
    d = means.shape[1]
    shapes = {"weight_concentration_a": (K,), "weight_concentration_b": (K,),
              "mean_precision_": (K,), "degrees_of_freedom_": (K,),
              "covariances_": (K, d, d), "precisions_cholesky_": (K, d, d),
              "mean_prior_": (d,), "covariance_prior_": (d, d)}
    for name, shape in shapes.items():
        if tuple(fitted[name].shape) != shape:
            raise damaged(f"entry {name} must have shape {shape}, got "
                          f"{tuple(fitted[name].shape)}")
    if prior_features not in (None, d):
        raise damaged(f"'hyper' has priors of {prior_features} features but the "
                      f"fitted means_ have {d}")
    return d


def _check_values(t: dict[str, Tensor], d: int, dtype: torch.dtype) -> None:
    """Finiteness, the ranges of xi, SPD covariances and upper-triangular Cholesky factors."""
    for name, value in t.items():
        if not bool(torch.isfinite(value).all()):
            raise damaged(f"entry {name} contains NaN or infinity (in {dtype})")
    for name, low in (("weight_concentration_a", 0), ("weight_concentration_b", 0),
                      ("mean_precision_", 0), ("degrees_of_freedom_", d - 1)):
        if not bool((t[name] > low).all()):
            raise damaged(f"entry {name} must be > {low} everywhere, got "
                          f"{t[name].min().item():.6g} at component {int(t[name].argmin())}")
    for name in ("covariances_", "covariance_prior_"):  # symmetric to rounding in dtype
        problems = spd_problems(t[name], rtol=torch.finfo(dtype).eps ** 0.5)
        bad = [k for k, problem in enumerate(problems) if problem]
        if bad:
            which = f" (components {bad[:10]})" if name == "covariances_" else ""
            raise damaged(f"entry {name} is not {problems[bad[0]]}{which}")
    chol = t["precisions_cholesky_"]
    diag = torch.diagonal(chol, dim1=-2, dim2=-1)
    if not bool((chol.tril(-1) == 0).all() and (diag > 0).all()):
        raise damaged("entry precisions_cholesky_ must be upper triangular with a positive "
                      "diagonal")


def _check_log(fitted: dict[str, Any], d: int) -> None:
    """The priors' scalars and the fit log."""
    for name in PRIOR_SCALARS:
        value = fitted[name]
        low = d - 1 if name == "degrees_of_freedom_prior_" else 0
        if not is_real(value) or not low < value < math.inf:
            raise damaged(f"entry {name} must be a finite number > {low}, got {value!r}")
    bound, bounds = fitted["lower_bound_"], fitted["lower_bounds_"]
    if not is_real(bound) or not bound < math.inf:  # -inf: fitted with max_iter=0
        raise damaged(f"entry lower_bound_ must be a number below inf, got {bound!r:.60}")
    if not isinstance(bounds, (list, tuple)) or not all(
            is_real(b) and math.isfinite(b) for b in bounds):
        raise damaged("entry lower_bounds_ must be a list of finite numbers")
    if not isinstance(fitted["converged_"], bool):
        raise damaged(f"entry converged_ must be a bool, got {fitted['converged_']!r:.60}")
    if not is_int(fitted["n_iter_"], 0):
        raise damaged(f"entry n_iter_ must be an int >= 0, got {fitted['n_iter_']!r:.60}")


def read_fitted(fitted: Any, n_components: int, dtype: torch.dtype,
                prior_features: int | None, device: torch.device | None) -> FittedState:
    """Check the fitted part of a state entry by entry (keys, types, shapes, finiteness, the
    ranges of xi and SPD covariances), then return it in ``dtype`` on ``device`` (None: where
    it was saved)."""
    _check_keys(fitted, {*FITTED_TENSORS, *PRIOR_SCALARS, *FIT_LOG}, "'fitted'")
    d = _check_tensors(fitted, n_components, prior_features)
    dev = torch.device(device if device is not None else fitted["means_"].device)
    t = {name: fitted[name].to(device=dev, dtype=dtype) for name in FITTED_TENSORS}
    _check_values(t, d, dtype)
    _check_log(fitted, d)
    return FittedState(
        device=dev, posterior=Posterior(*(t[name] for name in FITTED_TENSORS[:7])),
        mean_prior_=t["mean_prior_"], covariance_prior_=t["covariance_prior_"],
        **{name: float(fitted[name]) for name in PRIOR_SCALARS},
        lower_bound_=float(fitted["lower_bound_"]),
        lower_bounds_=[float(b) for b in fitted["lower_bounds_"]],
        converged_=fitted["converged_"], n_iter_=int(fitted["n_iter_"]))
