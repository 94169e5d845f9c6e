"""Checkpoints that hold only tensors and plain data, and the one way the package writes files.

Every output file (checkpoints, ``metrics.jsonl``, ``config.yaml``, ``evaluation.json``, images,
classifier weights) is written by :func:`atomic_write`: a fresh temporary file in the same folder
(never a fixed name, so a planted link is never followed), flushed to disk, renamed over the target,
and the folder flushed too; a crash while saving never leaves a half-written file in place of the
last good one. :func:`check_writable` and :func:`ensure_folder` refuse an unusable output path
before any work starts. A checkpoint is read with ``torch.load(weights_only=True)``: opening a
downloaded checkpoint never runs its code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

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


def cache_dir() -> Path:
    """The package's cache folder: ``$LADDER_CACHE``, else ``$XDG_CACHE_HOME/ladder``, else
    ``~/.cache/ladder`` (data sets and evaluation classifiers below it; not created here)."""
    explicit = os.environ.get("LADDER_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "ladder"


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` through :func:`atomic_write`."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write(path: str | Path, data: bytes | str | Callable[[IO[bytes]], Any]) -> Path:
    """Replace ``path`` atomically with ``data`` (bytes, UTF-8 text, or a function that writes to
    a binary file handle).

    The temporary file is created by :func:`tempfile.mkstemp` in ``path``'s folder (a new name,
    opened with ``O_EXCL``: a link planted there is never followed), fsynced, renamed over
    ``path`` (a link at ``path`` itself is replaced, not followed), and the folder is fsynced so
    the rename survives a power cut. It gets the permissions a plain ``open`` would give.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
            os.fsync(folder)
    finally:
        os.close(folder)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class OutputPathError(ValueError):
    """An output path that cannot be written; raised before the work whose result it would hold."""


def check_writable(path: str | Path, what: str = "output file") -> Path:
    """Refuse, before any work, an output file :func:`atomic_write` could not write: a folder,
    or a file in a folder that does not exist or does not take new files."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file name in it")
    if not path.parent.is_dir():
        raise OutputPathError(
            f"{what} {path}: its folder {path.parent} does not exist; create it or choose another "
            "path"
        )
    _probe(path.parent, f"{what} {path}")
    return path


def ensure_folder(folder: str | Path, what: str = "output folder") -> Path:
    """Create ``folder`` (and its parents) if needed and check that it takes new files."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(
            f"cannot create {what} {folder} ({err.strerror or err}); choose another path"
        ) from err
    _probe(folder, f"{what} {folder}")
    return folder


def _probe(folder: Path, what: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".ladder-probe-")
    except OSError as err:
        raise OutputPathError(
            f"{what}: cannot write in {folder} ({err.strerror or err}); choose another path"
        ) from err
    os.close(fd)
    os.unlink(probe)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` for a missing file, a file that is not a loadable weights-only
    checkpoint (corrupt, truncated, or holding pickled code), and a checkpoint of another format.
    """
    return read_checkpoint(path, map_location)[0]


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"
                    ) -> tuple[dict[str, Any], str]:
    """:func:`load_checkpoint` and the SHA-256 of the bytes it was loaded from, from one read of
    the file: a checkpoint replaced meanwhile (a run still training) cannot give the digest of
    other weights than those loaded."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train a run first with `ladder train`")
    raw = path.read_bytes()
    try:
        with warnings.catch_warnings():  # a corrupt file's warnings (odd pickle protocols ...)
            warnings.simplefilter("ignore")
            data = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt, truncated or foreign files
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
    return data, hashlib.sha256(raw).hexdigest()


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, for provenance records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
