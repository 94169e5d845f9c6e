"""One registry of the priors: each value of ``model.prior`` and how that prior builds itself from
the model config (the five priors of Sec 4)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ladder.config import ModelConfig
from ladder.prior_gmm import GMMPrior
from ladder.prior_vae import hierarchical_prior, ladder_prior
from ladder.prior_vamp import VampPrior
from ladder.priors import NormalPrior, Prior, PriorContext

PriorBuilder = Callable[[ModelConfig, PriorContext], Prior]

PRIOR_BUILDERS: dict[str, PriorBuilder] = {
    "normal": NormalPrior.from_config,
    "gmm": GMMPrior.from_config,
    "vamp": VampPrior.from_config,
    "hierarchical": hierarchical_prior,
    "ladder": ladder_prior,
}
"""``model.prior`` -> the function that builds it; its keys are :data:`ladder.config_checks.PRIORS`."""


def build_prior(
    cfg: ModelConfig,
    encoder: nn.Module | None,
    image_shape: tuple[int, int, int],
    seed: int = 0,
) -> Prior:
    """The prior named by ``cfg.prior``, built by its entry of :data:`PRIOR_BUILDERS`."""
    if cfg.prior not in PRIOR_BUILDERS:
        raise ValueError(f"unknown prior {cfg.prior!r}; choose one of {', '.join(PRIOR_BUILDERS)}")
    return PRIOR_BUILDERS[cfg.prior](cfg, PriorContext(encoder, image_shape, seed))
