"""The class mix of image sets beside the test images' (Fig 5's frames, SM Table 1's samples).

A bar per class and set, the reference's share (the test images') marked on each class: where the
bars leave the marks, the set holds the classes in other proportions, which raises its Fréchet
distance to the test images (:mod:`ladder.frechet_parts`). Returns a
:class:`matplotlib.figure.Figure` built without pyplot (nothing shown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure


def plot_class_mix(
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    reference: str = "test images",
    class_names: Sequence[str] | None = None,
    panel_size: tuple[float, float] = (4.2, 2.6),
) -> Figure:
    """One panel per title in ``panels``, each mapping a set's label to its class shares; the
    set labelled ``reference`` is drawn as a black mark on each class, the others as bars side by
    side. ``class_names`` label the classes (default: their indices)."""
    if not panels:
        raise ValueError("no panels to draw: pass {title: {label: class shares}}")
    columns = min(len(panels), 2)
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, sets) in zip(axes, panels.items(), strict=False):
        if reference not in sets or len(sets) < 2:
            raise ValueError(f"panel {title!r} needs the {reference!r} shares and one set more, "
                             f"got {list(sets)}")
        n = len(sets[reference])
        if any(len(shares) != n for shares in sets.values()):
            raise ValueError(f"panel {title!r}: every set needs shares of the same {n} classes")
        others = [label for label in sets if label != reference]
        width = 0.8 / len(others)
        x = np.arange(n)
        for i, label in enumerate(others):
            ax.bar(x - 0.4 + width * (i + 0.5), sets[label], width, label=label)
        ax.scatter(x, sets[reference], marker="_", s=200, color="k", zorder=3, label=reference)
        names = list(class_names) if class_names is not None else [str(k) for k in range(n)]
        ax.set_xticks(x, names, rotation=45 if max(map(len, names)) > 2 else 0, fontsize=8)
        ax.set(ylabel="share", title=title)
        ax.title.set_fontsize(9)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="upper right")
    return fig
