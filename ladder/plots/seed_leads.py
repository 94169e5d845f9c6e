"""One prior's lead over each other prior, seed by seed: the verdict's table as a picture.

A panel per quantity and data set; in each, a column of dots per other prior, one dot a seed,
signed so that a dot above zero is a seed where the reference prior is ahead. A column wholly
above zero is a lead that holds in every seed; one that straddles zero changes side. Leads span
orders of magnitude (a Fréchet distance of 500 against the Normal prior, 1 against the GMM
prior), so the y axis is symmetric-log, linear within ``linear_width`` of zero. The same grid
draws SLP's lead over the straight line (Fig 5) with a column per model, from
:meth:`ladder.experiments.results.Results.slp_leads`. Returns a
:class:`matplotlib.figure.Figure` built without pyplot (nothing shown).
"""

from __future__ import annotations

import itertools

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from ladder.experiments.results import Leads


def plot_seed_leads(leads: Leads, reference: str = "LaDDer", linear_width: float = 1.0,
                    panel_size: tuple[float, float] = (3.6, 1.9), unit: str = "") -> Figure:
    """A grid of panels, one row per quantity label and one column per data set of ``leads``,
    each dot one seed's signed lead of ``reference`` over the prior its column names, in
    ``unit`` where the leads share one (named on the y axis)."""
    if not leads or not any(leads.values()):
        raise ValueError("no leads to draw: pass {(label, dataset): {prior: {seed: lead}}}")
    labels = list(dict.fromkeys(label for label, _ in leads))
    datasets = list(dict.fromkeys(dataset for _, dataset in leads))
    seeds = sorted({s for panel in leads.values() for by_seed in panel.values() for s in by_seed})
    colours = {seed: f"C{i}" for i, seed in enumerate(seeds)}
    offsets = {seed: 0.12 * (i - (len(seeds) - 1) / 2) for i, seed in enumerate(seeds)}
    fig = Figure(figsize=(panel_size[0] * len(datasets), panel_size[1] * len(labels)),
                 layout="constrained")
    axes = fig.subplots(len(labels), len(datasets), squeeze=False)
    for (row, label), (column, dataset) in itertools.product(enumerate(labels),
                                                              enumerate(datasets)):
        ax = axes[row, column]
        panel = leads.get((label, dataset), {})
        others = list(panel)
        for x, other in enumerate(others):
            for seed, lead in panel[other].items():
                ax.scatter(x + offsets[seed], lead, s=18, color=colours[seed], zorder=3)
        ax.axhline(0, color="k", linewidth=0.8)
        ax.set_yscale("symlog", linthresh=linear_width)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.margins(y=0.15)
        ax.set_xticks(range(len(others)), others, fontsize=8)
        ax.set_xlim(-0.6, max(len(others), 1) - 0.4)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(f"{label}, {dataset}", fontsize=8)
    markers = [Line2D([], [], marker="o", linestyle="", markersize=5, color=colours[seed])
               for seed in seeds]
    fig.legend(markers, [f"seed {seed}" for seed in seeds], loc="outside upper center",
               ncols=len(seeds), fontsize=7)
    in_unit = f" in {unit}" if unit else ""
    fig.supylabel(f"{reference}'s lead{in_unit} (above 0: ahead)", fontsize=8)
    return fig
