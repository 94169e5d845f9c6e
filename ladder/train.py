"""Block coordinate ascent (Sec 3.3, SM B, Algorithm 1), run folders and resumable checkpoints.

Per minibatch:

1. theta, phi (and the Laplace scale): one Adam step on L''(x) of Eq (8) with alpha, beta, xi fixed;
2. alpha, beta (the prior block; also the VampPrior's pseudo-inputs and a gradient-fitted GMM):
   one Adam step on the prior's own objective, L'(z) of Eq (7), with xi fixed.

At the end of each epoch, xi: coordinate ascent on L(t; xi) of Eq (6) (``Prior.refit``), which for
the GMM prior is its EM refit. ``train.bca = "sequential"`` takes step 2 with a fresh encoding of
the batch under the updated phi, as Algorithm 1 and the reference code do; ``"joint"`` takes both
steps from one backward pass of L'' (its gradient in alpha, beta is that of L'(z)), which is cheaper.

A run folder holds ``config.yaml``, ``metrics.jsonl`` (one line per epoch) and ``checkpoint.pt``
(written atomically at the end of every epoch: everything needed to resume exactly).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ladder.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ladder.config import Config, ModelConfig, save_yaml
from ladder.data import DATASETS, ImageSet, load_dataset
from ladder.metrics import elbo_statistics
from ladder.model import VAE, build_model
from ladder.priors import Prior, VampPrior, reparameterise

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
TRAIN_TERMS = ("elbo", "reconstruction", "entropy", "cross_entropy", "mae", "prior_objective")
NAN_CHECK_EVERY = 50


class TrainingDivergedError(RuntimeError):
    """A non-finite loss or parameter; the message names the epoch and step."""


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple's MPS, then the CPU; otherwise the named device."""
    if name != "auto":
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available; use cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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


def init_prior_from_data(prior: Prior, cfg: ModelConfig, images: ImageSet, seed: int) -> None:
    """``model.vamp_init = data``: start the VampPrior's pseudo-inputs at ``n_components``
    images drawn from ``images`` with ``seed``; any other prior or setting is left as built."""
    if isinstance(prior, VampPrior) and cfg.vamp_init == "data":
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        prior.init_from_images(images.gather(pick[: cfg.n_components]), seed)


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
        self.model = build_model(cfg.model, d.dataset, self.train_set.image_shape, t.seed)
        init_prior_from_data(self.model.prior, cfg.model, self.train_set, t.seed)
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
        self.history: list[dict[str, Any]] = []

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
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizers": {
                "vae": self.vae_opt.state_dict(),
                "prior": self.prior_opt.state_dict() if self.prior_opt else None,
            },
            "rng": rng,
            "history": self.history,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (the inverse of it), with clear errors for a mismatch."""
        try:
            self.model.load_state_dict(state["model"])
            self.vae_opt.load_state_dict(state["optimizers"]["vae"])
            if self.prior_opt is not None:
                self.prior_opt.load_state_dict(state["optimizers"]["prior"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"the checkpoint does not fit the model its own config describes: {err}"
            ) from err
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])

    @classmethod
    def resume(cls, run_dir: str | Path, **data: ImageSet) -> Trainer:
        """Continue the run in ``run_dir`` from its checkpoint (``ladder train --resume``)."""
        run_dir = Path(run_dir)
        state = load_checkpoint(run_dir / CHECKPOINT)
        cfg = Config.from_dict(state["config"])
        trainer = cls(cfg, run_dir, **data)
        trainer.load_state(state)
        trainer._rewrite_metrics()
        return trainer

    def _rewrite_metrics(self) -> None:
        lines = "".join(json.dumps(record) + "\n" for record in self.history)
        (self.run_dir / METRICS).write_text(lines)

    # ------------------------------------------------------------------------------------------
    # Training

    def fit(self) -> list[dict[str, Any]]:
        """Train until ``train.epochs`` epochs are complete; returns the per-epoch records."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(self.cfg, self.run_dir / CONFIG)
        while self.epoch < self.cfg.train.epochs:
            record = self.run_epoch()
            self.history.append(record)
            save_checkpoint(self.state(), self.checkpoint_path)
            with open(self.run_dir / METRICS, "a") as handle:
                handle.write(json.dumps(record) + "\n")
        return self.history

    def run_epoch(self) -> dict[str, Any]:
        """One epoch of Algorithm 1: the two gradient blocks per batch, then the refit of xi."""
        t = self.cfg.train
        epoch = self.epoch
        for group in self.vae_opt.param_groups:
            group["lr"] = t.lr * t.lr_decay**epoch
        if self.prior_opt is not None:
            for group in self.prior_opt.param_groups:
                group["lr"] = t.lr_prior * t.lr_prior_growth**epoch
        warmup = epoch < t.warmup_epochs

        started = time.perf_counter()
        train = self._train_batches(epoch, warmup)
        train_seconds = time.perf_counter() - started

        started = time.perf_counter()
        refit = self.model.prior.refit(self._refit_encodings(train.pop("z_epoch"), epoch))
        refit_seconds = time.perf_counter() - started

        started = time.perf_counter()
        test = elbo_statistics(self.model, self.test_set, t.eval_batch_size)
        eval_seconds = time.perf_counter() - started

        self._check_parameters(epoch)
        self.epoch = epoch + 1
        record: dict[str, Any] = {"epoch": self.epoch, "warmup": warmup}
        record.update({f"train_{k}": v for k, v in train.items()})
        record.update({f"test_{k}": v for k, v in test.items()})
        record.update({f"refit_{k}": v for k, v in refit.items()})
        record["sigma"] = float(self.model.likelihood.scale().detach())
        record["lr"] = self.vae_opt.param_groups[0]["lr"]
        record.update(
            seconds_train=train_seconds, seconds_refit=refit_seconds, seconds_eval=eval_seconds
        )
        return record

    def _train_batches(self, epoch: int, warmup: bool) -> dict[str, Any]:
        t = self.cfg.train
        n = len(self.train_set)
        steps = n // t.batch_size
        generator = torch.Generator().manual_seed(t.seed * 1_000_003 + epoch)
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
        # alpha, beta step on L'(z) of Eq (7), z from the updated encoder, theta and phi fixed.
        with frozen(self.vae_params), self._autocast():
            with torch.no_grad():
                mu, std = self.model.encoder(x)
                z = reparameterise(mu, std)
            objective = self.model.prior.cross_entropy(mu, std, z).mean()
            self.prior_opt.zero_grad(set_to_none=True)
            (-objective).backward()
        self._clip(self.prior_params)
        self.prior_opt.step()
        return terms, objective.detach()

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
        generator = torch.Generator().manual_seed(t.seed * 1_000_003 + epoch + 500_009)
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
        if step < 0:
            return
        last = (f"the last good checkpoint (epoch {self.epoch}) is at {self.checkpoint_path}"
                if self.checkpoint_path.exists() else "no checkpoint was written before it")
        raise TrainingDivergedError(
            f"non-finite loss at epoch {epoch + 1}, step {step + 1}; training stopped and {last}. "
            "Lower train.lr, set train.grad_clip (e.g. 1.0) or add train.warmup_epochs."
        )

    def _check_parameters(self, epoch: int) -> None:
        for name, tensor in self.model.state_dict().items():
            if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(
                tensor
            ).all():
                raise TrainingDivergedError(
                    f"parameter {name} is not finite after epoch {epoch + 1}; the checkpoint "
                    f"at {self.checkpoint_path} was not overwritten"
                )


