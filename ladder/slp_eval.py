"""Is SLP better than SP? A paired measurement over random test pairs (Sec 4.3, Fig 5, SM F.4).

The paper shows three MNIST pairs (Fig 5) and says SLP's frames are more realistic; here the claim
is measured. For ``n_pairs`` random pairs of test images, both endpoints are encoded, the shortest
likely path of Eq (9) is optimised for all pairs in one batched call, and the straight line (SP)
with the same J interior points is its baseline. Both are scored

* in latent space, with :func:`ladder.slp.path_stats`: the mean and the minimum of log p over the J
  interior points, the path length and the std of the J+1 step lengths;
* in data space, on the J interior frames decoded from each path (the endpoints are the same
  reconstructions for SLP and SP), on the evaluation classifier: its mean maximum softmax
  probability (``confidence``); the share of the frames inside the test images' k-NN manifold
  (``precision``, :mod:`ladder.knn_manifold`), which asks whether each frame is realistic; and
  two numbers over all interior frames of all pairs, the Fréchet classifier distance
  (:data:`ladder.features.FCD_LABEL`) to the test images and the share of the test images whose
  k-NN ball holds a frame (``coverage``), which ask how the frames are distributed.

Which space and which log p (as in Fig 5 and the reference notebook): a model whose prior is a
prior VAE (LaDDer, hierarchical; also a ladder of several) is interpolated in the innermost t with
the hyper prior's density ``hyper.log_prob`` (LaDDer: the DP-GMM's, predictive by default) and
decoded t -> mean of p(z|t) -> x; every other model in z with ``prior.log_prob``, decoded z -> x.

Endpoints: for the Normal, GMM and VampPrior models z = the mean of q(z|x) (the reference's
``code_mean``). For LaDDer the reference embeds t = mean of q(t|z) with z a *random sample* of
q(z|x) (the reference-code appendix, section 7); we use the posterior mean z by default, so that
a pair's endpoints do not depend on a draw, and ``z_sample=True`` gives the reference's choice
(seeded).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ladder.features import extract_features, frechet_distance
from ladder.knn_manifold import ball_membership, manifold_radii
from ladder.markdown import format_fraction, format_with_error, markdown_table
from ladder.metrics import mean_and_stderr
from ladder.model import VAE
from ladder.slp import SLPResult, decode_path, path_stats, shortest_likely_path, shortest_path

__all__ = [
    "METRICS",
    "PER_PAIR",
    "WHOLE_SET",
    "LatentSpace",
    "SLPComparison",
    "compare_slp_sp",
    "comparison_rows",
    "comparison_table",
    "latent_space",
    "random_pairs",
    "whole_set_share",
]

#: The measured quantities: (which value is better, what it is). All but :data:`WHOLE_SET` are
#: per pair.
METRICS: dict[str, tuple[str, str]] = {
    "log_p_mean": ("higher", "mean log p over the J interior points"),
    "log_p_min": ("higher", "minimum log p over the J interior points"),
    "length": ("lower", "path length"),
    "step_std": ("lower", "std of the J+1 step lengths"),
    "confidence": ("higher", "classifier's mean max softmax over the J interior frames"),
    "precision": ("higher", "share of the J interior frames inside the test images' manifold"),
    "fcd": ("lower", "Fréchet classifier distance of all interior frames to the test images"),
    "coverage": ("higher", "share of the test images whose k-NN ball holds an interior frame"),
}
WHOLE_SET = ("fcd", "coverage")
PER_PAIR = tuple(m for m in METRICS if m not in WHOLE_SET)


@dataclass
class LatentSpace:
    """Where a model's paths live: images -> codes, the log density there, codes -> images."""

    name: str  # "t" or "z"
    encode: Callable[[Tensor], Tensor]
    log_prob: Callable[[Tensor], Tensor]
    decoders: list[Callable[[Tensor], Tensor]]


