"""Figures of shortest likely path (SLP) interpolation, Sec 4.3: Fig 5 (b-f), Fig 6 (b-f), the
SLP-versus-SP measurement over pairs (:func:`plot_slp_vs_sp`) and a walk along paths
(:func:`walk_along_paths`).

Every function returns a :class:`matplotlib.figure.Figure` (or an animation of one) built without
pyplot (no global state, nothing shown); save it with ``fig.savefig`` or let a notebook display it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

if TYPE_CHECKING:  # ladder.slp_eval imports the models; the figures of Fig 5-6 need none of them
    from ladder.slp_eval import SLPComparison

_PANELS = (
    ("objective", "objective $O$, Eq (9)", 1.0),
    ("length", "path length", 1.0),
    ("step_std", "step-length std", 1.0),
    ("log_lik", "$-\\log$-likelihood", -1.0),
)


def _pairs(paths: Tensor | np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(torch.as_tensor(paths).detach().cpu(), dtype=float)
    p = p[None] if p.ndim == 2 else p
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"{name} must be 2-D paths [J+2, 2] or [P, J+2, 2], got {p.shape}")
    return p


def plot_paths_over_density(
    log_prob: Callable[[Tensor], Tensor],
    paths_slp: Tensor,
    paths_sp: Tensor | None = None,
    extent: float | Sequence[float] = 7.0,
    resolution: float = 0.05,
    ax: Axes | None = None,
    vrange: tuple[float, float] = (-14.0, 0.0),
) -> Figure:
    """Fig 5 (b-c): SLP (solid) and SP (dashed) paths over a heat map of log p in 2-D.

    ``extent`` is a half-width (grid ``[-extent, extent]^2``) or ``(xmin, xmax, ymin, ymax)``;
    ``resolution`` is the grid step. The defaults are the reference's (+-7, step 0.05,
    colours clipped to [-14, 0]). ``log_prob`` maps ``[N, 2] -> [N]``; it is evaluated without
    gradients on a grid with the dtype and device of ``paths_slp``. Draws into ``ax`` if
    given, adding a colour bar. Pair i has colour Ci in both its SLP and SP line.
    """
    if isinstance(extent, (int, float)):
        extent = (-extent, extent, -extent, extent)
    if len(extent) != 4 or extent[0] >= extent[1] or extent[2] >= extent[3] or resolution <= 0:
        raise ValueError(
            "extent is a half-width or (xmin, xmax, ymin, ymax) with min < max, and "
            f"resolution > 0; got extent={extent}, resolution={resolution}"
        )
    slp = _pairs(paths_slp, "paths_slp")
    sp = None if paths_sp is None else _pairs(paths_sp, "paths_sp")
    like = torch.as_tensor(paths_slp)
    kw = {"device": like.device, "dtype": like.dtype if like.is_floating_point() else None}
    xs = torch.arange(extent[0], extent[1] + resolution / 2, resolution, **kw)
    ys = torch.arange(extent[2], extent[3] + resolution / 2, resolution, **kw)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    with torch.no_grad():
        lp = log_prob(grid.reshape(-1, 2)).reshape(grid.shape[:2]).cpu().numpy()

    if ax is None:
        fig = Figure(figsize=(5.5, 4.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    im = ax.imshow(
        np.clip(lp, *vrange), origin="lower", extent=tuple(extent), cmap="viridis",
        vmin=vrange[0], vmax=vrange[1], aspect="equal",
    )  # fmt: skip
    fig.colorbar(im, ax=ax, label="log p")
    for i, path in enumerate([] if sp is None else sp):
        ax.plot(*path.T, "--x", c=f"C{i % 10}", ms=3, label="SP" if i == 0 else None)
    for i, path in enumerate(slp):
        ax.plot(*path.T, "-o", c=f"C{i % 10}", ms=3, label="SLP" if i == 0 else None)
        ax.plot(*path[[0, -1]].T, "*", c="w", mec="k", ms=11)
    ax.set(xlim=extent[:2], ylim=extent[2:], xlabel="$t_1$", ylabel="$t_2$")
    ax.legend(loc="upper right")
    return fig


def walk_along_paths(
    log_prob: Callable[[Tensor], Tensor],
    paths: Mapping[str, Tensor],
    frames: Mapping[str, Tensor],
    extent: float | Sequence[float] = 7.0,
    vrange: tuple[float, float] = (-14.0, 0.0),
    interval: int = 600,
) -> FuncAnimation:
    """Walk along paths in step, one row per path (e.g. SLP and SP of one pair, Fig 5): the path
    over the log p map (:func:`plot_paths_over_density`) with the current point ringed, and the
    image decoded there. ``paths[name]`` is ``[J+2, 2]``, ``frames[name]`` ``[J+2, 1, H, W]`` in
    [0, 1]; animation frame j shows step j of every path. Show it with
    :func:`ladder.plots.animation.animation_html`."""
    names = list(paths)
    steps = {len(paths[name]) for name in names} | {len(frames[name]) for name in names}
    if len(steps) != 1:
        raise ValueError(f"the paths and frames need the same number of steps, got {steps}")
    n_steps = steps.pop()
    fig = Figure(figsize=(6.4, 2.9 * len(names)), layout="constrained")
    rows = fig.subplots(len(names), 2, width_ratios=[1.5, 1], squeeze=False)
    rings, images = [], []
    for (ax_map, ax_image), name in zip(rows, names, strict=True):
        path = _pairs(paths[name], f"paths[{name!r}]")[0]
        plot_paths_over_density(log_prob, paths[name], extent=extent, resolution=0.1,
                                vrange=vrange, ax=ax_map)
        ax_map.get_legend().remove()
        ax_map.set_title(name)
        rings.append((ax_map.plot(*path[0], "o", ms=13, mfc="none", mec="r", mew=2.5)[0], path))
        shown = np.asarray(torch.as_tensor(frames[name]).detach().cpu())[:, 0]
        images.append((ax_image.imshow(shown[0], cmap="gray", vmin=0, vmax=1), shown))
        ax_image.set_axis_off()
    title = fig.suptitle("")

    def show(step: int) -> None:
        for ring, path in rings:
            ring.set_data([path[step, 0]], [path[step, 1]])
        for image, shown in images:
            image.set_data(shown[step])
        title.set_text(f"step {step} of {n_steps - 1}")

    return FuncAnimation(fig, show, frames=n_steps, interval=interval, blit=False)


def plot_objective_curves(
    history: Mapping[str, Tensor], sp_terms: Mapping[str, Tensor | float] | None = None
) -> Figure:
    """Fig 6 (c-f): objective, path length, step-length std and -log-likelihood per iteration.

    ``history`` is :attr:`ladder.slp.SLPResult.history` (``[iters+1]`` or ``[iters+1, P]``,
    one line per pair). ``sp_terms`` (same keys, scalars or ``[P]``), e.g.
    ``{k: v[0] for k, v in history.items()}`` after a straight-line start or
    :func:`ladder.slp.objective_terms` of the SP path, adds the SP values as dashed lines,
    as the reference does.
    """
    missing = [k for k, *_ in _PANELS if k not in history]
    if missing:
        raise ValueError(f"history lacks {missing}; pass SLPResult.history")
    fig = Figure(figsize=(7.2, 5.0), layout="constrained")  # 2 x 2: readable at page width
    axes = fig.subplots(2, 2, sharex=True).ravel()
    for k, (ax, (key, title, sign)) in enumerate(zip(axes, _PANELS, strict=True)):
        h = sign * np.asarray(torch.as_tensor(history[key]).detach().cpu(), dtype=float)
        h = h[:, None] if h.ndim == 1 else h
        for i in range(h.shape[1]):
            ax.plot(h[:, i], c=f"C{i}", label="SLP" if i == 0 else None)
        if sp_terms is not None and key in sp_terms:
            sp = sign * np.atleast_1d(np.asarray(torch.as_tensor(sp_terms[key]).cpu(), float))
            for i, v in enumerate(sp):
                ax.axhline(v, c=f"C{i}", ls="--", label="SP" if i == 0 else None)
        ax.set(title=title, xlabel="iteration" if k >= 2 else None)
    axes[0].legend()
    return fig


def _strip(frames: np.ndarray, gap: int) -> np.ndarray:
    """Frames ``[F, C, H, W]`` side by side as one ``[H, F*(W+gap)-gap, C]`` image on white."""
    f, c, h, w = frames.shape
    out = np.ones((h, f * (w + gap) - gap, c))
    for i, frame in enumerate(frames):
        out[:, i * (w + gap) : i * (w + gap) + w] = frame.transpose(1, 2, 0)
    return out


def plot_interpolation_strips(
    images_slp: Tensor,
    images_sp: Tensor,
    titles: Sequence[str] = ("SLP", "SP"),
    gap: int = 2,
) -> Figure:
    """Fig 5 (d-f), Fig 6 (b): decoded frames start, J steps, target; an SLP and an SP row.

    Images are ``[J+2, C, H, W]`` or ``[P, J+2, C, H, W]`` in [0, 1] with C = 1 or 3, as from
    :func:`ladder.slp.decode_path`. Each pair gives two rows (one axes each), labelled by
    ``titles``.
    """
    slp = np.asarray(torch.as_tensor(images_slp).detach().cpu(), dtype=float)
    sp = np.asarray(torch.as_tensor(images_sp).detach().cpu(), dtype=float)
    slp, sp = (a[None] if a.ndim == 4 else a for a in (slp, sp))
    if slp.shape != sp.shape or slp.ndim != 5 or slp.shape[2] not in (1, 3):
        raise ValueError(
            "images_slp and images_sp must both be [J+2, C, H, W] or [P, J+2, C, H, W] with "
            f"C in (1, 3); got {slp.shape} and {sp.shape}"
        )
    if len(titles) != 2:
        raise ValueError(f"titles names the two rows (SLP, SP), got {titles!r}")
    n_pairs, n_frames, _, _, w = slp.shape
    fig = Figure(figsize=(1.0 * n_frames, 1.15 * 2 * n_pairs), layout="constrained")
    axes = np.atleast_1d(fig.subplots(2 * n_pairs, 1))
    ticks = [i * (w + gap) + w / 2 for i in range(n_frames)]
    labels = ["start", *(str(j) for j in range(1, n_frames - 1)), "target"]
    for p in range(n_pairs):
        for r, (images, title) in enumerate(zip((slp, sp), titles, strict=True)):
            ax = axes[2 * p + r]
            strip = _strip(images[p], gap)
            ax.imshow(strip[..., 0] if strip.shape[-1] == 1 else strip, cmap="gray", vmin=0, vmax=1)
            ax.set_yticks([])
            ax.set_xticks(ticks, labels if r == 1 else [""] * n_frames)
            ax.tick_params(length=0)
            ax.set_ylabel(title if n_pairs == 1 else f"{title} {p}", rotation=0, ha="right")
    return fig


def plot_slp_vs_sp(
    results: Mapping[str, SLPComparison], metrics: Sequence[str] | None = None, seed: int = 0
) -> Figure:
    """SLP against SP over pairs (Sec 4.3): per metric, the paired differences SLP - SP of each
    model (a box over pairs, one dot per pair, dashed zero line); for the whole-set metrics
    (:data:`ladder.slp_eval.WHOLE_SET`: ``fcd``, ``coverage``), the values of SLP and SP with
    bootstrap standard errors.

    ``results`` maps a model's name to :func:`ladder.slp_eval.compare_slp_sp`'s result; ``metrics``
    defaults to all of :data:`ladder.slp_eval.METRICS`. A panel title says which sign is good
    ("SLP better: > 0" where higher values are better). ``seed`` fixes the dots' horizontal jitter.
    """
    from ladder.slp_eval import METRICS, WHOLE_SET

    metrics = list(METRICS) if metrics is None else list(metrics)
    if not results or any(m not in METRICS for m in metrics):
        raise ValueError(
            f"results must name at least one model and metrics come from {list(METRICS)}; "
            f"got {len(results)} results and metrics {metrics}"
        )
    names = list(results)
    rng = np.random.default_rng(seed)
    columns = min(3, len(metrics))  # rows of three: readable at page width
    rows = -(-len(metrics) // columns)
    fig = Figure(figsize=(2.5 * columns, 3.0 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes[len(metrics):]:
        fig.delaxes(ax)
    pos = np.arange(len(names))
    for ax, metric in zip(axes, metrics, strict=False):
        better, _ = METRICS[metric]
        if metric in WHOLE_SET:
            for k, (method, shift) in enumerate((("slp", -0.18), ("sp", 0.18))):
                values = [results[n].whole_set[metric][method] for n in names]
                boot = [results[n].whole_set_boot[metric][method] for n in names]
                err = [float(b.std()) if b.numel() > 1 else 0.0 for b in boot]
                ax.bar(pos + shift, values, 0.36, yerr=err, color=f"C{k}", label=method.upper())
            title = "FCD" if metric == "fcd" else metric
            ax.set_title(f"{title} ({better} is better)")
            ax.legend()
        else:
            diffs = [np.asarray(results[n].differences()[metric], dtype=float) for n in names]
            ax.boxplot(diffs, positions=pos, widths=0.5, showfliers=False)
            for i, d in enumerate(diffs):
                ax.plot(i + rng.uniform(-0.15, 0.15, d.size), d, ".", c=f"C{i}", ms=3, alpha=0.6)
            ax.axhline(0.0, c="k", ls="--", lw=1)
            sign = ">" if better == "higher" else "<"
            ax.set_title(f"{metric}: SLP - SP\n(SLP better: {sign} 0)")
        ax.set_xticks(pos, names, rotation=30, ha="right")
    return fig
