"""Encoders, decoders and prior-VAE MLPs of SM E (E.1: MNIST / Fashion; E.2's CelebA nets are in
:mod:`ladder.nets_celeba`, :func:`ladder.autoencoder.build_autoencoder` picks one by data set).

Encoders return ``(mu, std)`` of a diagonal Gaussian q(z|x) with ``std = ReLU(FC(h)) + std_floor``
(a standard deviation, floor 1e-3 as in the reference code). Decoders return the mean image.
Weights are Glorot-uniform with zero biases (the reference code's init; the paper is silent).

Where the reference code differs from the paper (the reference-code appendix, sections 1 and 8)
an option selects: ``activation`` "relu" (SM E.1) or "leaky_relu" (slope 0.2, reference code);
``output_activation`` "sigmoid" (SM E.1) / "relu" (reference MNIST) / "linear" (reference CelebA;
the paper is silent) / "leaky_relu" with its own ``output_slope`` (ours: under the L1 likelihood a
ReLU output that is negative for every image has no gradient and stays dead) / "relu_leaky_grad"
(ours: the ReLU's values with the leaky unit's gradient, so a dead output revives); ``std_floor``;
``std_activation`` of the encoder's std head, "relu" (SM E) or "relu_leaky_grad" (ours).
All modules accept ``channels_last`` inputs and run on any device.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ladder.config_checks import STD_ACTIVATIONS

LEAKY_SLOPE = 0.2  # TF's leaky_relu default, used throughout the reference code (PyTorch's is 0.01)
OUTPUT_SLOPE = 0.05  # the leaky output unit's slope below 0

# Paper settings per data set: (hidden activation, output activation). SM E.1 says ReLU / Sigmoid;
# SM E.2 says LeakyReLU and names no output activation, so CelebA takes the reference code's linear.
PAPER_ACTIVATIONS = {
    "mnist": ("relu", "sigmoid"),
    "fashion": ("relu", "sigmoid"),
    "celeba": ("leaky_relu", "linear"),
}


class LeakyGradReLU(nn.Module):
    """max(x, 0) forward, the leaky unit's gradient (``slope`` below 0) backward: a ReLU output
    that is below 0 for every image still learns, while its images keep the ReLU's exact zeros."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, x, self.slope * (x - x.detach()))


def activation_layer(name: str, slope: float = LEAKY_SLOPE) -> nn.Module:
    """A hidden ("relu", "leaky_relu") or output ("sigmoid", "linear", also "relu", "leaky_relu"
    and "relu_leaky_grad") activation module; ``slope`` is the leaky unit's slope below 0."""
    layers = {
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(slope),
        "relu_leaky_grad": lambda: LeakyGradReLU(slope),
        "sigmoid": nn.Sigmoid,
        "linear": nn.Identity,
    }
    if name not in layers:
        raise ValueError(f"unknown activation {name!r}; choose one of: {', '.join(layers)}")
    return layers[name]()


