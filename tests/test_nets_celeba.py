"""SM E.2's CelebA encoder and style-based decoder at 128x128."""

from __future__ import annotations

import torch
from torch import nn

from ladder.autoencoder import build_autoencoder
from ladder.nets_celeba import CelebAEncoder, StyleDecoder, StyleModule


def test_celeba_nets_at_128():
    torch.manual_seed(0)
    enc, dec = build_autoencoder("celeba", 32)
    assert isinstance(enc, CelebAEncoder) and isinstance(dec, StyleDecoder)
    assert [b.conv.out_channels for b in dec.blocks] == [512, 512, 512, 256, 256, 128, 128]
    assert [b.size for b in dec.blocks] == [2, 4, 8, 16, 32, 64, 128]
    assert sum(isinstance(m, nn.Linear) for m in dec.mapping) == 8
    x = torch.rand(2, 3, 128, 128).to(memory_format=torch.channels_last)
    with torch.no_grad():
        mu, std = enc(x)
        assert mu.shape == std.shape == (2, 32) and (std >= 1e-3).all()
        assert dec(mu).shape == (2, 3, 128, 128)


def test_style_module_formula():
    style = StyleModule(4, 3)
    x, w = torch.randn(2, 3, 5, 5), torch.randn(2, 4)
    s = style.fc(w)
    want = x * (s[:, :3, None, None] + 1) + s[:, 3:, None, None]
    assert torch.allclose(style(x, w), want)
