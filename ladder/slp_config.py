"""Settings of the shortest likely path (SLP) optimisation of Eq (9), Sec 3.4: the weights of its
three terms, the Adam settings, the named presets and the checks of a configuration.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class SLPWeights:
    """The weights of the three terms of Eq (9): path length, step-length std, log-likelihood."""

    length: float = 1.0
    step_std: float = 1.0
    log_lik: float = 1.0


@dataclass(frozen=True)
class SLPConfig:
    """Settings of the SLP optimisation (Eq (9) minimised by Adam).

    ``init`` is ``"line"`` (the straight line, i.e. the SP path) or a tensor of interior
    points ``[J, d]`` / ``[P, J, d]``. ``grad_clip`` clips every gradient element to
    ``[-grad_clip, grad_clip]`` before the Adam step (``None``: no clipping).
    """

    n_steps: int = 8
    iters: int = 500
    lr: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    weights: SLPWeights = field(default_factory=SLPWeights)
    init: str | Tensor = "line"


PRESETS: dict[str, SLPConfig] = {
    # Eq (9) has unit weights; the paper gives no optimiser settings ("a standard
    # optimisation scheme, such as AdamOptimiser"), so these are the reference notebook's.
    "paper": SLPConfig(weights=SLPWeights(1.0, 1.0, 1.0)),
    # The authors' notebook: weights 10, 100, 1; J = 8; Adam lr 1e-2, beta2 0.95;
    # element-wise clip +-1; 500 iterations; straight-line initialisation.
    "reference": SLPConfig(weights=SLPWeights(10.0, 100.0, 1.0)),
}


def resolve_preset(preset: str | SLPConfig) -> SLPConfig:
    """The settings of a preset name of :data:`PRESETS` (a :class:`SLPConfig` is returned as it
    is); an unknown name raises ``ValueError``."""
    if not isinstance(preset, str):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown SLP preset {preset!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[preset]


def as_weights(weights: SLPWeights | Sequence[float]) -> SLPWeights:
    """``weights`` as :class:`SLPWeights`: one is returned as it is, three numbers (length,
    step_std, log_lik) are converted."""
    if isinstance(weights, SLPWeights):
        return weights
    if len(weights) != 3:
        raise ValueError(
            "weights are (length, step_std, log_lik), three numbers or an SLPWeights, "
            f"got {weights!r}"
        )
    return SLPWeights(*(float(w) for w in weights))


def _is_number(value: object, low: float, strict: bool) -> bool:
    """A finite real number (not a bool) above ``low`` (``>= low`` unless ``strict``)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if strict else value >= low)
    )


def check_config(cfg: SLPConfig) -> None:
    """The optimiser settings of ``cfg``, each checked with a message naming it."""
    for name, low in (("n_steps", 1), ("iters", 0)):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            what = "the number of interior points, " if name == "n_steps" else ""
            raise ValueError(f"{name} is {what}an int >= {low}, got {value!r}")
    if not _is_number(cfg.lr, 0.0, strict=True):
        raise ValueError(f"lr must be a finite number > 0, got {cfg.lr!r}")
    betas = cfg.betas
    if not (
        isinstance(betas, Sequence)
        and len(betas) == 2
        and all(_is_number(b, 0.0, strict=False) and b < 1 for b in betas)
    ):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    if cfg.grad_clip is not None and not _is_number(cfg.grad_clip, 0.0, strict=True):
        raise ValueError(f"grad_clip must be None or a finite number > 0, got {cfg.grad_clip!r}")
    w = cfg.weights
    if not all(_is_number(v, 0.0, strict=False) for v in (w.length, w.step_std, w.log_lik)):
        raise ValueError(
            f"weights (length, step_std, log_lik) must be finite numbers >= 0, got {w}"
        )
