"""Checkpoints that hold only tensors and plain data.

A checkpoint is written atomically (a temporary file in the same folder, then a rename), so a crash
while saving never leaves a half-written file in place of the last good one. It is read with
``torch.load(weights_only=True)``: opening a downloaded checkpoint never runs its code.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "ladder-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "ladder_version", "epoch", "config", "model")


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or incompatible; the message says what to do."""


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` (plus the format header) to ``path`` atomically."""
    from ladder import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, "ladder_version": __version__}
    full.update(payload)
    return atomic_save(full, path)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, flushed to disk, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` for a missing file, a file that is not a loadable weights-only
    checkpoint (corrupt, truncated, or holding pickled code), and a checkpoint of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train a run first with `ladder train`")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(
            f"{path} is corrupt or is not a weights-only LaDDer checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}). It was not loaded. Delete "
            "it and resume from an earlier copy, or retrain."
        ) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a LaDDer checkpoint (no '{FORMAT}' header)")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {data.get('format_version')}, this ladder reads "
            f"format {FORMAT_VERSION}; use the ladder version that wrote it "
            f"({data.get('ladder_version')})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}; it is incomplete and cannot be used")
    return data


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, for provenance records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
