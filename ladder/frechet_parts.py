"""What a Fréchet distance is made of: its mean term and the set's class mix (Fig 5, SM F.4).

A Fréchet classifier distance (:func:`ladder.features.frechet_distance`) between a set of images
and the test images grows when the set's images look unlike the test images of their class, and
also when the set holds the classes in other proportions than the test images. Fig 5's frames of
the shortest likely path are further from the test images as a set than the straight line's, yet
frame by frame as realistic or more (``precision``, :mod:`ladder.slp_eval`). To tell the causes
apart:

* :func:`mean_term`: ||mu_a - mu_b||^2, the part of the distance the two means make (the rest is
  the covariance term);
* :func:`class_shares` and :func:`total_variation`: the share of each class in a set, and how far
  two sets' shares are;
* :func:`resampled_frechet`: the distance of a set drawn again with replacement, either plainly
  (a bootstrap) or within each class to the reference's class shares (class-matched). Both repeat
  images, which raises a Fréchet distance, so a class-matched distance is compared with a plain
  one, never with the distance of the set itself;
* :func:`classify` and :func:`frechet_parts`: all of these for one set of images on the
  evaluation classifier, against a reference set classified once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ladder.features import extract_features, frechet_distance

__all__ = [
    "ClassifiedImages",
    "class_shares",
    "classify",
    "frechet_parts",
    "mean_term",
    "resampled_frechet",
    "total_variation",
]


def mean_term(reference: Tensor, features: Tensor) -> float:
    """||mu_ref - mu||^2 of two feature sets ``[N, F]``, in float64: the Fréchet distance's part
    that their means make."""
    if reference.dim() != 2 or features.dim() != 2 or reference.shape[1] != features.shape[1]:
        raise ValueError(
            f"need two feature matrices [N, F] of one F, got {tuple(reference.shape)} and "
            f"{tuple(features.shape)}"
        )
    gap = reference.double().mean(0) - features.double().mean(0)
    return float(gap.square().sum())


def class_shares(labels: Tensor, n_classes: int) -> Tensor:
    """The share of each of ``n_classes`` classes among ``labels`` (``[N]`` integers in
    ``[0, n_classes)``), float64 ``[n_classes]`` summing to 1."""
    if labels.dim() != 1 or labels.numel() == 0:
        raise ValueError(f"labels must be a non-empty vector [N], got shape {tuple(labels.shape)}")
    if int(labels.min()) < 0 or int(labels.max()) >= n_classes:
        raise ValueError(
            f"labels must lie in [0, {n_classes}), got {int(labels.min())}...{int(labels.max())}"
        )
    counts = torch.bincount(labels.long(), minlength=n_classes).double()
    return counts / counts.sum()


def total_variation(p: Tensor, q: Tensor) -> float:
    """Half the L1 distance of two class-share vectors: the share of one set that would have to
    change class to give the other's mix (0: the same mix, 1: no class in common)."""
    if p.shape != q.shape:
        raise ValueError(
            f"class shares of different lengths: {tuple(p.shape)} and {tuple(q.shape)}"
        )
    return 0.5 * float((p.double() - q.double()).abs().sum())


def _class_matched_rows(labels: Tensor, shares: Tensor, generator: torch.Generator) -> Tensor:
    """Rows of a set with ``labels`` drawn with replacement within each class, as many of each
    class as ``shares`` (the reference's) gives of ``len(labels)`` (largest remainders). A class
    the set lacks is left out, and the shares of the others are scaled to sum to 1."""
    n_classes = shares.numel()
    held = torch.bincount(labels.long(), minlength=n_classes)[:n_classes] > 0
    if not bool((shares.double() * held).sum() > 0):
        raise ValueError("the set holds none of the reference's classes: no class mix to match")
    kept = shares.double() * held
    exact = kept / kept.sum() * labels.numel()
    counts = exact.floor().long()
    short = labels.numel() - int(counts.sum())
    counts[torch.argsort(exact - counts, descending=True)[:short]] += 1
    rows = [
        pool[torch.randint(len(pool), (int(count),), generator=generator)]
        for k, count in enumerate(counts)
        if count and len(pool := (labels == k).nonzero().flatten())
    ]
    return torch.cat(rows)