def glorot_init_(module: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases for every Linear and Conv2d (reference code init)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class SymmetricPad2d(nn.Module):
    """TF ``SYMMETRIC`` padding: mirror including the edge pixel (``numpy.pad(mode="symmetric")``),
    unlike torch's "reflect". ``padding``: an int or (left, right, top, bottom), each <= size."""

    def __init__(self, padding: int | tuple[int, int, int, int]) -> None:
        super().__init__()
        self.padding = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        if len(self.padding) != 4 or min(self.padding) < 0:
            raise ValueError(f"padding must be an int or 4 non-negative ints, got {padding}")

    @staticmethod
    def _pad(x: Tensor, before: int, after: int, dim: int) -> Tensor:
        size = x.shape[dim]
        if max(before, after) > size:
            raise ValueError(f"symmetric padding {max(before, after)} exceeds the size {size}")
        head = x.narrow(dim, 0, before).flip(dim)
        tail = x.narrow(dim, size - after, after).flip(dim)
        return torch.cat([head, x, tail], dim)

    def forward(self, x: Tensor) -> Tensor:
        left, right, top, bottom = self.padding
        return self._pad(self._pad(x, left, right, -1), top, bottom, -2)

    def extra_repr(self) -> str:
        return f"padding={self.padding}"


class Conv2dSame(nn.Conv2d):
    """Conv2d with TF "SAME" padding: output size ceil(in / stride); with stride > 1 the extra pad
    goes bottom/right, as in TF (the reference-code appendix, section 8, item 10). Stride 1 uses
    the native padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        native = kernel_size // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=native)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
            total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0]
                        + self.kernel_size[0] - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class GaussianHead(nn.Module):
    """The posterior heads: ``mu = FC(h)``, ``std = ReLU(FC(h)) + std_floor`` (SM E; the floor is
    the reference code's ``latent_variance_precision`` = 1e-3, a standard deviation).
    ``std_activation = "relu_leaky_grad"`` (ours) keeps those values but gives an entry on the
    floor the gradient ``slope``, so that it can leave the floor again (:class:`LeakyGradReLU`)."""

    def __init__(self, d_in: int, d_out: int, std_floor: float = 1e-3,
                 std_activation: str = "relu", slope: float = OUTPUT_SLOPE) -> None:
        super().__init__()
        if std_floor < 0:
            raise ValueError(f"std_floor must be >= 0, got {std_floor}")
        if std_activation not in STD_ACTIVATIONS:
            raise ValueError(f"std_activation must be one of {STD_ACTIVATIONS}, got "
                             f"{std_activation!r}")
        self.mu = nn.Linear(d_in, d_out)
        self.pre_std = nn.Linear(d_in, d_out)
        self.std_activation = activation_layer(std_activation, slope)
        self.std_floor = std_floor

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        std = self.std_activation(full_precision(self.pre_std(h))) + self.std_floor
        return full_precision(self.mu(h)), std


def full_precision(x: Tensor) -> Tensor:
    """A bf16/fp16 tensor (what autocast's matrix products return) as float32, any other as it is:
    every network hands its output back in full precision, so every density (likelihoods,
    entropies, priors) is computed in float32 or above under ``train.precision = "bf16"``."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def decode_flat(body: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
    """Run an image decoder on z [..., d_z] with any leading dims (e.g. [S, B, d_z])."""
    x = full_precision(body(z.reshape(-1, z.shape[-1])))
    return x.reshape(*z.shape[:-1], *x.shape[1:])


# ---------------------------------------------------------------------------------------------
# SM E.1: MNIST and Fashion-MNIST


class MnistEncoder(nn.Module):
    """SM E.1 encoder: symmetric pad 28 -> 32, Conv3x3/2 16, 64, 256 ('same'), FC64, Gaussian head.

    The paper draws no activation after FC64; like the reference code we apply ``activation`` there
    (otherwise FC64 and the heads would collapse into one linear map).
    """

    def __init__(self, d_z: int = 16, activation: str = "relu", std_floor: float = 1e-3,
                 std_activation: str = "relu", slope: float = OUTPUT_SLOPE) -> None:
        super().__init__()
        act = lambda: activation_layer(activation)  # noqa: E731
        self.body = nn.Sequential(
            SymmetricPad2d(2),
            Conv2dSame(1, 16, 3, 2), act(),  # 16x16
            Conv2dSame(16, 64, 3, 2), act(),  # 8x8
            Conv2dSame(64, 256, 3, 2), act(),  # 4x4
            nn.Flatten(),
            nn.Linear(4 * 4 * 256, 64), act(),
        )
        self.head = GaussianHead(64, d_z, std_floor, std_activation, slope)
        glorot_init_(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.body(x))


class MnistDecoder(nn.Module):
    """SM E.1 decoder: FC4096, depth-to-space 4 -> Conv 256, d2s 2 -> Conv 64, d2s 2 -> Conv 16,
    d2s 2 -> Conv5x5 1 'valid' (32 -> 28), output activation (``output_slope``: a leaky output's
    slope). Depth-to-space is ``pixel_shuffle`` (its channel order differs from TF's, which matters
    only when porting checkpoints)."""

    def __init__(self, d_z: int = 16, activation: str = "relu", output_activation: str = "sigmoid",
                 output_slope: float = OUTPUT_SLOPE):
        super().__init__()
        act = lambda: activation_layer(activation)  # noqa: E731
        self.body = nn.Sequential(
            nn.Linear(d_z, 4096), act(),
            nn.Unflatten(1, (4096, 1, 1)),
            nn.PixelShuffle(4), Conv2dSame(256, 256, 3), act(),  # 4x4
            nn.PixelShuffle(2), Conv2dSame(64, 64, 3), act(),  # 8x8
            nn.PixelShuffle(2), Conv2dSame(16, 16, 3), act(),  # 16x16
            nn.PixelShuffle(2), nn.Conv2d(4, 1, 5),  # 32x32 -> 28x28 (valid)
            activation_layer(output_activation, output_slope),
        )
        glorot_init_(self)

    def forward(self, z: Tensor) -> Tensor:
        return decode_flat(self.body, z)


# ---------------------------------------------------------------------------------------------
# Prior-VAE MLPs (SM E.1, E.2 "Prior VAE network")


def _mlp(d_in: int, hidden: int, n_layers: int, slope: float) -> nn.Sequential:
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.LeakyReLU(slope)]
    return nn.Sequential(*layers)


class GaussianMLPEncoder(nn.Module):
    """Prior-VAE encoder q(t|z): ``(FC hidden -> LeakyReLU) x n_layers``, then ``mu = FC(d_out)``,
    ``std = ReLU(FC(d_out)) + std_floor``. SM E.1 uses 3 layers, SM E.2 5 (the reference code uses 5
    everywhere). Inputs may have leading dims [..., d_in]."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        hidden: int = 512,
        n_layers: int = 3,
        slope: float = LEAKY_SLOPE,
        std_floor: float = 1e-3,
    ) -> None:
        super().__init__()
        self.body = _mlp(d_in, hidden, n_layers, slope)
        self.head = GaussianHead(hidden, d_out, std_floor)
        glorot_init_(self)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.body(z))


class MLPDecoder(nn.Module):
    """Prior-VAE decoder mean: ``(FC hidden -> LeakyReLU) x n_layers -> FC(d_out)`` (linear output;
    SM E.1: 3 layers, SM E.2: 5)."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        hidden: int = 512,
        n_layers: int = 3,
        slope: float = LEAKY_SLOPE,
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(_mlp(d_in, hidden, n_layers, slope), nn.Linear(hidden, d_out))
        glorot_init_(self)

    def forward(self, t: Tensor) -> Tensor:
        return full_precision(self.body(t))
