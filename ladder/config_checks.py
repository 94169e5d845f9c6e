"""What a valid config is: the choices of each setting and the checks of :meth:`Config.validate`,
made when a config is composed, so that a bad setting fails in one line before any work."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
import typing
from dataclasses import fields
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from ladder.config_yaml import ConfigError, plain

if TYPE_CHECKING:
    from ladder.config import Config, TrainConfig

ACTIVATIONS = ("relu", "leaky_relu")  # hidden units of the data nets (ladder.nets)
OUTPUT_ACTIVATIONS = ("sigmoid", "relu", "linear", "leaky_relu", "relu_leaky_grad")
STD_ACTIVATIONS = ("relu", "relu_leaky_grad")  # the data encoder's std head (ladder.nets)

DATASETS = ("mnist", "fashion", "celeba")
PRIORS = ("normal", "gmm", "vamp", "hierarchical", "ladder")
PRIOR_VAE_PRIORS = ("hierarchical", "ladder")  # the priors with a t-space (model.prior_vae.d_t)
PRESETS = ("paper", "reference", "quick")
DATASET_ALIASES = {"fashion-mnist": "fashion", "fashionmnist": "fashion", "fmnist": "fashion"}
# Images per split (SM D.1). CelebA's depend on the files present; ladder.data checks them.
SPLIT_SIZES = {
    "mnist": {"train": 60_000, "test": 10_000},
    "fashion": {"train": 60_000, "test": 10_000},
}
# train.py seeds each epoch's generators with seed * 1_000_003 + epoch (+ 500_009), and torch takes
# seeds below 2**64; scikit-learn's GaussianMixture (the GMM prior's EM refit) takes them below 2**32.
MAX_SEED = 2**44 - 1
MAX_SKLEARN_SEED = 2**32 - 1



def canonical_dataset(name: str) -> str:
    """The dataset's canonical name (``fashion-mnist`` becomes ``fashion``)."""
    key = str(name).lower()
    key = DATASET_ALIASES.get(key, key)
    check_choice("data.dataset", key, DATASETS)
    return key



_CHOICES = {
    "model.prior": PRIORS,
    "model.activation": ACTIVATIONS,
    "model.output_activation": OUTPUT_ACTIVATIONS,
    "model.std_activation": STD_ACTIVATIONS,
    "model.sigma_mode": ("mae", "learned", "batch_mae"),
    "model.prior_vae.scale_mode": ("learned", "clamped", "closed_form"),
    "model.dpgmm.train_kind": ("bound", "plugin"),
    "model.dpgmm.density_kind": ("predictive", "plugin"),
    "model.dpgmm.priors": ("paper", "sklearn"),
    "model.gmm.fit": ("em", "gradient"),
    "model.vamp.init": ("random", "data"),
    "model.vamp.constrain": ("none", "sigmoid"),
    "train.bca": ("sequential", "joint"),
    "train.precision": ("fp32", "bf16", "auto"),
    "train.refit_source": ("epoch", "fresh"),
}


def check_choice(name: str, value: Any, choices: typing.Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} = {value!r} is not valid; choose one of: {', '.join(choices)}")


