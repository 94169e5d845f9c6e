"""MNIST, Fashion-MNIST and CelebA as real-valued images in [0, 1] on the training device (SM D).

One interface for the trainer: :func:`load_dataset` returns an :class:`ImageSet` whose
``iter_batches`` yields ``(x, idx)``: ``x`` float32 [B, C, H, W] on the set's device and ``idx`` the
long indices of those images in the set.

* MNIST / Fashion-MNIST (SM D.1): the whole split sits on the device as one float32 tensor
  [N, 1, 28, 28]; batches are drawn by index permutation (no host copies, no workers).
* CelebA (SM D.2): 128x128 RGB, a seeded random 20k test split, the rest train. Streamed from the
  JPEGs by a DataLoader with workers, or held on the device as uint8 after a one-off decode into a
  cache file (``cache_dir``).

The image sets are :mod:`ladder.image_sets`, CelebA's loading :mod:`ladder.data_celeba`, and the
data root and its errors :mod:`ladder.data_root`. Data root: an explicit ``root``, else
``$LADDER_DATA``, else a per-user cache folder (:func:`resolve_data_root`), in torchvision's
layout (MNIST and Fashion: the uncompressed idx files in ``raw/``, see :func:`read_idx`). Nothing
is downloaded unless ``download=True``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor

from ladder.config import canonical_dataset
from ladder.data_celeba import (
    load_celeba,
)
from ladder.data_root import (
    DatasetCorruptError,
    DatasetNotFoundError,
    corrupt_error,
    not_found_message,
    root_and_source,
)
from ladder.image_sets import ImageSet, TensorImageSet

DATASETS: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28),
    "fashion": (1, 28, 28),
    "celeba": (3, 128, 128),
}
"""Canonical dataset names and their image shape (C, H, W)."""

# torchvision class and the IDX files it reads under <root>/<folder>/raw/ (uncompressed).
_MNIST_LIKE = {
    "mnist": (torchvision.datasets.MNIST, "MNIST"),
    "fashion": (torchvision.datasets.FashionMNIST, "FashionMNIST"),
}
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_SIZES = {  # bytes; the same for MNIST and Fashion-MNIST
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}


# ---------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (SM D.1)


def balanced_subset(labels: Tensor, n: int, seed: int = 0) -> Tensor:
    """``n`` seeded random indices with the classes as balanced as the counts allow.

    Ordered class-interleaved: the first ``k * n_classes`` indices hold ``k`` of every class (while
    classes last), so ``take(m)`` of a subset is balanced too.
    """
    if not 1 <= n <= labels.numel():
        raise ValueError(f"subset size n must be in [1, {labels.numel()}], got {n}")
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu().long()
    perm = torch.randperm(labels.numel(), generator=g)
    lab = labels[perm]
    n_classes = int(lab.max()) + 1
    by_class = torch.argsort(lab, stable=True)
    counts = torch.bincount(lab, minlength=n_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(lab)
    rank[by_class] = torch.arange(lab.numel()) - starts[lab[by_class]]
    class_order = torch.randperm(n_classes, generator=g)
    key = rank * n_classes + class_order[lab]
    return perm[torch.argsort(key)[:n]]


def read_idx(path: str | os.PathLike, ndim: int) -> Tensor:
    """The uint8 array [d_1, ..., d_ndim] held by an idx file of unsigned bytes, the format of the
    MNIST and Fashion-MNIST files: the magic number 0x0000080<ndim>, ``ndim`` big-endian uint32
    sizes, then the d_1 * ... * d_ndim > 0 bytes in C order and nothing more. Anything else (an
    empty, truncated or overlong file, a wrong magic number) raises :class:`DatasetCorruptError`."""
    path = Path(path)
    header = 4 * (ndim + 1)
    magic = 0x800 + ndim
    known = ""
    if path.name in _IDX_SIZES:
        known = f" (MNIST's and Fashion-MNIST's {path.name} is {_IDX_SIZES[path.name]} bytes)"
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(header)
        found = int.from_bytes(head[:4], "big")
        if len(head) >= 4 and found != magic:
            what = f"wrong magic number 0x{found:08x} (idx{ndim}-ubyte files start 0x{magic:08x})"
        elif len(head) < header:
            what = f"truncated: {size} bytes, less than the {header}-byte header{known}"
        else:
            dims = [int.from_bytes(head[i : i + 4], "big") for i in range(4, header, 4)]
            implied = header + math.prod(dims)
            shape = " x ".join(map(str, dims))
            if implied == header:
                what = f"empty: its header ({shape}) gives no data{known}"
            elif size == implied:
                return torch.from_numpy(np.fromfile(f, np.uint8).reshape(dims))
            else:
                what = "truncated" if size < implied else "too long"
                what += f": {size} bytes where its header ({shape}) implies {implied}{known}"
    raise corrupt_error(path, what)


def _load_mnist_like(
    name: str, split: str, root: Path, source: str, download: bool
) -> tuple[Tensor, Tensor]:
    """The uint8 images [N, 28, 28] and long labels [N] of a split, from the idx files in
    ``<root>/<folder>/raw/`` only (SM D.1).

    torchvision's legacy cache ``<folder>/processed/{training,test}.pt`` (written by torchvision
    before 0.9, and preferred by its MNIST class to ``raw/`` whenever present) is never read: it
    may be stale, and one source of the data, the one the layout documents, cannot disagree with
    itself. ``download=True`` fetches missing ``raw/`` files through torchvision.
    """
    cls, folder = _MNIST_LIKE[name]
    expected = [f"{folder}/raw/{f}" for f in _IDX_FILES[split]]
    paths = [root / e for e in expected]
    what = f"{folder} {split} split"
    if download and not all(p.is_file() for p in paths):
        try:
            cls(str(root), train=split == "train", download=True)
        except (RuntimeError, OSError) as err:  # no network, bad mirror, ...
            why = f" and the download failed ({type(err).__name__}: {err})"
            raise DatasetNotFoundError(not_found_message(what, root, source, expected, why)) from err
    if not all(p.is_file() for p in paths):
        why = ""
        if (root / folder / "processed").is_dir():
            why = " (torchvision's legacy processed/ cache is there, but only raw/ is read)"
        raise DatasetNotFoundError(not_found_message(what, root, source, expected, why))
    images_path, labels_path = paths
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if images.shape[1:] != DATASETS[name][1:]:
        h, w = images.shape[1:]
        raise corrupt_error(images_path, f"its images are {h}x{w} pixels, not 28x28")
    if len(labels) != len(images):
        raise DatasetCorruptError(
            f"{what} is inconsistent: {images_path} holds {len(images)} images but {labels_path} "
            f"holds {len(labels)} labels; replace both files with those from a fresh copy of the "
            "data set"
        )
    if labels.max() > 9:  # ten classes
        raise corrupt_error(labels_path, f"label {int(labels.max())} is not a class 0-9")
    return images, labels.long()


# ---------------------------------------------------------------------------------------------


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    n: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    download: bool = False,
    **celeba_options,
) -> ImageSet:
    """Load a split of ``"mnist"``, ``"fashion"`` (``"fashion-mnist"``) or ``"celeba"`` (SM D).

    Pixels are real-valued in [0, 1] (SM D.1, D.2; no binarisation). ``root``: see
    :func:`resolve_data_root`. ``n``: a seeded random subset of the split (class-balanced for MNIST
    and Fashion, see :func:`balanced_subset`), the same for the same ``seed``. ``download=False``
    never touches the network; missing files raise :class:`DatasetNotFoundError`.

    MNIST / Fashion give a :class:`TensorImageSet` with ``labels``; the test split is the official
    10k test set (the reference code uses it as its validation set, too).

    CelebA (SM D.2: "resize all the images to 128 x 128", then 20k random test images) has no
    labels and takes these keyword options:

    * ``center_crop``: None (default) resizes the whole 178x218 aligned image to 128x128, which is
      all the paper says ("resize"); an int first takes the centred square of that side (178 is the
      largest; 140 is common in the VAE literature), keeping the aspect ratio. The reference
      code's preprocessing script is missing (the reference-code appendix, section 0), so its
      choice is unknown.
      Resizing is bilinear with antialiasing.
    * ``test_size`` (20000) and ``split_seed`` (0): the seeded random test split; the rest is train.
      ``seed`` only picks the ``n`` subset, so train and test stay disjoint for every ``seed``.
    * ``num_workers`` (4): DataLoader workers that decode JPEGs while streaming.
    * ``cache_dir``: None (default) streams the JPEGs every epoch (float32 CelebA would need 40 GB).
      A folder instead decodes the split once into a uint8 ``.npy`` file there (~9 GB for the train
      split) and holds the set on ``device`` as uint8, converted to float32 per batch.
    """
    key = canonical_dataset(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if key != "celeba" and celeba_options:
        raise ValueError(f"options {sorted(celeba_options)} apply to CelebA only, not to {key!r}")
    path, source = root_and_source(root)
    device = torch.device(device)
    if key == "celeba":
        return load_celeba(split, path, source, n, device, seed, download, **celeba_options)
    images, labels = _load_mnist_like(key, split, path, source, download)
    if n is not None:
        pick = balanced_subset(labels, n, seed)
        images, labels = images[pick], labels[pick]
    x = images.to(device).unsqueeze(1).float().div_(255)  # uint8 moves, float32 is made on device
    return TensorImageSet(key, x.contiguous(), labels)
