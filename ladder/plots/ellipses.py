"""2-sigma ellipses of 2-D Gaussian mixture components (Fig 4, chapter 3's fitted DP-GMM)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.patches import Ellipse


def two_sigma_ellipse(mean: np.ndarray, cov: np.ndarray, **style: Any) -> Ellipse:
    """The set (t - mean)^T cov^-1 (t - mean) <= 4 of a 2-D Gaussian as an unfilled patch; ``style``
    goes to :class:`matplotlib.patches.Ellipse`."""
    vals, vecs = np.linalg.eigh(cov)  # ascending: the last axis is the long one
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    return Ellipse(mean, 4 * np.sqrt(vals[-1]), 4 * np.sqrt(vals[0]), angle=angle, fill=False,
                   **style)


def draw_mixture_ellipses(ax: Axes, weights: Iterable[float], means: np.ndarray,
                          covs: np.ndarray, colours: bool = False, legend: bool = False) -> None:
    """The 2-sigma ellipse of each component on ``ax``, crimson or one tab10 colour per component,
    the line width growing with the weight; ``legend`` lists the weights beside the axes."""
    for k, (w, m, c) in enumerate(zip(weights, means, covs, strict=True)):
        color = colormaps["tab10"](k % 10) if colours else "crimson"
        ax.add_patch(two_sigma_ellipse(m, c, color=color, lw=0.8 + 3 * w, label=f"w = {w:.2f}"))
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7, handlelength=1.2)
