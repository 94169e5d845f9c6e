"""The cache of trained evaluation classifiers, each named by the hash of its weights.

A trained classifier (:mod:`ladder.classifier`) is cached as
``<cache>/classifiers/<dataset>-<hash12>.pt`` (a plain state dict, loadable with
``torch.load(..., weights_only=True)``) beside a JSON sidecar with its test accuracy and training
settings. The hash is the SHA-256 of the weights (:func:`weights_hash`); it names the classifier in
every evaluation result, since Fréchet classifier distances are only comparable under the same
weights. :func:`load_classifier` re-hashes the weights it reads, so a corrupt or edited file is
refused.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ladder.checkpoint import atomic_save, atomic_write
from ladder.checkpoint import cache_dir as package_cache
from ladder.classifier import LeNetClassifier, classifier_dataset, train_classifier
from ladder.data import load_dataset

__all__ = [
    "ClassifierCacheError",
    "ClassifierNotFoundError",
    "classifier_cache_dir",
    "load_classifier",
    "save_classifier",
    "train_and_cache",
    "weights_hash",
]

HASH_LENGTH = 12
"""Hex digits of the SHA-256 weights hash kept in file names and result JSONs."""


class ClassifierNotFoundError(FileNotFoundError):
    """No cached classifier for a dataset; the message says which command trains one."""


class ClassifierCacheError(ValueError):
    """A cached classifier file is unreadable, or its weights do not match its recorded hash."""


def weights_hash(model: nn.Module | dict[str, Tensor]) -> str:
    """First :data:`HASH_LENGTH` hex digits of the SHA-256 of a model's weights.

    Hashes every state-dict entry in key order: its name, dtype, shape and raw bytes (on CPU), so
    the hash depends on the weights alone, not on how they were serialised.
    """
    state = model.state_dict() if isinstance(model, nn.Module) else model
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:HASH_LENGTH]


def classifier_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache>/classifiers`` where ``<cache>`` is ``cache_dir`` if given, else the package's cache
    folder (:func:`ladder.checkpoint.cache_dir`: ``$LADDER_CACHE``, else ``~/.cache/ladder``)."""
    root = package_cache() if cache_dir is None else Path(cache_dir).expanduser()
    return root / "classifiers"


