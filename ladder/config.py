"""Run configuration: dataclasses, presets, YAML files and ``--set`` overrides.

A config has three sections, ``data``, ``model`` and ``train``. The dataclass defaults are the paper's
settings for MNIST (SM E.1). A *preset* is a set of overrides on top of them:

* ``paper``: SM E (batch 256, Adam 5e-4, 50 epochs, d_z 16 for MNIST/Fashion; 75 epochs, d_z 256,
  d_t 32 and 5-layer prior MLPs for CelebA), with the package's measured departures
  (results/stall/README.md): d_t 8 where SM E.1 says 2, p(z|t)'s std s in closed form, three prior
  fine-tuning epochs, the ReLU output with a leaky gradient, samples with p(z|t)'s noise.
* ``reference``: the authors' shipped TensorFlow configs (the reference-code appendix, section 0)
  and every code choice where the code disagrees with the paper (sections 1-5, 8).
* ``quick``: the paper's model on a 10k-image subset for 3 epochs at batch 64: minutes on a
  2-core CPU.

Precedence, lowest first: dataclass defaults, preset, YAML file, ``--set key=value``. How text
becomes settings is :mod:`ladder.config_yaml`; what a valid config is, :mod:`ladder.config_checks`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ladder.config_checks import (
    PRESETS,
    canonical_dataset,
    check_choice,
    validate,
)
from ladder.config_priors import (
    DPGMMConfig,
    GMMConfig,
    PriorVAEConfig,
    VampConfig,
    flat_key_hint,
    nest_flat_model_keys,
)
from ladder.config_yaml import (
    ConfigError,
    flat_settings,
    load_yaml,
    plain,
    read_yaml,
    update_settings,
)


@dataclass(slots=True)
class DataConfig:
    """Which images to train and test on (SM D)."""

    dataset: str = "mnist"  # mnist | fashion | celeba
    n_train: int | None = None  # a seeded subset of the training split; None: all of it
    n_test: int | None = None  # a seeded subset of the test split; None: all of it
    root: str | None = None  # data root; None: $LADDER_DATA, else a per-user cache folder


@dataclass(slots=True)
class ModelConfig:
    """Networks, likelihoods and prior (Sec 3, SM C and SM E)."""

    prior: str = "ladder"  # normal | gmm | vamp | hierarchical | ladder
    d_z: int = 16  # data VAE latent size (SM E.1)
    # Data nets. SM E.1 says ReLU units and a sigmoid output; with the Laplace (L1) likelihood
    # they stall at the all-black image (book chapter 1), so every preset takes the reference
    # code's LeakyReLU(0.2) hidden units. Its ReLU output dies on some seeds (results/stall), so
    # the paper preset's output has the ReLU's values and a leaky gradient (CelebA: linear).
    activation: str = "leaky_relu"  # leaky_relu (reference code, slope 0.2) | relu (SM E.1)
    # relu_leaky_grad (ours) | relu (reference code) | sigmoid (SM E.1) | linear | leaky_relu
    output_activation: str = "relu_leaky_grad"
    output_slope: float = 0.05  # slope below 0 of leaky_relu, relu_leaky_grad (ours)
    std_floor: float = 1e-3  # posterior std = ReLU(FC) + floor, also the prior VAE's (reference)
    # the data encoder's std head: relu (SM E, reference) | relu_leaky_grad (ours: an entry on the
    # floor keeps a gradient of slope output_slope; beyond the paper, the vamp-std-head study)
    std_activation: str = "relu"
    sigma_mode: str = "mae"  # Laplace scale: mae (its maximiser, SM C) | learned | batch_mae (ref.)
    sigma_init: float = 0.5
    n_mc: int = 100  # Monte Carlo samples for the prior term (reference code: 100)
    # each prior's own settings (ladder.config_priors); a prior reads only its own sections
    gmm: GMMConfig = field(default_factory=GMMConfig)
    vamp: VampConfig = field(default_factory=VampConfig)
    prior_vae: PriorVAEConfig = field(default_factory=PriorVAEConfig)  # hierarchical, ladder
    dpgmm: DPGMMConfig = field(default_factory=DPGMMConfig)  # ladder's innermost prior


@dataclass(slots=True)
class TrainConfig:
    """Algorithm 1 (SM B) and its optimiser settings (SM E)."""

    epochs: int = 50
    batch_size: int = 256
    lr: float = 5e-4  # data VAE block (theta, phi and the Laplace scale)
    lr_prior: float = 5e-4  # prior block (alpha, beta, pseudo-inputs, GMM parameters)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam; the reference code uses (0.9, 0.95)
    lr_decay: float = 1.0  # per-epoch factor on lr (reference: 0.99)
    lr_prior_growth: float = 1.0  # per-epoch factor on lr_prior (reference: 1.01)
    grad_clip: float | None = None  # element-wise gradient clip (reference: 1.0)
    warmup_epochs: int = 0  # epochs with an N(0, I) prior on z (reference: sg_pretraining)
    # Adam steps of the prior block per batch, each at a fresh z (Algorithm 1 and the reference
    # code take one); > 1 needs bca = sequential
    prior_steps: int = 1
    # after the epochs, epochs of the prior block alone on the frozen latent (each with its
    # refit of xi), logged with "phase": "prior_finetune"; ours (results/stall/README.md):
    # Algorithm 1 and the reference code have none
    prior_finetune_epochs: int = 3
    bca: str = "sequential"  # sequential (Algorithm 1) | joint (one backward for both blocks)
    refit_source: str = "epoch"  # encodings for the end-of-epoch refit: epoch | fresh
    refit_points: int | None = None  # subsample for the refit; None: all (reference: 2048)
    seed: int = 0  # 0 <= seed <= MAX_SEED (MAX_SKLEARN_SEED for the GMM prior's EM refit)
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps
    eval_batch_size: int = 500
    channels_last: bool = True
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 where the hardware has it): autocast of the nets
    progress: bool = True


@dataclass(slots=True)
class Config:
    """A whole run: data, model and training settings, and the preset they started from."""

    preset: str = "paper"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples), for YAML files and checkpoints."""
        return plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build and validate a config from plain data; unknown keys and wrong types are refused.
        A stored run's flat model keys of old are read into their prior sections
        (:func:`ladder.config_priors.nest_flat_model_keys`)."""
        cfg = cls()
        update_settings(cfg, nest_flat_model_keys(data), "")
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Refuse impossible settings with a message naming the valid choices."""
        validate(self)


