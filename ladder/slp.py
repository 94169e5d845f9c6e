"""Shortest likely path (SLP) interpolation, Sec 3.4, Eq (9).

A path between two latent codes ``start`` and ``end`` is the list of points
``p_0 = start, p_1, ..., p_J, p_{J+1} = end``. With the segment lengths
``l_j = ||p_{j+1} - p_j||`` (j = 0..J) the SLP objective of Eq (9) is

    O = w_len * sum_j l_j + w_eq * std_j(l_j) - w_ll * sum_{j=1..J} log p(p_j),

minimised over the J interior points with the endpoints held exactly fixed. The
shortest path (SP) baseline is the straight line, which is also SLP's initialisation.
``log_prob`` is any differentiable batched callable ``[N, d] -> [N]``, so the same code
runs in t-space with LaDDer's DP-GMM hyper prior (Fig 5-6) and in z-space with the
Normal, GMM or VampPrior (their ``log_prob``).

Where we follow the reference notebook (``latent-space-interpolation-mnist.ipynb``,
see the reference-code appendix, section 7) rather than the paper, it is said so below:
the step-length std is the population std (ddof 0) over the J+1 segments, log p is
summed over the J interior points only (no 1/J), gradients are clipped element-wise to
+-1 and Adam runs with beta2 = 0.95. These are fields of
:class:`~ladder.slp_config.SLPConfig`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ladder.slp_config import SLPConfig, SLPWeights, as_weights, check_config, resolve_preset

LogProb = Callable[[Tensor], Tensor]
TERMS = ("objective", "length", "step_std", "log_lik")


@dataclass
class SLPResult:
    """The outcome of :func:`shortest_likely_path`.

    ``path`` is ``[P, J+2, d]``, or ``[J+2, d]`` when a single pair was given, endpoints
    included and bit-identical to the input. ``history[term]`` holds the value of each of
    ``"objective"``, ``"length"``, ``"step_std"``, ``"log_lik"`` (the latter three
    unweighted) before every Adam step and at the final path: ``[iters+1, P]``, or
    ``[iters+1]`` for a single pair. With the straight-line initialisation, row 0 is the
    SP baseline. ``terms`` holds the final values, ``[P]`` or scalars.
    """

    path: Tensor
    history: dict[str, Tensor]
    terms: dict[str, Tensor]
    config: SLPConfig


def _safe_sqrt(x: Tensor) -> Tensor:
    """sqrt with a zero (not NaN) gradient at 0, for coincident points and equal steps."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), 0.0)


def _as_pairs(start: Tensor, end: Tensor) -> tuple[Tensor, Tensor, bool]:
    start, end = torch.as_tensor(start), torch.as_tensor(end)
    if start.shape != end.shape:
        raise ValueError(
            f"start {tuple(start.shape)} and end {tuple(end.shape)} differ in shape: pass "
            "two codes of the same dimension d, as [d] or as batches [P, d]"
        )
    if start.dim() not in (1, 2) or start.shape[-1] == 0:
        raise ValueError(
            f"start and end must be [d] or [P, d] with d >= 1, got {tuple(start.shape)}"
        )
    if start.device != end.device:
        raise ValueError(f"start is on {start.device} but end on {end.device}: move them together")
    dtype = torch.promote_types(start.dtype, end.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    single = start.dim() == 1
    start, end = start.detach().to(dtype), end.detach().to(dtype)
    if not (torch.isfinite(start).all() and torch.isfinite(end).all()):
        raise ValueError("start and end must be finite")
    return (start[None], end[None], True) if single else (start, end, False)


def _as_path(path: Tensor) -> tuple[Tensor, bool]:
    path = torch.as_tensor(path)
    if path.dim() not in (2, 3) or path.shape[-2] < 2:
        raise ValueError(
            f"a path is [J+2, d] or [P, J+2, d] with at least its two endpoints, "
            f"got {tuple(path.shape)}"
        )
    return (path[None], True) if path.dim() == 2 else (path, False)


def _log_p(log_prob: LogProb, points: Tensor) -> Tensor:
    """log p of points ``[P, M, d]`` as ``[P, M]``, calling ``log_prob`` once on ``[P*M, d]``."""
    flat = points.reshape(-1, points.shape[-1])
    try:
        out = log_prob(flat)
    except (RuntimeError, ValueError) as err:  # typically a shape mismatch inside the density
        raise ValueError(
            f"log_prob failed on points of dimension d={points.shape[-1]}; pass a log_prob "
            f"of the space the path lives in (t for LaDDer, z for the other priors): {err}"
        ) from err
    if not isinstance(out, Tensor) or out.shape != flat.shape[:1]:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"log_prob must map [N, d] to a tensor [N]; for N={flat.shape[0]} it returned {shape}"
        )
    return out.reshape(points.shape[:-1])


