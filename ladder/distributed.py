"""Data-parallel training (PyTorch DDP under ``torchrun``): each process trains on its share of
every minibatch of Algorithm 1, and the result equals one process's on the whole minibatch.

One process is the world-size-1 case of the same code path, and every function here is then the
identity. With N processes (``torchrun --nproc_per_node=N -m ladder train ...``):

- every process draws the same global batch (the same seeded order) and trains on its rows of it
  (:meth:`Shard.rows`); the batch size must divide by N;
- the gradients of each block are averaged across processes by ``DistributedDataParallel``, so
  each Adam step is the one-process step on the whole batch;
- the reparameterisation noise of a training step is drawn for the whole batch on every process
  and each takes its rows (:func:`batch_noise`), so a process sees the noise one process would;
- a batch statistic that sets a scale in closed form (the Laplace sigma's MAE, the prior VAE's
  s) is averaged across processes (:func:`batch_mean`);
- the refit of the DP-GMM (xi) sees the codes of every process (:func:`gather_rows`); every
  process refits on them, and then every process takes rank 0's state (:func:`synchronise`),
  so all hold the same prior however their kernels round;
- only rank 0 evaluates, and writes the checkpoint, the metrics and the logs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class Shard:
    """This process's place in the data-parallel world."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that evaluates and writes the run folder."""
        return self.rank == 0

    def rows(self, n: int) -> slice:
        """This process's rows of a global batch of ``n`` (``n`` divisible by the world size)."""
        per = n // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)


SINGLE = Shard()
_active = SINGLE  # the shard of the training step in progress (:func:`sharded`)


def start(device: torch.device) -> tuple[Shard, torch.device]:
    """The shard of this process and its device: world size 1 without ``torchrun``; under it,
    the process group (NCCL on CUDA, gloo on the CPU) and, on CUDA, the GPU ``$LOCAL_RANK``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return SINGLE, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Shard(dist.get_rank(), dist.get_world_size()), device


@contextlib.contextmanager
def sharded(shard: Shard) -> Iterator[None]:
    """Within a training step: :func:`batch_noise` and :func:`batch_mean` act for ``shard``."""
    global _active
    previous, _active = _active, shard
    try:
        yield
    finally:
        _active = previous


def batch_noise(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """eps ~ N(0, I) of ``shape``, whose batch axis (-2) holds this process's rows: drawn for the
    whole batch, so the noise is the one process's whatever the number of processes."""
    if _active.world_size == 1 or len(shape) < 2:
        return torch.randn(shape, dtype=dtype, device=device)
    whole = (*shape[:-2], shape[-2] * _active.world_size, shape[-1])
    return torch.randn(whole, dtype=dtype, device=device)[..., _active.rows(whole[-2]), :]


def batch_mean(value: Tensor) -> Tensor:
    """Within a training step, the mean over processes of a per-process batch mean (equal
    shares): the whole batch's."""
    return average(value, _active)


def average(value: Tensor, shard: Shard) -> Tensor:
    """The mean of ``value`` over the processes of ``shard``'s world."""
    if shard.world_size == 1:
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / shard.world_size


def gather_rows(values: Tensor, shard: Shard) -> Tensor:
    """Rows that the processes filled, NaN elsewhere, combined: every row that any process filled
    (one that several filled alike, as the prior fine-tuning's, keeps its value)."""
    if shard.world_size == 1:
        return values
    filled = ~torch.isnan(values)
    total = torch.where(filled, values, torch.zeros_like(values))
    count = filled.to(values.dtype)
    dist.all_reduce(total)
    dist.all_reduce(count)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def synchronise(model: torch.nn.Module, shard: Shard) -> None:
    """Every process takes rank 0's model state (the DP-GMM's included) and random state: after
    the end-of-epoch refit, which every process ran, and the evaluation, which only rank 0 ran."""
    if shard.world_size == 1:
        return
    state: dict[str, Any] = {"model": model.state_dict(), "rng": torch.get_rng_state()}
    if torch.cuda.is_available() and next(model.parameters()).is_cuda:
        state["cuda_rng"] = torch.cuda.get_rng_state()
    box = [state if shard.is_main else None]
    dist.broadcast_object_list(box, src=0)
    if not shard.is_main:
        model.load_state_dict(box[0]["model"])
        torch.set_rng_state(box[0]["rng"].cpu())
        if "cuda_rng" in box[0]:
            torch.cuda.set_rng_state(box[0]["cuda_rng"].cpu())


def is_main_process() -> bool:
    """Rank 0 under ``torchrun`` (``$RANK``), or the one process without it."""
    return int(os.environ.get("RANK", "0")) == 0


def check_settings(batch_size: int, bca: str, sigma_mode: str, shard: Shard) -> None:
    """The settings data-parallel training supports; :class:`ValueError` names the one that is
    not."""
    if shard.world_size == 1:
        return
    if batch_size % shard.world_size:
        raise ValueError(f"train.batch_size={batch_size} does not divide into {shard.world_size} "
                         "processes; choose a multiple of the number of processes")
    if bca != "sequential":
        raise ValueError("data-parallel training takes train.bca=sequential (Algorithm 1); the "
                         "joint step's one backward pass would leave the prior's gradient unshared")
    if sigma_mode == "batch_mae":
        raise ValueError("model.sigma_mode=batch_mae differentiates each batch's own MAE, which "
                         "processes do not share; use mae (the default) with data-parallel training")


def data_parallel(block: torch.nn.Module, shard: Shard) -> torch.nn.Module:
    """``block`` itself in one process; wrapped in ``DistributedDataParallel`` in several, which
    averages its gradients across them in each backward pass."""
    if shard.world_size == 1 or not any(p.requires_grad for p in block.parameters()):
        return block
    from torch.nn.parallel import DistributedDataParallel

    device = next(block.parameters()).device
    return DistributedDataParallel(block, device_ids=[device] if device.type == "cuda" else None)