@dataclass(frozen=True)
class EvaluationCounts:
    """The sample counts of an evaluation (:func:`ladder.evaluate.evaluate_run`, ``ladder
    evaluate``). The defaults, :data:`EVALUATION`, are the paper's protocol, defined here once:
    the metrics' defaults and the command line's help read them, and a manifest scale's
    ``evaluate`` section names a subset of these fields."""

    n_test: int | None = None  # test images: a seeded class-balanced subset (None: all of them)
    n_samples: int = 10_000  # images per side of every Fréchet distance and PRDC comparison
    n_is: int = 1000  # importance samples K of log p(z) (Table 2) and log p(x)
    n_nll: int = 1000  # test images of -log p(x) (0 skips it)
    n_inner: int = 10  # inner samples t ~ q(t|z) of the nested log p(x) (prior-VAE priors)


EVALUATION = EvaluationCounts()


# ----------------------------------------------------------------------------------------------
# Presets

_REFERENCE_MODEL = {
    "activation": "leaky_relu",
    "output_activation": "relu",
    "sigma_mode": "batch_mae",
    "vamp": {"init": "random", "constrain": "none"},
    "dpgmm": {"priors": "sklearn", "train_kind": "plugin", "density_kind": "plugin"},
}
_REFERENCE_PRIOR_VAE = {"d_t": 2, "layers": 5, "scale_mode": "clamped", "sample_noise": False}
_REFERENCE_TRAIN = {
    "lr": 3e-4,
    "lr_prior": 3e-4,
    "betas": (0.9, 0.95),
    "lr_decay": 0.99,
    "lr_prior_growth": 1.01,
    "grad_clip": 1.0,
    "refit_source": "fresh",
    "refit_points": 2048,
    "prior_finetune_epochs": 0,
}

