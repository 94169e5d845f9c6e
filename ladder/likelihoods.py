"""Decoder likelihoods: Laplace p(x|z) for the data VAE (SM C, Eq (14)-(15)) and Gaussian p(z|t)
for the prior VAE (reference-code-notes §2). Each holds its scalar scale as a parameter.

``log_prob`` returns one value per sample: it sums over the last three dims (C, H, W) for the
Laplace and over the last dim for the Gaussian; any leading dims ([B] or [S, B]) are kept and the
two arguments broadcast.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

LAPLACE_MODES = ("mae", "learned", "batch_mae")
MAE_MOMENTUM = 0.9
GAUSSIAN_MODES = ("learned", "clamped")


class LaplaceLikelihood(nn.Module):
    """SM C, Eq (14): ``log p(x|z) = -sum_k |x_k - x_hat_k| / sigma - D log(2 sigma)``, one scalar
    sigma shared by all D = C*H*W pixels. The ``-D log 2 sigma`` term is kept (Eq (15); Table 3's
    ELBOs include it).

    ``sigma_mode``:

    * ``"mae"`` (the default; the paper, SM C: "a hyper parameter which we also optimise under the
      ELBO"): sigma is set to its maximiser. Eq (15) is maximised in sigma at the mean absolute
      error, so each training step sets sigma to a bias-corrected moving average of the batches'
      mean absolute errors (a coordinate-ascent update, like xi's); evaluation uses the stored
      value. No gradient flows through sigma, and none is needed: at the optimum the ELBO's
      derivative in sigma is zero.
    * ``"learned"``: ``sigma = exp(log_sigma)``, ``log_sigma`` a parameter starting at
      ``log(sigma_init)`` and trained by Adam with the networks. At lr 5e-4 it needs thousands of
      steps to fall from 0.5 to the MAE (about 0.03), and until then the weak reconstruction
      weight lets the posterior collapse (book chapter 1).
    * ``"batch_mae"`` (the reference code, reference-code-notes §1):
      ``sigma = max(|v|, mean |x - x_hat| over the batch)`` with ``v`` a parameter starting at
      ``sigma_init`` (0.5). The batch MAE is differentiable; in practice sigma equals it.
      ``scale()`` without a batch reports the sigma of the last ``log_prob`` call (for logging).
    """

    def __init__(self, sigma_mode: str = "learned", sigma_init: float = 0.5) -> None:
        super().__init__()
        if sigma_mode not in LAPLACE_MODES:
            raise ValueError(f"sigma_mode must be one of {LAPLACE_MODES}, got {sigma_mode!r}")
        if not sigma_init > 0:
            raise ValueError(f"sigma_init must be positive, got {sigma_init}")
        self.sigma_mode = sigma_mode
        if sigma_mode == "mae":
            self.register_buffer("mae_average", torch.tensor(0.0))
            self.register_buffer("mae_steps", torch.tensor(0, dtype=torch.long))
            self.register_buffer("sigma", torch.tensor(float(sigma_init)))
        elif sigma_mode == "learned":
            self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma_init)))
        else:
            self.v = nn.Parameter(torch.tensor(float(sigma_init)))
            self.register_buffer("last_sigma", torch.tensor(float(sigma_init)), persistent=False)

    def scale(self, x: Tensor | None = None, x_hat: Tensor | None = None) -> Tensor:
        """The sigma in use (0-dim). ``"batch_mae"``: that of the batch ``x``, ``x_hat`` if given,
        else (detached) that of the last ``log_prob`` call, or ``sigma_init`` before the first."""
        if self.sigma_mode == "mae":
            return self.sigma.clone()
        if self.sigma_mode == "learned":
            return self.log_sigma.exp()
        if x is None or x_hat is None:
            return self.last_sigma.clone()
        return torch.maximum(self.v.abs(), (x - x_hat).abs().mean())

    @torch.no_grad()
    def _update_sigma(self, batch_mae: Tensor) -> None:
        """sigma <- the bias-corrected moving average of the batch mean absolute errors."""
        self.mae_steps += 1
        self.mae_average.mul_(MAE_MOMENTUM).add_((1 - MAE_MOMENTUM) * batch_mae)
        correction = 1 - torch.pow(MAE_MOMENTUM, self.mae_steps.double())  # no host sync
        self.sigma.copy_(self.mae_average / correction.to(self.mae_average.dtype))

    def log_prob(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Eq (14) per image: x, x_hat [..., C, H, W] -> [...]."""
        if x.dim() < 3 or x_hat.dim() < 3:
            raise ValueError("x and x_hat must be images [..., C, H, W]")
        if self.sigma_mode == "mae" and self.training and torch.is_grad_enabled():
            self._update_sigma((x - x_hat).detach().abs().mean())
        sigma = self.scale(x, x_hat)
        if self.sigma_mode == "batch_mae":
            self.last_sigma.copy_(sigma.detach())
        d = math.prod(x.shape[-3:])
        l1 = (x - x_hat).abs().sum(dim=(-3, -2, -1))
        return -l1 / sigma - d * torch.log(2 * sigma)

    def extra_repr(self) -> str:
        return f"sigma_mode={self.sigma_mode!r}"


class GaussianLikelihood(nn.Module):
    """Prior-VAE decoder likelihood p(z|t) = N(z; z_hat(t), s^2 I) with one scalar std ``s``:
    ``log p = -sum_j (z_j - z_hat_j)^2 / (2 s^2) - d log s - d/2 log 2 pi`` (reference-code-notes
    §2; the paper does not state the prior VAE's decoder distribution).

    ``scale_mode``:

    * ``"learned"``: ``s = exp(log_s)``, ``log_s`` a parameter starting at ``log(scale_init)``.
    * ``"clamped"`` (the reference code): ``s = clamp(|u|, *bounds)``, ``u`` a parameter starting
      at ``scale_init`` (0.1, the upper bound); outside the bounds the clamp passes no gradient.
    """

    def __init__(
        self,
        scale_mode: str = "learned",
        scale_init: float = 0.1,
        bounds: tuple[float, float] = (0.05, 0.1),
    ) -> None:
        super().__init__()
        if scale_mode not in GAUSSIAN_MODES:
            raise ValueError(f"scale_mode must be one of {GAUSSIAN_MODES}, got {scale_mode!r}")
        if not scale_init > 0:
            raise ValueError(f"scale_init must be positive, got {scale_init}")
        lo, hi = bounds
        if not 0 < lo <= hi:
            raise ValueError(f"bounds must satisfy 0 < low <= high, got {bounds}")
        self.scale_mode = scale_mode
        self.bounds = (float(lo), float(hi))
        if scale_mode == "learned":
            self.log_s = nn.Parameter(torch.tensor(math.log(scale_init)))
        else:
            self.u = nn.Parameter(torch.tensor(float(scale_init)))

    def scale(self) -> Tensor:
        """The std ``s`` in use (a 0-dim tensor)."""
        if self.scale_mode == "learned":
            return self.log_s.exp()
        return self.u.abs().clamp(*self.bounds)

    def log_prob(self, z: Tensor, z_hat: Tensor) -> Tensor:
        """Per sample: z, z_hat [..., d] -> [...]."""
        s = self.scale()
        d = z.shape[-1]
        sq = (z - z_hat).square().sum(dim=-1)
        return -sq / (2 * s**2) - d * torch.log(s) - 0.5 * d * math.log(2 * math.pi)

    def extra_repr(self) -> str:
        return f"scale_mode={self.scale_mode!r}, bounds={self.bounds}"