def resampled_frechet(
    reference: Tensor,
    features: Tensor,
    labels: Tensor | None = None,
    shares: Tensor | None = None,
    n_resamples: int = 10,
    seed: int = 0,
) -> Tensor:
    """Fréchet distances ``[n_resamples]`` (float64) of ``features`` (``[N, F]``) drawn again with
    replacement, N at a time, to ``reference``.

    With ``labels`` (``[N]``) and ``shares`` (the reference's :func:`class_shares`) each class is
    drawn within itself, as many as the reference's share of N (class-matched); without them the
    draw is plain. Classes the set lacks are left out of a class-matched draw (the reference's
    shares of the others scaled to sum to 1). The draws come from a generator seeded with ``seed``.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if (labels is None) != (shares is None):
        raise ValueError("a class-matched draw needs both labels and shares; a plain one neither")
    if labels is not None and labels.shape != features.shape[:1]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match {features.shape[0]} rows")
    generator = torch.Generator().manual_seed(seed)
    n = features.shape[0]
    values = []
    for _ in range(n_resamples):
        if labels is None or shares is None:
            rows = torch.randint(n, (n,), generator=generator)
        else:
            rows = _class_matched_rows(labels, shares, generator)
        values.append(frechet_distance(reference, features[rows]))
    return torch.tensor(values, dtype=torch.float64)


@dataclass(frozen=True)
class ClassifiedImages:
    """A set of images as :func:`frechet_parts` reads it: the classifier's features ``[N, F]`` and
    its predicted classes ``[N]`` of ``n_classes``."""

    features: Tensor
    labels: Tensor
    n_classes: int


@torch.no_grad()
def classify(images: Tensor, classifier: nn.Module) -> ClassifiedImages:
    """The features and predicted classes of ``images`` (``[N, C, H, W]`` in [0, 1]) on
    ``classifier`` (logits when called, ``.features`` for the features; put it in eval mode
    first)."""
    device = next(classifier.parameters()).device
    logits = extract_features(classifier, images, device=device)
    return ClassifiedImages(extract_features(classifier.features, images, device=device),
                            logits.argmax(-1), logits.shape[1])  # fmt: skip


@torch.no_grad()
def frechet_parts(
    reference: ClassifiedImages,
    images: Tensor,
    classifier: nn.Module,
    n_resamples: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """The Fréchet classifier distance of ``images`` (``[N, C, H, W]`` in [0, 1]) to the
    ``reference`` set (:func:`classify`, on the same ``classifier``) and its parts.

    Classes are the classifier's predictions on both sets, so that a set of decoded frames and the
    test images are labelled alike. Returns plain data: ``fcd``, ``mean_term``,
    ``covariance_term`` (their difference), ``class_shares`` and ``reference_shares`` (lists),
    ``class_tv`` (:func:`total_variation` of the two), ``unmatched_share`` (the reference's share
    of the classes ``images`` lacks, which a class-matched draw leaves out), and the means and
    standard deviations over ``n_resamples`` draws of :func:`resampled_frechet`, plain
    (``resampled_fcd``, ``resampled_fcd_std``) and class-matched (``class_matched_fcd``,
    ``class_matched_fcd_std``).
    """
    found = classify(images, classifier)
    shares = class_shares(found.labels, found.n_classes)
    reference_shares = class_shares(reference.labels, reference.n_classes)
    features = found.features
    fcd = frechet_distance(reference.features, features)
    mean = mean_term(reference.features, features)
    plain = resampled_frechet(reference.features, features, n_resamples=n_resamples, seed=seed)
    matched = resampled_frechet(reference.features, features, found.labels, reference_shares,
                                n_resamples, seed)  # fmt: skip
    return {
        "fcd": fcd,
        "mean_term": mean,
        "covariance_term": fcd - mean,
        "class_shares": shares.tolist(),
        "reference_shares": reference_shares.tolist(),
        "class_tv": total_variation(shares, reference_shares),
        "unmatched_share": float(reference_shares[shares == 0].sum()),
        "resampled_fcd": float(plain.mean()),
        "resampled_fcd_std": float(plain.std()) if n_resamples > 1 else 0.0,
        "class_matched_fcd": float(matched.mean()),
        "class_matched_fcd_std": float(matched.std()) if n_resamples > 1 else 0.0,
    }
