"""Image grids: prior samples beside reconstructions (Fig 3, SM Figs 1-5)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.utils import make_grid

from ladder.model import VAE


@torch.no_grad()
def samples_and_reconstructions(
    model: VAE, images: Tensor, n: int = 100, nrow: int = 10, seed: int = 0
) -> Tensor:
    """One picture: ``n`` test images, their reconstructions and ``n`` prior samples, side by side
    (a [3, H, W] tensor in [0, 1] with a white gap between the three grids)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        samples = model.sample(n)
    images = images[:n]
    grids = [
        make_grid(model.images(batch).float().cpu(), nrow=nrow, padding=2, pad_value=1.0)
        for batch in (images, model.reconstruct(images), samples)
    ]
    grids = [g.expand(3, -1, -1) for g in grids]
    gap = torch.ones(3, grids[0].shape[1], 8)
    return torch.cat([grids[0], gap, grids[1], gap, grids[2]], dim=2)
