"""Fast kernels for the DP-GMM's Gaussian terms: Mahalanobis distances and a fused log-sum-exp.

Every density of the DP-GMM (the CAVI E-step of Sec 3.2 and the three ``log_prob`` kinds of
:mod:`ladder.dpgmm_log_prob`) needs the squared Mahalanobis distances
(t - m_k)^T P_k (t - m_k) of N points to K components. :class:`MahalanobisForm` computes them in one
of two forms:

* up to :data:`MAX_QUADRATIC_D` dimensions, as one product phi(u) @ W of the quadratic features
  phi(u) = [u_i u_j (i <= j), u_i, 1] of u = t - center (:func:`ladder.numerics.quadratic_features`):
  an (N, F) @ (F, K) matrix product instead of elementwise passes over (N, K, d). Its terms cancel
  for tight components, so that product is taken in float64;
* above, as ``|u U_k - m_k U_k|^2`` with the Cholesky factors U_k, whose (N, K, d) passes are
  slower up to at least d = 32 (``benchmarks/bench_mahalanobis.py``: 25600 points and 50
  components on 2 CPU threads take 12 against 77 ms at d = 16, 76 against 123 ms at d = 32).

:class:`QuadraticLogSumExp` is the training kinds' log sum_k exp(c_k - distance_k / 2) with a
hand-written gradient, in any number of dimensions (Eq (7) is evaluated on 100 samples per image in
every training step): autograd through the distances would keep (N, K, d) intermediates, which
with the Cholesky form made a LaDDer epoch with d_t = 16 take 2.7 times as long as with d_t = 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ladder.numerics import EXPONENT_FLOOR, quadratic_features

__all__ = ["MAX_QUADRATIC_D", "MahalanobisForm", "QuadraticLogSumExp"]

MAX_QUADRATIC_D = 32  # up to here the Mahalanobis distances are one product with phi(u)


def offset64(t: Tensor, center: Tensor) -> Tensor:
    """t - center in float64 with infinite coordinates clamped to t's largest finite value. Below
    float64 the quadratic form of such an offset still fits in float64, and in t's dtype it is
    -inf (a density of 0) instead of the NaN of inf - inf."""
    big = torch.finfo(t.dtype).max
    return (t.double() - center).clamp_(-big, big)


@dataclass(frozen=True)
class MahalanobisForm:
    """The squared Mahalanobis distances (t - m_k)^T P_k (t - m_k), P_k = U_k U_k^T, to K
    components, prepared once per set of components (module docstring).

    ``center64`` and ``weights64`` (the (F, K) coefficients of phi(t - center)) are float64
    whatever the points' dtype; ``center``, ``chol_cat`` (U_k side by side, (d, K d)) and
    ``m_chol`` (the rows (m_k - center) U_k) are in the dtype of the Cholesky form's points."""

    center: Tensor
    center64: Tensor
    weights64: Tensor
    chol_cat: Tensor
    m_chol: Tensor

    @classmethod
    def build(cls, means: Tensor, chol: Tensor, center: Tensor) -> MahalanobisForm:
        """From means (K, d), upper U_k (K, d, d) with P_k = U_k U_k^T and a center (d,)."""
        K, d = means.shape
        prec = chol @ chol.mT
        mc = means - center
        iu = torch.triu_indices(d, d, device=prec.device)
        pair_factor = torch.where(iu[0] == iu[1], 1.0, 2.0).to(prec.dtype)
        quadratic = prec[:, iu[0], iu[1]] * pair_factor
        linear = -2.0 * (prec @ mc[:, :, None]).squeeze(-1)
        constant = (mc[:, None, :] @ prec @ mc[:, :, None]).reshape(K, 1)
        return cls(center=center, center64=center.double(),
                   weights64=torch.cat([quadratic, linear, constant], 1).T.contiguous().double(),
                   chol_cat=chol.permute(1, 0, 2).reshape(d, K * d),
                   m_chol=(mc[:, None, :] @ chol).squeeze(1))

    def to(self, dtype: torch.dtype, device: torch.device) -> MahalanobisForm:
        """The form for points of ``dtype`` on ``device`` (the float64 parts stay float64)."""
        return MahalanobisForm(self.center.to(device, dtype), self.center64.to(device),
                               self.weights64.to(device), self.chol_cat.to(device, dtype),
                               self.m_chol.to(device, dtype))

    def __call__(self, points: Tensor, max_quadratic_d: int = MAX_QUADRATIC_D) -> Tensor:
        """(N, K) distances of the rows of ``points`` (N, d), in their dtype."""
        n, d = points.shape
        if d <= max_quadratic_d:
            u = offset64(points, self.center64)
            return (quadratic_features(u) @ self.weights64).clamp_min_(0.0).to(points.dtype)
        k = self.m_chol.shape[0]
        with torch.autocast(points.device.type, enabled=False):  # in t's dtype under bf16 training
            y = ((points - self.center) @ self.chol_cat).view(n, k, d) - self.m_chol
        return y.square().sum(-1)


class QuadraticLogSumExp(torch.autograd.Function):
    """log sum_k exp(a_k(t)), a_k(t) = c_k - (u - m_k)^T P_k (u - m_k) / 2 with u = t - center,
    (m_k: the means less the same center) in one pass that keeps only u and the
    responsibilities r_k for the gradient

        d/du log sum_k exp(a_k) = sum_k r_k P_k (m_k - u) = sum_k r_k P_k m_k - (sum_k r_k P_k) u,

    two (N, K) products instead of autograd's trip back through every (N, K) intermediate. The
    exponents are floored as in :func:`ladder.numerics.logsumexp`; the gradient's difference, whose
    terms cancel for tight components, is taken in float64. ``exponents`` is (N, K), the a_k(t)
    in t's dtype, computed without a graph by the caller (the quadratic form, in float64 up to
    :data:`MAX_QUADRATIC_D` dimensions); ``prec_flat`` (K, d d) and ``prec_m`` (K, d) are P_k
    and P_k m_k, float64."""

    @staticmethod
    def forward(ctx, t: Tensor, center: Tensor, exponents: Tensor, prec_flat: Tensor,  # noqa: ANN001
                prec_m: Tensor) -> Tensor:
        top = exponents.amax(-1, keepdim=True)
        # a point too far for t's dtype has every a_k = -inf: shifted by the dtype's lowest value
        # instead, its r is uniform and its value -inf (not -inf - -inf = NaN); the first step
        # is out of place, so the caller's exponents are not overwritten
        lowest = torch.finfo(exponents.dtype).min
        r = (exponents - top.clamp(min=lowest)).clamp_(min=EXPONENT_FLOOR).exp_()
        total = r.sum(-1, keepdim=True)
        out = (total.log() + top).squeeze(-1)
        ctx.save_for_backward(offset64(t, center), r.div_(total), prec_flat, prec_m)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # noqa: ANN001
        u, r, prec_flat, prec_m = ctx.saved_tensors
        w = (grad[:, None] * r).double()
        n, d = u.shape
        pull = (w @ prec_flat).view(n, d, d)  # sum_k w_k P_k
        grad_u = w @ prec_m - (pull @ u[:, :, None]).squeeze(-1)
        return grad_u.to(grad.dtype), None, None, None, None
