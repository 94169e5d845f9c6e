"""Fig 4 as data and as a number: the test encodings in the space of the prior's mixture (z for the
GMM prior and the VampPrior, t for LaDDer), each one's most responsible component, and the NMI and
ARI of those components against the class labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ladder.image_sets import ImageSet
from ladder.model import VAE
from ladder.priors import Prior


@dataclass(frozen=True)
class MixtureView:
    """What Fig 4 draws: encodings in the space where the prior's mixture lives (``space`` "z" for
    the GMM prior and the VampPrior, "t" for LaDDer) and the mixture's weights [K], means [K, d]
    and covariances [K, d, d], all on the CPU."""

    space: str
    codes: Tensor
    weights: Tensor
    means: Tensor
    covariances: Tensor


def _mixture_level(prior: Prior) -> tuple[Prior, list[Prior]]:
    """The level of ``prior`` that holds its mixture (the innermost), and the levels above it."""
    *above, level = prior.levels()
    if not level.is_mixture:
        raise ValueError(
            f"{type(prior).__name__} (hyper prior {type(level).__name__}) has no mixture "
            "components; they exist for the LaDDer, GMM and VampPrior priors"
        )
    return level, above


def _to_mixture_space(above: list[Prior], z: Tensor) -> Tensor:
    for level in above:  # t = the mean of q(t|z), level by level
        z = level.to_hyper_space(z)
    return z


@torch.no_grad()
def mixture_view(model: VAE, images: ImageSet, batch_size: int = 500) -> MixtureView:
    """Fig 4's picture as data: the encodings (the mean of q(z|x), then of q(t|z) through every
    prior-VAE level) of ``images`` in the mixture's space, and the mixture itself."""
    level, above = _mixture_level(model.prior)
    codes = torch.cat([
        _to_mixture_space(above, model.encoder(x)[0])
        for x, _ in images.iter_batches(batch_size, shuffle=False, drop_last=False)])
    mixture = level.mixture_components()
    space = "t" if above else "z"
    return MixtureView(space, *(v.detach().float().cpu() for v in
                                (codes, mixture.weights, mixture.means, mixture.covariances)))


@torch.no_grad()
def component_assignments(prior: Prior, z: Tensor) -> Tensor:
    """The prior's mixture component of each row of ``z`` [N, d_z], long [N] (Fig 4).

    * LaDDer: t = the mean of q(t|z) (through every level of a ladder), then the DP-GMM's most
      responsible component (``DPGMM.predict``, its variational responsibilities, Bishop 10.49).
    * GMM prior: the most responsible component, argmax_k w_k N(z; mu_k, Sigma_k).
    * VampPrior: the most responsible pseudo-input, argmax_k q(z | u_k).

    The Normal and hierarchical priors have no components: :class:`ValueError`.
    """
    level, above = _mixture_level(prior)
    return level.assign_components(_to_mixture_space(above, z))


def has_components(prior: Prior) -> bool:
    """Whether :func:`component_assignments` applies to ``prior``."""
    return prior.levels()[-1].is_mixture


@torch.no_grad()
def cluster_statistics(
    model: VAE, images: ImageSet, batch_size: int = 500, progress: bool = False
) -> dict[str, float | int]:
    """NMI and ARI (:func:`ladder.features.cluster_agreement`) between the components of the test
    encodings (z = the mean of q(z|x), :func:`component_assignments`) and the class labels."""
    from ladder.features import cluster_agreement

    if images.labels is None:
        raise ValueError(f"{images.name} has no class labels to compare components with")
    assignments = []
    total = -(-len(images) // batch_size)
    batches = images.iter_batches(batch_size, shuffle=False, drop_last=False)
    for x, _ in tqdm(batches, total=total, desc="components", disable=not progress, leave=False):
        assignments.append(component_assignments(model.prior, model.encoder(x)[0]).cpu())
    assigned = torch.cat(assignments)
    result: dict[str, float | int] = dict(cluster_agreement(assigned, images.labels.cpu()))
    result.update(n_components_used=int(assigned.unique().numel()),
                  n_classes=int(images.labels.unique().numel()), n_images=int(assigned.numel()))
    return result