def _not_finite(terms: dict[str, Tensor], grad_ok: Tensor, it: int) -> ValueError:
    """The error for a non-finite objective or gradient, naming the term it comes from."""

    def pairs(ok: Tensor) -> str:
        return f"at iteration {it} for pair(s) {torch.nonzero(~ok).flatten().tolist()[:10]}"

    log_lik, objective = terms["log_lik"], terms["objective"]
    finite = torch.isfinite(log_lik)
    if not bool(finite.all()):
        return ValueError(
            f"log_prob is not finite {pairs(finite)} (its sum over the path is "
            f"{log_lik[~finite][0].item()}): log_prob must be finite wherever the path can go "
            "(check it at the endpoints and between them)"
        )
    finite = torch.isfinite(objective)
    if not bool(finite.all()):  # log p is finite, so the length terms overflow
        return ValueError(
            f"the path's length terms overflow {objective.dtype} {pairs(finite)}: rescale the "
            "codes, lower the weights or pass float64"
        )
    return ValueError(
        f"the objective's gradient is not finite {pairs(grad_ok)}: log_prob must be "
        "differentiable wherever the path can go (check it at the endpoints and between them)"
    )


def _length_and_std(path: Tensor) -> tuple[Tensor, Tensor]:
    """Path length and population std (ddof 0, as the reference) of the J+1 segment lengths."""
    seg = _safe_sqrt((path[:, 1:] - path[:, :-1]).pow(2).sum(-1))
    return seg.sum(-1), _safe_sqrt((seg - seg.mean(-1, keepdim=True)).pow(2).mean(-1))


def _terms(log_prob: LogProb, path: Tensor, w: SLPWeights) -> dict[str, Tensor]:
    """The Eq (9) terms of paths ``[P, J+2, d]``, each ``[P]``.

    log p is summed over the J interior points only (no 1/J), as in the reference notebook.
    """
    length, step_std = _length_and_std(path)
    log_lik = _log_p(log_prob, path[:, 1:-1]).sum(-1)
    objective = w.length * length + w.step_std * step_std - w.log_lik * log_lik
    return {"objective": objective, "length": length, "step_std": step_std, "log_lik": log_lik}


def shortest_path(start: Tensor, end: Tensor, n_steps: int = 8) -> Tensor:
    """The straight-line (SP) path with ``n_steps`` interior points at equal spacing.

    Returns ``[J+2, d]`` for a pair ``[d]`` or ``[P, J+2, d]`` for pairs ``[P, d]``; the
    endpoints are bit-identical copies of ``start`` and ``end``. This is the SP baseline
    of Sec 4.3 and the initialisation of Eq (9) (reference: ``linspace(.., endpoint=False)``).
    """
    if n_steps < 0:
        raise ValueError(f"n_steps is the number of interior points, >= 0, got {n_steps}")
    s, e, single = _as_pairs(start, end)
    frac = torch.arange(1, n_steps + 1, dtype=s.dtype, device=s.device) / (n_steps + 1)
    interior = s[:, None] + frac[None, :, None] * (e - s)[:, None]
    path = torch.cat([s[:, None], interior, e[:, None]], dim=1)
    return path[0] if single else path


def objective_terms(
    log_prob: LogProb, path: Tensor, weights: SLPWeights | Sequence[float]
) -> dict[str, Tensor]:
    """The Eq (9) objective and its three (unweighted) terms for a given path, per pair.

    Use it to score the SP baseline with the weights an SLP run used. Shapes as in
    :class:`SLPResult` ``terms``. No gradients are kept.
    """
    p, single = _as_path(path)
    with torch.no_grad():
        terms = _terms(log_prob, p, as_weights(weights))
    return {k: v[0] for k, v in terms.items()} if single else terms


