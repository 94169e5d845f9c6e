"""Tests of the SLP-versus-SP measurement (Sec 4.3) and its figure."""

from __future__ import annotations

import math
from dataclasses import replace

import matplotlib
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import distributions as D
from torch import nn

from ladder.classifier import LeNetClassifier
from ladder.config import ModelConfig
from ladder.config_priors import DPGMMConfig, GMMConfig, PriorVAEConfig, VampConfig
from ladder.likelihoods import LaplaceLikelihood
from ladder.model import VAE, build_model
from ladder.plots.slp import plot_slp_vs_sp
from ladder.priors import Prior
from ladder.slp_eval import (
    METRICS,
    PER_PAIR,
    WHOLE_SET,
    compare_slp_sp,
    comparison_rows,
    comparison_table,
    latent_space,
    random_pairs,
    whole_set_share,
)

matplotlib.use("Agg")
ROW_FIELDS = {"metric", "better", "slp", "slp_se", "sp", "sp_se", "diff", "diff_se",
              "slp_better", "n_pairs"}  # fmt: skip


def tiny(prior: str) -> VAE:
    cfg = ModelConfig(prior=prior, d_z=4, n_mc=2, gmm=GMMConfig(n_components=3),
                      vamp=VampConfig(n_pseudo_inputs=3), prior_vae=PriorVAEConfig(d_t=2, hidden=16),
                      dpgmm=DPGMMConfig(truncation=3))
    return build_model(cfg, "mnist", (1, 28, 28), seed=0).eval()


def classifier() -> LeNetClassifier:
    torch.manual_seed(0)
    return LeNetClassifier(feature_dim=8).eval()


def images(n: int = 24) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


class RingPrior(Prior):
    """A ring of Gaussians of radius 3 in 2-D: a low-density hole inside."""

    def __init__(self, k: int = 12) -> None:
        super().__init__(2)
        ang = torch.arange(k) * 2 * math.pi / k
        means = 3 * torch.stack([ang.cos(), ang.sin()], -1)
        self.dist = D.MixtureSameFamily(
            D.Categorical(logits=torch.zeros(k)),
            D.MultivariateNormal(means, 0.25 * torch.eye(2).expand(k, 2, 2)),
        )

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.dist.log_prob(z)


