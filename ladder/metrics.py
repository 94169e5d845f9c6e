"""The quantities of the paper's tables, computed on a test split.

* :func:`elbo_statistics`: Table 3, the ELBO per image in nats with the Laplace normaliser
  -D log 2 sigma included, its three terms (Eq (2)), and the per-pixel mean absolute
  reconstruction error (Table 3 reports it x0.01).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ladder.data import ImageSet
from ladder.model import VAE

ELBO_TERMS = ("elbo", "reconstruction", "entropy", "cross_entropy", "mae")


@torch.no_grad()
def elbo_statistics(
    model: VAE, images: ImageSet, batch_size: int = 500, progress: bool = False
) -> dict[str, float]:
    """Mean ELBO terms per image over ``images`` (one z sample per image, as the paper's Table 3),
    with the standard error of the mean ELBO across images."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(len(ELBO_TERMS), dtype=torch.float64, device=images.device)
    square_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    count = 0
    batches = images.iter_batches(batch_size, shuffle=False, drop_last=False)
    total = -(-len(images) // batch_size)
    for x, _ in tqdm(batches, total=total, desc="evaluate", disable=not progress, leave=False):
        terms = model.elbo_terms(x)
        stacked = torch.stack([terms[name].double() for name in ELBO_TERMS])
        sums += stacked.sum(1)
        square_sum += terms["elbo"].double().square().sum()
        count += x.shape[0]
    model.train(was_training)
    means = (sums / count).tolist()
    result = dict(zip(ELBO_TERMS, means, strict=True))
    variance = max(square_sum.item() / count - result["elbo"] ** 2, 0.0)
    result["elbo_stderr"] = (variance / max(count - 1, 1)) ** 0.5
    result["n_images"] = count
    return result
