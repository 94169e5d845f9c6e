"""Tests of the seed-by-seed lead figure."""

import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.plots.seed_leads import plot_seed_leads

matplotlib.use("Agg")
OTHERS = ("normal", "vamp", "gmm", "hierarchical")

leads_strategy = st.dictionaries(
    st.sampled_from(OTHERS),
    st.dictionaries(st.integers(0, 4), st.floats(-1e3, 1e3, allow_nan=False), min_size=1),
    min_size=1)


def _dots(ax) -> list[tuple[float, float]]:
    return [tuple(point) for c in ax.collections for point in c.get_offsets()]


@settings(max_examples=20, deadline=None)
@given(kl=leads_strategy, elbo=leads_strategy)
def test_every_seed_is_one_dot_at_its_lead_in_its_priors_column(kl, elbo):
    leads = {("KL", "mnist"): kl, ("ELBO", "mnist"): elbo, ("KL", "fashion"): elbo}
    fig = plot_seed_leads(leads)
    axes = np.array(fig.axes).reshape(2, 2)  # rows KL, ELBO; columns mnist, fashion
    assert axes[0, 0].get_title() == "KL, mnist" and axes[1, 1].get_title() == "ELBO, fashion"
    for ax, panel in ((axes[0, 0], kl), (axes[1, 0], elbo), (axes[0, 1], elbo)):
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == list(panel)
        expected = sorted((ticks.index(p), lead) for p, by in panel.items() for lead in by.values())
        drawn = sorted((round(x), y) for x, y in _dots(ax))  # a seed's offset is under 0.5
        np.testing.assert_allclose(np.array(drawn).reshape(-1, 2),
                                   np.array(expected).reshape(-1, 2))
    assert _dots(axes[1, 1]) == []  # no leads of that panel: nothing drawn
    seeds = {s for panel in (kl, elbo) for by in panel.values() for s in by}
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == sorted(
        f"seed {s}" for s in seeds)


def test_a_figure_needs_some_leads():
    with pytest.raises(ValueError, match="no leads to draw"):
        plot_seed_leads({})
    with pytest.raises(ValueError, match="no leads to draw"):
        plot_seed_leads({("KL", "mnist"): {}})


def test_the_y_axis_names_the_reference_and_the_unit_of_its_leads():
    panel = {("FCD", "mnist"): {"ladder": {1: -11.7}}}
    assert plot_seed_leads(panel).get_supylabel() == "LaDDer's lead (above 0: ahead)"
    fig = plot_seed_leads(panel, reference="SLP", unit="standard errors")
    assert fig.get_supylabel() == "SLP's lead in standard errors (above 0: ahead)"