class PixelEncoder(nn.Module):
    """q(z|x) with mean the first two pixels: images carry their own codes."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = x.flatten(1)[:, :2]
        return mu, torch.ones_like(mu)


def ring_model() -> VAE:
    torch.manual_seed(0)
    decoder = nn.Sequential(nn.Linear(2, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
    return VAE(PixelEncoder(), decoder, LaplaceLikelihood(), RingPrior()).eval()


def test_random_pairs_are_seeded_and_distinct():
    p = random_pairs(5, 200, seed=3)
    assert p.shape == (200, 2) and p.min() >= 0 and p.max() < 5
    assert (p[:, 0] != p[:, 1]).all()
    assert torch.equal(p, random_pairs(5, 200, seed=3))
    assert not torch.equal(p, random_pairs(5, 200, seed=4))
    with pytest.raises(ValueError, match="at least 2 images"):
        random_pairs(1, 3)


def test_latent_space_follows_the_prior():
    ladder, normal = tiny("ladder"), tiny("normal")
    t, z = latent_space(ladder), latent_space(normal)
    assert (t.name, z.name) == ("t", "z")
    x = images(3)
    assert t.encode(x).shape == (3, 2) and z.encode(x).shape == (3, 4)
    assert t.log_prob(torch.zeros(5, 2)).shape == (5,)
    assert len(t.decoders) == 2 and t.decoders[-1] is ladder.decoder
    assert not torch.equal(latent_space(ladder, z_sample=True).encode(x), t.encode(x))
    with pytest.raises(ValueError, match="no closed-form log p"):
        latent_space(ladder, "z")
    with pytest.raises(ValueError, match="no t-space"):
        latent_space(normal, "t")
    with pytest.raises(ValueError, match="space is"):
        latent_space(normal, "x")


@pytest.mark.parametrize("prior, dim", [("ladder", 2), ("gmm", 4)])
def test_shapes_and_summary_fields(prior, dim):
    model, clf = tiny(prior), classifier()
    model.train()  # the mode is restored afterwards
    res = compare_slp_sp(model, images(), clf, n_pairs=6, iters=5, n_steps=4, n_boot=3)
    assert model.training and not clf.training
    assert res.paths["slp"].shape == res.paths["sp"].shape == (6, 6, dim)
    assert res.frames["slp"].shape == (6, 6, 1, 28, 28)
    assert res.slp.history["objective"].shape == (6, 6)
    for method in ("slp", "sp"):
        assert set(res.per_pair[method]) == set(PER_PAIR) == set(METRICS) - set(WHOLE_SET)
        assert all(v.shape == (6,) for v in res.per_pair[method].values())
        for metric in WHOLE_SET:
            assert math.isfinite(res.whole_set[metric][method])
            assert res.whole_set_boot[metric][method].shape == (3,)
        c = res.per_pair[method]["confidence"]
        assert ((c >= 0.1) & (c <= 1)).all()  # max softmax of 10 classes
        share = torch.cat([res.per_pair[method]["precision"],
                           res.whole_set_boot["coverage"][method],
                           torch.tensor([res.whole_set["coverage"][method]])])
        assert ((share >= 0) & (share <= 1)).all()
    rows = res.summary()
    assert [r["metric"] for r in rows] == list(METRICS)
    assert all(set(r) == ROW_FIELDS for r in rows)
    length = rows[list(METRICS).index("length")]
    assert length["slp_better"] == 0.0  # nothing is shorter than the straight line
    table = comparison_table({prior: res})
    assert table.count("\n") == 1 + len(METRICS)
    assert all(f"| {m} |" in table for m in METRICS) and "(boot)" in table
    n = len(METRICS)
    assert [r["model"] for r in comparison_rows({"a": res, "b": res})] == ["a"] * n + ["b"] * n
    with pytest.raises(ValueError, match="unknown metrics"):
        comparison_table({prior: res}, metrics=["fid"])


def test_slp_beats_sp_in_min_log_p_around_a_hole():
    deg = torch.tensor([0.0, 90.0, 180.0, 270.0]).deg2rad()
    x = torch.zeros(4, 1, 28, 28)
    x.view(4, -1)[:, :2] = 3 * torch.stack([deg.cos(), deg.sin()], -1)
    res = compare_slp_sp(ring_model(), x, classifier(), n_pairs=8, iters=300, n_boot=0,
                         reference_images=images(), preset="paper")
    slp, sp = res.per_pair["slp"], res.per_pair["sp"]
    assert res.space == "z"
    assert (slp["log_p_min"] > sp["log_p_min"] + 0.5).all()
    assert (slp["length"] > sp["length"]).all()
    rows = {r["metric"]: r for r in res.summary()}
    assert rows["log_p_min"]["slp_better"] == 1.0 and rows["log_p_min"]["diff"] > 0
    assert math.isnan(rows["fcd"]["slp_se"]) and math.isnan(rows["fcd"]["slp_better"])


@given(diff=st.floats(-10, 10), diff_se=st.floats(1e-3, 10))
def test_whole_set_share_is_the_normal_probability_that_slp_wins(diff, diff_se):
    share = whole_set_share(diff, diff_se, "higher")
    assert share == pytest.approx(0.5 * math.erfc(-diff / (diff_se * math.sqrt(2))))
    assert whole_set_share(-diff, diff_se, "lower") == share  # lower is better: the sign flips
    assert share + whole_set_share(-diff, diff_se, "higher") == pytest.approx(1)
    assert share == 0.5 or (share > 0.5) == (diff > 0)
    assert whole_set_share(diff, 0.0, "higher") == (1.0 if diff > 0 else 0.0 if diff < 0 else 0.5)
    assert math.isnan(whole_set_share(diff, math.nan, "higher"))


def test_a_whole_set_measure_is_judged_on_the_whole_set_not_on_the_resamples():
    # a resample holds about 63% of the pairs, so coverage is lower there, and more so for the
    # straight line: SLP wins every replicate below, yet the whole set has SP ahead by 3 errors
    res = compare_slp_sp(tiny("normal"), images(), classifier(), n_pairs=6, iters=3, n_boot=2)
    res = replace(res, whole_set={**res.whole_set, "coverage": {"slp": 0.39, "sp": 0.42}},
                  whole_set_boot={**res.whole_set_boot, "coverage": {
                      "slp": torch.tensor([0.31, 0.32, 0.33], dtype=torch.float64),
                      "sp": torch.tensor([0.30, 0.30, 0.30], dtype=torch.float64)}})
    row = {r["metric"]: r for r in res.summary()}["coverage"]
    assert row["diff"] == pytest.approx(-0.03) and row["diff_se"] == pytest.approx(0.01)
    assert row["slp_better"] == pytest.approx(whole_set_share(-0.03, 0.01, "higher"))
    assert row["slp_better"] < 0.01


def test_a_seed_gives_the_same_measurement():
    model, clf, x = tiny("ladder"), classifier(), images()
    a, b, c = (compare_slp_sp(model, x, clf, n_pairs=5, iters=10, n_boot=2, seed=s, z_sample=True)
               for s in (1, 1, 2))  # fmt: skip
    assert torch.equal(a.pairs, b.pairs) and torch.equal(a.paths["slp"], b.paths["slp"])
    assert a.summary() == b.summary()
    assert not torch.equal(a.pairs, c.pairs)


def test_comparison_figure_builds():
    res = compare_slp_sp(tiny("normal"), images(), classifier(), n_pairs=6, iters=3, n_boot=2)
    fig = plot_slp_vs_sp({"normal": res, "again": res})
    assert isinstance(fig, Figure) and len(fig.axes) == len(METRICS)
    assert len(plot_slp_vs_sp({"normal": res}, metrics=["log_p_min"]).axes) == 1
    four = plot_slp_vs_sp({"normal": res}, metrics=list(METRICS)[:4])  # rows of three
    assert len(four.axes) == 4 and four.get_size_inches()[0] <= 7.5  # fits the page width
    with pytest.raises(ValueError, match="metrics come from"):
        plot_slp_vs_sp({"normal": res}, metrics=["fid"])
