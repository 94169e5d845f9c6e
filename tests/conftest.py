"""Shared fixtures: the MNIST / Fashion-MNIST root, a synthetic CelebA (torchvision layout) and
the experiments' manifest."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ladder.experiments.manifest import Manifest, load_manifest

CELEBA_N = 12  # synthetic images
CELEBA_W, CELEBA_H = 178, 218  # the size of CelebA's aligned images
CELEBA_BAND = 20  # rows of black at the top; a centred 178x178 crop removes them


# helpers of the DP-GMM tests (tests/test_dpgmm*.py)


def blobs(n: int, d: int, k: int, seed: int = 0, spread: float = 4.0) -> np.ndarray:
    """n points in k well separated Gaussian blobs in R^d."""
    rng = np.random.RandomState(seed)
    centres = rng.randn(k, d) * spread
    return centres[rng.randint(k, size=n)] + rng.randn(n, d) * (0.5 + rng.rand(n, 1))


def quiet(model: Any, X: Any, **kwargs: Any) -> Any:
    """``model.fit(X, **kwargs)`` of a DPGMM without its "did not converge" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="DPGMM did not converge")
        return model.fit(X, **kwargs)


def few_components(model: Any, n: int) -> None:
    """A small model config: ``n`` GMM components, VampPrior pseudo-inputs and DP-GMM sticks."""
    model.gmm.n_components = model.vamp.n_pseudo_inputs = model.dpgmm.truncation = n


def celeba_colour(i: int) -> tuple[int, int, int]:
    """The flat RGB colour of synthetic CelebA image ``i`` (0-based), distinct for every image."""
    return (20 * i + 10, 240 - 15 * i, 128)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """$LADDER_DATA holding MNIST and Fashion-MNIST (never downloaded); a clear failure where it is
    absent, never a silent skip."""
    root = os.environ.get("LADDER_DATA")
    if not root or not (Path(root) / "MNIST" / "raw").is_dir():
        pytest.fail("set LADDER_DATA to the folder holding MNIST/raw and FashionMNIST/raw "
                    "(on the project's machines: ../shared/data)")
    return Path(root)


@pytest.fixture(scope="session")
def celeba_root(tmp_path_factory) -> Path:
    """A data root with 12 synthetic JPEGs in torchvision's CelebA layout:
    ``celeba/img_align_celeba/00000{1..12}.jpg`` (178x218, flat colour ``celeba_colour(i)`` below a
    black band of ``CELEBA_BAND`` rows) and ``celeba/list_eval_partition.txt``."""
    root = tmp_path_factory.mktemp("celeba_data")
    images = root / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    lines = []
    for i in range(CELEBA_N):
        pixels = np.empty((CELEBA_H, CELEBA_W, 3), np.uint8)
        pixels[:] = celeba_colour(i)
        pixels[:CELEBA_BAND] = 0
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(pixels).save(images / name, quality=95)
        lines.append(f"{name} {0 if i < 8 else 2}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    """``experiments/manifest.yaml`` of this checkout."""
    return load_manifest()
