"""SM E.2's data nets for CelebA at 128x128: a strided convolutional encoder and the decoder
"inspired by Style-GAN" (a mapping net and style-modulated upsampling blocks). The building
blocks, activations and initialisation are :mod:`ladder.nets`'s."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ladder.nets import (
    OUTPUT_SLOPE,
    Conv2dSame,
    GaussianHead,
    activation_layer,
    decode_flat,
    glorot_init_,
)


class CelebAEncoder(nn.Module):
    """SM E.2 encoder: Conv3x3/2 32, 64, 128, 256, 512 ('same', 128 -> 4), Conv3x3/2 1024 'valid'
    (4 -> 1), each with LeakyReLU, then FC512 and the Gaussian head.

    SM E.2 gives sigma no activation; we use ReLU + ``std_floor`` as the reference code does (a std
    must be positive). As for SM E.1, ``activation`` also follows FC512. The reference code's CelebA
    encoder is a different net (BatchNorm, no FC512; the reference-code appendix, section 1); this
    is the paper's.
    """

    def __init__(
        self, d_z: int = 256, activation: str = "leaky_relu", std_floor: float = 1e-3,
        std_activation: str = "relu", slope: float = OUTPUT_SLOPE,
    ) -> None:
        super().__init__()
        act = lambda: activation_layer(activation)  # noqa: E731
        layers: list[nn.Module] = []
        c_in = 3
        for c in (32, 64, 128, 256, 512):
            layers += [Conv2dSame(c_in, c, 3, 2), act()]
            c_in = c
        layers += [nn.Conv2d(512, 1024, 3, 2), act(), nn.Flatten(), nn.Linear(1024, 512), act()]
        self.body = nn.Sequential(*layers)
        self.head = GaussianHead(512, d_z, std_floor, std_activation, slope)
        glorot_init_(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.body(x))


class StyleModule(nn.Module):
    """SM E.2 style module: ``s = FC(w) -> 2C``; ``x * (s[:, :C] + 1) + s[:, C:]``."""

    def __init__(self, d_w: int, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_w, 2 * channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        scale, shift = self.fc(w)[:, :, None, None].chunk(2, dim=1)
        return x * (scale + 1) + shift


class StyleBlock(nn.Module):
    """One SM E.2 resolution: bilinear resize, Conv3x3, InstanceNorm (no affine), style module,
    LeakyReLU."""

    def __init__(self, c_in: int, c_out: int, size: int, d_w: int, activation: str) -> None:
        super().__init__()
        self.size = size
        self.conv = Conv2dSame(c_in, c_out, 3)
        self.norm = nn.InstanceNorm2d(c_out, affine=False, eps=1e-6)  # eps as the reference code
        self.style = StyleModule(d_w, c_out)
        self.act = activation_layer(activation)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.act(self.style(self.norm(self.conv(x)), w))


class StyleDecoder(nn.Module):
    """SM E.2 decoder ("inspired by Style-GAN") at 128x128.

    Mapping net ``w = (FC512 -> LeakyReLU) x 8 (z)``; ``w`` reshaped to 1x1x512 is the synthesis
    input and feeds every style module. At 2, 4, 8, 16, 32, 64, 128 px: :class:`StyleBlock` with
    512, 512, 512, 256, 256, 128, 128 channels; then Conv3x3 128, LeakyReLU, Conv3x3 3 and the
    output activation (``output_slope``: a leaky output's slope). Resizing is torch bilinear (TF1's
    legacy alignment differs slightly).
    """

    CHANNELS = (512, 512, 512, 256, 256, 128, 128)

    def __init__(
        self,
        d_z: int = 256,
        activation: str = "leaky_relu",
        output_activation: str = "linear",
        d_w: int = 512,
        n_mapping: int = 8,
        output_slope: float = OUTPUT_SLOPE,
    ) -> None:
        super().__init__()
        mapping: list[nn.Module] = []
        for i in range(n_mapping):
            mapping += [nn.Linear(d_z if i == 0 else d_w, d_w), activation_layer(activation)]
        self.mapping = nn.Sequential(*mapping)
        blocks, c_in = [], d_w
        for i, c in enumerate(self.CHANNELS):
            blocks.append(StyleBlock(c_in, c, 2 ** (i + 1), d_w, activation))
            c_in = c
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Sequential(
            Conv2dSame(c_in, 128, 3), activation_layer(activation),
            Conv2dSame(128, 3, 3), activation_layer(output_activation, output_slope),
        )
        glorot_init_(self)

    def _forward(self, z: Tensor) -> Tensor:
        w = self.mapping(z)
        x = w[:, :, None, None]
        for block in self.blocks:
            x = block(x, w)
        return self.to_rgb(x)

    def forward(self, z: Tensor) -> Tensor:
        return decode_flat(self._forward, z)
