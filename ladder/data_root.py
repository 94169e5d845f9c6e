"""Where the data sets are (the data root) and the errors when they are not, or are broken."""

from __future__ import annotations

import os
from pathlib import Path

from ladder.checkpoint import cache_dir

ENV_VAR = "LADDER_DATA"


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are not under the data root (and downloading was not allowed or
    failed)."""


class DatasetCorruptError(ValueError):
    """A data set file is there but unreadable: not an idx file, truncated, or at odds with its
    partner file (images against labels)."""


def root_and_source(root: str | os.PathLike | None) -> tuple[Path, str]:
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
    return root_and_source(root)[0]


def not_found_message(what: str, root: Path, source: str, expected: list[str], why: str = "") -> str:
    layout = "\n".join(f"    {root / e}" for e in expected)
    return (
        f"{what} not found under the data root {root} (from {source}){why}. Expected:\n{layout}\n"
        f"Point ${ENV_VAR} (or root=) at a folder in torchvision's layout, or, from Python, call "
        "load_dataset(..., download=True) where downloading is allowed."
    )


def corrupt_error(path: Path, what: str) -> DatasetCorruptError:
    return DatasetCorruptError(
        f"{path} is corrupt: {what}; replace it with the file from a fresh copy of the data set"
    )
