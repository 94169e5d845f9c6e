"""What a resumed run may change, and what is refused.

Resuming (``ladder train --resume RUN --set KEY=VALUE``) may change the keys of
:data:`RESUMABLE_KEYS`: more epochs, the optimiser's settings (after a divergence, a lower rate, a
gradient clip, warm-up epochs) and how the work is done. Each change is recorded, from what to what
and after which epoch, in the checkpoint's ``resumes`` list and in the ``config_changes`` field of
the next epoch's line of ``metrics.jsonl``. Every other key defines the model, its data or the
order of its batches, and changing it is refused: start a new run instead. ``train.lr`` and
``train.lr_prior`` stay the schedules' bases: epoch ``e`` uses ``lr * lr_decay**e``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ladder.config import Config, ConfigError
from ladder.config_yaml import flat_settings

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


def config_changes(saved: Config, new: Config) -> dict[str, list[Any]]:
    """``{key: [old, new]}`` for every setting that differs; :class:`ConfigError` naming each key
    outside :data:`RESUMABLE_KEYS` (a resumed run keeps its model, data and batch order)."""
    old, now = flat_settings(saved.to_dict()), flat_settings(new.to_dict())
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



def check_resume(cfg: Config, path: Path, done: int, finetuned: int, due_finetune: int,
                 changes: dict[str, list[Any]]) -> None:
    """Refuse a resume of the checkpoint at ``path`` (``done`` epochs and ``finetuned`` prior
    fine-tuning epochs of ``due_finetune`` complete) that no epoch would use: fewer epochs than
    are done, changes to a complete run that raise neither count, and more epochs once the prior
    fine-tuning has begun."""
    t = cfg.train
    complete = done >= t.epochs and finetuned >= due_finetune
    if t.epochs < done or (changes and complete and not finetuned):
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
    if t.prior_finetune_epochs < finetuned or (changes and complete):
        raise ConfigError(
            f"train.prior_finetune_epochs = {t.prior_finetune_epochs}, but {path} has "
            f"completed {finetuned} prior fine-tuning epochs, so no epoch would use these "
            f"settings; set train.prior_finetune_epochs above {finetuned} to train more"
        )