def _positive(name: str, value: float | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")


def validate(cfg: Config) -> None:
    check_choice("preset", cfg.preset, PRESETS)
    cfg.data.dataset = canonical_dataset(cfg.data.dataset)
    for name, choices in _CHOICES.items():
        check_choice(name, attrgetter(name)(cfg), choices)
    _check_finite(cfg)
    m, t, d = cfg.model, cfg.train, cfg.data
    pv = m.prior_vae
    for name in ("model.d_z", "model.n_mc", "model.std_floor", "model.sigma_init",
                 "model.prior_vae.d_t", "model.prior_vae.n_levels", "model.prior_vae.hidden",
                 "model.prior_vae.layers", "model.prior_vae.scale_init",
                 "model.gmm.n_components", "model.vamp.n_pseudo_inputs",
                 "model.dpgmm.truncation", "model.dpgmm.max_iter", "model.dpgmm.concentration"):
        _positive(name, attrgetter(name)(cfg))
    if m.gmm.covariance_reg < 0:
        raise ConfigError(f"model.gmm.covariance_reg must be >= 0, got {m.gmm.covariance_reg}")
    if m.prior in PRIOR_VAE_PRIORS and pv.d_t > m.d_z:
        raise ConfigError(
            f"model.prior_vae.d_t = {pv.d_t} exceeds model.d_z = {m.d_z}: the prior VAE embeds z "
            "in a lower-dimensional t-space, so choose d_t <= d_z"
        )
    if pv.n_levels > 1 and m.d_z // pv.d_t < 1:
        raise ConfigError("model.prior_vae.n_levels > 1 needs room between d_z and d_t")
    lo, hi = pv.scale_bounds
    if not 0 < lo <= hi:
        raise ConfigError(f"model.prior_vae.scale_bounds must satisfy 0 < low <= high, got "
                          f"{lo, hi}")
    if not 0 <= pv.slope < 1:
        raise ConfigError(f"model.prior_vae.slope must lie in [0, 1), got {pv.slope}")
    if not 0 < m.output_slope < 1:
        raise ConfigError(f"model.output_slope must lie in (0, 1), got {m.output_slope}; a slope "
                          "of 0 is model.output_activation = relu")
    for name in ("epochs", "batch_size", "lr", "lr_prior", "lr_decay", "lr_prior_growth",
                 "eval_batch_size"):
        _positive(f"train.{name}", getattr(t, name))
    _positive("train.grad_clip", t.grad_clip, allow_none=True)
    _positive("train.refit_points", t.refit_points, allow_none=True)
    if not all(0 <= b < 1 for b in t.betas):
        raise ConfigError(f"train.betas must lie in [0, 1), got {t.betas}")
    if not 0 <= t.warmup_epochs <= t.epochs:
        raise ConfigError(f"train.warmup_epochs must lie in [0, epochs], got {t.warmup_epochs}")
    _positive("train.prior_steps", t.prior_steps)
    if t.prior_steps > 1 and t.bca == "joint":
        raise ConfigError(f"train.prior_steps = {t.prior_steps} needs train.bca = sequential "
                          "(joint takes the prior block's one step from the data block's "
                          "backward pass); set train.bca=sequential or train.prior_steps=1")
    if t.prior_finetune_epochs < 0:
        raise ConfigError(f"train.prior_finetune_epochs must be >= 0, got "
                          f"{t.prior_finetune_epochs}")
    for rate, factor in (("lr", "lr_decay"), ("lr_prior", "lr_prior_growth")):
        _check_schedule(t, rate, factor)
    if t.refit_source == "fresh" and t.refit_points is None:
        raise ConfigError("train.refit_source = fresh needs train.refit_points (e.g. 2048)")
    if t.seed < 0:
        raise ConfigError(f"train.seed must be >= 0, got {t.seed}")
    if t.seed > MAX_SEED:
        raise ConfigError(f"train.seed = {t.seed} is too large: the per-epoch seeds derived from "
                          f"it must fit torch's 64 bits; use 0 <= train.seed <= {MAX_SEED} (2**44 - 1)")
    if m.prior == "gmm" and m.gmm.fit == "em" and t.seed > MAX_SKLEARN_SEED:
        raise ConfigError(f"train.seed = {t.seed} is too large for the GMM prior's EM refit "
                          f"(scikit-learn takes seeds up to {MAX_SKLEARN_SEED}); use a smaller "
                          "train.seed or model.gmm.fit = gradient")
    device = t.device
    if not (device in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:[0-9]+", device)):
        raise ConfigError(f"train.device = {device!r}; choose auto, cpu, cuda, cuda:N or mps")
    _positive("data.n_train", d.n_train, allow_none=True)
    _positive("data.n_test", d.n_test, allow_none=True)
    _check_sizes(cfg)


def _check_finite(part: Any, prefix: str = "") -> None:
    """Refuse NaN and infinity in every numeric setting (and inside the pairs), in every section."""
    for f in fields(part):
        value = getattr(part, f.name)
        if dataclasses.is_dataclass(value):
            _check_finite(value, f"{prefix}{f.name}.")
            continue
        items = value if isinstance(value, (list, tuple)) else (value,)
        if any(isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral)
               and not math.isfinite(v) for v in items):
            default = plain(f.default if f.default_factory is dataclasses.MISSING
                             else f.default_factory())
            raise ConfigError(f"{prefix}{f.name} = {plain(value)} is not finite; give finite "
                              f"numbers, e.g. {prefix}{f.name}={json.dumps(default)}")


def _check_schedule(t: TrainConfig, rate: str, factor: str) -> None:
    """The last epoch's learning rate, ``rate * factor**(epochs - 1)``, must be a float."""
    try:
        last = getattr(t, rate) * float(getattr(t, factor)) ** (t.epochs - 1)
    except OverflowError:
        last = math.inf
    if not math.isfinite(last):
        raise ConfigError(f"train.{factor} = {getattr(t, factor):g} over train.epochs = {t.epochs} "
                          f"takes train.{rate} past the largest float; use a factor nearer 1")


def _check_sizes(cfg: Config) -> None:
    """Sizes the run will need, checked now rather than after an epoch: the subsets against the
    splits, a full batch, the VampPrior's data initialisation and the end-of-epoch refit."""
    m, t, d = cfg.model, cfg.train, cfg.data
    splits = SPLIT_SIZES.get(d.dataset, {})
    for name, split in (("n_train", "train"), ("n_test", "test")):
        n, total = getattr(d, name), splits.get(split)
        if n is not None and total is not None and n > total:
            raise ConfigError(f"data.{name} = {n} exceeds the {total} images of the {d.dataset} "
                              f"{split} split; use at most {total}, or null for all of them")
    if d.n_train is not None:
        n, images, key = d.n_train, f"data.n_train = {d.n_train}", "data.n_train"
    elif "train" in splits:
        n, images, key = splits["train"], f"the {splits['train']} {d.dataset} training images", ""
    else:
        n = None  # CelebA: the split's size depends on the files
    if n is not None and n < t.batch_size:
        raise ConfigError(f"train.batch_size = {t.batch_size} exceeds {images}: no full batch "
                          f"can be drawn; lower train.batch_size{' or raise ' + key if key else ''}")
    vamp = m.vamp
    if n is not None and m.prior == "vamp" and vamp.init == "data" and n < vamp.n_pseudo_inputs:
        raise ConfigError(f"model.vamp.init = data starts model.vamp.n_pseudo_inputs = "
                          f"{vamp.n_pseudo_inputs} pseudo-inputs at distinct training images, but "
                          f"{images} has fewer; lower model.vamp.n_pseudo_inputs"
                          f"{' or raise ' + key if key else ''}")
    if m.prior == "gmm" and m.gmm.fit == "em":
        need = max(2, m.gmm.n_components)
        what = (f"the GMM prior's EM refit of model.gmm.n_components = {m.gmm.n_components} "
                "components")
        other = "lower model.gmm.n_components or set model.gmm.fit = gradient"
    elif m.prior == "ladder" and m.dpgmm.priors == "sklearn":
        need = m.prior_vae.d_t + 1  # a non-singular covariance of the encodings in t-space
        what = (f"model.dpgmm.priors = sklearn (a covariance prior from the encodings, d_t = "
                f"{m.prior_vae.d_t})")
        other = "set model.dpgmm.priors = paper"
    else:
        return
    limits = []  # how many encodings the end-of-epoch refit gets at most (Trainer._refit_encodings)
    if t.refit_points is not None:
        limits.append((t.refit_points, f"train.refit_points = {t.refit_points}",
                       "train.refit_points"))
    if n is not None and t.refit_source == "fresh":
        limits.append((n, images, key))
    elif n is not None:  # the encodings of an epoch's full batches
        limits.append((n - n % t.batch_size,
                       f"{images} in full batches of train.batch_size = {t.batch_size}", key))
    if limits and min(limits)[0] < need:
        points, why, key = min(limits)
        raise ConfigError(f"{what} needs at least {need} encodings per refit, but {why} gives "
                          f"{points}; {'raise ' + key + ' or ' if key else ''}{other}")
