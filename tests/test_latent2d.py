import dataclasses
import math

import matplotlib
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import Tensor, nn

import ladder.latent2d as latent2d
from ladder.aggregate import aggregate_log_density
from ladder.config import ConfigError, ModelConfig
from ladder.config_priors import DPGMMConfig, GMMConfig, PriorVAEConfig, VampConfig
from ladder.image_sets import TensorImageSet
from ladder.latent2d import (
    aggregate_cell_masses,
    compare_hyper_prior,
    compare_priors,
    cross_entropy,
    encode,
    grid_points,
    log_density,
    prior_config,
)
from ladder.likelihoods import LaplaceLikelihood
from ladder.model import VAE
from ladder.plots.latent2d import plot_fig2, plot_log_densities
from ladder.prior_registry import build_prior
from ladder.priors import NormalPrior, reparameterise, standard_normal_cross_entropy

matplotlib.use("Agg")

CENTRES = torch.tensor([[-3.0, -3.0], [3.0, -3.0], [0.0, 3.0]])
SMALL = ModelConfig(d_z=2, n_mc=8, gmm=GMMConfig(n_components=4),
                    vamp=VampConfig(n_pseudo_inputs=4),
                    prior_vae=PriorVAEConfig(d_t=1, hidden=16, layers=1),
                    dpgmm=DPGMMConfig(truncation=4, max_iter=30))


class ToyEncoder(nn.Module):
    """A tiny synthetic "encoder": image pixels 0 and 1 are the posterior mean, std 0.3."""

    def __init__(self) -> None:
        super().__init__()
        self.mu = nn.Linear(4, 2)
        self.pre_std = nn.Linear(4, 2)
        with torch.no_grad():
            self.mu.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
            self.mu.bias.zero_()
            self.pre_std.weight.zero_()
            self.pre_std.bias.fill_(0.3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = x.flatten(1)
        return self.mu(h), self.pre_std(h).abs()


def _toy_vae() -> VAE:
    torch.manual_seed(0)
    decoder = nn.Sequential(nn.Linear(2, 4), nn.Unflatten(1, (1, 2, 2)))
    return VAE(ToyEncoder(), decoder, LaplaceLikelihood(), NormalPrior(2))


def _clustered_images(n: int, seed: int) -> TensorImageSet:
    g = torch.Generator().manual_seed(seed)
    z = CENTRES[torch.randint(0, 3, (n,), generator=g)] + 0.4 * torch.randn(n, 2, generator=g)
    x = torch.cat([z, torch.zeros(n, 2)], 1).reshape(n, 1, 2, 2)
    return TensorImageSet("toy", x)


def test_grid_points_shape_and_order():
    xs, ys, points = grid_points(6.0, 0.5)
    assert xs.shape == ys.shape == (25,) and points.shape == (625, 2)
    assert float(xs[0]) == -6.0 and float(xs[-1]) == 6.0
    torch.testing.assert_close(points[1], torch.tensor([-5.5, -6.0]))  # x varies fastest
    with pytest.raises(ValueError):
        grid_points(6.0, 0.0)


def test_cross_entropy_is_seeded_and_leaves_the_global_rng_alone():
    mu, std = torch.randn(50, 2), torch.full((50, 2), 0.5)
    state = torch.get_rng_state()
    a = cross_entropy(NormalPrior(2), mu, std, n_z=4, seed=3)
    b = cross_entropy(NormalPrior(2), mu, std, n_z=4, seed=3)
    assert a == b and torch.equal(state, torch.get_rng_state())
    analytic = float(NormalPrior(2).cross_entropy(mu, std, mu).mean())
    assert abs(a[0] - analytic) < 4 * a[1] + 0.05


def test_prior_config_allows_d_t_up_to_d_z_only():
    assert prior_config("ladder", d_z=2, d_t=2).prior_vae.d_t == 2
    assert prior_config("hierarchical", d_z=2, d_t=1, base=SMALL).prior_vae.hidden == 16
    with pytest.raises(ConfigError):
        prior_config("ladder", d_z=2, d_t=3)


def test_generative_priors_use_importance_sampling():
    torch.manual_seed(0)
    encoder = ToyEncoder()
    ladder = build_prior(prior_config("ladder", base=SMALL), encoder, (1, 2, 2))
    gmm = build_prior(prior_config("gmm", base=SMALL), encoder, (1, 2, 2))
    assert not ladder.exact_density and gmm.exact_density
    z = torch.randn(7, 2)
    assert log_density(ladder, z, n_samples=16, chunk=3).shape == (7,)
    torch.testing.assert_close(log_density(gmm, z, chunk=3), gmm.log_prob(z))


def test_compare_priors_fits_clustered_encodings_and_freezes_the_autoencoder():
    model = _toy_vae()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train, test = _clustered_images(512, 0), _clustered_images(256, 1)
    res = compare_priors(model, train, test, d_t=1, base=SMALL, epochs=2, batch_size=128,
                         lr=1e-3, extent=6.0, resolution=0.25, n_samples=16, seed=0)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())
    assert set(res.log_p) == {"normal", "hierarchical", "vamp", "gmm", "ladder"}
    assert res.log_q.shape == (49, 49) and all(v.shape == (49, 49) for v in res.log_p.values())
    assert all(torch.isfinite(v).all() for v in res.log_p.values())
    assert abs(res.mass("aggregate") - 1.0) < 0.02
    assert abs(res.mass("normal") - 1.0) < 0.02
    ce = res.cross_entropy
    # Three tight clusters: the fitted GMM beats N(0, I) by far, and q itself is the best prior.
    assert ce["gmm"] > ce["normal"] + 1.0, ce
    assert ce["aggregate"] > ce["normal"] + 1.0, ce
    assert set(res.cross_entropy_stderr) == set(ce) and len(res.history["gmm"]) == 2
    assert "normal" not in res.history
    # N(0, I) puts much of its mass between the clusters, where q is tiny; the GMM does not.
    assert res.mass_where_q_below("normal", -6.0) > 2 * res.mass_where_q_below("gmm", -6.0)
    level = res.low_density_threshold(0.05)
    assert abs(res.mass_where_q_below("aggregate", level) - 0.05) < 0.01
    assert res.mass_where_q_below("normal", level) > 0.3  # N(0, I) fills the gaps
    with pytest.raises(ValueError):
        res.low_density_threshold(1.0)


