"""Fig 4: 2-D encodings coloured by class, with the prior's mixture components as ellipses.

Returns a :class:`matplotlib.figure.Figure` built without pyplot (nothing shown); ``display(fig)``
in a notebook or ``fig.savefig``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from ladder.clusters import MixtureView
from ladder.plots.ellipses import two_sigma_ellipse

MIN_DRAWN_WEIGHT = 1e-2
"""Components below this weight are not drawn (as in the reference code's figure)."""


def draw_mixture(ax: Axes, view: MixtureView, labels: Tensor | np.ndarray | None = None,
                 title: str = "") -> None:
    """Scatter ``view.codes`` (coloured by ``labels`` where given) on ``ax`` and draw each
    component with weight >= :data:`MIN_DRAWN_WEIGHT` as its 2-sigma ellipse, the line width
    growing with the weight."""
    codes = view.codes.numpy()
    if codes.shape[1] != 2:
        raise ValueError(f"Fig 4 draws a 2-D {view.space}; these encodings have {codes.shape[1]} "
                         f"dimensions (train with model.d_z=2, or model.prior_vae.d_t=2 for LaDDer)")
    colours = None if labels is None else np.asarray(labels)
    ax.scatter(codes[:, 0], codes[:, 1], c=colours, cmap="tab10", s=2, alpha=0.5,
               rasterized=True, vmin=0, vmax=9)
    top = float(view.weights.max())
    for w, m, c in zip(view.weights.tolist(), view.means.numpy(), view.covariances.numpy(),
                       strict=True):
        if w < MIN_DRAWN_WEIGHT:
            continue
        ax.add_patch(two_sigma_ellipse(m, c, color="k", lw=0.3 + 2.5 * w / top))
    ax.set(xlabel=f"${view.space}_1$", ylabel=f"${view.space}_2$", title=title)


def plot_fig4(views: dict[str, MixtureView], labels: Tensor | np.ndarray | None = None,
              panel_size: float = 3.2) -> Figure:
    """One panel per named :class:`~ladder.clusters.MixtureView` (Fig 4 a-c), encodings coloured
    by class ``labels`` (the same images in every view), with a shared class colour bar."""
    fig = Figure(figsize=(panel_size * len(views) + 0.8, panel_size), layout="constrained")
    axes = fig.subplots(1, len(views), squeeze=False)[0]
    for ax, (name, view) in zip(axes, views.items(), strict=True):
        draw_mixture(ax, view, labels, title=name)
    if labels is not None:
        mappable = axes[0].collections[0]
        fig.colorbar(mappable, ax=list(axes), ticks=range(10), label="class")
    return fig