def latent_space(
    model: VAE, space: str = "auto", z_sample: bool = False, seed: int = 0
) -> LatentSpace:
    """The interpolation space of ``model`` (see the module docstring).

    ``space``: ``"auto"`` (t for a prior-VAE prior, else z), ``"t"`` or ``"z"``. A prior VAE has
    no closed-form log p(z), so ``"z"`` is refused for it. ``z_sample``: encode the endpoints of a
    t path from a draw z ~ q(z|x) (the reference) instead of the mean; the draws come from a
    generator seeded with ``seed``. ``encode`` runs without gradients.
    """
    if space not in ("auto", "t", "z"):
        raise ValueError(f"space is 'auto', 't' or 'z', got {space!r}")
    *levels, prior = model.prior.levels()
    if space == "auto":
        space = "t" if levels else "z"
    if space == "z" and levels:
        raise ValueError(
            f"{type(model.prior).__name__} has no closed-form log p(z) to follow; interpolate in t "
            "(space='t' or 'auto') with the hyper prior's density"
        )
    if space == "t" and not levels:
        raise ValueError(
            f"a {type(model.prior).__name__} model has no t-space; use space='z' (or 'auto')"
        )
    generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def encode(x: Tensor) -> Tensor:
        mu, std = model.encode(x)
        if space == "z":
            return mu
        code = mu
        if z_sample:
            code = mu + std * torch.randn(mu.shape, generator=generator).to(mu)
        for level in levels:
            code = level.to_hyper_space(code)  # the mean of q(t|z), as the reference
        return code

    if space == "z":
        return LatentSpace("z", encode, model.prior.log_prob, [model.decoder])
    decoders = [level.decode for level in reversed(levels)] + [model.decoder]
    return LatentSpace("t", encode, prior.log_prob, decoders)


def random_pairs(n_images: int, n_pairs: int, seed: int = 0) -> Tensor:
    """``[n_pairs, 2]`` indices of two different images each, drawn with a generator seeded by
    ``seed`` (pairs are independent, so an image may appear in several)."""
    if n_images < 2 or n_pairs < 1:
        raise ValueError(f"need at least 2 images and 1 pair, got {n_images} and {n_pairs}")
    g = torch.Generator().manual_seed(seed)
    first = torch.randint(n_images, (n_pairs,), generator=g)
    shift = torch.randint(1, n_images, (n_pairs,), generator=g)
    return torch.stack([first, (first + shift) % n_images], dim=1)


def _se(x: Tensor) -> float:
    """Standard error of the mean (:func:`ladder.metrics.mean_and_stderr`); NaN for a single value
    (a Fréchet distance is one number over all pairs, not a mean)."""
    return mean_and_stderr(x)[1] if x.numel() > 1 else math.nan


def whole_set_share(diff: float, diff_se: float, better: str) -> float:
    """How sure the bootstrap is that SLP beats SP on a :data:`WHOLE_SET` measure: Phi(diff /
    diff_se) (of -diff where lower is better), the normal probability of a difference spread as
    its bootstrap replicates but centred on the whole set's ``diff``; NaN without an error.

    Not the share of replicates in which SLP wins: a resample of the pairs holds only about 63% of
    the distinct pairs (some twice or more), so it measures a smaller set, and coverage, a union
    over pairs, is lower there and not alike for both paths (for the straight line, whose pairs
    reach more distinct test images, the lower), so that share can favour a path that the whole
    set does not."""
    sign = 1.0 if better == "higher" else -1.0
    if math.isnan(diff_se):
        return math.nan
    if diff_se == 0:
        return 0.5 + 0.5 * ((sign * diff > 0) - (sign * diff < 0))
    return 0.5 * (1 + math.erf(sign * diff / (diff_se * math.sqrt(2))))


@dataclass
class SLPComparison:
    """The outcome of :func:`compare_slp_sp` for one model.

    ``per_pair[method][metric]`` is ``[P]`` for ``method`` in ("slp", "sp") and the metrics of
    :data:`PER_PAIR`; ``whole_set[metric][method]`` is one number over all frames for the metrics
    of :data:`WHOLE_SET`, ``whole_set_boot[metric][method]`` its bootstrap replicates over pairs
    (``[n_boot]``). ``paths[method]`` is ``[P, J+2, d]`` and
    ``frames[method]`` the decoded ``[P, J+2, C, H, W]``; ``pairs`` the image indices ``[P, 2]``;
    ``slp`` the optimiser's :class:`ladder.slp.SLPResult` (its history gives Fig 6 c-f).
    """

    space: str
    pairs: Tensor
    paths: dict[str, Tensor]
    frames: dict[str, Tensor]
    per_pair: dict[str, dict[str, Tensor]]
    whole_set: dict[str, dict[str, float]]
    whole_set_boot: dict[str, dict[str, Tensor]]
    slp: SLPResult

    @property
    def n_pairs(self) -> int:
        return int(self.pairs.shape[0])

    def differences(self) -> dict[str, Tensor]:
        """SLP minus SP per pair (``[P]``) for each per-pair metric."""
        return {m: self.per_pair["slp"][m] - self.per_pair["sp"][m] for m in PER_PAIR}

    def summary(self) -> list[dict[str, Any]]:
        """One row per metric of :data:`METRICS`: ``metric``, ``better`` ("higher"/"lower"),
        ``slp``, ``slp_se``, ``sp``, ``sp_se``, ``diff`` (SLP - SP), ``diff_se`` and
        ``slp_better``, the fraction of pairs where SLP is strictly better than SP.

        Per-pair metrics give means with standard errors over pairs (``diff_se`` is the paired
        one). For :data:`WHOLE_SET` the values are the whole set's, the errors are bootstrap
        standard errors over pairs, and ``slp_better`` is :func:`whole_set_share` (NaN without
        resamples).
        """
        rows = []
        for metric, (better, _) in METRICS.items():
            sign = 1.0 if better == "higher" else -1.0
            if metric in WHOLE_SET:
                value = self.whole_set[metric]
                a, b = self.whole_set_boot[metric]["slp"], self.whole_set_boot[metric]["sp"]
                boot = a.numel() > 1
                diff, diff_se = value["slp"] - value["sp"], float((a - b).std()) if boot else math.nan
                row = {
                    "slp": value["slp"], "slp_se": float(a.std()) if boot else math.nan,
                    "sp": value["sp"], "sp_se": float(b.std()) if boot else math.nan,
                    "diff": diff, "diff_se": diff_se,
                    "slp_better": whole_set_share(diff, diff_se, better),
                }  # fmt: skip
            else:
                a, b = self.per_pair["slp"][metric], self.per_pair["sp"][metric]
                row = {
                    "slp": float(a.double().mean()), "slp_se": _se(a),
                    "sp": float(b.double().mean()), "sp_se": _se(b),
                    "diff": float((a - b).double().mean()), "diff_se": _se(a - b),
                    "slp_better": float((sign * (a - b) > 0).double().mean()),
                }  # fmt: skip
            rows.append({"metric": metric, "better": better, **row, "n_pairs": self.n_pairs})
        return rows


