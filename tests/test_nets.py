from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ladder.autoencoder import build_autoencoder
from ladder.nets import (
    Conv2dSame,
    GaussianMLPEncoder,
    MLPDecoder,
    MnistDecoder,
    MnistEncoder,
    SymmetricPad2d,
    activation_layer,
)


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("padding", [2, (1, 3, 0, 2)])
def test_symmetric_pad_matches_numpy(padding):
    x = torch.randn(2, 3, 5, 4)
    left, right, top, bottom = (padding,) * 4 if isinstance(padding, int) else padding
    want = np.pad(x.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode="symmetric")
    pad = SymmetricPad2d(padding)
    assert np.array_equal(pad(x).numpy(), want)
    assert np.array_equal(pad(x.to(memory_format=torch.channels_last)).numpy(), want)
    # unlike torch's "reflect", the edge pixel is repeated
    assert not torch.equal(pad(x), F.pad(x, (left, right, top, bottom), mode="reflect"))
    with pytest.raises(ValueError, match="exceeds"):
        SymmetricPad2d(6)(x)


def test_conv_same_pads_like_tensorflow():
    torch.manual_seed(0)
    conv = Conv2dSame(2, 3, 3, stride=2)
    for size in (32, 7, 4):
        assert conv(torch.randn(1, 2, size, size)).shape[-1] == math.ceil(size / 2)
    x = torch.randn(1, 2, 8, 8)  # TF SAME, stride 2, even input: one row/column at bottom/right
    want = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    assert torch.allclose(conv(x), want, atol=1e-6)
    one = Conv2dSame(2, 3, 3)
    assert one(x).shape == (1, 3, 8, 8)


def test_mnist_autoencoder_shapes_and_sizes():
    torch.manual_seed(0)
    enc, dec = build_autoencoder("mnist", 16)
    # SM E.1: convs 1->16->64->256, FC 4096->64, heads 64->16 (x2); FC 16->4096, convs 256->256,
    # 64->64, 16->16 (3x3) and 4->1 (5x5)
    assert _n_params(enc) == 160 + 9_280 + 147_712 + 262_208 + 2 * 1_040 == 421_440
    assert _n_params(dec) == 69_632 + 590_080 + 36_928 + 2_320 + 101 == 699_061
    x = torch.rand(4, 1, 28, 28)
    mu, std = enc(x)
    assert mu.shape == std.shape == (4, 16)
    assert (std >= 1e-3).all()
    x_hat = dec(mu)
    assert x_hat.shape == (4, 1, 28, 28)
    assert (x_hat > 0).all() and (x_hat < 1).all()  # sigmoid (SM E.1)
    assert dec(torch.randn(3, 4, 16)).shape == (3, 4, 1, 28, 28)  # leading sample dims
    mu_cl, std_cl = enc(x.to(memory_format=torch.channels_last))
    assert torch.allclose(mu_cl, mu, atol=1e-5) and torch.allclose(std_cl, std, atol=1e-5)


def test_std_floor_and_options():
    enc, dec = build_autoencoder("fashion", 8, "leaky_relu", "relu", std_floor=0.01)
    assert isinstance(enc, MnistEncoder) and isinstance(dec, MnistDecoder)
    leaky = [m for m in enc.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == 4 and all(m.negative_slope == 0.2 for m in leaky)
    assert isinstance(dec.body[-1], nn.ReLU)
    nn.init.constant_(enc.head.pre_std.bias, -100.0)  # all dead: std sits exactly at the floor
    _, std = enc(torch.rand(2, 1, 28, 28))
    assert torch.allclose(std, torch.full_like(std, 0.01))
    _, linear = build_autoencoder("celeba", 8, output_activation="linear")
    assert isinstance(linear.to_rgb[-1], nn.Identity)
    paper = build_autoencoder("mnist", 8)
    assert isinstance(paper[1].body[-1], nn.Sigmoid)
    assert not any(isinstance(m, nn.LeakyReLU) for m in paper[0].modules())
    bad_args = ({"dataset": "fashion-mnist"}, {"activation": "gelu"}, {"output_activation": "tanh"})
    for bad in bad_args:
        args = {"dataset": "mnist", "d_z": 8, **bad}
        with pytest.raises(ValueError):
            build_autoencoder(**args)


def test_a_leaky_output_keeps_its_slope_below_zero():
    torch.manual_seed(0)
    _, leaky = build_autoencoder("mnist", 8, output_activation="leaky_relu", output_slope=0.05)
    z = torch.randn(4, 8)
    with torch.no_grad():
        pre, out = leaky.body[:-1](z), leaky(z)
    assert (pre < 0).any() and (pre > 0).any()  # Glorot weights put outputs on both sides of 0
    torch.testing.assert_close(out, torch.where(pre > 0, pre, 0.05 * pre))
    _, style = build_autoencoder("celeba", 8, output_activation="leaky_relu", output_slope=0.1)
    assert isinstance(style.to_rgb[-1], nn.LeakyReLU) and style.to_rgb[-1].negative_slope == 0.1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=20), st.floats(0.01, 0.5))
