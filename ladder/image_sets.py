"""The images of one split as the trainer sees them (SM D): :class:`ImageSet`, the interface, and
:class:`TensorImageSet`, a set held whole on its device."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
from torch import Tensor


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