def path_stats(log_prob: LogProb, path: Tensor) -> dict[str, Tensor]:
    """Measures of a latent path, per pair, for comparing SLP with SP (Sec 4.3, Eq (9)).

    ``log_p_mean`` and ``log_p_min`` are over the J interior points only: SLP and SP share
    their endpoints, and an endpoint in a low-density region would otherwise set the
    minimum of both. ``log_p`` has every point, endpoints included (``[P, J+2]``), for other
    summaries. ``length``, ``step_std`` and ``log_lik`` are the unweighted Eq (9) terms.
    Values are ``[P]`` (scalars for a single path ``[J+2, d]``).
    """
    p, single = _as_path(path)
    if p.shape[1] < 3:
        raise ValueError("path_stats needs at least one interior point (a path [J+2, d], J >= 1)")
    with torch.no_grad():
        log_p = _log_p(log_prob, p)
        length, step_std = _length_and_std(p)
    inner = log_p[:, 1:-1]
    stats = {
        "length": length,
        "step_std": step_std,
        "log_lik": inner.sum(-1),
        "log_p_mean": inner.mean(-1),
        "log_p_min": inner.amin(-1),
        "log_p": log_p,
    }
    return {k: v[0] for k, v in stats.items()} if single else stats


def shortest_likely_path(
    log_prob: LogProb,
    start: Tensor,
    end: Tensor,
    n_steps: int | None = None,
    iters: int | None = None,
    lr: float | None = None,
    weights: SLPWeights | Sequence[float] | None = None,
    init: str | Tensor | None = None,
    *,
    preset: str | SLPConfig = "reference",
) -> SLPResult:
    """Minimise the SLP objective of Eq (9) over the J interior points of a path.

    ``start``/``end`` are ``[d]`` or batches ``[P, d]``; a batch is one vectorised problem
    whose objective is the sum of the per-pair objectives, and since Adam and the clipping
    act element-wise the pairs stay independent. ``preset`` is ``"paper"`` (Eq (9)'s unit
    weights), ``"reference"`` (the notebook's 10, 100, 1) or an
    :class:`~ladder.slp_config.SLPConfig`; the other arguments override it (a tensor ``init``
    of interior points also sets J). In both named presets the optimiser is the reference's:
    Adam lr 1e-2, betas (0.9, 0.95), element-wise gradient clip +-1, 500 iterations, J = 8,
    straight-line init; the paper gives no settings of its own.

    These settings do not converge to float precision: near equal steps the clipped
    gradient of the weighted step std flips sign, the objective keeps fluctuating by about
    1% and last-bit differences in ``log_prob`` (a batched against a single call) grow to
    visibly different, equally good paths after ~100 iterations.

    A pair with identical endpoints gets the constant path (its points are not moved):
    the interpolation of a code with itself. The caller's inputs are checked before
    ``log_prob`` is called: settings, finite float32 or float64 endpoints (half precision
    cannot hold Adam's steps), a finite ``init`` and an initial path whose length terms fit
    the dtype. A non-finite objective or gradient later raises ``ValueError`` naming the term
    it comes from, instead of returning a NaN path. ``log_prob`` is evaluated under
    ``torch.enable_grad``, and only the path receives gradients (a model's ``.grad`` is
    left alone).
    """
    preset = resolve_preset(preset)
    if n_steps is None and isinstance(init, Tensor) and init.dim() >= 2:
        n_steps = init.shape[-2]  # J from the initial interior points
    overrides = dict(n_steps=n_steps, iters=iters, lr=lr, init=init)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if weights is not None:
        overrides["weights"] = as_weights(weights)
    cfg = replace(preset, **overrides)
    check_config(cfg)

    s, e, single = _as_pairs(start, end)
    if torch.finfo(s.dtype).bits < 32:
        raise ValueError(
            f"start and end are {s.dtype}: Adam's steps (lr={cfg.lr}) and squared segment "
            "lengths do not fit half precision; pass them as float32 (.float()) or float64"
        )
    line = shortest_path(s, e, cfg.n_steps)[:, 1:-1]
    if isinstance(cfg.init, str):
        if cfg.init != "line":
            raise ValueError(f"init is 'line' or a tensor of interior points, got {cfg.init!r}")
        interior = line
    else:
        interior = torch.as_tensor(cfg.init).detach().to(s.dtype, copy=True)
        interior = interior[None] if interior.dim() == 2 else interior
        if interior.shape != line.shape:
            raise ValueError(
                f"init must hold the interior points, {tuple(line.shape[int(single) :])}, "
                f"got {tuple(torch.as_tensor(cfg.init).shape)}"
            )
        if not bool(torch.isfinite(interior).all()):
            raise ValueError(f"init contains NaN or infinity (in {s.dtype}); pass finite points")
    frozen = (s == e).all(-1)
    interior = torch.where(frozen[:, None, None], s[:, None], interior).requires_grad_(True)
    opt = torch.optim.Adam([interior], lr=cfg.lr, betas=cfg.betas)

    def full(x: Tensor) -> Tensor:
        return torch.cat([s[:, None], x, e[:, None]], dim=1)

    with torch.no_grad():  # the caller's codes, before log_prob sees them
        length, step_std = _length_and_std(full(interior))
        size = cfg.weights.length * length + cfg.weights.step_std * step_std
        if not bool(torch.isfinite(size).all()):
            bad = torch.nonzero(~torch.isfinite(size)).flatten().tolist()
            raise ValueError(
                f"the initial path of pair(s) {bad[:10]} is too long for {s.dtype}: its length "
                "terms overflow; rescale the codes or pass float64"
            )

    history: dict[str, list[Tensor]] = {k: [] for k in TERMS}
    with torch.enable_grad():
        for it in range(cfg.iters + 1):
            terms = _terms(log_prob, full(interior), cfg.weights)
            for k in TERMS:
                history[k].append(terms[k].detach())
            ok = torch.isfinite(terms["objective"])
            grad_ok = torch.ones_like(ok)
            if it < cfg.iters:
                (grad,) = torch.autograd.grad(terms["objective"].sum(), interior)
                grad_ok = torch.isfinite(grad).flatten(1).all(-1)
            if not bool((ok & grad_ok).all()):
                raise _not_finite(terms, grad_ok, it)
            if it == cfg.iters:
                break
            if cfg.grad_clip is not None:
                grad = grad.clamp(-cfg.grad_clip, cfg.grad_clip)
            interior.grad = grad.masked_fill(frozen[:, None, None], 0.0)
            opt.step()

    path = full(interior.detach())
    hist = {k: torch.stack(v) for k, v in history.items()}
    if single:
        path, hist = path[0], {k: v[:, 0] for k, v in hist.items()}
    final = {k: v[-1] for k, v in hist.items()}
    return SLPResult(path=path, history=hist, terms=final, config=cfg)


