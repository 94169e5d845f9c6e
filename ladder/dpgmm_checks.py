"""Input checks of :class:`ladder.dpgmm.DPGMM`: hyper-parameters, priors, data and points.

Each raises ``ValueError`` with a message that says what to pass instead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ladder.dpgmm_init import INIT_PARAMS
from ladder.dpgmm_log_prob import LOG_PROB_KINDS

__all__ = ["check_hyper", "check_init_resp", "check_log_prob_points", "check_points", "float_dtype",
           "is_int", "is_real", "prior_tensor", "priors_in_effect", "singular_to_rounding",
           "spd_problems"]


def float_dtype(value: Any) -> torch.dtype:
    """A floating torch dtype from a dtype or its name ("float64", "torch.float32")."""
    if isinstance(value, str):
        value = getattr(torch, value.replace("torch.", ""), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype such as torch.float64, got {value!r}")
    return value


def spd_problems(mats: Tensor, rtol: float = 1e-10) -> list[str]:
    """For each of the matrices (..., d, d): "" if symmetric (to ``rtol``) and positive
    definite, else what it is not ("symmetric" or "positive definite")."""
    symmetric = torch.isclose(mats, mats.mT, rtol=rtol, atol=0.0).flatten(-2).all(-1)
    definite = torch.linalg.cholesky_ex(mats).info == 0
    return ["" if s and p else "symmetric" if not s else "positive definite"
            for s, p in zip(symmetric.flatten().tolist(), definite.flatten().tolist(),
                            strict=True)]


def prior_tensor(value: Any, name: str, ndim: int) -> Tensor | None:
    """A user prior as a float64 CPU tensor, checked for shape (and, for matrices, SPD)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        out = value.detach().to("cpu", torch.float64)
    else:
        try:
            out = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an array of numbers, got {value!r:.60}") from None
    if out.ndim != ndim or (ndim == 2 and out.shape[0] != out.shape[1]) or out.numel() == 0:
        want = "(n_features,)" if ndim == 1 else "(n_features, n_features)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(out.shape)}")
    if not torch.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if ndim == 2:
        problem = spd_problems(out[None])[0]
        if problem:
            raise ValueError(f"{name} must be {problem}")
    return out


def is_real(value: Any) -> bool:
    """A Python or numpy real number (not a bool), NaN excluded."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and not math.isnan(value))


def is_int(value: Any, low: int) -> bool:
    """A Python or numpy int (not a bool) >= ``low``."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= low


def check_hyper(model: Any) -> tuple[torch.dtype, Tensor | None, Tensor | None]:
    """Check a DPGMM's constructor arguments (its attributes of the same names); returns its
    dtype, mean_prior and covariance_prior in their checked forms."""
    for name, low in (("n_components", 1), ("max_iter", 0), ("n_init", 1)):
        value = getattr(model, name)
        if not is_int(value, low):
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    for name, allow_none, strict in (
            ("tol", False, False), ("reg_covar", False, False),
            ("weight_concentration_prior", True, True), ("mean_precision_prior", True, True),
            ("degrees_of_freedom_prior", True, True)):
        value = getattr(model, name)
        if value is None and allow_none:
            continue
        if not (is_real(value) and math.isfinite(value) and (value > 0 if strict else value >= 0)):
            sign = "> 0" if strict else ">= 0"
            none = " or None" if allow_none else ""
            raise ValueError(f"{name} must be a finite number {sign}{none}, got {value!r}")
    if model.covariance_type != "full":
        raise ValueError(f"only covariance_type='full' is implemented, got "
                         f"{model.covariance_type!r}")
    if model.weight_concentration_prior_type != "dirichlet_process":
        raise ValueError("only weight_concentration_prior_type='dirichlet_process' is "
                         f"implemented, got {model.weight_concentration_prior_type!r}")
    if model.init_params not in INIT_PARAMS:
        raise ValueError(f"init_params must be one of {INIT_PARAMS}, got {model.init_params!r}")
    rs = model.random_state
    if rs is not None and not is_int(rs, -math.inf):
        raise ValueError(f"random_state must be an int or None, got {rs!r}")
    dtype = float_dtype(model.dtype)
    mean_prior = prior_tensor(model.mean_prior, "mean_prior", 1)
    covariance_prior = prior_tensor(model.covariance_prior, "covariance_prior", 2)
    if (mean_prior is not None and covariance_prior is not None
            and mean_prior.shape[0] != covariance_prior.shape[0]):
        raise ValueError(f"mean_prior has {mean_prior.shape[0]} features but "
                         f"covariance_prior has {covariance_prior.shape[0]}")
    return dtype, mean_prior, covariance_prior