def train(cfg: Config, run_dir: str | Path, **data: ImageSet) -> Trainer:
    """Train a fresh run in ``run_dir``; refuses a folder that already holds a checkpoint."""
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT).exists():
        raise FileExistsError(
            f"{run_dir} already holds a run; resume it with `ladder train --resume {run_dir}` "
            "or choose another --run-dir"
        )
    trainer = Trainer(cfg, run_dir, **data)
    trainer.fit()
    return trainer


def load_run(run_dir: str | Path, device: str = "auto") -> tuple[Config, VAE]:
    """The config and trained model of a run folder, in eval mode on ``device``."""
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir / CHECKPOINT, map_location="cpu")
    cfg = Config.from_dict(state["config"])
    model = build_model(cfg.model, cfg.data.dataset, DATASETS[cfg.data.dataset], cfg.train.seed)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{run_dir / CHECKPOINT} does not match its own config: {err}") from err
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
    with torch.no_grad():
        chunks = [model.encoder(x) for x, _ in images.iter_batches(500, shuffle=False,
                                                                   drop_last=False)]
    mu = torch.cat([c[0] for c in chunks])
    std = torch.cat([c[1] for c in chunks])
    params = list(model.prior.parameters())
    optimiser = torch.optim.Adam(params, lr=lr) if params else None
    history = []
    with frozen(model.vae_parameters()):
        for _ in tqdm(range(epochs), desc="fit prior", disable=not progress):
            order = torch.randperm(len(mu), generator=generator).to(mu.device)
            total, steps = 0.0, 0
            for idx in order.split(batch_size):
                objective = model.prior.cross_entropy(mu[idx], std[idx],
                                                      reparameterise(mu[idx], std[idx])).mean()
                if optimiser is not None:
                    optimiser.zero_grad(set_to_none=True)
                    (-objective).backward()
                    optimiser.step()
                total, steps = total + float(objective.detach()), steps + 1
            model.prior.refit(reparameterise(mu, std))
            history.append(total / steps)
    return history
