"""A run folder and the files it owns.

``ladder train`` writes ``checkpoint.pt`` (everything needed to resume exactly), ``metrics.jsonl``
(one line per epoch) and ``config.yaml``, all atomically at the end of every epoch; the two text
files always describe the epochs the checkpoint holds (a fresh start empties them, a resume rewrites
them from the checkpoint). ``train.lock`` is held (``fcntl.flock``) while a trainer works in the
folder: a second trainer is refused, and the lock of a dead process is released by the kernel.
``ladder evaluate`` adds ``evaluation.json`` and ``evaluation-samples.png``; ``ladder reproduce``
adds the executed notebook, ``log.txt``, ``attempts.jsonl`` and, written last, ``done.json``.

:class:`RunDir` names these files, so no other module spells them; :func:`find_runs` finds the
evaluated run folders under a directory, for ``ladder report --runs DIR``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import yaml

from ladder.checkpoint import CheckpointError, OutputPathError, ensure_folder, read_checkpoint
from ladder.config import Config, ConfigError
from ladder.data import DATASETS
from ladder.device import select_device
from ladder.model import VAE, build_model


class RunInUseError(ValueError):
    """Another trainer holds the run folder's lock; the message names its pid."""


@dataclass(frozen=True)
class RunDir:
    """One run folder (module docstring): where each of its files is, and readers for them."""

    path: Path
    CHECKPOINT: ClassVar[str] = "checkpoint.pt"
    METRICS: ClassVar[str] = "metrics.jsonl"
    CONFIG: ClassVar[str] = "config.yaml"
    LOCK: ClassVar[str] = "train.lock"
    EVALUATION: ClassVar[str] = "evaluation.json"
    SAMPLES: ClassVar[str] = "evaluation-samples.png"
    LEARNING_CURVES: ClassVar[str] = "learning-curves.png"
    DONE: ClassVar[str] = "done.json"
    SLURM_JOB: ClassVar[str] = "slurm-job.json"  # the SLURM job that runs it (--launcher slurm)
    SLURM_LOGS: ClassVar[str] = "slurm"  # that job's submitit files and logs
    #: The small text files that describe a finished run without its checkpoint: what the
    #: batch commits under results/ (``ladder report``).
    SMALL_TEXT: ClassVar[tuple[str, ...]] = (CONFIG, METRICS, EVALUATION, DONE)

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def evaluation(self) -> Path:
        return self.path / self.EVALUATION

    @property
    def samples(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def learning_curves(self) -> Path:
        return self.path / self.LEARNING_CURVES

    @property
    def done(self) -> Path:
        return self.path / self.DONE

    @property
    def slurm_job(self) -> Path:
        return self.path / self.SLURM_JOB

    @property
    def slurm_logs(self) -> Path:
        return self.path / self.SLURM_LOGS

    def lock(self) -> contextlib.AbstractContextManager[Path]:
        """:func:`run_lock` of this folder."""
        return run_lock(self.path)

    def read_records(self) -> list[dict[str, Any]]:
        """The epoch records of ``metrics.jsonl`` (empty before the first epoch)."""
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line]

    def read_config(self) -> Config:
        """The run's config as ``config.yaml`` holds it; :class:`ConfigError` naming the file."""
        try:
            return Config.from_dict(yaml.safe_load(self.config.read_text()))
        except (ConfigError, yaml.YAMLError, TypeError, AttributeError) as err:
            raise ConfigError(f"{self.config} is not a valid run config ({err})") from err

    def read_evaluation(self) -> dict[str, Any] | None:
        """``evaluation.json``, or None where the run has not been evaluated."""
        if not self.evaluation.exists():
            return None
        return json.loads(self.evaluation.read_text())

    def occupied(self) -> FileExistsError:
        """The error for a fresh trainer in a folder that holds another run."""
        return FileExistsError(
            f"{self.path} already holds a run; resume it with `ladder train --resume {self.path}` "
            "or choose another --run-dir"
        )


def find_runs(root: str | os.PathLike) -> list[RunDir]:
    """Every evaluated run folder (one holding ``evaluation.json`` and ``config.yaml``) at or
    below ``root``, in path order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of runs")
    found = {p.parent for p in root.rglob(RunDir.EVALUATION) if (p.parent / RunDir.CONFIG).is_file()}
    return [RunDir(p) for p in sorted(found)]


def first_nonfinite(state: dict[str, Any]) -> str | None:
    """The name of the first floating tensor of a state dict holding NaN or inf, else None."""
    for name, tensor in state.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(
            tensor
        ).all():
            return name
    return None


_HELD_LOCKS: set[Path] = set()  # the run folders whose lock this process holds


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the lock of ``run_dir`` (created if needed) while training in it.

    ``train.lock`` in the folder, opened without following links, locked with ``fcntl.flock``
    (the kernel releases it when its process dies, so a stale lock never blocks) and holding the
    holder's pid. Re-entrant within a process; another process gets :class:`RunInUseError`.
    """
    folder = ensure_folder(run_dir, "run folder")
    key = folder.resolve()
    if key in _HELD_LOCKS:  # train() holds it around Trainer.fit()
        yield folder
        return
    path = folder / RunDir.LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise OutputPathError(
            f"cannot open the lock file {path} ({err.strerror or err}); if it is a link or not a "
            "file, remove it"
        ) from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunInUseError(
            f"run folder {folder} is in use by another trainer (pid {holder}, lock {path}); wait "
            f"for it to finish or stop it, then continue with `ladder train --resume {folder}`"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD_LOCKS.add(key)
    try:
        yield folder
    finally:
        _HELD_LOCKS.discard(key)
        os.close(fd)  # releases the lock


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a file, None where there is none: tells whether it was replaced."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns

def read_run(path: str | Path) -> tuple[dict[str, Any], Config, str]:
    """A run's checkpoint (on the CPU), its config and the SHA-256 of the file it was read from;
    :class:`CheckpointError` where either is unusable."""
    state, digest = read_checkpoint(path, map_location="cpu")
    try:
        return state, Config.from_dict(state["config"]), digest
    except ConfigError as err:
        raise CheckpointError(f"{path} holds an invalid config ({err}); retrain the run") from err


def load_run(run_dir: str | Path, device: str = "auto") -> tuple[Config, VAE]:
    """The config and trained model of a run folder, in eval mode on ``device``. A checkpoint
    with a non-finite weight (a diverged run) is refused."""
    cfg, model, _ = load_run_with_source(run_dir, device)
    return cfg, model


def load_run_with_source(run_dir: str | Path, device: str = "auto"
                         ) -> tuple[Config, VAE, dict[str, Any]]:
    """:func:`load_run` and the checkpoint the model was loaded from: its path, SHA-256 and
    epoch, for provenance records."""
    path = RunDir(run_dir).checkpoint
    state, cfg, digest = read_run(path)
    model = build_model(cfg.model, cfg.data.dataset, DATASETS[cfg.data.dataset], cfg.train.seed)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        raise CheckpointError(
            f"{path} does not fit the model its own config describes ({err}); restore a good copy "
            "of the checkpoint or retrain the run"
        ) from err
    name = first_nonfinite(model.state_dict())
    if name is not None:
        raise CheckpointError(
            f"{path}: weight {name} is not finite (NaN or inf), so the run diverged before this "
            "checkpoint was written; resume from an earlier copy or retrain with a lower train.lr"
        )
    model.to(select_device(device if device != "auto" else cfg.train.device)).eval()
    return cfg, model, {"path": str(path), "sha256": digest, "epoch": int(state["epoch"])}
