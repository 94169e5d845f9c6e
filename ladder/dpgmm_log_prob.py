"""The three log densities of a fitted DP-GMM (``DPGMM.log_prob``), from the posterior q.

* ``"bound"``: log sum_k exp(E_q[log w_k] + E_q[log N(t | mu_k, Lambda_k^-1)]), the per-point term
  of L(t; xi) (Eq (6)) that Eq (7) puts in place of log p(t);
* ``"plugin"``: log sum_k w_k N(t | m_k, E[Lambda_k]^-1) at the point estimates (the reference
  code's density);
* ``"predictive"``: the posterior predictive, sum_k w_k St(t | m_k, L_k, nu_k + 1 - d) with
  L_k = (nu_k + 1 - d) beta_k / (1 + beta_k) W_k (Bishop 10.81-10.82).

Each is log sum_k exp(c_k - f(distance_k)) of the squared Mahalanobis distances under
E[Lambda_k]; :func:`density_tables` prepares c_k and the distances' form once per fit, dtype and
device. The training kinds (``"bound"``, ``"plugin"``) take the fused path
:class:`~ladder.dpgmm_density.QuadraticLogSumExp` (a hand-written gradient) in any number of
dimensions, their exponents from :func:`training_exponents`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ladder.dpgmm_cavi import (
    Posterior,
    expected_weights,
    log_det_expected_precision,
    log_rho_offset,
)
from ladder.dpgmm_density import MAX_QUADRATIC_D, MahalanobisForm, QuadraticLogSumExp, offset64
from ladder.numerics import LOG_2PI, logsumexp, quadratic_features

__all__ = ["FUSED_KINDS", "LOG_PROB_KINDS", "DensityTables", "component_log_prob", "density_tables",
           "log_prob", "training_exponents"]

LOG_PROB_KINDS = ("bound", "plugin", "predictive")
FUSED_KINDS = ("bound", "plugin")  # a_k(t) = c_k - maha_k(t) / 2: the training kinds


@dataclass(frozen=True)
class DensityTables:
    """Per-component constants of the three kinds for points of one dtype on one device."""

    distances: MahalanobisForm
    offsets: dict[str, Tensor]  # c_k per kind, in the points' dtype
    t_power: Tensor  # (nu_k + 1)/2 with nu_k := nu_k + 1 - d, the Student-t's exponent
    t_scale: Tensor  # (beta_k / (1 + beta_k)) / nu_k: its distance scale
    affine: dict[str, Tensor]  # float64 (F, K) coefficients of phi(u) per fused kind
    prec_flat: Tensor  # float64 E[Lambda_k] flattened, (K, d d)
    prec_m: Tensor  # float64 E[Lambda_k] (m_k - center), (K, d)


def density_tables(q: Posterior, dtype: torch.dtype, device: torch.device) -> DensityTables:
    """The constants of :class:`DensityTables` for ``q`` (built in q's dtype)."""
    K, d = q.m.shape
    w = expected_weights(q)
    center = w @ q.m
    nu_t = q.nu + 1.0 - d
    c = nu_t * q.beta / ((1.0 + q.beta) * q.nu)  # Student-t precision = c E[Lambda]
    logdet = log_det_expected_precision(q)
    offsets = {
        "bound": log_rho_offset(q),
        "plugin": torch.log(w) + 0.5 * logdet - 0.5 * d * LOG_2PI,
        "predictive": (torch.log(w) + torch.lgamma(0.5 * (nu_t + d)) - torch.lgamma(0.5 * nu_t)
                       - 0.5 * d * torch.log(nu_t * math.pi) + 0.5 * (logdet + d * torch.log(c))),
    }
    form = MahalanobisForm.build(q.m, q.chol, center)
    weights = form.weights64  # a_k = c_k - maha_k / 2 as one product, the constant feature last
    affine = {kind: torch.cat([-0.5 * weights[:-1],
                               offsets[kind].double()[None] - 0.5 * weights[-1:]])
              for kind in FUSED_KINDS}
    prec = q.precision
    exact = {"prec_flat": prec.reshape(K, d * d), "prec_m": (prec @ (q.m - center)[:, :, None])
             .squeeze(-1)}
    return DensityTables(
        distances=form.to(dtype, torch.device(device)),
        offsets={kind: value.to(device, dtype) for kind, value in offsets.items()},
        t_power=(0.5 * (nu_t + d)).to(device, dtype), t_scale=(c / nu_t).to(device, dtype),
        affine={kind: value.to(device) for kind, value in affine.items()},
        **{name: value.to(device, torch.float64) for name, value in exact.items()})


def component_log_prob(t: Tensor, tables: DensityTables, kind: str) -> Tensor:
    """(..., K) per-component terms whose logsumexp is ``log_prob(t, tables, kind)``."""
    d = t.shape[-1]
    maha = tables.distances(t.reshape(-1, d))  # (t - m_k)^T E[Lambda_k] (t - m_k)
    if kind == "predictive":
        out = tables.offsets[kind] - tables.t_power * torch.log1p(tables.t_scale * maha)
    else:
        out = tables.offsets[kind] - 0.5 * maha
    return out.view(*t.shape[:-1], tables.offsets[kind].shape[0])


def training_exponents(t: Tensor, tables: DensityTables, kind: str) -> Tensor:
    """(N, K) exponents a_k(t) = c_k - maha_k(t) / 2 of a training kind for (N, d) points, without
    a graph (the fused path's gradient is hand-written): up to ``MAX_QUADRATIC_D`` dimensions one
    float64 product with the quadratic features of t - center, above the Cholesky form's terms."""
    with torch.no_grad():
        if t.shape[-1] <= MAX_QUADRATIC_D:
            u = offset64(t, tables.distances.center64)
            return (quadratic_features(u) @ tables.affine[kind]).to(t.dtype)
        return component_log_prob(t, tables, kind)


def log_prob(t: Tensor, tables: DensityTables, kind: str) -> Tensor:
    """log p(t) of ``kind`` (module docstring), shape t.shape[:-1], differentiable in t.

    NaN in t gives NaN out. An infinite coordinate, or a point whose distance to every component
    overflows t's dtype, gives -inf (density 0)."""
    d = t.shape[-1]
    if kind in FUSED_KINDS:
        flat = t.reshape(-1, d)
        out = QuadraticLogSumExp.apply(flat, tables.distances.center64,
                                       training_exponents(flat, tables, kind), tables.prec_flat,
                                       tables.prec_m)
        out = out.view(t.shape[:-1])
    else:
        out = logsumexp(component_log_prob(t, tables, kind), -1)
    if t.dtype == torch.float64 or d > MAX_QUADRATIC_D:
        # NaN from a point without NaN is an overflow to inf - inf of its distances (an
        # infinite coordinate, or one past ~1e154); below float64 in up to MAX_QUADRATIC_D
        # dimensions the float64 quadratic features cannot overflow (offset64)
        out = out.masked_fill(out.isnan() & ~t.isnan().any(-1), -math.inf)
    return out
