"""Decoder likelihoods: Laplace p(x|z) for the data VAE (SM C, Eq (14)-(15)) and Gaussian p(z|t)
for the prior VAE (the reference-code appendix, section 2). Each holds one scalar scale: a
parameter, or a buffer set to its maximiser in closed form.

``log_prob`` returns one value per sample: it sums over the last three dims (C, H, W) for the
Laplace and over the last dim for the Gaussian; any leading dims ([B] or [S, B]) are kept and the
two arguments broadcast.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ladder.distributed import batch_mean

LAPLACE_MODES = ("mae", "learned", "batch_mae")
MAE_MOMENTUM = 0.9
GAUSSIAN_MODES = ("learned", "clamped", "closed_form")


@torch.no_grad()
def moving_maximiser(average: Tensor, steps: Tensor, value: Tensor) -> Tensor:
    """One step of the closed-form scale updates: fold ``value`` (a batch's maximiser) into the
    moving average ``average`` (momentum :data:`MAE_MOMENTUM`; ``average`` and the step count
    ``steps`` are updated in place) and return the average bias-corrected as Adam's moments are,
    so the first step returns ``value`` itself. In a data-parallel training step ``value`` is
    first averaged over the processes, so that it is the whole batch's
    (:func:`ladder.distributed.batch_mean`)."""
    value = batch_mean(value)
    steps += 1
    average.mul_(MAE_MOMENTUM).add_((1 - MAE_MOMENTUM) * value)
    correction = 1 - torch.pow(MAE_MOMENTUM, steps.double())  # no host sync
    return average / correction.to(average.dtype)


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
    * ``"batch_mae"`` (the reference code, the reference-code appendix, section 1):
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

    def log_prob(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Eq (14) per image: x, x_hat [..., C, H, W] -> [...]."""
        if x.dim() < 3 or x_hat.dim() < 3:
            raise ValueError("x and x_hat must be images [..., C, H, W]")
        if self.sigma_mode == "mae" and self.training and torch.is_grad_enabled():
            batch_mae = (x - x_hat).detach().abs().mean()
            self.sigma.copy_(moving_maximiser(self.mae_average, self.mae_steps, batch_mae))
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
    ``log p = -sum_j (z_j - z_hat_j)^2 / (2 s^2) - d log s - d/2 log 2 pi`` (the reference-code
    appendix, section 2; the paper does not state the prior VAE's decoder distribution).

    ``scale_mode``:

    * ``"learned"``: ``s = exp(log_s)``, ``log_s`` a parameter starting at ``log(scale_init)``.
      At lr 5e-4 from 0.1 Adam barely moves it (0.08-0.13 over a run: results/stall/README.md).
    * ``"clamped"`` (the reference code): ``s = clamp(|u|, *bounds)``, ``u`` a parameter starting
      at ``scale_init`` (0.1, the upper bound); outside the bounds the clamp passes no gradient.
    * ``"closed_form"``: s is set to its maximiser, as the Laplace sigma is in ``"mae"`` mode.
      The Gaussian term of Eq (4) has ``d/ds [-sum_j (z_j - z_hat_j)^2 / (2 s^2) - d log s] =
      sum_j (z_j - z_hat_j)^2 / s^3 - d / s``, zero at ``s^2 = mean_j (z_j - z_hat_j)^2``; over a
      batch, the mean over rows and dimensions. A call with ``fit_scale=True`` in training mode
      with gradients on (a step of the prior block, which alone maximises Eq (4) in s) sets
      ``s^2`` to a bias-corrected moving average of the batches' mean squared errors
      (:func:`moving_maximiser`); every other call, the data-VAE block's included, uses the stored
      s. No gradient flows through s; at the optimum the bound's derivative in s is zero.
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
        elif scale_mode == "clamped":
            self.u = nn.Parameter(torch.tensor(float(scale_init)))
        else:
            self.register_buffer("mse_average", torch.tensor(0.0))
            self.register_buffer("mse_steps", torch.tensor(0, dtype=torch.long))
            self.register_buffer("s", torch.tensor(float(scale_init)))

    def scale(self) -> Tensor:
        """The std ``s`` in use (a 0-dim tensor)."""
        if self.scale_mode == "learned":
            return self.log_s.exp()
        if self.scale_mode == "clamped":
            return self.u.abs().clamp(*self.bounds)
        return self.s.clone()

    def log_prob(self, z: Tensor, z_hat: Tensor, fit_scale: bool = False) -> Tensor:
        """Per sample: z, z_hat [..., d] -> [...]. ``fit_scale``: the caller is a training step of
        the prior block, so a ``"closed_form"`` s moves to its maximiser first (class docstring)."""
        if self.scale_mode == "closed_form" and fit_scale and self.training and (
            torch.is_grad_enabled()
        ):
            batch_mse = (z - z_hat).detach().square().mean()
            self.s.copy_(moving_maximiser(self.mse_average, self.mse_steps, batch_mse).sqrt())
        s = self.scale()
        d = z.shape[-1]
        sq = (z - z_hat).square().sum(dim=-1)
        return -sq / (2 * s**2) - d * torch.log(s) - 0.5 * d * math.log(2 * math.pi)

    def extra_repr(self) -> str:
        return f"scale_mode={self.scale_mode!r}, bounds={self.bounds}"
