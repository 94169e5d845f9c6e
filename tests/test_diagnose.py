"""The run diagnostic (issue 15): each number and flag on a model built to pass or fail it."""

import pytest
import torch
from conftest import few_components
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import Normal, kl_divergence

from ladder.config import preset_config
from ladder.diagnose import (
    DEAD_INK_LIMIT,
    comparison_table,
    diagnose,
    diagnosis_table,
    findings,
)
from ladder.likelihoods import LaplaceLikelihood
from ladder.model import VAE, build_model
from ladder.nets import GaussianHead
from ladder.priors import NormalPrior


class _PixelEncoder(nn.Module):
    """q(z|x) read off the image: mu = the first d pixels, std = |the next d| + floor."""

    def __init__(self, d, floor=1e-3):
        super().__init__()
        self.d = d
        self.head = GaussianHead(1, d, floor)  # carries the floor, as the real encoders' heads

    def forward(self, x):
        flat = x.flatten(1)
        return flat[:, : self.d], flat[:, self.d : 2 * self.d].abs() + self.head.std_floor


class _MeanDecoder(nn.Module):
    """x_hat = [mu, 0...]: reconstructs the first d pixels exactly (``black``: all 0)."""

    def __init__(self, black=False):
        super().__init__()
        self.black = black

    def forward(self, z):
        x_hat = torch.cat([z, torch.zeros_like(z)], 1).view(z.shape[0], 1, 1, -1)
        return x_hat * 0 if self.black else x_hat


def _pixel_model(d):
    return VAE(_PixelEncoder(d), _MeanDecoder(), LaplaceLikelihood("mae"), NormalPrior(d))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(2, 40), st.integers(0, 2**31 - 1))
def test_kl_per_dimension_is_the_closed_form_averaged_over_the_images(d, n, seed):
    g = torch.Generator().manual_seed(seed)
    mu, std = torch.randn(n, d, generator=g), torch.rand(n, d, generator=g) + 0.05
    images = torch.cat([mu, std], 1).view(n, 1, 1, 2 * d).double()
    found = diagnose(_pixel_model(d).double(), images, batch_size=7)
    expected = kl_divergence(Normal(mu.double(), std.double() + 1e-3), Normal(0.0, 1.0)).mean(0)
    torch.testing.assert_close(torch.tensor(found["kl_per_dim"], dtype=torch.float64), expected)
    assert found["kl"] == pytest.approx(float(expected.sum()))
    assert found["n_images"] == n and len(found["z_activity"]) == d


def test_a_collapsed_encoder_is_flagged_and_a_used_one_is_not():
    n, d = 64, 3
    g = torch.Generator().manual_seed(0)
    used = torch.cat([torch.randn(n, d, generator=g), torch.zeros(n, d)], 1).view(n, 1, 1, -1)
    collapsed = torch.cat([torch.zeros(n, d), torch.ones(n, d)], 1).view(n, 1, 1, -1)
    good, bad = (diagnose(_pixel_model(d), x) for x in (used, collapsed))
    assert good["active_z"] == d and not good["collapsed"]
    assert good["floor_share"] == 1.0  # std = |0| + floor
    assert good["std_median"] == pytest.approx(1e-3) and bad["std_median"] == pytest.approx(1 + 1e-3)
    assert bad["active_z"] == 0 and bad["collapsed"] and bad["floor_share"] == 0.0
    assert any("no dimension of z is active" in f for f in findings(bad, "relu"))
    assert not findings(good, "relu")
    early = findings(bad, "relu", settled=False)  # early in training a collapse is no finding
    assert not any("active" in f for f in early)


def test_a_shrunk_latent_is_inactive_by_the_fixed_threshold_but_informative():
    n, d = 256, 3
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(n, d, generator=g, dtype=torch.float64)
    shrunk = torch.cat([0.01 * spread, torch.zeros(n, d)], 1).view(n, 1, 1, -1)  # std: the floor
    found = diagnose(_pixel_model(d).double(), shrunk)
    assert found["active_z"] == 0 and found["informative_z"] == d
    expected = (0.01 * spread).var(0, correction=0) / 1e-6
    torch.testing.assert_close(torch.tensor(found["z_signal_to_noise"], dtype=torch.float64), expected)
    collapsed = torch.cat([torch.zeros(n, d), torch.ones(n, d)], 1).view(n, 1, 1, -1)
    assert diagnose(_pixel_model(d).double(), collapsed)["informative_z"] == 0