def decode_path(path: Tensor, decoders: Sequence[Callable[[Tensor], Tensor]]) -> Tensor:
    """Decode a latent path to images, clipped to [0, 1] (Fig 5 d-f, Fig 6 b).

    ``decoders`` is applied in order to the points flattened to ``[N, d]``, e.g.
    ``[prior_decoder_mean, image_decoder]`` for t -> z -> x (LaDDer; the reference decodes
    t -> mean of p(z|t) -> decoder) or ``[image_decoder]`` for z -> x. A path
    ``[P, J+2, d]`` gives ``[P, J+2, C, H, W]`` (``[J+2, ...]`` for ``[J+2, d]``); the
    endpoints are decoded too, so they show reconstructions, as in the reference. All
    points go through the chain as one batch (this matters for decoders whose batch norm
    uses batch statistics). Runs under ``torch.no_grad``.
    """
    if len(decoders) == 0:
        raise ValueError(
            "decoders is empty: pass e.g. [image_decoder] or [prior_decoder_mean, image_decoder]"
        )
    p, single = _as_path(path)
    with torch.no_grad():
        x = p.reshape(-1, p.shape[-1])
        for decode in decoders:
            x = decode(x)
        if x.shape[0] != p.shape[0] * p.shape[1]:
            raise ValueError(
                f"the decoder chain returned {x.shape[0]} outputs for {p.shape[0] * p.shape[1]} "
                "points: each decoder must map a batch [N, ...] to [N, ...]"
            )
        images = x.reshape(*p.shape[:2], *x.shape[1:]).clamp(0.0, 1.0)
    return images[0] if single else images
