"""MNIST, Fashion-MNIST and CelebA as real-valued images in [0, 1] on the training device (SM D).

One interface for the trainer: :func:`load_dataset` returns an :class:`ImageSet` whose
``iter_batches`` yields ``(x, idx)``: ``x`` float32 [B, C, H, W] on the set's device and ``idx`` the
long indices of those images in the set.

* MNIST / Fashion-MNIST (SM D.1): the whole split sits on the device as one float32 tensor
  [N, 1, 28, 28]; batches are drawn by index permutation (no host copies, no workers).
* CelebA (SM D.2): 128x128 RGB, a seeded random 20k test split, the rest train. Streamed from the
  JPEGs by a DataLoader with workers, or held on the device as uint8 after a one-off decode into a
  cache file (``cache_dir``).

Data root: an explicit ``root``, else ``$LADDER_DATA``, else a per-user cache folder
(:func:`resolve_data_root`), in torchvision's layout (MNIST and Fashion: the uncompressed idx
files in ``raw/``, see :func:`read_idx`). Nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from ladder.checkpoint import cache_dir
from ladder.config import canonical_dataset

ENV_VAR = "LADDER_DATA"

DATASETS: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28),
    "fashion": (1, 28, 28),
    "celeba": (3, 128, 128),
}
"""Canonical dataset names and their image shape (C, H, W)."""

CELEBA_TEST_SIZE = 20_000  # SM D.2: "randomly select 20k images (about 10%) to be the test set"

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


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are not under the data root (and downloading was not allowed or
    failed)."""


class DatasetCorruptError(ValueError):
    """A data set file is there but unreadable: not an idx file, truncated, or at odds with its
    partner file (images against labels)."""