def test_compare_hyper_prior_scores_p_t_against_q_t():
    torch.manual_seed(0)
    model = _toy_vae()
    base = dataclasses.replace(SMALL, prior_vae=dataclasses.replace(SMALL.prior_vae, d_t=2))
    prior = build_prior(prior_config("hierarchical", d_t=2, base=base), model.encoder, (1, 2, 2))
    train = encode(model, _clustered_images(256, 0))
    test = encode(model, _clustered_images(64, 1))
    res = compare_hyper_prior(prior, train, test, extent=4.0, resolution=0.2, seed=0)
    assert res.log_q.shape == res.log_p["hyper"].shape == (41, 41)
    assert set(res.cross_entropy) == {"aggregate", "hyper"}
    assert abs(res.mass("hyper") - 1.0) < 0.01  # N(0, I) on [-4, 4]^2
    # The Monte Carlo cross-entropy of N(0, I) over t ~ q(t|z), z ~ q(z|x) of the test encodings
    # agrees with the closed form on the same z (drawn as the function draws them).
    torch.manual_seed(0)
    reparameterise(*train)
    with torch.no_grad():
        mu_t, std_t = prior.encode(reparameterise(*test))
    closed_form = float(standard_normal_cross_entropy(mu_t, std_t).mean())
    assert abs(res.cross_entropy["hyper"] - closed_form) < 4 * res.cross_entropy_stderr["hyper"]
    one_d = build_prior(prior_config("hierarchical", d_t=1, base=SMALL), model.encoder, (1, 2, 2))
    with pytest.raises(ValueError, match="d_t = 2"):
        compare_hyper_prior(one_d, train, test)


def test_compare_priors_is_reproducible_and_checks_its_input():
    model = _toy_vae()
    train, test = _clustered_images(256, 0), _clustered_images(64, 1)
    kwargs = dict(names=("normal", "gmm"), base=SMALL, d_t=1, epochs=1, resolution=0.5,
                  n_samples=8, seed=1)
    a, b = (compare_priors(model, train, test, **kwargs) for _ in range(2))
    assert a.cross_entropy == b.cross_entropy
    assert torch.equal(a.log_p["gmm"], b.log_p["gmm"])
    with pytest.raises(ValueError, match="unknown priors"):
        compare_priors(model, train, test, names=("flow",))
    model3 = VAE(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), _Split()), model.decoder,
                 model.likelihood, NormalPrior(3))
    with pytest.raises(ValueError, match="2-D latent"):
        compare_priors(model3, train, test, names=("normal",))


class _Split(nn.Module):
    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return h, h.abs() + 0.1


def test_encode_covers_every_image_in_order():
    images = _clustered_images(130, 2)
    mu, std = encode(_toy_vae(), images, batch_size=50)
    torch.testing.assert_close(mu, images.data.flatten(1)[:, :2])
    assert std.shape == (130, 2) and math.isclose(float(std.min()), 0.3, rel_tol=1e-6)