def check_points(X: Any, n_features: int | None, dtype: torch.dtype,
                 device: torch.device | None, name: str = "X") -> Tensor:
    """X as a finite (N, d) tensor in ``dtype`` on ``device`` (None: X's own), with
    d = n_features where that is given."""
    if isinstance(X, Tensor):
        t = X.detach()
    else:
        arr = np.asarray(X)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                       or arr.dtype == bool):
            raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
        t = torch.from_numpy(np.array(arr, dtype=np.float64))
    if t.is_complex():
        raise ValueError(f"{name} must be real, got {t.dtype}")
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape "
                         f"{tuple(t.shape)}; use X.reshape(-1, 1) for a single feature")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); pass at least one sample "
                         "with at least one feature")
    t = t.to(device=device if device is not None else t.device, dtype=dtype)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinity; drop or impute those rows first")
    if n_features is not None and t.shape[1] != n_features:
        raise ValueError(f"{name} has {t.shape[1]} features but this DPGMM expects "
                         f"{n_features}")
    return t


def check_init_resp(init_resp: Any, n: int, K: int, dtype: torch.dtype,
                    device: torch.device) -> Tensor:
    """User-given initial responsibilities as a finite, non-negative (n, K) tensor."""
    out = (init_resp.detach() if isinstance(init_resp, Tensor)
           else torch.as_tensor(np.asarray(init_resp, dtype=np.float64))).to(device, dtype)
    if out.shape != (n, K) or not bool(torch.isfinite(out).all()) or bool((out < 0).any()):
        raise ValueError(f"init_resp must be a finite, non-negative ({n}, {K}) array")
    return out


def check_log_prob_points(t: Any, kind: str, d: int, dtype: torch.dtype,
                          device: torch.device | None) -> Tensor:
    """``t`` for ``log_prob``: a floating tensor of shape (..., d) (arrays converted to
    ``dtype`` on ``device``); ``kind`` one of ``LOG_PROB_KINDS``."""
    if kind not in LOG_PROB_KINDS:
        raise ValueError(f"kind must be one of {LOG_PROB_KINDS}, got {kind!r}")
    if not isinstance(t, Tensor):
        t = torch.as_tensor(np.asarray(t), dtype=dtype, device=device)
    if not t.is_floating_point():
        raise ValueError(f"t must be a floating tensor, got {t.dtype}")
    if t.ndim == 0 or t.shape[-1] != d:
        raise ValueError(f"t must have shape (..., {d}), got {tuple(t.shape)}")
    return t


def priors_in_effect(model: Any, X: Tensor) -> tuple[float, float, float, Tensor, Tensor]:
    """(alpha_0, beta_0, nu_0, m_0, W_0^-1) of a DPGMM for data X: its constructor's priors, with
    scikit-learn's data-dependent defaults for those that are None (module docstring of
    :mod:`ladder.dpgmm`); checked for nu_0 > d - 1 and a positive definite W_0^-1."""
    n, d = X.shape
    alpha0 = float(1.0 / model.n_components if model.weight_concentration_prior is None
                   else model.weight_concentration_prior)
    beta0 = float(1.0 if model.mean_precision_prior is None else model.mean_precision_prior)
    nu0 = float(d if model.degrees_of_freedom_prior is None else model.degrees_of_freedom_prior)
    if nu0 <= d - 1:
        raise ValueError(f"degrees_of_freedom_prior must be greater than n_features - 1 = "
                         f"{d - 1}, got {nu0}")
    m0 = X.mean(0) if model.mean_prior is None else model.mean_prior.to(X.device, X.dtype)
    if model.covariance_prior is not None:
        return alpha0, beta0, nu0, m0, model.covariance_prior.to(X.device, X.dtype)
    if n < 2:
        raise ValueError("the data-dependent covariance_prior needs at least 2 samples; "
                         "pass covariance_prior or use DPGMM.paper_prior")
    cov = torch.cov(X.T).reshape(d, d)
    if singular_to_rounding(X, cov):
        raise ValueError("the data covariance is singular (e.g. a constant feature, "
                         "identical or collinear points), so the data-dependent "
                         "covariance_prior is not positive definite; pass "
                         "covariance_prior or use DPGMM.paper_prior")
    return alpha0, beta0, nu0, m0, cov


def singular_to_rounding(X: Tensor, cov: Tensor) -> bool:
    """Whether the covariance ``cov`` of the rows of X is singular up to its rounding: a feature
    whose spread is within n eps of its magnitude (constant but for rounding), or a correlation
    matrix with an eigenvalue within n d eps of 0 (e.g. duplicated or collinear points), where
    an exact test would pass or fail by the luck of the last bits."""
    n, d = X.shape
    eps = torch.finfo(X.dtype).eps
    std = cov.diagonal().sqrt()
    if bool((std <= n * eps * X.abs().amax(0)).any()):
        return True
    corr = cov / (std[:, None] * std[None, :])
    return float(torch.linalg.eigvalsh(corr).min()) <= n * d * eps