@torch.no_grad()
def _scores(classifier: nn.Module, frames: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    """Max softmax probability ``[N]`` and penultimate features ``[N, F]`` of ``frames``."""
    logits = extract_features(classifier, frames, device=device)
    features = extract_features(classifier.features, frames, device=device)
    return logits.softmax(-1).amax(-1), features


def compare_slp_sp(
    model: VAE,
    images: Tensor,
    classifier: nn.Module,
    n_pairs: int = 100,
    preset: str = "reference",
    seed: int = 0,
    space: str = "auto",
    reference_images: Tensor | None = None,
    z_sample: bool = False,
    n_boot: int = 100,
    manifold_k: int = 5,
    **slp_options: Any,
) -> SLPComparison:
    """SLP against SP on ``n_pairs`` random pairs of ``images`` (test images ``[N, C, H, W]`` in
    [0, 1], on the model's device), Sec 4.3.

    ``classifier`` is the evaluation classifier (:func:`ladder.classifier_cache.load_classifier`): it
    must return logits when called and have ``.features`` (a :class:`LeNetClassifier`). The
    Fréchet distance compares the P*J interior frames with the features of ``reference_images``
    (default: ``images``); keep P*J well above the feature size (128), e.g. P >= 30 with J = 8.
    Fréchet distances grow as the sample count falls, so compare SLP with SP at the same P, not
    across P. ``preset`` and ``slp_options`` (``iters``, ``n_steps``, ``weights``, ...) go to
    :func:`ladder.slp.shortest_likely_path`; ``seed`` picks the pairs (and the z draws with
    ``z_sample``, see :func:`latent_space`) and the bootstrap resamples; ``n_boot`` is the number
    of bootstrap resamples of the pairs for the errors of :data:`WHOLE_SET` (0: none);
    ``manifold_k`` the k of the reference images' k-NN manifold (:mod:`ladder.knn_manifold`) that
    ``precision`` and ``coverage`` use. Deterministic for a seed on
    a fixed device and thread count. Model and classifier are evaluated in eval mode and left in
    the mode they came in.
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor [N, C, H, W] (ImageSet.take(n)), got {shape}")
    if n_boot < 0:
        raise ValueError(f"n_boot is a number of bootstrap resamples, >= 0, got {n_boot}")
    pairs = random_pairs(images.shape[0], n_pairs, seed)
    modes = (model.training, classifier.training)
    model.eval()
    classifier.eval()
    try:
        lat = latent_space(model, space, z_sample, seed)
        codes = lat.encode(images[pairs.flatten().to(images.device)])
        codes = codes.reshape(n_pairs, 2, -1)
        slp = shortest_likely_path(lat.log_prob, codes[:, 0], codes[:, 1], preset=preset,
                                   **slp_options)
        paths = {"slp": slp.path, "sp": shortest_path(codes[:, 0], codes[:, 1], slp.config.n_steps)}
        device = next(classifier.parameters()).device
        ref = images if reference_images is None else reference_images
        ref_features = extract_features(classifier.features, ref, device=device)
        radii = manifold_radii(ref_features, manifold_k)
        j = slp.config.n_steps
        per_pair: dict[str, dict[str, Tensor]] = {}
        frames: dict[str, Tensor] = {}
        features: dict[str, Tensor] = {}
        covers: dict[str, Tensor] = {}
        for method, path in paths.items():
            stats = path_stats(lat.log_prob, path)
            frames[method] = decode_path(path, lat.decoders)
            interior = frames[method][:, 1:-1]
            confidence, features[method] = _scores(classifier, interior.flatten(0, 1), device)
            inside = ball_membership(ref_features, radii, features[method]).reshape(n_pairs, j, -1)
            covers[method] = inside.any(1)  # [P, n_ref]: the reference balls each pair reaches
            per_pair[method] = {m: stats[m].detach().cpu() for m in PER_PAIR if m in stats}
            per_pair[method]["confidence"] = confidence.reshape(n_pairs, -1).mean(-1)
            per_pair[method]["precision"] = inside.any(2).double().mean(-1)
    finally:
        model.train(modes[0])
        classifier.train(modes[1])

    whole_set, whole_set_boot = _whole_set(ref_features, features, covers, n_boot, seed)
    return SLPComparison(
        space=lat.name,
        pairs=pairs,
        paths={k: v.detach().cpu() for k, v in paths.items()},
        frames={k: v.cpu() for k, v in frames.items()},
        per_pair=per_pair,
        whole_set=whole_set,
        whole_set_boot=whole_set_boot,
        slp=slp,
    )


def _whole_set(
    ref_features: Tensor,
    features: dict[str, Tensor],
    covers: dict[str, Tensor],
    n_boot: int,
    seed: int,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Tensor]]]:
    """The :data:`WHOLE_SET` metrics of each method's frames (``features[method]``, the J frames
    of each of P pairs in order; ``covers[method]`` ``[P, n_ref]``, the reference balls a pair's
    frames reach), and their values over ``n_boot`` resamples of the pairs, drawn from a generator
    seeded with ``seed``."""
    n_pairs = next(iter(covers.values())).shape[0]
    j = next(iter(features.values())).shape[0] // n_pairs

    def measure(method: str, picked: Tensor) -> dict[str, float]:
        rows = (picked[:, None] * j + torch.arange(j)).flatten()  # all J frames of each pair
        return {
            "fcd": frechet_distance(ref_features, features[method][rows]),
            "coverage": float(covers[method][picked].any(0).double().mean()),
        }

    everything = torch.arange(n_pairs)
    values = {m: measure(m, everything) for m in features}
    generator = torch.Generator().manual_seed(seed)
    boot: dict[str, dict[str, list[float]]] = {m: {k: [] for k in features} for m in WHOLE_SET}
    for _ in range(n_boot):
        pick = torch.randint(n_pairs, (n_pairs,), generator=generator)
        for method in features:
            for metric, value in measure(method, pick).items():
                boot[metric][method].append(value)
    return (
        {metric: {m: values[m][metric] for m in features} for metric in WHOLE_SET},
        {metric: {m: torch.tensor(v, dtype=torch.float64) for m, v in by.items()}
         for metric, by in boot.items()},
    )  # fmt: skip


def comparison_rows(results: Mapping[str, SLPComparison]) -> list[dict[str, Any]]:
    """The :meth:`SLPComparison.summary` rows of several models, each with ``model`` and
    ``space`` in front (``results`` maps a model's name to its comparison)."""
    return [
        {"model": name, "space": res.space, **row}
        for name, res in results.items()
        for row in res.summary()
    ]


def comparison_table(
    results: Mapping[str, SLPComparison], metrics: Sequence[str] | None = None
) -> str:
    """A Markdown table of SLP against SP for several models: mean ± standard error over pairs,
    the paired difference and the fraction of pairs where SLP is better (for :data:`WHOLE_SET`:
    the whole set's value ± bootstrap error, and :func:`whole_set_share`, marked "boot")."""
    metrics = list(METRICS) if metrics is None else list(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    rows = []
    for row in comparison_rows(results):
        if row["metric"] not in metrics:
            continue
        frac = row["slp_better"]
        frac_text = format_fraction(frac)
        if row["metric"] in WHOLE_SET and not math.isnan(frac):
            frac_text += " (boot)"
        # at most 6 decimals: a tiny error, e.g. SP's step std (zero up to rounding)
        rows.append([row["model"], row["space"], row["metric"], row["better"],
                     *(format_with_error(row[k], row[f"{k}_se"], max_digits=6)
                       for k in ("slp", "sp", "diff")), frac_text])
    return markdown_table(["model", "space", "metric", "better", "SLP", "SP", "SLP - SP",
                           "SLP better"], rows)
