"""Each prior's own config section, nested in the model section (``model.gmm``, ``model.vamp``,
``model.prior_vae``, ``model.dpgmm``), read by that prior's builder in
:data:`ladder.prior_registry.PRIOR_BUILDERS`; and how a config written before the sections (flat
``model.gmm_fit``-style keys, as the stored runs and checkpoints have it) is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class GMMConfig:
    """The GMM prior (Sec 4's "GMM" baseline)."""

    n_components: int = 50
    fit: str = "em"  # em (refit each epoch, reference code) | gradient
    covariance_reg: float = 0.01  # added to EM covariances (reference code: 0.01 I)


@dataclass(slots=True)
class VampConfig:
    """The VampPrior (Tomczak and Welling 2018), a baseline of Sec 4."""

    n_pseudo_inputs: int = 50
    init: str = "data"  # data (VampPrior paper) | random N(0, 1) (reference code)
    constrain: str = "sigmoid"  # sigmoid (kept in [0, 1]) | none (reference code)


@dataclass(slots=True)
class PriorVAEConfig:
    """The prior VAE p(z) = int p(z|t) p(t) dt of Sec 3.1, of the hierarchical and LaDDer priors."""

    # its latent size, the innermost one when n_levels > 1: 8 (ours: SM E.1 says 2, SM Table 2
    # finds 8 better, and so do we, results/stall/README.md)
    d_t: int = 8
    n_levels: int = 1  # stacked prior VAEs (Fig 1's "series of VAEs")
    hidden: int = 512  # MLP width (SM E)
    layers: int = 3  # MLP depth: 3 (SM E.1) | 5 (SM E.2, reference code)
    slope: float = 0.2  # LeakyReLU slope of the MLPs (reference code)
    # p(z|t) std s: closed_form (its maximiser, as model.sigma_mode = mae; the paper does not
    # say) | learned (Adam on log s) | clamped to scale_bounds (reference code)
    scale_mode: str = "closed_form"
    scale_init: float = 0.1
    scale_bounds: tuple[float, float] = (0.05, 0.1)
    # sample p(z) with p(z|t)'s noise (the paper's p(z)) | false: decoder mean (reference code)
    sample_noise: bool = True


@dataclass(slots=True)
class DPGMMConfig:
    """LaDDer's hyper prior p(t): the variational DP-GMM of Sec 3.2."""

    truncation: int = 50  # components of the truncated stick-breaking posterior
    concentration: float = 0.1  # alpha_0 of the DP (reference code's value)
    priors: str = "paper"  # Normal-Wishart priors: paper (N(0, I), W(d_t, I)) | sklearn
    max_iter: int = 200  # CAVI iterations per refit (warm started)
    train_kind: str = "bound"  # log p(t) in Eq (7): bound (the paper) | plugin (reference code)
    density_kind: str = "predictive"  # sampling-free uses of log p(t): predictive | plugin


FLAT_MODEL_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "d_t": (("prior_vae", "d_t"),),
    "n_levels": (("prior_vae", "n_levels"),),
    "prior_hidden": (("prior_vae", "hidden"),),
    "prior_layers": (("prior_vae", "layers"),),
    "prior_slope": (("prior_vae", "slope"),),
    "prior_scale_mode": (("prior_vae", "scale_mode"),),
    "prior_scale_init": (("prior_vae", "scale_init"),),
    "prior_scale_bounds": (("prior_vae", "scale_bounds"),),
    "sample_noise": (("prior_vae", "sample_noise"),),
    "hyper_log_prob": (("dpgmm", "train_kind"),),
    "density_kind": (("dpgmm", "density_kind"),),
    "weight_concentration_prior": (("dpgmm", "concentration"),),
    "dpgmm_priors": (("dpgmm", "priors"),),
    "dpgmm_max_iter": (("dpgmm", "max_iter"),),
    "gmm_fit": (("gmm", "fit"),),
    "gmm_covariance_reg": (("gmm", "covariance_reg"),),
    "vamp_init": (("vamp", "init"),),
    "vamp_constrain": (("vamp", "constrain"),),
    "n_components": (("gmm", "n_components"), ("vamp", "n_pseudo_inputs"),
                     ("dpgmm", "truncation")),
}
"""The model keys of configs written before the prior sections -> where each now lives."""


def nest_flat_model_keys(data: dict[str, Any]) -> dict[str, Any]:
    """A config dict with any flat model keys (:data:`FLAT_MODEL_KEYS`) moved into their sections:
    how a stored run's ``config.yaml`` or checkpoint from before the sections is read."""
    model = data.get("model")
    if not isinstance(model, dict) or not FLAT_MODEL_KEYS.keys() & model.keys():
        return data
    nested = {k: (dict(v) if isinstance(v, dict) else v) for k, v in model.items()
              if k not in FLAT_MODEL_KEYS}
    for key, targets in FLAT_MODEL_KEYS.items():
        if key in model:
            for section, name in targets:
                nested.setdefault(section, {})[name] = model[key]
    return {**data, "model": nested}


def flat_key_hint(key: str) -> str:
    """For an unknown ``model.<key>`` that is a flat key of old: where it lives now; else ''."""
    targets = FLAT_MODEL_KEYS.get(key.removeprefix("model."))
    if not targets:
        return ""
    where = " or ".join(f"model.{section}.{name}" for section, name in targets)
    return f" (it is now {where}: each prior's settings have their own section)"
