"""Is a generated image realistic? The real images' k-nearest-neighbour manifold (Fig 5).

A Fréchet distance compares two sets as Gaussians, so it cannot say whether a set is far from the
real images because its images are unrealistic or because they are distributed differently (other
classes, less variety). The k-NN manifold separates the two (Kynkäänniemi et al. 2019; Naeem et al.
2020). Around each real feature vector r lies a ball whose radius is the distance to r's k-th
nearest real neighbour; the union of the balls estimates the support of the real images.

* :func:`manifold_radii`: each real sample's ball radius.
* :func:`ball_membership`: which balls hold each generated sample, ``[n_fake, n_real]``. A row
  with any ``True`` is a generated sample inside the manifold (its mean over samples is
  *precision*: how realistic the samples are, one by one). A column with any ``True`` is a real
  sample whose ball holds a generated one (its mean over real samples is *coverage*: how much of
  the real images' variety the set reaches).

Both decompose over generated samples, so :mod:`ladder.slp_eval` scores precision per pair of
test images and bootstraps coverage over pairs. :func:`ladder.features.prdc_metrics` gives the
same precision and coverage (and recall and density) for two whole sets.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ladder.features import _as_feature_matrix

__all__ = ["ball_membership", "manifold_radii"]

_CHUNK = 2048  # rows of a distance matrix computed at once (2048 x 10k in float64: 160 MB)


def manifold_radii(real: Tensor, k: int = 5) -> Tensor:
    """The distance from each row of ``real`` ``[N, F]`` to its k-th nearest other row, ``[N]``
    (float64; Kynkäänniemi et al. 2019, Eq 1). ``k`` is in [1, N - 1]."""
    real = _as_feature_matrix(real, "real")
    if not 1 <= k < real.shape[0]:
        raise ValueError(f"k must be in [1, {real.shape[0] - 1}] for {real.shape[0]} samples, got {k}")
    radii = []
    for start in range(0, real.shape[0], _CHUNK):
        distances = torch.cdist(real[start : start + _CHUNK], real)
        # the k+1 smallest include the sample itself at distance 0
        radii.append(distances.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def ball_membership(real: Tensor, radii: Tensor, fake: Tensor) -> Tensor:
    """``[n_fake, n_real]`` booleans: row i, column j is True when ``fake[i]`` lies in real sample
    j's ball, closer than ``radii[j]`` to ``real[j]`` (:func:`manifold_radii`; strictly, as the
    ``prdc`` package)."""
    real, fake = _as_feature_matrix(real, "real"), _as_feature_matrix(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}")
    if radii.shape != (real.shape[0],):
        raise ValueError(f"radii must have one entry per real sample, got {tuple(radii.shape)}")
    radii = radii.to(torch.float64)
    rows = [torch.cdist(fake[start : start + _CHUNK], real) < radii
            for start in range(0, fake.shape[0], _CHUNK)]  # fmt: skip
    return torch.cat(rows)
