"""Block coordinate ascent (Sec 3.3, SM B, Algorithm 1), run folders and resumable checkpoints.

Per minibatch:

1. theta, phi (and the Laplace scale): one Adam step on L''(x) of Eq (8) with alpha, beta, xi fixed;
2. alpha, beta (the prior block; also the VampPrior's pseudo-inputs and a gradient-fitted GMM):
   ``train.prior_steps`` Adam steps (Algorithm 1 and the reference code: one) on the prior's own
   objective, L'(z) of Eq (7), with xi fixed, each at a fresh z ~ q(z|x) of the batch.

At the end of each epoch, xi: coordinate ascent on L(t; xi) of Eq (6) (``Prior.refit``), which for
the GMM prior is its EM refit. ``train.bca = "sequential"`` takes step 2 with a fresh encoding of
the batch under the updated phi, as Algorithm 1 and the reference code do; ``"joint"`` takes both
steps from one backward pass of L'' (its gradient in alpha, beta is that of L'(z)), which is cheaper.

The prior's training budget. Block coordinate ascent maximises each block in turn, and the paper
does not say how far; one Adam step per batch leaves the prior VAE under-trained against the GMM
baseline's EM to convergence (results/stall/README.md). Two settings raise it, departures from the
reference code: ``train.prior_steps`` (above) and ``train.prior_finetune_epochs``, epochs of step 2 alone
after the last epoch, on the frozen latent (the final encoder's q(z|x) of the training images, one
step per batch at a fresh z), each followed by the refit of xi and the test evaluation and logged
with ``"phase": "prior_finetune"`` and its own epoch count; the prior's learning rate stays at
the last epoch's. A prior without parameters (the Normal prior, the EM-fitted GMM) has no step 2
and skips them. A finished run may be resumed with more of them, but not with more epochs once
they have begun.

Each epoch's line also holds ``diag_*``: the cheap diagnostics of :func:`ladder.diagnose.diagnose`
on the first :data:`DIAGNOSTIC_IMAGES` test images (deterministic, so no other number changes), and
a stall or collapse they show is warned about (:class:`TrainingStallWarning`) without stopping.

A run folder holds ``checkpoint.pt`` (everything needed to resume exactly), ``metrics.jsonl`` (one
line per epoch) and ``config.yaml``, all written atomically at the end of every epoch; the two text
files always describe the epochs the checkpoint holds (a fresh start empties them, a resume rewrites
them from the checkpoint). ``train.lock`` is held (``fcntl.flock``) while a trainer works in the
folder: a second trainer is refused, and the lock of a dead process is released by the kernel.

Resuming (``ladder train --resume RUN --set KEY=VALUE``) may change the keys of
:data:`RESUMABLE_KEYS`: more epochs, the optimiser's settings (after a divergence, a lower rate, a
gradient clip, warm-up epochs) and how the work is done. Each change is recorded, from what to what
and after which epoch, in the checkpoint's ``resumes`` list and in the ``config_changes`` field of
the next epoch's line of ``metrics.jsonl``. Every other key defines the model, its data or the
order of its batches, and changing it is refused: start a new run instead. ``train.lr`` and
``train.lr_prior`` stay the schedules' bases: epoch ``e`` uses ``lr * lr_decay**e``.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from tqdm.auto import tqdm

from ladder.checkpoint import (
    CheckpointError,
    OutputPathError,
    atomic_write,
    ensure_folder,
    load_checkpoint,
    save_checkpoint,
)
from ladder.config import Config, ConfigError, apply_overrides
from ladder.data import DATASETS, ImageSet, load_dataset
from ladder.diagnose import diagnose, findings
from ladder.metrics import elbo_statistics
from ladder.model import VAE, build_model
from ladder.priors import Prior, reparameterise

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
LOCK = "train.lock"
TRAIN_TERMS = ("elbo", "reconstruction", "entropy", "cross_entropy", "mae", "prior_objective")
NAN_CHECK_EVERY = 50
DIAGNOSTIC_IMAGES = 256  # test images of the per-epoch diagnostics
RESUME_STATE_KEYS = ("optimizers", "rng", "history")  # beyond checkpoint.REQUIRED_KEYS
PRIOR_FINETUNE = "prior_finetune"  # the "phase" of the prior fine-tuning epochs' records
RESUMABLE_KEYS = (
    "train.epochs", "train.lr", "train.lr_prior", "train.betas", "train.lr_decay",
    "train.lr_prior_growth", "train.grad_clip", "train.warmup_epochs", "train.prior_steps",
    "train.prior_finetune_epochs", "train.bca",
    "train.refit_source", "train.refit_points", "train.device", "train.precision",
    "train.channels_last", "train.eval_batch_size", "train.progress", "data.root",
)
"""The settings a resume may change. Refused: the preset, ``model.*``, the data's
``dataset``, ``n_train`` and ``n_test``, ``train.seed`` (it picks the data subset, the initial
weights and the batch order) and ``train.batch_size`` (it sets the steps per epoch and the batch
statistics of ``model.sigma_mode = batch_mae``)."""


class TrainingStallWarning(UserWarning):
    """The per-epoch diagnostics found a stall or a collapse; training goes on."""


class TrainingDivergedError(RuntimeError):
    """A non-finite loss or parameter; the message names the epoch and step."""


class RunInUseError(ValueError):
    """Another trainer holds the run folder's lock; the message names its pid."""