_CELEBA_PRIOR_VAE = {"prior_vae": {"d_t": 32, "layers": 5}}  # SM E.2

PRESET_OVERRIDES: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "paper": {
        "mnist": {},
        "fashion": {},
        "celeba": {
            "model": {"d_z": 256, "output_activation": "linear", **_CELEBA_PRIOR_VAE},
            "train": {"epochs": 75},
        },
    },
    "reference": {
        # codes/mnist_digit_config.json: code_size 8 (the shipped checkpoint has 16).
        "mnist": {
            "model": {**_REFERENCE_MODEL, "d_z": 8, "prior_vae": _REFERENCE_PRIOR_VAE},
            "train": {**_REFERENCE_TRAIN, "epochs": 30, "warmup_epochs": 5},
        },
        "fashion": {
            "model": {**_REFERENCE_MODEL, "d_z": 16, "prior_vae": _REFERENCE_PRIOR_VAE},
            "train": {**_REFERENCE_TRAIN, "epochs": 30, "warmup_epochs": 10},
        },
        "celeba": {
            "model": {**_REFERENCE_MODEL, "d_z": 256, "output_activation": "linear",
                      "prior_vae": _REFERENCE_PRIOR_VAE},
            "train": {
                **_REFERENCE_TRAIN,
                "epochs": 50,
                "batch_size": 64,
                "lr": 2.5e-4,
                "lr_prior": 1.25e-4,
                "warmup_epochs": 10,
            },
        },
    },
    # Batch 64 gives 470 steps in 3 epochs of 10k images; at batch 256 the 117 steps end before
    # the reconstructions leave the all-black image.
    "quick": {
        "mnist": {"data": {"n_train": 10_000, "n_test": 2_000},
                  "train": {"epochs": 3, "batch_size": 64}},
        "fashion": {"data": {"n_train": 10_000, "n_test": 2_000},
                    "train": {"epochs": 3, "batch_size": 64}},
        "celeba": {
            "data": {"n_train": 2_000, "n_test": 500},
            "model": {"d_z": 256, "output_activation": "linear", **_CELEBA_PRIOR_VAE},
            "train": {"epochs": 1, "batch_size": 64},
        },
    },
}


def preset_config(preset: str = "paper", dataset: str = "mnist", prior: str = "ladder",
                  **settings: Any) -> Config:
    """The config of a preset for one dataset and prior, with ``settings`` on top: keyword
    arguments named as ``--set`` keys without their section where that is unambiguous
    (``epochs=3``, ``d_z=2``, ``seed=1``), the one way a chapter gets its config from its
    parameters. The result is validated."""
    dataset = canonical_dataset(dataset)
    check_choice("preset", preset, PRESETS)
    cfg = Config(preset=preset)
    cfg.data.dataset = dataset
    cfg.model.prior = prior
    update_settings(cfg, PRESET_OVERRIDES[preset][dataset], "")
    for key, value in settings.items():
        path = _resolve_key(key)
        if path is None or path in ("data.dataset", "model.prior"):
            raise ConfigError(f"unknown setting {key!r}; give a key of the data, model or train "
                              "section (dataset and prior are arguments)")
        update_settings(cfg, _setting(path, value), "")
    cfg.validate()
    return cfg


