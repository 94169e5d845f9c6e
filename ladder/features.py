"""Sample-quality statistics on classifier features (Table 1, SM Table 1, Fig 4).

* :func:`frechet_distance`: the Fréchet distance between Gaussians fitted to two feature sets. On
  the penultimate features of the project's :class:`ladder.classifier.LeNetClassifier` we call it
  the **Fréchet classifier distance (FCD)** (:data:`FCD_LABEL`) in every table, never "FID": its
  values are comparable only under the same classifier weights (record the ``weights_hash``), and
  not with the paper's Inception-based numbers. Computed by torchmetrics in float64.
* :func:`prdc_metrics`: precision, recall, density and coverage (Naeem et al. 2020, ``prdc``
  package) on the same features.
* :func:`cluster_agreement`: NMI and ARI between the hyper prior's component assignments of the test
  encodings and the class labels (Fig 4 as a number).
* :func:`inception_fid`: standard Inception FID (for CelebA) only from a local weights file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from tqdm.auto import tqdm

from ladder.config import EVALUATION

__all__ = [
    "DEFAULT_SAMPLE_COUNT",
    "FCD_LABEL",
    "cluster_agreement",
    "extract_features",
    "frechet_distance",
    "inception_fid",
    "prdc_metrics",
]

DEFAULT_SAMPLE_COUNT = EVALUATION.n_samples
"""Images per side of every FCD / PRDC / FID comparison: 10k generated (or reconstructed) images
against the 10k test images, and for the real-vs-real floor 10k training images (a seeded random
subset) against the same 10k test images. Fréchet distances are biased upwards by an amount that
shrinks with the sample count, so numbers are only comparable at equal counts; this one fixes it for
all tables. (MNIST and Fashion-MNIST have exactly 10k test images; the paper states no count.)"""

FCD_LABEL = "Fréchet classifier distance (FCD)"
"""Name used in tables for :func:`frechet_distance` on LeNetClassifier penultimate features."""


def extract_features(
    feature_fn: Callable[[Tensor], Tensor],
    images: Tensor,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Tensor:
    """``feature_fn`` applied to ``images`` in batches without gradients; a CPU ``[N, F]`` tensor.

    ``feature_fn`` is e.g. ``classifier.features`` (put the model in eval mode first). Each batch is
    moved to ``device`` when given.
    """
    if not isinstance(images, Tensor) or images.dim() < 2 or images.shape[0] == 0:
        raise ValueError("images must be a non-empty tensor [N, ...]")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    starts = range(0, images.shape[0], batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc="features", disable=not progress):
            batch = images[start : start + batch_size]
            if device is not None:
                batch = batch.to(device)
            feats = feature_fn(batch)
            out.append(feats.reshape(feats.shape[0], -1).detach().to("cpu"))
    return torch.cat(out)


class _Precomputed(nn.Module):
    """Identity 'feature extractor' so torchmetrics' FID accumulates features we already have."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return x


def _as_feature_matrix(x: Tensor | np.ndarray, name: str) -> Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be a feature matrix [N >= 2, F], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x.detach().to("cpu", torch.float64)


