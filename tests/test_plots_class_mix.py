"""Tests of the class-mix figure."""

import matplotlib
import pytest
from matplotlib.figure import Figure

from ladder.plots.class_mix import plot_class_mix

matplotlib.use("Agg")
EVEN = [0.25] * 4


def test_each_panel_draws_a_bar_per_class_and_set_and_marks_the_reference():
    fig = plot_class_mix({"a": {"test images": EVEN, "SLP": [0.4, 0.2, 0.2, 0.2],
                                "SP": [0.1, 0.3, 0.3, 0.3]},
                          "b": {"test images": EVEN, "samples": EVEN},
                          "c": {"test images": EVEN, "samples": EVEN}})  # fmt: skip
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a", "b", "c"]
    assert len(visible[0].patches) == 8 and len(visible[1].patches) == 4
    legend = [t.get_text() for t in visible[0].get_legend().get_texts()]
    assert sorted(legend) == ["SLP", "SP", "test images"]


def test_panels_without_the_reference_or_of_unequal_length_are_refused():
    with pytest.raises(ValueError, match="needs the 'test images' shares"):
        plot_class_mix({"a": {"SLP": EVEN, "SP": EVEN}})
    with pytest.raises(ValueError, match="same 4 classes"):
        plot_class_mix({"a": {"test images": EVEN, "SLP": [0.5, 0.5]}})
    with pytest.raises(ValueError, match="no panels"):
        plot_class_mix({})
