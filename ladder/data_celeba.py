"""CelebA (SM D.2): 128x128 RGB images, a seeded random 20k-image test split and the rest train,
streamed from the JPEGs or decoded once into a uint8 cache (:func:`ladder.data.load_dataset`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from ladder.data_root import DatasetNotFoundError, not_found_message
from ladder.image_sets import ImageSet, TensorImageSet

CELEBA_TEST_SIZE = 20_000  # SM D.2: "randomly select 20k images (about 10%) to be the test set"

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
                not_found_message("CelebA", root, source, _CELEBA_EXPECTED, why)
            ) from err
    if not (listing.is_file() and images.is_dir()):
        raise DatasetNotFoundError(not_found_message("CelebA", root, source, _CELEBA_EXPECTED))
    names = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    present = set(os.listdir(images))
    absent = [f for f in names if f not in present]
    if absent:
        why = f": {len(absent)} of the {len(names)} listed images are missing, e.g. {absent[0]}"
        raise DatasetNotFoundError(not_found_message("CelebA", root, source, _CELEBA_EXPECTED, why))
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


def load_celeba(
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