def frechet_distance(features_a: Tensor | np.ndarray, features_b: Tensor | np.ndarray) -> float:
    """Fréchet distance ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}) of two feature sets.

    Means and (unbiased) covariances in float64; the distance by torchmetrics'
    ``FrechetInceptionDistance`` fed the features through an identity module (its trace of the
    square root is the sum of the square roots of the eigenvalues of S_a S_b). On LeNetClassifier
    features this is the :data:`FCD_LABEL`.
    Warns when a set has no more samples than features (singular covariance).
    """
    a = _as_feature_matrix(features_a, "features_a")
    b = _as_feature_matrix(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if min(a.shape[0], b.shape[0]) <= a.shape[1]:
        warnings.warn(
            f"Fréchet distance from {a.shape[0]} and {b.shape[0]} samples of {a.shape[1]} "
            "features: a covariance is singular; use many more samples than features "
            f"(the project's fixed count is {DEFAULT_SAMPLE_COUNT})",
            stacklevel=2,
        )
    metric = FrechetInceptionDistance(feature=_Precomputed(a.shape[1]))  # states are float64
    metric.update(a, real=True)
    metric.update(b, real=False)
    return float(metric.compute())


def prdc_metrics(
    real_features: Tensor | np.ndarray, fake_features: Tensor | np.ndarray, k: int = 5
) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake_features`` against ``real_features``.

    k-nearest-neighbour manifolds (Naeem et al. 2020) via the ``prdc`` package, in float32 (it
    builds N x N distance matrices: 10k per side needs about 1.2 GB). Returns plain floats.
    """
    real = _as_feature_matrix(real_features, "real_features")
    fake = _as_feature_matrix(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}")
    if not 1 <= k < min(real.shape[0], fake.shape[0]):
        raise ValueError(f"k must be in [1, number of samples per set - 1], got k={k}")
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        result = compute_prdc(
            real.numpy().astype(np.float32), fake.numpy().astype(np.float32), nearest_k=k
        )
    return {name: float(value) for name, value in result.items()}


def cluster_agreement(
    assignments: Tensor | np.ndarray, labels: Tensor | np.ndarray
) -> dict[str, float]:
    """NMI and ARI between cluster ``assignments`` and class ``labels`` (Fig 4 as a number).

    Both are invariant to renaming clusters; 1 means the same partition, about 0 chance agreement.
    scikit-learn's ``normalized_mutual_info_score`` (arithmetic-mean normalisation) and
    ``adjusted_rand_score``.
    """
    a = np.asarray(torch.as_tensor(assignments).cpu())
    y = np.asarray(torch.as_tensor(labels).cpu())
    if a.ndim != 1 or y.ndim != 1 or a.shape != y.shape or a.size == 0:
        raise ValueError(
            f"assignments and labels must be 1-D and of equal, non-zero length; got shapes "
            f"{a.shape} and {y.shape}"
        )
    return {
        "nmi": float(normalized_mutual_info_score(y, a)),
        "ari": float(adjusted_rand_score(y, a)),
    }


_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def inception_fid(
    real_images: Tensor,
    fake_images: Tensor,
    weights_path: str | os.PathLike | None = None,
    batch_size: int = 100,
) -> float:
    """Standard Inception FID (2048-d pool features), for CelebA, from a local weights file only.

    Images are float ``[N, C, H, W]`` in [0, 1]; one channel is repeated to three. Uses
    torchmetrics' ``FrechetInceptionDistance(feature_extractor_weights_path=...)``, which needs the
    optional ``torch-fidelity`` package and its TF-ported Inception weights
    (``weights-inception-2015-12-05-6726825d.pth`` from the torch-fidelity releases). Nothing is
    downloaded: without a weights file a :class:`ValueError` says so.
    """
    if weights_path is None:
        raise ValueError(
            "Inception FID needs a local weights file: Inception weights cannot be downloaded "
            f"here. Pass weights_path=/path/to/{_INCEPTION_FILE} (torch-fidelity's release "
            f"file), or report the {FCD_LABEL} instead"
        )
    weights_path = Path(weights_path).expanduser()
    if not weights_path.is_file():
        raise FileNotFoundError(f"Inception weights file {weights_path} does not exist")
    if importlib.util.find_spec("torch_fidelity") is None:
        raise ModuleNotFoundError(
            "Inception FID goes through torchmetrics, whose Inception feature extractor needs the "
            "`torch-fidelity` package, which is not installed: `pip install torch-fidelity` "
            "(or `pip install torchmetrics[image]`)"
        )
    metric = FrechetInceptionDistance(
        feature=2048, normalize=True, feature_extractor_weights_path=str(weights_path)
    )
    for images, real in ((real_images, True), (fake_images, False)):
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError("images must be float tensors [N, 1 or 3, H, W] in [0, 1]")
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size].float().clamp(0, 1)
            metric.update(batch.expand(-1, 3, -1, -1), real=real)
    return float(metric.compute())