def save_classifier(
    model: LeNetClassifier,
    dataset_name: str,
    accuracy: float,
    cache_dir: str | os.PathLike | None = None,
    info: dict | None = None,
) -> Path:
    """Write weights to ``<cache>/classifiers/<dataset>-<hash>.pt`` and a JSON sidecar; return path.

    The ``.pt`` holds the state dict only (tensors), so ``torch.load(path, weights_only=True)``
    reads it. ``<dataset>`` is the canonical name (:func:`classifier_dataset`:
    ``fashion-mnist`` is stored as ``fashion``). The sidecar records dataset, weights hash, test
    accuracy, architecture sizes, torch version, the UTC creation time and ``info`` (e.g. the
    training settings). Both are written atomically.
    """
    dataset_name = classifier_dataset(dataset_name)
    if not 0.0 <= float(accuracy) <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy}")
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    digest = weights_hash(state)
    folder = classifier_cache_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset_name}-{digest}.pt"
    meta = {
        "dataset": dataset_name,
        "weights_hash": digest,
        "test_accuracy": float(accuracy),
        "architecture": type(model).__name__,
        "n_classes": model.n_classes,
        "in_channels": model.in_channels,
        "feature_dim": model.feature_dim,
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
        "info": info or {},
    }
    atomic_save(state, path)
    atomic_write(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return path


def train_and_cache(
    dataset_name: str,
    root: str | os.PathLike | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **options: Any,
) -> tuple[Path, float]:
    """Train the evaluation classifier of ``dataset_name`` on its whole training split, score it
    on the test split and cache it (:func:`save_classifier`); ``ladder train-classifier``.
    ``options`` go to :func:`train_classifier` (e.g. ``epochs``); the sidecar's ``info`` records
    the training settings, the training-set size, the device and the thread count. Returns (path,
    test accuracy)."""
    dataset_name = classifier_dataset(dataset_name)
    train_set = load_dataset(dataset_name, "train", root=root)
    test_set = load_dataset(dataset_name, "test", root=root)
    model, acc = train_classifier(
        train_set.take(len(train_set)), train_set.labels, test_set.take(len(test_set)),
        test_set.labels, seed=seed, device=device, progress=progress, **options,
    )
    settings = inspect.signature(train_classifier).bind_partial(seed=seed, **options)
    settings.apply_defaults()
    info = {name: settings.arguments[name] for name in ("epochs", "batch_size", "lr", "seed")}
    # The weights depend on the thread count (float reductions), so the sidecar says it.
    info.update(n_train=len(train_set), device=str(device), threads=torch.get_num_threads())
    return save_classifier(model, train_set.name, acc, info=info), acc


def _newest_cached(dataset_name: str, folder: Path) -> Path:
    pattern = re.compile(rf"^{re.escape(dataset_name)}-[0-9a-f]{{{HASH_LENGTH}}}\.pt$")
    candidates = [p for p in folder.glob(f"{dataset_name}-*.pt") if pattern.match(p.name)]
    if not candidates:
        raise ClassifierNotFoundError(
            f"no cached classifier for dataset {dataset_name!r} in {folder}; train one with "
            f"`ladder train-classifier --dataset {dataset_name}` (or set LADDER_CACHE to the cache "
            "that holds it)"
        )

    def created(p: Path) -> str:
        try:
            return str(json.loads(p.with_suffix(".json").read_text()).get("created", ""))
        except (OSError, ValueError):
            return ""

    return max(candidates, key=lambda p: (created(p), p.stat().st_mtime))


def load_classifier(
    dataset_name: str,
    cache_dir: str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
) -> tuple[LeNetClassifier, dict]:
    """Load the newest cached classifier for ``dataset_name`` (or the file ``path``), in eval mode.

    Returns the model and its metadata (the JSON sidecar where present) with ``weights_hash`` and
    ``path`` filled in. The weights are re-hashed and must match the hash in the file name and the
    sidecar; otherwise, or if the file cannot be read, :class:`ClassifierCacheError` is raised.
    A missing classifier raises :class:`ClassifierNotFoundError` naming the command that trains one.
    """
    dataset_name = classifier_dataset(dataset_name)
    if path is None:
        path = _newest_cached(dataset_name, classifier_cache_dir(cache_dir))
    path = Path(path)
    if not path.is_file():
        raise ClassifierNotFoundError(
            f"classifier file {path} does not exist; train one with "
            f"`ladder train-classifier --dataset {dataset_name}`"
        )
    remedy = f"delete it and retrain with `ladder train-classifier --dataset {dataset_name}`"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise ClassifierCacheError(f"cannot read classifier file {path} ({err}); {remedy}") from err
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ClassifierCacheError(f"{path} does not hold a classifier state dict; {remedy}")
    meta: dict = {}
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
        except ValueError as err:
            raise ClassifierCacheError(f"unreadable metadata {sidecar} ({err}); {remedy}") from err
    digest = weights_hash(state)
    name_hash = re.search(rf"-([0-9a-f]{{{HASH_LENGTH}}})$", path.stem)
    expected = {h for h in (meta.get("weights_hash"), name_hash and name_hash.group(1)) if h}
    if expected - {digest}:
        raise ClassifierCacheError(
            f"weights in {path} hash to {digest}, but {sorted(expected)} was recorded: the file is "
            f"corrupt or was modified; {remedy}"
        )
    try:
        model = LeNetClassifier(
            n_classes=state["fc2.weight"].shape[0],
            in_channels=state["conv1.weight"].shape[1],
            feature_dim=state["fc1.weight"].shape[0],
        )
        model.load_state_dict(state)
    except (KeyError, RuntimeError) as err:
        raise ClassifierCacheError(f"{path} is not a LeNetClassifier state dict ({err})") from err
    model.eval()
    meta.update(weights_hash=digest, path=str(path))
    meta.setdefault("dataset", dataset_name)
    return model, meta