def load_config(
    path: str | Path | None = None,
    *,
    preset: str | None = None,
    dataset: str | None = None,
    prior: str | None = None,
    overrides: typing.Sequence[str] = (),
) -> Config:
    """Compose a config: preset, then the YAML file at ``path``, then ``key=value`` overrides.

    The YAML file may name ``preset``, ``data.dataset`` and ``model.prior``; the keyword arguments
    take precedence over it.
    """
    file_data: dict[str, Any] = {}
    if path is not None:
        file_data = read_yaml(path)
    file_data = dict(file_data)
    preset = preset or file_data.pop("preset", None) or "paper"
    file_data.pop("preset", None)
    settings = _parse_overrides(overrides)

    def chosen(section: str, name: str) -> Any:
        """The last ``--set section.name``, else the file's value: it picks the preset's row."""
        values = [value for key, value in settings if key == f"{section}.{name}"]
        return values[-1] if values else _file_setting(file_data, section, name, path)

    dataset = dataset or chosen("data", "dataset") or "mnist"
    prior = prior or chosen("model", "prior") or "ladder"
    cfg = preset_config(preset, dataset, prior)
    try:
        update_settings(cfg, file_data, "")
    except ConfigError as err:
        raise ConfigError(f"config file {path}: {err}") from None
    for key, value in settings:
        update_settings(cfg, _setting(key, value), "")
    cfg.data.dataset = canonical_dataset(dataset)
    cfg.model.prior = prior
    cfg.validate()
    return cfg


def save_yaml(cfg: Config, path: str | Path) -> None:
    """Write a config as YAML (the run folder's ``config.yaml``)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def apply_overrides(cfg: Config, overrides: typing.Sequence[str]) -> None:
    """Apply ``section.key=value`` (or an unambiguous bare ``key=value``) strings in place.

    Values are parsed as YAML scalars, so ``epochs=3``, ``lr=1e-3``, ``grad_clip=null`` and
    ``betas=[0.9,0.95]`` work.
    """
    for key, value in _parse_overrides(overrides):
        update_settings(cfg, _setting(key, value), "")


# ----------------------------------------------------------------------------------------------
# Internals: --set overrides


def _parse_overrides(overrides: typing.Sequence[str]) -> list[tuple[str, Any]]:
    """``section.key=value`` strings as ``(dotted key, value)``, the values read as YAML."""
    parsed = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. train.epochs=3")
        key, raw = item.split("=", 1)
        key = key.strip()
        value = load_yaml(raw, f"override {item!r}") if raw.strip() else None
        path = _resolve_key(key)
        if path is None:
            if key == "preset":
                raise ConfigError("the preset cannot be overridden with --set; use --preset")
            raise ConfigError(f"unknown key {key!r}{flat_key_hint(key)}; keys look like "
                              "train.epochs or epochs")
        parsed.append((path, value))
    return parsed


def _file_setting(data: dict[str, Any], section: str, name: str, path: Any) -> Any:
    """``data[section][name]`` of a config file, None where absent; an empty section is empty."""
    part = data.get(section)
    if part is None:
        return None
    if not isinstance(part, dict):
        raise ConfigError(f"config file {path}: {section} must be a mapping of settings (e.g. "
                          f"{section}: {{{name}: ...}}), got {part!r}")
    return part.get(name)


_SECTIONS = ("data", "model", "train")


def _resolve_key(key: str) -> str | None:
    """The dotted key of a setting: ``section.name`` (``model.gmm.fit`` in a prior's section) as
    given, a bare name (``epochs``, ``d_t``) found where it is the one setting of that name;
    None for an unknown bare name."""
    if "." in key:
        section = key.split(".", 1)[0]
        if section not in _SECTIONS:
            raise ConfigError(f"unknown key {key!r}: a key starts with one of "
                              f"{', '.join(s + '.' for s in _SECTIONS)} (e.g. train.epochs)")
        return key
    owners = [path for path in flat_settings(Config().to_dict())
              if path != "preset" and path.rsplit(".", 1)[-1] == key]
    if len(owners) > 1:
        raise ConfigError(f"key {key!r} is ambiguous; write one of {owners}")
    return owners[0] if owners else None


def _setting(path: str, value: Any) -> dict[str, Any]:
    """``model.gmm.fit``, ``"em"`` as ``{"model": {"gmm": {"fit": "em"}}}``."""
    for name in reversed(path.split(".")):
        value = {name: value}
    return value
