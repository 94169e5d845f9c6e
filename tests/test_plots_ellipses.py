"""ladder.plots.ellipses: 2-sigma ellipses of 2-D Gaussian components."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from ladder.plots.ellipses import draw_mixture_ellipses, two_sigma_ellipse


def test_two_sigma_ellipse_has_the_covariance_axes():
    rotation = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    cov = rotation @ np.diag([9.0, 1.0]) @ rotation.T
    e = two_sigma_ellipse(np.array([1.0, 2.0]), cov, color="k")
    assert (e.width, e.height) == pytest.approx((12.0, 4.0))
    assert np.radians(e.angle) % np.pi == pytest.approx(0.3)
    assert e.center == pytest.approx((1.0, 2.0)) and not e.fill


def test_draw_mixture_ellipses_one_per_component_with_legend():
    ax = Figure().subplots()
    covs = np.stack([np.eye(2), 4 * np.eye(2)])
    draw_mixture_ellipses(ax, [0.75, 0.25], np.zeros((2, 2)), covs, colours=True, legend=True)
    assert len(ax.patches) == 2
    assert ax.patches[0].get_linewidth() > ax.patches[1].get_linewidth()
    assert ax.patches[0].get_edgecolor() != ax.patches[1].get_edgecolor()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["w = 0.75", "w = 0.25"]