def test_plots_draw_the_panels_present_with_their_letters():
    grid = torch.randn(9, 9)
    fig = plot_fig2({"ladder": grid, "aggregate": grid, "hierarchical": grid})
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [t[:2] for t in titles] == ["a)", "c)", "f)"]  # paper order, paper letters
    assert len(fig.axes) == 4  # three panels and the colour bar
    six = plot_fig2({k: grid for k in ("aggregate", "normal", "hierarchical", "vamp", "gmm",
                                       "ladder")})
    assert len(six.axes) == 7
    with pytest.raises(ValueError, match="unknown panels"):
        plot_fig2({"flow": grid})
    with pytest.raises(ValueError):
        plot_log_densities({"x": torch.randn(9)})
    fig = plot_log_densities({"q(t)": grid, "N(0, I)": grid}, extent=4.0,
                             axis_labels=("$t_1$", "$t_2$"))
    assert fig.axes[0].get_xlabel() == "$t_1$" and fig.axes[0].get_xlim() == (-4.0, 4.0)


@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 20), log_std=st.floats(-6, 1), shift=st.floats(-3, 3))
@example(n=1, log_std=1.0, shift=2.0)
def test_cell_masses_of_q_sum_to_one_and_match_the_density_where_it_is_resolved(n, log_std,
                                                                                shift):
    """Any posterior width, even far narrower than a cell: the masses sum to 1, and where q lies
    inside the grid (every mean at least 4 std from its edge) their first moment is q's mean to
    within half a cell. (The edge cells hold the mass beyond the grid, so a posterior wider than
    that pulls the moment inwards: hypothesis found n=1, std e, mean 2.66, off by 0.14.)"""
    generator = torch.Generator().manual_seed(n)
    mu = torch.randn(n, 2, generator=generator, dtype=torch.float64) + shift
    std = torch.full((n, 2), math.exp(log_std), dtype=torch.float64)
    xs, ys, _ = grid_points(extent=6.0, resolution=0.25)
    masses = aggregate_cell_masses(xs, ys, mu, std)
    assert masses.shape == (len(ys), len(xs))
    assert abs(float(masses.sum()) - 1) < 1e-9 and float(masses.min()) >= 0
    inside = (mu.abs() + 4 * std < 6.0).all()
    if inside:
        mean_x = float((masses.sum(0) * xs.double()).sum())
        assert abs(mean_x - float(mu[:, 0].mean())) <= 0.125 + 1e-9


def test_cell_masses_equal_density_times_area_for_wide_posteriors():
    mu, std = torch.zeros(3, 2, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64)
    xs, ys, points = grid_points(extent=6.0, resolution=0.1)
    by_density = aggregate_log_density(points.double(), mu, std).exp().reshape(len(ys), len(xs))
    interior = (slice(1, -1), slice(1, -1))  # the outermost cells are open to infinity
    torch.testing.assert_close(aggregate_cell_masses(xs, ys, mu, std)[interior],
                               (by_density * 0.01)[interior], rtol=1e-3, atol=1e-6)


def test_the_grid_holds_all_of_q_even_for_posteriors_far_narrower_than_its_step():
    """log_q is q's cell mass over the cell area, so the grid's share of q is 1 however narrow
    the posteriors (the density at the grid points would miss most of them)."""
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(50, 2, generator=generator)
    std = torch.full((50, 2), 1e-3)
    result = latent2d._evaluate({}, (mu, std), (mu, std), extent=6.0, resolution=0.1, n_z=1,
                                n_samples=1, seed=0)
    assert abs(result.mass("aggregate") - 1) < 1e-6
    level = result.low_density_threshold(q_mass=0.01)
    assert result.mass_where_q_below("aggregate", level) <= 0.01


def test_the_grid_takes_its_own_importance_samples_and_the_numbers_keep_theirs():
    prior = build_prior(prior_config("hierarchical", 2, 1, SMALL), None, (1, 2, 2), 0).eval()
    generator = torch.Generator().manual_seed(0)
    mu, std = torch.randn(40, 2, generator=generator), torch.full((40, 2), 0.3)
    kwargs = dict(extent=2.0, resolution=0.5, n_z=1, n_samples=16, seed=0)
    default, same, fewer = (latent2d._evaluate({"h": prior}, (mu, std), (mu, std), **kwargs,
                                               grid_samples=k) for k in (None, 16, 2))
    assert torch.equal(default.log_p["h"], same.log_p["h"])
    assert not torch.equal(default.log_p["h"], fewer.log_p["h"])
    assert default.cross_entropy == fewer.cross_entropy