def test_relu_leaky_grad_has_relu_values_and_leaky_gradients(values, slope):
    x = torch.tensor(values, requires_grad=True)
    y = activation_layer("relu_leaky_grad", slope)(x)
    y.sum().backward()
    assert torch.equal(y.detach(), torch.relu(x.detach()))
    torch.testing.assert_close(x.grad, torch.where(x.detach() > 0, 1.0, slope))


@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
def test_an_encoder_std_on_its_floor_learns_only_with_the_leaky_gradient_head(dataset):
    """Both std heads put every entry with FC(h) < 0 on the floor; only "relu_leaky_grad" passes a
    gradient there (``output_slope``), so an entry the ReLU head leaves there for good can leave."""
    size = 28 if dataset == "mnist" else 128
    x = torch.rand(2, 1 if dataset == "mnist" else 3, size, size)
    grads, stds = {}, {}
    for head in ("relu", "relu_leaky_grad"):
        torch.manual_seed(0)
        enc, _ = build_autoencoder(dataset, 4, std_floor=0.01, output_slope=0.1,
                                   std_activation=head)
        nn.init.constant_(enc.head.pre_std.bias, -100.0)  # every entry on the floor
        _, std = enc(x)
        (-std.log().sum()).backward()  # the entropy term pushes each std up
        stds[head], grads[head] = std.detach(), enc.head.pre_std.bias.grad
    assert torch.equal(stds["relu"], stds["relu_leaky_grad"])
    assert torch.allclose(stds["relu"], torch.full_like(stds["relu"], 0.01))
    assert torch.equal(grads["relu"], torch.zeros_like(grads["relu"]))
    # d(-sum log std)/d bias = -0.1 / 0.01 per image, two images
    torch.testing.assert_close(grads["relu_leaky_grad"], torch.full((4,), -20.0))
    with pytest.raises(ValueError, match="std_activation"):
        build_autoencoder(dataset, 4, std_activation="softplus")


def test_glorot_init_and_zero_bias():
    torch.manual_seed(0)
    enc = MnistEncoder(16)
    fc = enc.body[-2]
    bound = math.sqrt(6 / (fc.in_features + fc.out_features))
    assert fc.weight.abs().max() <= bound and fc.weight.abs().max() > 0.9 * bound
    assert all((m.bias == 0).all() for m in enc.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))


def test_prior_mlps():
    enc = GaussianMLPEncoder(16, 2, hidden=32, n_layers=3, std_floor=1e-3)
    dec = MLPDecoder(2, 16, hidden=32, n_layers=5)
    assert sum(isinstance(m, nn.Linear) for m in enc.modules()) == 3 + 2  # body + two heads
    assert sum(isinstance(m, nn.Linear) for m in dec.modules()) == 5 + 1
    assert all(m.negative_slope == 0.2 for m in enc.modules() if isinstance(m, nn.LeakyReLU))
    mu, std = enc(torch.randn(7, 5, 16))  # [S, B, d]
    assert mu.shape == std.shape == (7, 5, 2) and (std >= 1e-3).all()
    assert dec(mu).shape == (7, 5, 16)
    with pytest.raises(ValueError, match="n_layers"):
        MLPDecoder(2, 16, n_layers=0)


def test_nets_follow_the_device():
    """No tensor is made on a fixed device: the nets run on the meta device (and on CUDA)."""
    devices = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        enc, dec = build_autoencoder("mnist", 4)
        enc, dec = enc.to(device), dec.to(device)
        mu, _ = enc(torch.rand(2, 1, 28, 28, device=device))
        assert dec(mu).device.type == device
        pad = SymmetricPad2d(1)(torch.rand(1, 1, 3, 3, device=device))
        assert pad.shape == (1, 1, 5, 5) and pad.device.type == device


def test_networks_hand_back_float32_under_bf16_autocast():
    """train.precision = bf16: the matrix products run in bf16 inside, but every network's output
    is float32 (so no density is computed in bf16) and close to its float32 output. The CelebA
    decoder is left out: it hands back through the same decode_flat as the MNIST decoder, and a
    bf16 decode of one 128 px image takes ~45 s on a CPU without native bf16 (AVX2)."""
    torch.manual_seed(0)
    celeba_encoder, _ = build_autoencoder("celeba", 8)
    nets = [(*build_autoencoder("mnist", 4), torch.rand(3, 1, 28, 28)),
            (celeba_encoder, None, torch.rand(2, 3, 128, 128)),
            (GaussianMLPEncoder(16, 2, hidden=32), MLPDecoder(2, 16, hidden=32),
             torch.randn(5, 16))]
    for enc, dec, x in nets:
        with torch.no_grad():
            full = (*enc(x), *([dec(enc(x)[0])] if dec else []))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                mu, std = enc(x)
                half = (mu, std, *([dec(mu)] if dec else []))
        for low, exact in zip(half, full, strict=True):
            assert low.dtype == torch.float32
            assert (low - exact).abs().max() <= 0.05 * exact.abs().max() + 0.02
