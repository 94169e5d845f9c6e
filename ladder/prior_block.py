"""The prior block of Algorithm 1 (Sec 3.3): Adam steps on the prior's own objective, L'(z) of
Eq (7) for LaDDer, with the data VAE's theta and phi held fixed.

The trainer takes one :func:`prior_block_step` per minibatch (:mod:`ladder.train`); the prior
fine-tuning epochs and :func:`fit_prior`, the protocol of Fig 2 (a prior fitted to a frozen
autoencoder's codes), take a :func:`prior_block_pass` over frozen encodings per epoch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ladder.image_sets import ImageSet
from ladder.model import VAE
from ladder.priors import Prior, reparameterise


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
            objective, _ = prior_block_pass(PriorObjective(model.prior), optimiser, mu, std,
                                            batch_size, generator)
            model.prior.refit(reparameterise(mu, std))
            history.append(objective)
    return history


@torch.no_grad()
def encode_images(model: VAE, images: ImageSet, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """q(z|x) of every image of ``images``, in order, as (mean, std) [N, d_z]."""
    chunks = [model.encoder(x) for x, _ in images.iter_batches(batch_size, shuffle=False,
                                                               drop_last=False)]
    return torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])


class PriorObjective(nn.Module):
    """The prior block's objective at a fresh z ~ N(mu, std^2): its cross-entropy, L'(z) of
    Eq (7) for LaDDer, averaged over the batch. A module, so that data-parallel training can wrap
    it in ``DistributedDataParallel`` (:mod:`ladder.distributed`)."""

    def __init__(self, prior: Prior) -> None:
        super().__init__()
        self.prior = prior

    def forward(self, mu: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        z = reparameterise(mu, std)
        return self.prior.cross_entropy(mu, std, z).mean(), z


def prior_block_step(
    objective: nn.Module,
    optimiser: torch.optim.Optimizer | None,
    mu: Tensor,
    std: Tensor,
    grad_clip: float | None = None,
) -> tuple[Tensor, Tensor]:
    """One step of Algorithm 1's prior block: Adam ascent on the prior's cross-entropy (L'(z) of
    Eq (7) for LaDDer, a :class:`PriorObjective`) at a fresh z ~ N(mu, std^2), with
    ``grad_clip`` on its gradient; the caller holds theta and phi fixed. Returns the objective,
    detached, and z. Without an optimiser (a prior without parameters) it only evaluates."""
    value, z = objective(mu, std)
    if optimiser is not None:
        optimiser.zero_grad(set_to_none=True)
        (-value).backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_value_(objective.parameters(), grad_clip)
        optimiser.step()
    return value.detach(), z


def prior_block_pass(
    objective: nn.Module,
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
        value, z = prior_block_step(objective, optimiser, mu[idx], std[idx], grad_clip)
        z_pass[idx] = z
        total += value.double()
    return float(total) / len(batches), z_pass