def _root_and_source(root: str | os.PathLike | None) -> tuple[Path, str]:
    if root is not None:
        return Path(root).expanduser(), "the root argument"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser(), f"${ENV_VAR}"
    return cache_dir() / "data", f"the default (${ENV_VAR} is not set)"


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$LADDER_DATA``, else ``data`` in the package's cache
    folder (:func:`ladder.checkpoint.cache_dir`: ``~/.cache/ladder/data`` by default). The folder
    is not created here."""
    return _root_and_source(root)[0]


def _not_found(what: str, root: Path, source: str, expected: list[str], why: str = "") -> str:
    layout = "\n".join(f"    {root / e}" for e in expected)
    return (
        f"{what} not found under the data root {root} (from {source}){why}. Expected:\n{layout}\n"
        f"Point ${ENV_VAR} (or root=) at a folder in torchvision's layout, or, from Python, call "
        "load_dataset(..., download=True) where downloading is allowed."
    )


def _corrupt(path: Path, what: str) -> DatasetCorruptError:
    return DatasetCorruptError(
        f"{path} is corrupt: {what}; replace it with the file from a fresh copy of the data set"
    )


# ---------------------------------------------------------------------------------------------
# The common interface


class ImageSet(ABC):
    """A split of a data set as the trainer sees it (SM D): images in [0, 1], float32 batches.

    Attributes: ``name`` (canonical), ``image_shape`` (C, H, W), ``device``, ``labels`` (long [N] on
    ``device``, or None where the set has none, e.g. CelebA).
    """

    name: str
    image_shape: tuple[int, int, int]
    device: torch.device
    labels: Tensor | None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _batches(self, order: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x, idx) for consecutive chunks of ``order`` (long, on the CPU or ``device``)."""

    @abstractmethod
    def take(self, n: int) -> Tensor:
        """The first ``n`` images of the set, float32 [n, C, H, W] on ``device``."""

    @abstractmethod
    def gather(self, idx: Tensor) -> Tensor:
        """The images at indices ``idx`` (long [k]), float32 [k, C, H, W] on ``device``."""

    def iter_batches(
        self,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        drop_last: bool = True,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of ``(x, idx)``: x float32 [B, C, H, W] on ``device``, idx long [B] (indices
        into the set). With ``shuffle`` the order is ``torch.randperm(N, generator=generator)``
        drawn on the generator's device, so a seeded generator gives a reproducible epoch; every
        index appears at most once per epoch (exactly once with ``drop_last=False``)."""
        n = len(self)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if drop_last and batch_size > n:
            raise ValueError(
                f"batch_size={batch_size} exceeds the {n} images of the set, so drop_last=True "
                "would yield no batch; lower batch_size or pass drop_last=False"
            )
        if shuffle:
            gen_device = generator.device if generator is not None else torch.device("cpu")
            order = torch.randperm(n, generator=generator, device=gen_device)
        else:
            order = torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        return self._batches(order[:stop], batch_size)

    def _check_take(self, n: int) -> None:
        if not 0 <= n <= len(self):
            raise ValueError(f"take(n) needs 0 <= n <= {len(self)} (the size of the set), got {n}")


class TensorImageSet(ImageSet):
    """An image set held whole on its device (SM D.1 sets; CelebA from its uint8 cache).

    ``data`` is float32 in [0, 1] or uint8 in [0, 255]; uint8 is converted to float32 per batch,
    which keeps a CelebA split at a quarter of the float32 size (about 9 GB for the train split).
    """

    def __init__(self, name: str, data: Tensor, labels: Tensor | None = None) -> None:
        if data.dtype not in (torch.float32, torch.uint8) or data.dim() != 4:
            raise ValueError("data must be a float32 or uint8 tensor [N, C, H, W]")
        if labels is not None and labels.shape != data.shape[:1]:
            raise ValueError(f"labels {tuple(labels.shape)} do not match {data.shape[0]} images")
        self.name = name
        self.data = data
        self.labels = None if labels is None else labels.to(data.device, torch.long)
        self.image_shape = tuple(data.shape[1:])  # type: ignore[assignment]
        self.device = data.device

    def __len__(self) -> int:
        return self.data.shape[0]

    def _float(self, x: Tensor) -> Tensor:
        return x.float().div_(255) if x.dtype == torch.uint8 else x

    def _batches(self, order: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = order.to(self.device)  # one transfer per epoch
        for idx in order.split(batch_size):
            yield self._float(self.data[idx]), idx

    def take(self, n: int) -> Tensor:
        self._check_take(n)
        return self._float(self.data[:n].clone())

    def gather(self, idx: Tensor) -> Tensor:
        return self._float(self.data[idx.to(self.device)])


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
    raise _corrupt(path, what)


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
            raise DatasetNotFoundError(_not_found(what, root, source, expected, why)) from err
    if not all(p.is_file() for p in paths):
        why = ""
        if (root / folder / "processed").is_dir():
            why = " (torchvision's legacy processed/ cache is there, but only raw/ is read)"
        raise DatasetNotFoundError(_not_found(what, root, source, expected, why))
    images_path, labels_path = paths
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if images.shape[1:] != DATASETS[name][1:]:
        h, w = images.shape[1:]
        raise _corrupt(images_path, f"its images are {h}x{w} pixels, not 28x28")
    if len(labels) != len(images):
        raise DatasetCorruptError(
            f"{what} is inconsistent: {images_path} holds {len(images)} images but {labels_path} "
            f"holds {len(labels)} labels; replace both files with those from a fresh copy of the "
            "data set"
        )
    if labels.max() > 9:  # ten classes
        raise _corrupt(labels_path, f"label {int(labels.max())} is not a class 0-9")
    return images, labels.long()


# ---------------------------------------------------------------------------------------------
# CelebA (SM D.2)

# We read torchvision's CelebA layout ourselves rather than use torchvision.datasets.CelebA: that
# class md5-checks five annotation files (which synthetic test files fail) and parses attributes we
# never use. We need only <root>/celeba/list_eval_partition.txt (the file list, in release order)
# and <root>/celeba/img_align_celeba/*.jpg. torchvision's class is used only to download.
_CELEBA_EXPECTED = ["celeba/list_eval_partition.txt", "celeba/img_align_celeba/000001.jpg ..."]


def _celeba_files(root: Path, source: str, download: bool) -> list[Path]:
    base = root / "celeba"
    listing = base / "list_eval_partition.txt"
    images = base / "img_align_celeba"
    if download and not (listing.is_file() and images.is_dir()):
        try:
            torchvision.datasets.CelebA(str(root), split="all", target_type=[], download=True)
        except Exception as err:  # gdown missing, Google Drive quota, no network, ...
            why = f" and the download failed ({type(err).__name__}: {err})"
            raise DatasetNotFoundError(
                _not_found("CelebA", root, source, _CELEBA_EXPECTED, why)
            ) from err
    if not (listing.is_file() and images.is_dir()):
        raise DatasetNotFoundError(_not_found("CelebA", root, source, _CELEBA_EXPECTED))
    names = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    present = set(os.listdir(images))
    absent = [f for f in names if f not in present]
    if absent:
        why = f": {len(absent)} of the {len(names)} listed images are missing, e.g. {absent[0]}"
        raise DatasetNotFoundError(_not_found("CelebA", root, source, _CELEBA_EXPECTED, why))
    return [images / f for f in names]


def celeba_split(n_images: int, split: str, test_size: int, split_seed: int) -> Tensor:
    """Indices (ascending) of the seeded random test split of ``test_size`` images, or of the rest
    (SM D.2). The official CelebA partition is not used: the paper draws its own."""
    if not 0 < test_size < n_images:
        raise ValueError(
            f"test_size must be in [1, {n_images - 1}] for {n_images} CelebA images, "
            f"got {test_size}"
        )
    perm = torch.randperm(n_images, generator=torch.Generator().manual_seed(split_seed))
    part = perm[:test_size] if split == "test" else perm[test_size:]
    return part.sort().values


class CelebAFiles(Dataset):
    """CelebA JPEGs as uint8 [3, size, size] with their index (SM D.2; see ``load_dataset``)."""

    def __init__(self, files: list[Path], center_crop: int | None = None, size: int = 128) -> None:
        self.files = files
        self.center_crop = center_crop
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        with Image.open(self.files[i]) as img:
            img = img.convert("RGB")
        if self.center_crop is not None:
            img = TF.center_crop(img, [self.center_crop, self.center_crop])
        img = TF.resize(img, [self.size, self.size], TF.InterpolationMode.BILINEAR, antialias=True)
        return TF.pil_to_tensor(img), i


class StreamingImageSet(ImageSet):
    """CelebA streamed from the JPEGs by a DataLoader with ``num_workers`` worker processes; the
    uint8 batches are moved (pinned, non-blocking on CUDA) and made float32 on ``device``."""

    def __init__(self, name: str, files: CelebAFiles, device: torch.device, num_workers: int):
        self.name = name
        self.files = files
        self.device = device
        self.num_workers = num_workers
        self.labels = None
        self.image_shape = (3, files.size, files.size)

    def __len__(self) -> int:
        return len(self.files)

    def _to_device(self, x: Tensor) -> Tensor:
        return x.to(self.device, non_blocking=True).float().div_(255)

    def _batches(self, order: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        loader = DataLoader(
            self.files,
            batch_size=batch_size,
            sampler=order.tolist(),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, idx in loader:
            yield self._to_device(x), idx.to(self.device)

    def take(self, n: int) -> Tensor:
        self._check_take(n)
        if n == 0:
            return torch.empty(0, *self.image_shape, device=self.device)
        return self.gather(torch.arange(n))

    def gather(self, idx: Tensor) -> Tensor:
        if idx.numel() == 0:
            return torch.empty(0, *self.image_shape, device=self.device)
        return self._to_device(torch.stack([self.files[int(i)][0] for i in idx]))


def _celeba_cache(files: CelebAFiles, path: Path, num_workers: int) -> np.ndarray:
    """The split decoded once into a uint8 .npy file [N, 3, 128, 128] (written atomically)."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        shape = (len(files), 3, files.size, files.size)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        loader = DataLoader(files, batch_size=256, num_workers=num_workers)
        for x, idx in loader:
            out[int(idx[0]) : int(idx[-1]) + 1] = x.numpy()
        out.flush()
        del out
        os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def _load_celeba(
    split: str,
    root: Path,
    source: str,
    n: int | None,
    device: torch.device,
    seed: int,
    download: bool,
    center_crop: int | None = None,
    test_size: int = CELEBA_TEST_SIZE,
    split_seed: int = 0,
    num_workers: int = 4,
    cache_dir: str | os.PathLike | None = None,
) -> ImageSet:
    if center_crop is not None and center_crop < 1:
        raise ValueError(f"center_crop must be a size in pixels (> 0) or None, got {center_crop}")
    all_files = _celeba_files(root, source, download)
    part = celeba_split(len(all_files), split, test_size, split_seed)
    files = CelebAFiles([all_files[i] for i in part.tolist()], center_crop)
    pick = None
    if n is not None:
        if not 1 <= n <= len(files):
            raise ValueError(f"subset size n must be in [1, {len(files)}], got {n}")
        pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:n]
    if cache_dir is None:
        if pick is not None:
            files = CelebAFiles([files.files[i] for i in pick.tolist()], center_crop)
        return StreamingImageSet("celeba", files, device, num_workers)
    key = f"celeba128_{split}_crop{center_crop or 0}_test{test_size}_seed{split_seed}"
    key += f"_of{len(all_files)}"
    cached = _celeba_cache(files, Path(cache_dir).expanduser() / f"{key}.npy", num_workers)
    rows = np.array(cached if pick is None else cached[pick.numpy()])  # into RAM, then to device
    return TensorImageSet("celeba", torch.from_numpy(rows).to(device))


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
    path, source = _root_and_source(root)
    device = torch.device(device)
    if key == "celeba":
        return _load_celeba(split, path, source, n, device, seed, download, **celeba_options)
    images, labels = _load_mnist_like(key, split, path, source, download)
    if n is not None:
        pick = balanced_subset(labels, n, seed)
        images, labels = images[pick], labels[pick]
    x = images.to(device).unsqueeze(1).float().div_(255)  # uint8 moves, float32 is made on device
    return TensorImageSet(key, x.contiguous(), labels)
