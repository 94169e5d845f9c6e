"""What a :class:`ladder.train.Trainer` saves and restores: the checkpoint (tensors and plain
data only), the run folder's text files, resuming with changed settings (:mod:`ladder.resume`),
and where to go on from after a divergence."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import yaml

from ladder.checkpoint import CheckpointError, atomic_write
from ladder.config import apply_overrides
from ladder.image_sets import ImageSet
from ladder.resume import check_resume, config_changes
from ladder.runs import RunDir, file_identity, read_run

RESUME_STATE_KEYS = ("optimizers", "rng", "history")  # beyond checkpoint.REQUIRED_KEYS
PRIOR_FINETUNE = "prior_finetune"  # the "phase" of the prior fine-tuning epochs' records


_Trainer = TypeVar("_Trainer", bound="TrainerState")


class TrainingDivergedError(RuntimeError):
    """A non-finite loss or parameter; the message names the epoch and step."""


class TrainerState:
    """The run-folder side of :class:`ladder.train.Trainer`, which sets the attributes used here
    (``cfg``, ``run_dir``, ``model``, the optimisers, the epoch counters and records)."""

    @property
    def checkpoint_path(self) -> Path:
        return RunDir(self.run_dir).checkpoint

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
        cls: type[_Trainer], run_dir: str | Path, overrides: Sequence[str] = (), **data: ImageSet
    ) -> _Trainer:
        """Continue the run in ``run_dir`` from its checkpoint (``ladder train --resume``).

        ``overrides`` (``key=value``, as ``--set``) may change
        :data:`ladder.resume.RESUMABLE_KEYS`; every other change is refused with
        :class:`ConfigError` naming the key, and so is a change that no epoch would use (the run
        is complete and neither ``train.epochs`` nor
        ``train.prior_finetune_epochs`` is raised), fewer epochs than are done, and more epochs
        once the prior fine-tuning has begun. The changes are recorded with the next epoch
        (:mod:`ladder.resume`).
        """
        path = RunDir(run_dir).checkpoint
        identity = file_identity(path)
        state, saved, _ = read_run(path)
        cfg = copy.deepcopy(saved)
        apply_overrides(cfg, overrides)
        cfg.validate()
        changes = config_changes(saved, cfg)
        trainer = cls(cfg, run_dir, **data)
        trainer.load_state(state)
        check_resume(cfg, path, trainer.epoch, trainer.finetune_epoch, trainer.finetune_epochs_due,
                     changes)
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
        run = RunDir(self.run_dir)
        atomic_write(run.metrics, "".join(json.dumps(record) + "\n" for record in self.records))
        atomic_write(run.config, yaml.safe_dump(self._saved_config, sort_keys=False))


    def _diverged(self, what: str) -> TrainingDivergedError:
        """``what`` happened; where the last good checkpoint is and how to go on from it."""
        lower = np.format_float_positional(self.cfg.train.lr / 10, trim="-")
        if file_identity(self.checkpoint_path) is not None:
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