def test_an_exact_reconstruction_has_not_stalled_and_a_black_one_has():
    n, d = 32, 4
    x = torch.rand(n, 1, 1, 2 * d)
    x[..., d:] = 0  # the decoder reconstructs the first d pixels; the rest are black
    good = diagnose(_pixel_model(d), x)
    assert good["image_mae"] == 0 and good["black_mae"] > 0.1 and not good["stalled"]
    model = _pixel_model(d)
    model.decoder = _MeanDecoder(black=True)
    black = diagnose(model, x)
    assert black["stalled"] and black["image_mae"] == pytest.approx(black["black_mae"])
    assert any("all-black" in f for f in findings(black, "relu"))


def _mnist_model(output_activation="relu", prior="normal"):
    cfg = preset_config("paper", "mnist", prior)
    cfg.model.output_activation = output_activation
    few_components(cfg.model, 5)
    return build_model(cfg.model, "mnist", (1, 28, 28), seed=1)


def test_dead_outputs_are_the_inked_pixels_below_zero_for_every_image():
    model = _mnist_model()
    x = torch.zeros(50, 1, 28, 28)
    x[:, :, :14] = torch.rand(50, 1, 14, 28)  # ink in the top half only
    with torch.no_grad():
        model.decoder.body[-2].bias.fill_(-100.0)  # every output <= 0: a dead ReLU unit
    dead = diagnose(model, x)
    assert dead["dead_outputs"] == 14 * 28 and dead["dead_share"] == 0.5
    assert dead["dead_ink_share"] == 1.0 > DEAD_INK_LIMIT and dead["stalled"]
    advice = findings(dead, "relu", settled=False)
    assert len(advice) == 1 and "--set model.output_activation=relu_leaky_grad" in advice[0]
    with torch.no_grad():
        model.decoder.body[-2].bias.fill_(100.0)
    alive = diagnose(model, x)
    assert alive["dead_outputs"] == 0 and not findings(alive, "relu", settled=False)


def test_dead_pixels_with_a_trace_of_ink_are_counted_but_no_finding():
    n, d = 10, 4
    x = torch.cat([torch.rand(n, d) + 0.5, torch.zeros(n, d)], 1).view(n, 1, 1, 2 * d)
    x[0, ..., d:] = 0.01  # a trace of ink where the decoder outputs 0 for every image
    found = diagnose(_pixel_model(d), x)
    assert found["dead_outputs"] == d and found["dead_share"] == 0.5
    assert found["dead_ink_share"] == pytest.approx(d * 0.01 / float(x.sum()))
    assert found["dead_ink_share"] < DEAD_INK_LIMIT and not findings(found, "relu")


def test_the_diagnostic_reads_no_random_state_and_leaves_the_mode_alone():
    model = _mnist_model(prior="ladder").train()
    x = torch.rand(20, 1, 28, 28)
    state = torch.get_rng_state()
    first = diagnose(model, x, batch_size=8)
    assert torch.equal(torch.get_rng_state(), state) and model.training
    assert diagnose(model, x, batch_size=8) == first  # deterministic
    whole = diagnose(model, x)  # in one batch
    assert whole["image_mae"] == pytest.approx(first["image_mae"], rel=1e-9)
    assert whole["active_z"] == first["active_z"] and whole["kl"] == pytest.approx(first["kl"])
    assert {"prior_active_t", "prior_floor_share_t"} <= set(first)
    assert "prior_hyper_active_components" not in first  # the DP-GMM is not fitted yet
    model.prior.refit(model.encoder(x)[0].detach())
    assert diagnose(model, x)["prior_hyper_active_components"] >= 1


def test_the_table_lists_every_diagnostic():
    found = diagnose(_mnist_model(), torch.rand(4, 1, 28, 28))
    table = diagnosis_table(found)
    assert table.splitlines()[0] == "| diagnostic | value |"
    assert all(f"| {key} |" in table for key in found)
    with pytest.raises(ValueError, match="at least 2 images"):
        diagnose(_mnist_model(), torch.rand(1, 1, 28, 28))


def test_the_comparison_has_a_column_per_run_and_a_dash_where_a_run_lacks_a_diagnostic():
    table = comparison_table({"a": {"active_z": 3, "kl": 0.123456}, "b": {"active_z": 0,
                                                                          "shares": [0.5, 0.25]}})
    assert table.splitlines() == ["| diagnostic | a | b |", "|---|---|---|",
                                  "| active_z | 3 | 0 |", "| kl | 0.1235 | - |",
                                  "| shares | - | [0.5, 0.25] |"]
    assert comparison_table({"a": {"active_z": 3, "kl": 1.0}}, keys=["kl"]).splitlines()[-1] \
        == "| kl | 1 |"
