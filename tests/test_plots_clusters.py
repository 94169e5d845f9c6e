"""ladder.plots.clusters: Fig 4's panels, ellipses for the components that carry weight."""

import pytest
import torch
from matplotlib.patches import Ellipse

from ladder.clusters import MixtureView
from ladder.plots.clusters import MIN_DRAWN_WEIGHT, plot_fig4


def _view(space="z", d=2):
    codes = torch.randn(50, d, generator=torch.Generator().manual_seed(0))
    weights = torch.tensor([0.7, 0.3 - MIN_DRAWN_WEIGHT / 2, MIN_DRAWN_WEIGHT / 2])
    means = torch.zeros(3, d)
    covariances = torch.diag_embed(torch.ones(3, d))
    covariances[0, 0, 0] = 4.0
    return MixtureView(space, codes, weights, means, covariances)


def test_plot_fig4_draws_one_panel_per_prior_and_skips_negligible_components():
    labels = torch.arange(50) % 10
    fig = plot_fig4({"GMM": _view("z"), "LaDDer": _view("t")}, labels)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["GMM", "LaDDer"]
    assert panels[1].get_xlabel() == "$t_1$"
    ellipses = [p for p in panels[0].patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 2  # the third component's weight is below MIN_DRAWN_WEIGHT
    assert sorted((e.width, e.height) for e in ellipses)[-1] == pytest.approx((8.0, 4.0))


def test_plot_fig4_refuses_codes_that_are_not_2d():
    with pytest.raises(ValueError, match="model.d_z=2"):
        plot_fig4({"GMM": _view(d=3)})
