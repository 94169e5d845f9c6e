"""Fig 2: log densities of the aggregate posterior and of five priors in a 2-D latent space.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global state,
nothing shown); save it with ``fig.savefig`` or ``display(fig)`` in a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ladder.latent2d import COLOUR_RANGE, GRID_EXTENT

#: Fig 2's panels: key (as in :meth:`ladder.latent2d.PriorComparison.log_densities`), title.
FIG2_PANELS: tuple[tuple[str, str], ...] = (
    ("aggregate", "a) aggregate posterior $q_\\phi(z)$"),
    ("normal", "b) Normal"),
    ("hierarchical", "c) hierarchical"),
    ("vamp", "d) VampPrior"),
    ("gmm", "e) GMM"),
    ("ladder", "f) LaDDer"),
)


def plot_log_densities(
    log_densities: Mapping[str, Tensor | np.ndarray],
    extent: float | Sequence[float] = GRID_EXTENT,
    titles: Mapping[str, str] | None = None,
    vrange: tuple[float, float] = COLOUR_RANGE,
    ncols: int = 3,
    axis_labels: tuple[str, str] = ("$z_1$", "$z_2$"),
    panel_size: float = 2.6,
) -> Figure:
    """Heat maps of 2-D log densities, one panel each, with one shared colour bar.

    ``log_densities`` maps a name to a ``[ny, nx]`` grid (row i at the i-th y, as
    :func:`ladder.latent2d.grid_points` orders it); ``extent`` is the grid's half-width or
    ``(xmin, xmax, ymin, ymax)``; ``titles`` (default: the names) labels the panels. Values are
    clipped to ``vrange`` (the reference's [-14, 0] by default) so the panels share one scale.
    """
    if not log_densities:
        raise ValueError("log_densities is empty: give at least one [ny, nx] grid")
    if isinstance(extent, (int, float)):
        extent = (-extent, extent, -extent, extent)
    extent = tuple(float(e) for e in extent)
    if len(extent) != 4 or extent[0] >= extent[1] or extent[2] >= extent[3]:
        raise ValueError(f"extent is a half-width or (xmin, xmax, ymin, ymax), got {extent}")
    grids = {k: np.asarray(torch.as_tensor(v).detach().cpu(), dtype=float)
             for k, v in log_densities.items()}
    bad = {k: g.shape for k, g in grids.items() if g.ndim != 2}
    if bad:
        raise ValueError(f"each log density must be a [ny, nx] grid; got {bad}")
    titles = titles or {}
    ncols = max(1, min(ncols, len(grids)))
    nrows = -(-len(grids) // ncols)
    fig = Figure(figsize=(panel_size * ncols + 0.8, panel_size * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    image = None
    for ax, (name, grid) in zip(axes, grids.items(), strict=False):
        image = ax.imshow(np.clip(grid, *vrange), origin="lower", extent=extent, cmap="viridis",
                          vmin=vrange[0], vmax=vrange[1], aspect="equal")
        ax.set_title(titles.get(name, name))
        ax.set(xlabel=axis_labels[0], ylabel=axis_labels[1])
        ax.grid(False)
    for ax in axes[len(grids):]:
        ax.set_axis_off()
    fig.colorbar(image, ax=axes.tolist(), label="log density", shrink=0.8)
    return fig


def plot_fig2(
    log_densities: Mapping[str, Tensor | np.ndarray],
    extent: float | Sequence[float] = GRID_EXTENT,
    vrange: tuple[float, float] = COLOUR_RANGE,
    ncols: int = 3,
) -> Figure:
    """Fig 2 (a-f): the aggregate posterior and the Normal, hierarchical, VampPrior, GMM and
    LaDDer priors, in the paper's panel order and lettering.

    ``log_densities`` holds any of the keys of :data:`FIG2_PANELS` (e.g.
    :meth:`ladder.latent2d.PriorComparison.log_densities`); the panels present keep their
    letters, so a figure of a, c and f compares with the paper's.
    """
    order = [key for key, _ in FIG2_PANELS]
    unknown = [k for k in log_densities if k not in order]
    if unknown:
        raise ValueError(f"unknown panels {unknown}; Fig 2's panels are {', '.join(order)}")
    ordered = {k: log_densities[k] for k in order if k in log_densities}
    return plot_log_densities(ordered, extent, dict(FIG2_PANELS), vrange, ncols)
