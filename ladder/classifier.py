"""The project's own evaluation classifier (it replaces Inception for Table 1, SM Table 1).

The paper scores samples with FID (Table 1, SM Tables 1-2). The reference code's helper uses a
Keras InceptionV3 on upsampled 64 px digits and is never called (the reference-code appendix,
section 6); Inception weights cannot be downloaded here and are a poor judge of 28x28 greyscale
digits anyway.
So each dataset gets a small LeNet-like classifier that the project trains itself
(``ladder train-classifier``); its penultimate features feed the Fréchet classifier distance and
PRDC in :mod:`ladder.features`.

Trained classifiers are cached, named by the hash of their weights, by
:mod:`ladder.classifier_cache`.

Images are float tensors in [0, 1] shaped ``[N, C, 28, 28]``; :func:`prepare_images` also accepts
``uint8`` and ``[N, 28, 28]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ladder.config import ConfigError, canonical_dataset

__all__ = [
    "CLASSIFIER_DATASETS",
    "LeNetClassifier",
    "accuracy",
    "classifier_dataset",
    "prepare_images",
    "train_classifier",
]

CLASSIFIER_DATASETS = ("mnist", "fashion")
"""The datasets with an evaluation classifier: 28x28 greyscale. CelebA is scored by Inception
FID."""


class LeNetClassifier(nn.Module):
    """LeNet-like CNN for 28x28 images in [0, 1]: two conv + max-pool blocks, hidden layer, logits.

    ``features(x)`` returns the hidden layer (after ReLU): the penultimate features
    ``[B, feature_dim]`` on which :func:`ladder.features.frechet_distance` and
    :func:`ladder.features.prdc_metrics` run.
    """

    def __init__(self, n_classes: int = 10, in_channels: int = 1, feature_dim: int = 128) -> None:
        super().__init__()
        if n_classes < 2 or in_channels < 1 or feature_dim < 1:
            raise ValueError(
                f"LeNetClassifier needs n_classes >= 2, in_channels >= 1 and feature_dim >= 1; got "
                f"n_classes={n_classes}, in_channels={in_channels}, feature_dim={feature_dim}"
            )
        self.n_classes = n_classes
        self.in_channels = in_channels
        self.feature_dim = feature_dim
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=5, padding=2)  # 28 -> 28 -> pool 14
        self.conv2 = nn.Conv2d(32, 64, kernel_size=5)  # 14 -> 10 -> pool 5
        self.fc1 = nn.Linear(64 * 5 * 5, feature_dim)
        self.dropout = nn.Dropout(0.3)
        self.fc2 = nn.Linear(feature_dim, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``[B, feature_dim]`` of images ``[B, C, 28, 28]`` in [0, 1]."""
        if x.dim() != 4 or x.shape[1:] != (self.in_channels, 28, 28):
            raise ValueError(
                f"expected images of shape [B, {self.in_channels}, 28, 28], got {tuple(x.shape)}; "
                "use ladder.classifier.prepare_images to convert"
            )
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[B, n_classes]``."""
        return self.fc2(self.dropout(self.features(x)))


def classifier_dataset(name: str) -> str:
    """The canonical name (:func:`ladder.config.canonical_dataset`, so ``fmnist`` is ``fashion``)
    of a dataset with an evaluation classifier; :class:`ValueError` naming the choices else."""
    choices = ", ".join(CLASSIFIER_DATASETS)
    try:
        key = canonical_dataset(name)
    except ConfigError:
        raise ValueError(f"unknown dataset {name!r}; the evaluation classifier is for {choices} "
                         "(or an alias such as fashion-mnist or fmnist)") from None
    if key not in CLASSIFIER_DATASETS:
        raise ValueError(
            f"no evaluation classifier for {key}: it is for the 28x28 greyscale datasets "
            f"({choices}); {key} is scored by Inception FID (`ladder evaluate "
            "--inception-weights FILE`)"
        )
    return key


def prepare_images(images: Tensor) -> Tensor:
    """Images as float32 ``[N, C, H, W]`` in [0, 1]; ``uint8`` is divided by 255, ``[N, H, W]`` gets
    a channel axis."""
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise ValueError(
            f"images must be [N, H, W] or [N, C, H, W], got shape {tuple(images.shape)}"
        )
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 or floating point in [0, 1], got {images.dtype}")
    return images.float()


def _check_labels(images: Tensor, labels: Tensor, what: str) -> Tensor:
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{what} labels must be a 1-D tensor with one label per image "
            f"({images.shape[0]} images)"
        )
    return labels.long()


@torch.no_grad()
def accuracy(
    model: LeNetClassifier, images: Tensor, labels: Tensor, batch_size: int = 1000
) -> float:
    """Fraction of ``images`` whose arg-max logit equals ``labels`` (model in eval mode)."""
    images = prepare_images(images)
    labels = _check_labels(images, labels, "test")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        correct += int((model(x).argmax(dim=1) == y).sum())
    model.train(was_training)
    return correct / images.shape[0]


def train_classifier(
    train_images: Tensor,
    train_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[LeNetClassifier, float]:
    """Train a :class:`LeNetClassifier` and return it (in eval mode) with its test accuracy.

    Adam with a cosine learning-rate decay to 0 over all steps, cross-entropy, dropout 0.3 before
    the logits, no augmentation (8 epochs reach 99.4% on MNIST and 91.9% on Fashion-MNIST, see
    ``benchmarks/bench_classifier.py``). ``seed`` fixes the initial weights, the batch order and
    dropout; on CPU two runs with the same seed give the same weights. The global RNG state is left
    as it was. The test set is used only to report the accuracy, never to select a model.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}"
        )
    train_images = prepare_images(train_images)
    test_images = prepare_images(test_images)
    train_labels = _check_labels(train_images, train_labels, "train")
    test_labels = _check_labels(test_images, test_labels, "test")
    if train_images.shape[2:] != (28, 28) or test_images.shape[1:] != train_images.shape[1:]:
        raise ValueError(
            f"train and test images must both be [N, C, 28, 28]; got {tuple(train_images.shape)} "
            f"and {tuple(test_images.shape)}"
        )
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    device = torch.device(device)
    fork_devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    generator = torch.Generator().manual_seed(seed)
    n = train_images.shape[0]
    steps_per_epoch = -(-n // batch_size)
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model = LeNetClassifier(n_classes=n_classes, in_channels=train_images.shape[1]).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs * steps_per_epoch)
        x_all, y_all = train_images.to(device), train_labels.to(device)
        model.train()
        bar = tqdm(total=epochs * steps_per_epoch, desc="train-classifier", disable=not progress)
        for epoch in range(epochs):
            order = torch.randperm(n, generator=generator).to(device)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                bar.update(1)
                if progress and bar.n % 50 == 0:  # .item() waits for the device
                    bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{loss.item():.3f}")
        bar.close()
    model.eval()
    return model, accuracy(model, test_images, test_labels)
