"""Block coordinate ascent (Sec 3.3, SM B, Algorithm 1): `train(cfg, run_dir)` and the Trainer.

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

Training writes the run folder of :mod:`ladder.runs` at the end of every epoch. A run may be
resumed with changed settings (``ladder train --resume RUN --set KEY=VALUE``), within the limits
of :mod:`ladder.resume`.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ladder import distributed
from ladder.checkpoint import CheckpointError, save_checkpoint
from ladder.config import Config
from ladder.config_yaml import flat_settings
from ladder.data import load_dataset
from ladder.device import select_device, select_precision
from ladder.diagnose import diagnose, findings
from ladder.image_sets import ImageSet
from ladder.model import DataVAEBlock, build_model, elbo_statistics
from ladder.prior_block import (
    PriorObjective,
    encode_images,
    frozen,
    prior_block_pass,
    prior_block_step,
)
from ladder.priors import reparameterise
from ladder.runs import RunDir, file_identity, first_nonfinite, read_run, run_lock
from ladder.trainer_state import PRIOR_FINETUNE, TrainerState

TRAIN_TERMS = ("elbo", "reconstruction", "entropy", "cross_entropy", "mae", "prior_objective")
NAN_CHECK_EVERY = 50
DIAGNOSTIC_IMAGES = 256  # test images of the per-epoch diagnostics


class TrainingStallWarning(UserWarning):
    """The per-epoch diagnostics found a stall or a collapse; training goes on."""


def derived_seed(seed: int, offset: int, stride: int = 1_000_003) -> int:
    """``seed * stride + offset`` modulo 2**64: a seed for one stream (an epoch's batch order, a
    refit's subsample, an evaluation stage) that torch accepts for every ``train.seed``."""
    return (seed * stride + offset) % 2**64


class Trainer(TrainerState):
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
        # the process's share of each batch under torchrun (ladder.distributed); the whole alone
        self.shard, self.device = distributed.start(select_device(cfg.train.device))
        distributed.check_settings(cfg.train.batch_size, cfg.train.bca, cfg.model.sigma_mode,
                                   self.shard)
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
        self.vae_block = distributed.data_parallel(DataVAEBlock(self.model), self.shard)
        self.prior_block = distributed.data_parallel(PriorObjective(self.model.prior), self.shard)
        self.epoch = 0  # completed epochs
        self.finetune_epoch = 0  # completed prior fine-tuning epochs (train.prior_finetune_epochs)
        self.history: list[dict[str, Any]] = []  # a record per epoch of Algorithm 1
        self.finetune_history: list[dict[str, Any]] = []  # a record per prior fine-tuning epoch
        self.resumes: list[dict[str, Any]] = []  # {"epoch", "changes"} of each resume with changes
        self.pending_changes: dict[str, list[Any]] = {}  # recorded with the next epoch
        self._saved_config = cfg.to_dict()  # the config of the checkpoint on disk
        self._checkpoint_identity: tuple[int, int, int] | None = None  # the checkpoint we wrote

    def fit(self) -> list[dict[str, Any]]:
        """Train until ``train.epochs`` epochs, then ``train.prior_finetune_epochs`` prior
        fine-tuning epochs, are complete; returns :attr:`records`.

        Holds the run folder's lock (:func:`run_lock`) and refuses a checkpoint this trainer did
        not write or load (a fresh trainer in an occupied folder, or another trainer's work).
        """
        main = self.shard.is_main
        with run_lock(self.run_dir) if main else contextlib.nullcontext():
            if main and file_identity(self.checkpoint_path) != self._checkpoint_identity:
                if self._checkpoint_identity is None:
                    raise RunDir(self.run_dir).occupied()
                raise CheckpointError(
                    f"{self.checkpoint_path} changed after this trainer loaded it (another "
                    f"trainer?); resume again with `ladder train --resume {self.run_dir}`"
                )
            if main:
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
                if main:
                    save_checkpoint(self.state(), self.checkpoint_path)
                    self._checkpoint_identity = file_identity(self.checkpoint_path)
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
            objective, z_pass = prior_block_pass(self.prior_block, self.prior_opt, mu, std,
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
            z_epoch = distributed.gather_rows(z_epoch, self.shard)  # every process's codes
            refit = self.model.prior.refit(self._refit_encodings(z_epoch, epoch))
            refit_seconds = time.perf_counter() - started

            started = time.perf_counter()
            test = (elbo_statistics(self.model, self.test_set, self.cfg.train.eval_batch_size)
                    if self.shard.is_main else {})
            eval_seconds = time.perf_counter() - started
            distributed.synchronise(self.model, self.shard)  # rank 0's prior and random state
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
        outputs, and from epoch 2 on of a stall at the all-black image or a collapse. Rank 0's
        only, under torchrun."""
        if not self.shard.is_main:
            return {}
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
                   disable=not t.progress or not self.shard.is_main, leave=False)
        self.model.train()
        rows = self.shard.rows(t.batch_size)  # this process's rows of each batch
        for step, (x, idx) in enumerate(bar):
            if self.shard.world_size > 1:
                x, idx = x[rows], idx[rows]
            if t.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with distributed.sharded(self.shard):
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
        means = (distributed.average(sums, self.shard) / steps).tolist()
        result: dict[str, Any] = dict(zip(TRAIN_TERMS, means, strict=True))
        result["z_epoch"] = z_epoch
        return result

    def _step(self, x: Tensor, warmup: bool) -> tuple[dict[str, Tensor], Tensor]:
        """The two gradient blocks of Algorithm 1 on one batch."""
        t = self.cfg.train
        joint = t.bca == "joint" and self.prior_opt is not None and not warmup
        with contextlib.nullcontext() if joint else frozen(self.prior_params):
            with self._autocast():
                terms = self.vae_block(x, warmup)
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
            objectives = [prior_block_step(self.prior_block, self.prior_opt, mu, std,
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


def train(cfg: Config, run_dir: str | Path, **data: ImageSet) -> Trainer:
    """Train ``cfg`` in ``run_dir``: the one way into a run folder (``ladder train``, the
    chapters, the batch's notebooks). An empty folder gets a fresh run; a folder holding a run of
    the same config resumes it from its checkpoint (an interrupted run finishes, a finished one
    has nothing to do). A run of another config is refused before any data are loaded; to change
    the training settings of a run, resume it with :meth:`Trainer.resume`."""
    run = RunDir(run_dir)
    with run.lock() if distributed.is_main_process() else contextlib.nullcontext():
        if not run.checkpoint.exists():
            trainer = Trainer(cfg, run.path, **data)
        else:
            # read through Config, so a checkpoint from before a key existed holds its default
            _, saved, _ = read_run(run.checkpoint)
            old, now = flat_settings(saved.to_dict()), flat_settings(cfg.to_dict())
            differ = sorted(key for key, value in now.items() if old.get(key) != value)
            if differ or old.keys() != now.keys():
                raise FileExistsError(
                    f"{run.path} already holds a run of another config (it differs in "
                    f"{', '.join(differ) or 'its keys'}); resume it with `ladder train --resume "
                    f"{run.path}`, or choose another --run-dir")
            trainer = Trainer.resume(run.path, **data)
            if not trainer.is_complete and distributed.is_main_process():
                print(f"resuming {run.path.name} after epoch {trainer.epoch} of "
                      f"{cfg.train.epochs}")
        trainer.fit()
    return trainer