def derived_seed(seed: int, offset: int, stride: int = 1_000_003) -> int:
    """``seed * stride + offset`` modulo 2**64: a seed for one stream (an epoch's batch order, a
    refit's subsample, an evaluation stage) that torch accepts for every ``train.seed``."""
    return (seed * stride + offset) % 2**64


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
    path = folder / LOCK
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


def config_changes(saved: Config, new: Config) -> dict[str, list[Any]]:
    """``{key: [old, new]}`` for every setting that differs; :class:`ConfigError` naming each key
    outside :data:`RESUMABLE_KEYS` (a resumed run keeps its model, data and batch order)."""
    old, now = _flat(saved.to_dict()), _flat(new.to_dict())
    changes = {key: [old[key], now[key]] for key in old if old[key] != now[key]}
    refused = [f"{key} ({before!r} -> {after!r})" for key, (before, after) in changes.items()
               if key not in RESUMABLE_KEYS]
    if refused:
        raise ConfigError(
            f"cannot change {', '.join(refused)} when resuming: the checkpoint's model, data and "
            "batch order depend on it; start a new run (--run-dir) instead. A resume may change "
            f"{', '.join(RESUMABLE_KEYS)}"
        )
    return changes


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a file, None where there is none: tells whether it was replaced."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple's MPS, then the CPU; otherwise the named device."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here; use "
                             "--device cpu (or auto)")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} was asked for but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s); use cuda:0")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"device {name!r} was asked for but MPS is not available here; use "
                             "--device cpu (or auto)")
        if device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device {name!r} is not supported; use auto, cpu, cuda or mps")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products in hardware: a CUDA GPU with bf16, or a
    CPU with AMX or AVX512-BF16. Elsewhere bf16 is emulated, and on an AVX2 CPU it is ~20x slower
    than fp32 (benchmarks/README.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        capabilities = torch.cpu.get_capabilities()
        return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    return False


def select_precision(name: str, device: torch.device) -> str:
    """``train.precision``: ``auto`` is bf16 where :func:`has_native_bf16`, else fp32; ``bf16``
    on hardware without it is honoured with a warning, since it is much slower there."""
    native = has_native_bf16(device)
    if name == "auto":
        return "bf16" if native else "fp32"
    if name == "bf16" and not native:
        warnings.warn(
            f"train.precision = bf16 on {device.type} without native bf16 (AMX, AVX512-BF16 or a "
            "CUDA GPU with bf16): it is emulated and much slower than fp32; use fp32 or auto",
            stacklevel=2,
        )
    return name


@contextlib.contextmanager
def frozen(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Hold a block of parameters fixed (no gradients) while another block takes its step."""
    params = [p for p in params if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class Trainer:
    """Trains one VAE with one prior by Algorithm 1 and keeps its run folder."""

    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        train_set: ImageSet | None = None,
        test_set: ImageSet | None = None,
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = select_device(cfg.train.device)
        self.precision = select_precision(cfg.train.precision, self.device)
        d, t = cfg.data, cfg.train
        self.train_set = train_set or load_dataset(
            d.dataset, "train", root=d.root, n=d.n_train, device=self.device, seed=t.seed
        )
        self.test_set = test_set or load_dataset(
            d.dataset, "test", root=d.root, n=d.n_test, device=self.device, seed=t.seed
        )
        if len(self.train_set) < t.batch_size:
            raise ValueError(
                f"the training set has {len(self.train_set)} images, fewer than one batch of "
                f"{t.batch_size}; lower train.batch_size"
            )
        self.diagnostic_images = self.test_set.take(min(DIAGNOSTIC_IMAGES, len(self.test_set)))
        self.model = build_model(cfg.model, d.dataset, self.train_set.image_shape, t.seed)
        self.model.prior.init_from_data(self.train_set, t.seed)
        self.model.to(self.device)
        if t.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.vae_params = list(self.model.vae_parameters())
        self.prior_params = list(self.model.prior.parameters())
        self.vae_opt = torch.optim.Adam(self.vae_params, lr=t.lr, betas=t.betas)
        self.prior_opt = (
            torch.optim.Adam(self.prior_params, lr=t.lr_prior, betas=t.betas)
            if self.prior_params
            else None
        )
        self.epoch = 0  # completed epochs
        self.finetune_epoch = 0  # completed prior fine-tuning epochs (train.prior_finetune_epochs)
        self.history: list[dict[str, Any]] = []  # a record per epoch of Algorithm 1
        self.finetune_history: list[dict[str, Any]] = []  # a record per prior fine-tuning epoch
        self.resumes: list[dict[str, Any]] = []  # {"epoch", "changes"} of each resume with changes
        self.pending_changes: dict[str, list[Any]] = {}  # recorded with the next epoch
        self._saved_config = cfg.to_dict()  # the config of the checkpoint on disk
        self._checkpoint_identity: tuple[int, int, int] | None = None  # the checkpoint we wrote

    # ------------------------------------------------------------------------------------------
    # Run folder

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    def state(self) -> dict[str, Any]:
        """Everything needed to resume: tensors and plain data only."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "epoch": self.epoch,
            "prior_finetune_epoch": self.finetune_epoch,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizers": {
                "vae": self.vae_opt.state_dict(),
                "prior": self.prior_opt.state_dict() if self.prior_opt else None,
            },
            "rng": rng,
            "history": self.records,
            "resumes": self.resumes,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (the inverse of it), with clear errors for a mismatch."""
        path = self.checkpoint_path
        missing = [key for key in RESUME_STATE_KEYS if key not in state]
        if missing:
            raise CheckpointError(
                f"{path} lacks {', '.join(missing)}, which resuming needs; it can still be "
                "evaluated and sampled, but to train further start a new run"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.vae_opt.load_state_dict(state["optimizers"]["vae"])
            if self.prior_opt is not None:
                self.prior_opt.load_state_dict(state["optimizers"]["prior"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"{path} does not fit the model its own config describes ({err}); restore a good "
                "copy of the checkpoint or start a new run"
            ) from err
        try:
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            self.epoch = int(state["epoch"])
            self.finetune_epoch = int(state.get("prior_finetune_epoch", 0))
            records = list(state["history"])
            self.history = [r for r in records if r.get("phase") != PRIOR_FINETUNE]
            self.finetune_history = [r for r in records if r.get("phase") == PRIOR_FINETUNE]
            self.resumes = list(state.get("resumes", []))
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"{path} holds a malformed random state, epoch or history ({err}); it cannot be "
                "resumed exactly: start a new run"
            ) from err
        self._saved_config = state["config"]

    @classmethod
    def resume(
        cls, run_dir: str | Path, overrides: Sequence[str] = (), **data: ImageSet
    ) -> Trainer:
        """Continue the run in ``run_dir`` from its checkpoint (``ladder train --resume``).

        ``overrides`` (``key=value``, as ``--set``) may change :data:`RESUMABLE_KEYS`; every other
        change is refused with :class:`ConfigError` naming the key, and so is a change that no
        epoch would use (the run is complete and neither ``train.epochs`` nor
        ``train.prior_finetune_epochs`` is raised), fewer epochs than are done, and more epochs
        once the prior fine-tuning has begun. The changes are recorded with the next epoch
        (module docstring).
        """
        run_dir = Path(run_dir)
        path = run_dir / CHECKPOINT
        identity = _file_identity(path)
        state, saved = read_run(path)
        cfg = copy.deepcopy(saved)
        apply_overrides(cfg, overrides)
        cfg.validate()
        changes = config_changes(saved, cfg)
        trainer = cls(cfg, run_dir, **data)
        trainer.load_state(state)
        t, done, finetuned = cfg.train, trainer.epoch, trainer.finetune_epoch
        if t.epochs < done or (changes and trainer.is_complete and not finetuned):
            raise ConfigError(
                f"train.epochs = {t.epochs}, but {path} has completed {done} "
                f"epochs, so no epoch would use these settings; set train.epochs above "
                f"{done} to train more"
            )
        if finetuned and t.epochs > done:
            raise ConfigError(
                f"train.epochs = {t.epochs}, but {path} has begun its prior fine-tuning after "
                f"epoch {done} ({finetuned} of train.prior_finetune_epochs done); keep "
                f"train.epochs = {done}, or start a new run for more epochs"
            )
        if t.prior_finetune_epochs < finetuned or (changes and trainer.is_complete):
            raise ConfigError(
                f"train.prior_finetune_epochs = {t.prior_finetune_epochs}, but {path} has "
                f"completed {finetuned} prior fine-tuning epochs, so no epoch would use these "
                f"settings; set train.prior_finetune_epochs above {finetuned} to train more"
            )
        trainer.pending_changes = changes
        trainer._checkpoint_identity = identity
        return trainer

    @property
    def is_complete(self) -> bool:
        """Whether the run has done its ``train.epochs`` and ``train.prior_finetune_epochs``."""
        t = self.cfg.train
        return self.epoch >= t.epochs and self.finetune_epoch >= self.finetune_epochs_due

    @property
    def finetune_epochs_due(self) -> int:
        """``train.prior_finetune_epochs``, or 0 for a prior without parameters (no step 2)."""
        return self.cfg.train.prior_finetune_epochs if self.prior_opt is not None else 0

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every epoch's record in order, as in ``metrics.jsonl``: :attr:`history` (Algorithm 1)
        then :attr:`finetune_history` (``"phase": "prior_finetune"``)."""
        return self.history + self.finetune_history

    def _write_run_files(self) -> None:
        """``metrics.jsonl`` and ``config.yaml`` as the checkpoint on disk has them."""
        atomic_write(self.run_dir / METRICS,
                     "".join(json.dumps(record) + "\n" for record in self.records))
        atomic_write(self.run_dir / CONFIG, yaml.safe_dump(self._saved_config, sort_keys=False))

    # ------------------------------------------------------------------------------------------
    # Training

    def fit(self) -> list[dict[str, Any]]:
        """Train until ``train.epochs`` epochs, then ``train.prior_finetune_epochs`` prior
        fine-tuning epochs, are complete; returns :attr:`records`.

        Holds the run folder's lock (:func:`run_lock`) and refuses a checkpoint this trainer did
        not write or load (a fresh trainer in an occupied folder, or another trainer's work).
        """
        with run_lock(self.run_dir):
            if _file_identity(self.checkpoint_path) != self._checkpoint_identity:
                if self._checkpoint_identity is None:
                    raise _occupied(self.run_dir)
                raise CheckpointError(
                    f"{self.checkpoint_path} changed after this trainer loaded it (another "
                    f"trainer?); resume again with `ladder train --resume {self.run_dir}`"
                )
            self._write_run_files()
            while not self.is_complete:
                if self.epoch < self.cfg.train.epochs:
                    record = self.run_epoch()
                else:
                    record = self.run_prior_finetune_epoch()
                if self.pending_changes:
                    record["config_changes"] = self.pending_changes
                    resume = {"epoch": record["epoch"] - 1, "changes": self.pending_changes}
                    if "phase" in record:
                        resume["phase"] = record["phase"]
                    self.resumes.append(resume)
                    self.pending_changes = {}
                finetuning = record.get("phase") == PRIOR_FINETUNE
                (self.finetune_history if finetuning else self.history).append(record)
                save_checkpoint(self.state(), self.checkpoint_path)
                self._checkpoint_identity = _file_identity(self.checkpoint_path)
                self._saved_config = self.cfg.to_dict()
                self._write_run_files()
        return self.records

    def run_epoch(self) -> dict[str, Any]:
        """One epoch of Algorithm 1: the two gradient blocks per batch, then the refit of xi."""
        t = self.cfg.train
        epoch = self.epoch
        for group in self.vae_opt.param_groups:  # from the config: a resume may change them
            group.update(lr=t.lr * t.lr_decay**epoch, betas=t.betas)
        if self.prior_opt is not None:
            for group in self.prior_opt.param_groups:
                group.update(lr=t.lr_prior * t.lr_prior_growth**epoch, betas=t.betas)
        warmup = epoch < t.warmup_epochs

        started = time.perf_counter()
        train = self._train_batches(epoch, warmup)
        train_seconds = time.perf_counter() - started

        refit, test, seconds = self._refit_and_evaluate(train.pop("z_epoch"), epoch,
                                                        f"epoch {epoch + 1}")
        self._check_parameters(f"epoch {epoch + 1}")
        self.epoch = epoch + 1
        started = time.perf_counter()
        diagnostics = self._diagnose()
        diagnose_seconds = time.perf_counter() - started
        record: dict[str, Any] = {"epoch": self.epoch, "warmup": warmup}
        record.update({f"train_{k}": v for k, v in train.items()})
        record.update(self._scales_and_evaluation(test, refit))
        record["lr"] = self.vae_opt.param_groups[0]["lr"]
        record.update(seconds_train=train_seconds, **seconds, seconds_diagnose=diagnose_seconds)
        record.update(diagnostics)
        return record

    def run_prior_finetune_epoch(self) -> dict[str, Any]:
        """One epoch of the prior fine-tuning phase (module docstring): the prior block alone on
        the frozen latent, one step per batch of the training images at a fresh z ~ q(z|x), then
        the refit of xi and the test evaluation. Its record has ``"phase": "prior_finetune"``."""
        t = self.cfg.train
        index = t.epochs + self.finetune_epoch  # seeds the batch order and the refit's subsample
        label = f"prior fine-tuning epoch {self.finetune_epoch + 1}"
        if self.prior_opt is not None:
            for group in self.prior_opt.param_groups:  # the last epoch's rate
                group.update(lr=t.lr_prior * t.lr_prior_growth ** (t.epochs - 1), betas=t.betas)
        started = time.perf_counter()
        self.model.train()
        mu, std = encode_images(self.model, self.train_set, t.eval_batch_size)
        generator = torch.Generator().manual_seed(derived_seed(t.seed, index))
        with frozen(self.vae_params), self._autocast():
            objective, z_pass = prior_block_pass(self.model.prior, self.prior_opt, mu, std,
                                                 t.batch_size, generator, t.grad_clip)
        if not math.isfinite(objective):
            raise self._diverged(f"non-finite prior objective in {label}")
        train_seconds = time.perf_counter() - started

        refit, test, seconds = self._refit_and_evaluate(z_pass, index, label)
        self._check_parameters(label)
        self.finetune_epoch += 1
        record: dict[str, Any] = {"epoch": self.finetune_epoch, "phase": PRIOR_FINETUNE,
                                  "train_prior_objective": objective}
        record.update(self._scales_and_evaluation(test, refit))
        record["lr_prior"] = self.prior_opt.param_groups[0]["lr"] if self.prior_opt else None
        record.update(seconds_train=train_seconds, **seconds)
        return record

    def _refit_and_evaluate(
        self, z_epoch: Tensor, epoch: int, label: str
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
        """The end of an epoch: the refit of xi on the epoch's encodings, then the test ELBO;
        a failure of either (e.g. a GMM refit of exploded encodings) is a divergence."""
        try:
            started = time.perf_counter()
            refit = self.model.prior.refit(self._refit_encodings(z_epoch, epoch))
            refit_seconds = time.perf_counter() - started

            started = time.perf_counter()
            test = elbo_statistics(self.model, self.test_set, self.cfg.train.eval_batch_size)
            eval_seconds = time.perf_counter() - started
        except (ValueError, ArithmeticError, torch.linalg.LinAlgError,
                np.linalg.LinAlgError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise self._diverged(
                f"the prior's refit or the test evaluation failed at the end of {label} ({first})"
            ) from err
        return refit, test, {"seconds_refit": refit_seconds, "seconds_eval": eval_seconds}

    def _scales_and_evaluation(self, test: dict[str, Any], refit: dict[str, Any]
                               ) -> dict[str, Any]:
        """An epoch record's test and refit fields, the Laplace sigma and, for a prior VAE,
        ``prior_scale``: the std s of p(z|t) at each level, outermost first."""
        fields = {f"test_{k}": v for k, v in test.items()}
        fields.update({f"refit_{k}": v for k, v in refit.items()})
        fields["sigma"] = float(self.model.likelihood.scale().detach())
        scales = self.model.prior.decoder_scales()
        if scales:
            fields["prior_scale"] = scales
        return fields

    def _diagnose(self) -> dict[str, Any]:
        """The scalar diagnostics of the epoch just finished, as ``diag_*`` fields; warns of dead
        outputs, and from epoch 2 on of a stall at the all-black image or a collapse."""
        result = diagnose(self.model, self.diagnostic_images, self.cfg.train.eval_batch_size)
        for finding in findings(result, self.cfg.model.output_activation, self.epoch > 1):
            warnings.warn(f"epoch {self.epoch} of {self.run_dir}: {finding}. Training goes on.",
                          TrainingStallWarning, stacklevel=3)
        return {f"diag_{k}": v for k, v in result.items() if not isinstance(v, list)}

    def _train_batches(self, epoch: int, warmup: bool) -> dict[str, Any]:
        t = self.cfg.train
        n = len(self.train_set)
        steps = n // t.batch_size
        generator = torch.Generator().manual_seed(derived_seed(t.seed, epoch))
        z_epoch = torch.full((n, self.cfg.model.d_z), math.nan, device=self.device)
        sums = torch.zeros(len(TRAIN_TERMS), dtype=torch.float64, device=self.device)
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        batches = self.train_set.iter_batches(t.batch_size, shuffle=True, generator=generator)
        bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{t.epochs}",
                   disable=not t.progress, leave=False)
        self.model.train()
        for step, (x, idx) in enumerate(bar):
            if t.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            terms, prior_objective = self._step(x, warmup)
            z_epoch[idx] = terms["z"]
            values = torch.stack([terms[k].detach().mean().double() for k in TRAIN_TERMS[:-1]]
                                 + [prior_objective.double()])
            sums += values
            bad = ~torch.isfinite(values).all()
            first_bad = torch.where(bad & (first_bad < 0), step, first_bad)
            if (step + 1) % NAN_CHECK_EVERY == 0 or step + 1 == steps:
                self._raise_if_bad(int(first_bad), epoch)
                bar.set_postfix(elbo=f"{sums[0].item() / (step + 1):.1f}")
        means = (sums / steps).tolist()
        result: dict[str, Any] = dict(zip(TRAIN_TERMS, means, strict=True))
        result["z_epoch"] = z_epoch
        return result

    def _step(self, x: Tensor, warmup: bool) -> tuple[dict[str, Tensor], Tensor]:
        """The two gradient blocks of Algorithm 1 on one batch."""
        t = self.cfg.train
        joint = t.bca == "joint" and self.prior_opt is not None and not warmup
        with contextlib.nullcontext() if joint else frozen(self.prior_params):
            with self._autocast():
                terms = self.model.elbo_terms(x, normal_prior=warmup)
            loss = -terms["elbo"].mean()
            self.vae_opt.zero_grad(set_to_none=True)
            if joint:
                self.prior_opt.zero_grad(set_to_none=True)
            loss.backward()
        self._clip(self.vae_params)
        self.vae_opt.step()
        terms["z"] = terms["z"].detach()
        if self.prior_opt is None:
            return terms, torch.zeros((), device=x.device)
        if joint:
            self._clip(self.prior_params)
            self.prior_opt.step()
            return terms, terms["cross_entropy"].detach().mean()
        # alpha, beta steps on L'(z) of Eq (7), z from the updated encoder, theta and phi fixed.
        with frozen(self.vae_params), self._autocast():
            with torch.no_grad():
                mu, std = self.model.encoder(x)
            objectives = [prior_block_step(self.model.prior, self.prior_opt, mu, std,
                                           t.grad_clip)[0] for _ in range(t.prior_steps)]
        return terms, objectives[0] if len(objectives) == 1 else torch.stack(objectives).mean()

    def _autocast(self) -> torch.autocast:
        """bf16 precision (``train.precision`` bf16, or auto on bf16 hardware): the forward passes
        of a training step under bf16 autocast (convolutions and matrix products in bf16, the
        networks' outputs and every density in float32; gradients and Adam in float32).
        Evaluation always runs in float32."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")

    def _clip(self, params: list[nn.Parameter]) -> None:
        if self.cfg.train.grad_clip is not None:
            torch.nn.utils.clip_grad_value_(params, self.cfg.train.grad_clip)

    def _refit_encodings(self, z_epoch: Tensor, epoch: int) -> Tensor:
        """Encodings of the training set for the end-of-epoch refit of xi (or of the GMM)."""
        t = self.cfg.train
        generator = torch.Generator().manual_seed(derived_seed(t.seed, epoch + 500_009))
        if t.refit_source == "fresh":
            n = min(t.refit_points, len(self.train_set))
            pick = torch.randperm(len(self.train_set), generator=generator)[:n]
            images = self.train_set.gather(pick)
            with torch.no_grad():
                chunks = [reparameterise(*self.model.encoder(images[i:i + t.eval_batch_size]))
                          for i in range(0, n, t.eval_batch_size)]
            return torch.cat(chunks)
        z = z_epoch[~torch.isnan(z_epoch[:, 0])]
        if t.refit_points is not None and t.refit_points < len(z):
            z = z[torch.randperm(len(z), generator=generator)[: t.refit_points].to(z.device)]
        return z

    def _raise_if_bad(self, step: int, epoch: int) -> None:
        if step >= 0:
            raise self._diverged(f"non-finite loss at epoch {epoch + 1}, step {step + 1}")

    def _check_parameters(self, label: str) -> None:
        name = first_nonfinite(self.model.state_dict())
        if name is not None:
            raise self._diverged(f"parameter {name} is not finite after {label}")

    def _diverged(self, what: str) -> TrainingDivergedError:
        """``what`` happened; where the last good checkpoint is and how to go on from it."""
        lower = np.format_float_positional(self.cfg.train.lr / 10, trim="-")
        if _file_identity(self.checkpoint_path) is not None:
            epochs = self.cfg.train.epochs  # the checkpoint's own, or one a resume raised
            more = (f" --set train.epochs={epochs}"
                    if self._saved_config["train"]["epochs"] != epochs else "")
            return TrainingDivergedError(
                f"{what}; training stopped, and the last good checkpoint (epoch {self.epoch}) is "
                f"{self.checkpoint_path}. Resume it with a lower rate: `ladder train --resume "
                f"{self.run_dir}{more} --set train.lr={lower}` (or a gradient clip, --set "
                "train.grad_clip=1.0)"
            )
        return TrainingDivergedError(
            f"{what}; training stopped before any checkpoint was written. Train again with a lower "
            f"rate (--set train.lr={lower}), a gradient clip (--set train.grad_clip=1.0) or "
            "warm-up epochs (--set train.warmup_epochs=1)"
        )


def train(cfg: Config, run_dir: str | Path, **data: ImageSet) -> Trainer:
    """Train a fresh run in ``run_dir``; refuses a folder that already holds a checkpoint or that
    another trainer holds, before loading any data."""
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        if (run_dir / CHECKPOINT).exists():
            raise _occupied(run_dir)
        trainer = Trainer(cfg, run_dir, **data)
        trainer.fit()
    return trainer


def train_run(cfg: Config, run_dir: str | Path) -> Trainer:
    """Train ``cfg`` in ``run_dir``, or resume it there from its checkpoint (an interrupted run of
    ``ladder reproduce``); returns the :class:`Trainer` after its last epoch. A checkpoint made
    with another config is refused."""
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT).exists():
        # read through Config, so a checkpoint from before a key existed holds its default
        _, saved = read_run(run_dir / CHECKPOINT)
        old, now = _flat(saved.to_dict()), _flat(cfg.to_dict())
        if old != now:
            diff = sorted(key for key, value in now.items() if old.get(key) != value)
            raise ValueError(f"{run_dir} holds a run with another config (differs in "
                             f"{', '.join(diff) or 'preset'}); delete the folder to start over")
        trainer = Trainer.resume(run_dir)
        print(f"resuming {run_dir.name} after epoch {trainer.epoch} of {cfg.train.epochs}")
    else:
        trainer = Trainer(cfg, run_dir)
    trainer.fit()
    return trainer


def _occupied(run_dir: Path) -> FileExistsError:
    return FileExistsError(
        f"{run_dir} already holds a run; resume it with `ladder train --resume {run_dir}` "
        "or choose another --run-dir"
    )


def read_run(path: str | Path) -> tuple[dict[str, Any], Config]:
    """A run's checkpoint (on the CPU) and its config; :class:`CheckpointError` where either is
    unusable."""
    state = load_checkpoint(path, map_location="cpu")
    try:
        return state, Config.from_dict(state["config"])
    except ConfigError as err:
        raise CheckpointError(f"{path} holds an invalid config ({err}); retrain the run") from err


def load_run(run_dir: str | Path, device: str = "auto") -> tuple[Config, VAE]:
    """The config and trained model of a run folder, in eval mode on ``device``. A checkpoint
    with a non-finite weight (a diverged run) is refused."""
    path = Path(run_dir) / CHECKPOINT
    state, cfg = read_run(path)
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
    return cfg, model


def fit_prior(
    model: VAE,
    images: ImageSet,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 5e-4,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Fit ``model.prior`` alone to the encodings of a frozen autoencoder (the protocol of Fig 2).

    The prior block of Algorithm 1 (Adam on the prior's cross-entropy, Eq (3), which is L'(z) of
    Eq (7) for LaDDer) and its end-of-epoch refit, with theta and phi fixed. The images are encoded
    once; a fresh z ~ q(z|x) is drawn for every step. Returns the mean objective of each epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    mu, std = encode_images(model, images)
    params = list(model.prior.parameters())
    optimiser = torch.optim.Adam(params, lr=lr) if params else None
    history = []
    with frozen(model.vae_parameters()):
        for _ in tqdm(range(epochs), desc="fit prior", disable=not progress):
            objective, _ = prior_block_pass(model.prior, optimiser, mu, std, batch_size, generator)
            model.prior.refit(reparameterise(mu, std))
            history.append(objective)
    return history


@torch.no_grad()
def encode_images(model: VAE, images: ImageSet, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """q(z|x) of every image of ``images``, in order, as (mean, std) [N, d_z]."""
    chunks = [model.encoder(x) for x, _ in images.iter_batches(batch_size, shuffle=False,
                                                               drop_last=False)]
    return torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])


def prior_block_step(
    prior: Prior,
    optimiser: torch.optim.Optimizer | None,
    mu: Tensor,
    std: Tensor,
    grad_clip: float | None = None,
) -> tuple[Tensor, Tensor]:
    """One step of Algorithm 1's prior block: Adam ascent on the prior's cross-entropy (L'(z) of
    Eq (7) for LaDDer) at a fresh z ~ N(mu, std^2), with ``grad_clip`` on its gradient; the caller
    holds theta and phi fixed. Returns the objective, detached, and z. Without an optimiser (a
    prior without parameters) it only evaluates."""
    z = reparameterise(mu, std)
    objective = prior.cross_entropy(mu, std, z).mean()
    if optimiser is not None:
        optimiser.zero_grad(set_to_none=True)
        (-objective).backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_value_(prior.parameters(), grad_clip)
        optimiser.step()
    return objective.detach(), z


def prior_block_pass(
    prior: Prior,
    optimiser: torch.optim.Optimizer | None,
    mu: Tensor,
    std: Tensor,
    batch_size: int,
    generator: torch.Generator,
    grad_clip: float | None = None,
) -> tuple[float, Tensor]:
    """One pass of the prior block over frozen encodings N(mu, std^2): the rows in the order of
    ``generator``, one :func:`prior_block_step` per batch (the last may be smaller). Returns the
    mean objective and the z drawn for each row (for the refit of xi)."""
    order = torch.randperm(len(mu), generator=generator).to(mu.device)
    z_pass = torch.empty_like(mu)
    total = torch.zeros((), dtype=torch.float64, device=mu.device)
    batches = order.split(batch_size)
    for idx in batches:
        objective, z = prior_block_step(prior, optimiser, mu[idx], std[idx], grad_clip)
        z_pass[idx] = z
        total += objective.double()
    return float(total) / len(batches), z_pass
