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

Precedence, lowest first: dataclass defaults, preset, YAML file, ``--set key=value``.

YAML is read as YAML 1.1 (PyYAML) with YAML 1.2's floats: ``1e-3`` and ``-.5`` are numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

ACTIVATIONS = ("relu", "leaky_relu")  # hidden units of the data nets (ladder.nets)
OUTPUT_ACTIVATIONS = ("sigmoid", "relu", "linear", "leaky_relu", "relu_leaky_grad")

DATASETS = ("mnist", "fashion", "celeba")
PRIORS = ("normal", "gmm", "vamp", "hierarchical", "ladder")
PRIOR_VAE_PRIORS = ("hierarchical", "ladder")  # the priors with a t-space (model.d_t)
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


class ConfigError(ValueError):
    """An invalid configuration; the message lists the valid choices."""


@dataclass
class DataConfig:
    """Which images to train and test on (SM D)."""

    dataset: str = "mnist"  # mnist | fashion | celeba
    n_train: int | None = None  # a seeded subset of the training split; None: all of it
    n_test: int | None = None  # a seeded subset of the test split; None: all of it
    root: str | None = None  # data root; None: $LADDER_DATA, else a per-user cache folder


@dataclass
class ModelConfig:
    """Networks, likelihoods and prior (Sec 3, SM C and SM E)."""

    prior: str = "ladder"  # normal | gmm | vamp | hierarchical | ladder
    d_z: int = 16  # data VAE latent size (SM E.1)
    # prior VAE latent size, the innermost one when n_levels > 1: 8 (ours: SM E.1 says 2, SM
    # Table 2 finds 8 better, and so do we, results/stall/README.md)
    d_t: int = 8
    n_levels: int = 1  # stacked prior VAEs (Fig 1's "series of VAEs")
    # Data nets. SM E.1 says ReLU units and a sigmoid output; with the Laplace (L1) likelihood
    # they stall at the all-black image (book chapter 1), so every preset takes the reference
    # code's LeakyReLU(0.2) hidden units. Its ReLU output dies on some seeds (results/stall), so
    # the paper preset's output has the ReLU's values and a leaky gradient (CelebA: linear).
    activation: str = "leaky_relu"  # leaky_relu (reference code, slope 0.2) | relu (SM E.1)
    # relu_leaky_grad (ours) | relu (reference code) | sigmoid (SM E.1) | linear | leaky_relu
    output_activation: str = "relu_leaky_grad"
    output_slope: float = 0.05  # slope below 0 of leaky_relu, relu_leaky_grad (ours)
    std_floor: float = 1e-3  # posterior std = ReLU(FC) + floor (reference code; paper silent)
    prior_hidden: int = 512  # prior-VAE MLP width (SM E)
    prior_layers: int = 3  # prior-VAE MLP depth: 3 (SM E.1) | 5 (SM E.2, reference code)
    prior_slope: float = 0.2  # LeakyReLU slope of the prior-VAE MLPs (reference code)
    sigma_mode: str = "mae"  # Laplace scale: mae (its maximiser, SM C) | learned | batch_mae (ref.)
    sigma_init: float = 0.5
    # p(z|t) std: closed_form (its maximiser, as sigma_mode = mae; the paper does not say) |
    # learned (Adam on log s) | clamped to bounds (reference)
    prior_scale_mode: str = "closed_form"
    prior_scale_init: float = 0.1
    prior_scale_bounds: tuple[float, float] = (0.05, 0.1)
    n_mc: int = 100  # Monte Carlo samples for the prior term (reference code: 100)
    hyper_log_prob: str = "bound"  # log p(t) in Eq (7): bound (the paper) | plugin (reference)
    density_kind: str = "predictive"  # DP-GMM density for sampling-free uses: predictive | plugin
    n_components: int = 50  # GMM prior / VampPrior pseudo-inputs / DP-GMM truncation
    weight_concentration_prior: float = 0.1  # alpha_0 of the DP (reference code's value)
    dpgmm_priors: str = "paper"  # Normal-Wishart priors: paper (N(0, I), W(d_t, I)) | sklearn
    dpgmm_max_iter: int = 200  # CAVI iterations per refit (warm started)
    gmm_fit: str = "em"  # GMM prior: em (refit each epoch, reference) | gradient
    gmm_covariance_reg: float = 0.01  # added to EM covariances (reference code: 0.01 I)
    vamp_init: str = "data"  # pseudo-inputs: data (VampPrior paper) | random N(0, 1) (reference)
    vamp_constrain: str = "sigmoid"  # pseudo-inputs: sigmoid (kept in [0, 1]) | none (reference)
    # sample p(z) = int p(z|t) p(t) dt with p(z|t)'s noise (the paper's p(z)) | false: decoder
    # mean only (reference code)
    sample_noise: bool = True


@dataclass
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


@dataclass
class Config:
    """A whole run: data, model and training settings, and the preset they started from."""

    preset: str = "paper"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples), for YAML files and checkpoints."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build and validate a config from plain data; unknown keys and wrong types are refused."""
        cfg = cls()
        _update(cfg, data, "")
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Refuse impossible settings with a message naming the valid choices."""
        _validate(self)


# ----------------------------------------------------------------------------------------------
# Presets

_REFERENCE_MODEL = {
    "activation": "leaky_relu",
    "output_activation": "relu",
    "prior_layers": 5,
    "sigma_mode": "batch_mae",
    "prior_scale_mode": "clamped",
    "hyper_log_prob": "plugin",
    "density_kind": "plugin",
    "dpgmm_priors": "sklearn",
    "vamp_init": "random",
    "vamp_constrain": "none",
    "d_t": 2,
    "sample_noise": False,
}
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

PRESET_OVERRIDES: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "paper": {
        "mnist": {},
        "fashion": {},
        "celeba": {
            "model": {"d_z": 256, "d_t": 32, "prior_layers": 5, "output_activation": "linear"},
            "train": {"epochs": 75},
        },
    },
    "reference": {
        # codes/mnist_digit_config.json: code_size 8 (the shipped checkpoint has 16).
        "mnist": {
            "model": {**_REFERENCE_MODEL, "d_z": 8},
            "train": {**_REFERENCE_TRAIN, "epochs": 30, "warmup_epochs": 5},
        },
        "fashion": {
            "model": {**_REFERENCE_MODEL, "d_z": 16},
            "train": {**_REFERENCE_TRAIN, "epochs": 30, "warmup_epochs": 10},
        },
        "celeba": {
            "model": {**_REFERENCE_MODEL, "d_z": 256, "d_t": 2, "output_activation": "linear"},
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
            "model": {"d_z": 256, "d_t": 32, "prior_layers": 5, "output_activation": "linear"},
            "train": {"epochs": 1, "batch_size": 64},
        },
    },
}


def preset_config(preset: str = "paper", dataset: str = "mnist", prior: str = "ladder") -> Config:
    """The config of a preset for one dataset and prior."""
    dataset = canonical_dataset(dataset)
    _check_choice("preset", preset, PRESETS)
    cfg = Config(preset=preset)
    cfg.data.dataset = dataset
    cfg.model.prior = prior
    _update(cfg, PRESET_OVERRIDES[preset][dataset], "")
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
        values = [value for key, value in settings if key == (section, name)]
        return values[-1] if values else _file_setting(file_data, section, name, path)

    dataset = dataset or chosen("data", "dataset") or "mnist"
    prior = prior or chosen("model", "prior") or "ladder"
    cfg = preset_config(preset, dataset, prior)
    try:
        _update(cfg, file_data, "")
    except ConfigError as err:
        raise ConfigError(f"config file {path}: {err}") from None
    for (section, name), value in settings:
        _update(cfg, {section: {name: value}}, "")
    cfg.data.dataset = canonical_dataset(dataset)
    cfg.model.prior = prior
    cfg.validate()
    return cfg


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with a clear error for a missing, unreadable or
    malformed file or a key given twice."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give a YAML file, e.g. configs/*.yaml")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} cannot be read as text ({err}); give a YAML "
                          "file") from err
    data = _load_yaml(text, f"config file {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(data).__name__}")
    return data


def save_yaml(cfg: Config, path: str | Path) -> None:
    """Write a config as YAML (the run folder's ``config.yaml``)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def apply_overrides(cfg: Config, overrides: typing.Sequence[str]) -> None:
    """Apply ``section.key=value`` (or an unambiguous bare ``key=value``) strings in place.

    Values are parsed as YAML scalars, so ``epochs=3``, ``lr=1e-3``, ``grad_clip=null`` and
    ``betas=[0.9,0.95]`` work.
    """
    for (section, name), value in _parse_overrides(overrides):
        _update(cfg, {section: {name: value}}, "")


def canonical_dataset(name: str) -> str:
    """The dataset's canonical name (``fashion-mnist`` becomes ``fashion``)."""
    key = str(name).lower()
    key = DATASET_ALIASES.get(key, key)
    _check_choice("data.dataset", key, DATASETS)
    return key


# ----------------------------------------------------------------------------------------------
# Internals: YAML, typed, strict updates and validation


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats, which YAML 1.1 reads as strings: no dot
    (``1e-3``), an unsigned exponent (``1.0e3``) or a signed leading dot (``-.5``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)  # after the int and YAML 1.1 float resolvers, so integers stay integers


def _load_yaml(text: str, source: str) -> Any:
    """``text`` read by :class:`_Loader`, refusing a key given twice; ``source`` names the text
    (a file or an override) in the one-line error."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(node, source, "", set())
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {_yaml_problem(err)}") from err
    finally:
        loader.dispose()


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(err).split())


def _refuse_duplicate_keys(node: yaml.Node, source: str, path: str, seen: set[int]) -> None:
    """Refuse a mapping that names a key twice (PyYAML keeps the last); ``<<`` merges may repeat
    keys, as YAML allows."""
    if id(node) in seen:  # an alias: checked where its anchor is
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, source, path, seen)
    if not isinstance(node, yaml.MappingNode):
        return
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        inner = path
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in lines:
                raise ConfigError(f"{source}: key {path + key!r} is given twice (lines "
                                  f"{lines[key]} and {line}); keep one of them")
            lines[key] = line
            inner = f"{path}{key}."
        _refuse_duplicate_keys(value_node, source, inner, seen)


def _parse_overrides(overrides: typing.Sequence[str]) -> list[tuple[tuple[str, str], Any]]:
    """``section.key=value`` strings as ``((section, key), value)``, the values read as YAML."""
    parsed = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. train.epochs=3")
        key, raw = item.split("=", 1)
        key = key.strip()
        value = _load_yaml(raw, f"override {item!r}") if raw.strip() else None
        section, name = _resolve_key(key)
        if section is None:
            if name == "preset":
                raise ConfigError("the preset cannot be overridden with --set; use --preset")
            raise ConfigError(f"unknown key {key!r}; keys look like train.epochs or epochs")
        parsed.append(((section, name), value))
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


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_SECTIONS = ("data", "model", "train")


def _resolve_key(key: str) -> tuple[str | None, str]:
    if "." in key:
        section, name = key.split(".", 1)
        if section not in _SECTIONS:
            raise ConfigError(f"unknown key {key!r}: a key starts with one of "
                              f"{', '.join(s + '.' for s in _SECTIONS)} (e.g. train.epochs)")
        return section, name
    owners = [s.name for s in fields(Config) if s.name != "preset" and _has_field(s.name, key)]
    if len(owners) > 1:
        raise ConfigError(f"key {key!r} is ambiguous; write one of {[o + '.' + key for o in owners]}")
    return (owners[0] if owners else None), key


def _has_field(section: str, name: str) -> bool:
    return name in {f.name for f in fields(getattr(Config(), section))}


def _update(obj: Any, data: dict[str, Any], where: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{where[:-1] or 'config'} must be a mapping of settings, got {data!r}")
    known = {f.name: f for f in fields(obj)}
    hints = typing.get_type_hints(type(obj))
    for key, value in data.items():
        if key not in known:
            raise ConfigError(
                f"unknown key {f'{where}{key}'!r}; valid keys here: {', '.join(sorted(known))}"
            )
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _update(current, {} if value is None else value, f"{where}{key}.")  # empty: no change
        else:
            setattr(obj, key, _coerce(value, hints[key], where + key))


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{name} must be a list of {len(args)} numbers, got {value!r}")
        return tuple(_coerce(v, a, name) for v, a in zip(value, args, strict=True))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ConfigError(f"{name} is an integer of {len(str(abs(value)))} digits, too "
                                  "large for a float; give a smaller number") from None
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be a string, got {value!r}")
    raise ConfigError(f"{name}: unsupported type {hint}")  # pragma: no cover - schema bug


_CHOICES = {
    "model.prior": PRIORS,
    "model.activation": ACTIVATIONS,
    "model.output_activation": OUTPUT_ACTIVATIONS,
    "model.sigma_mode": ("mae", "learned", "batch_mae"),
    "model.prior_scale_mode": ("learned", "clamped", "closed_form"),
    "model.hyper_log_prob": ("bound", "plugin"),
    "model.density_kind": ("predictive", "plugin"),
    "model.dpgmm_priors": ("paper", "sklearn"),
    "model.gmm_fit": ("em", "gradient"),
    "model.vamp_init": ("random", "data"),
    "model.vamp_constrain": ("none", "sigmoid"),
    "train.bca": ("sequential", "joint"),
    "train.precision": ("fp32", "bf16", "auto"),
    "train.refit_source": ("epoch", "fresh"),
}


def _check_choice(name: str, value: Any, choices: typing.Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} = {value!r} is not valid; choose one of: {', '.join(choices)}")


def _positive(name: str, value: float | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")


def _validate(cfg: Config) -> None:
    _check_choice("preset", cfg.preset, PRESETS)
    cfg.data.dataset = canonical_dataset(cfg.data.dataset)
    for name, choices in _CHOICES.items():
        section, key = name.split(".")
        _check_choice(name, getattr(getattr(cfg, section), key), choices)
    _check_finite(cfg)
    m, t, d = cfg.model, cfg.train, cfg.data
    for name in ("d_z", "d_t", "n_levels", "prior_hidden", "prior_layers", "n_mc", "n_components",
                 "dpgmm_max_iter"):
        _positive(f"model.{name}", getattr(m, name))
    for name in ("std_floor", "sigma_init", "prior_scale_init", "weight_concentration_prior"):
        _positive(f"model.{name}", getattr(m, name))
    if m.gmm_covariance_reg < 0:
        raise ConfigError(f"model.gmm_covariance_reg must be >= 0, got {m.gmm_covariance_reg}")
    if m.prior in PRIOR_VAE_PRIORS and m.d_t > m.d_z:
        raise ConfigError(
            f"model.d_t = {m.d_t} exceeds model.d_z = {m.d_z}: the prior VAE embeds z in a "
            "lower-dimensional t-space, so choose d_t <= d_z"
        )
    if m.n_levels > 1 and m.d_z // m.d_t < 1:
        raise ConfigError("model.n_levels > 1 needs room between d_z and d_t")
    lo, hi = m.prior_scale_bounds
    if not 0 < lo <= hi:
        raise ConfigError(f"model.prior_scale_bounds must satisfy 0 < low <= high, got {lo, hi}")
    if not 0 <= m.prior_slope < 1:
        raise ConfigError(f"model.prior_slope must lie in [0, 1), got {m.prior_slope}")
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
    if m.prior == "gmm" and m.gmm_fit == "em" and t.seed > MAX_SKLEARN_SEED:
        raise ConfigError(f"train.seed = {t.seed} is too large for the GMM prior's EM refit "
                          f"(scikit-learn takes seeds up to {MAX_SKLEARN_SEED}); use a smaller "
                          "train.seed or model.gmm_fit = gradient")
    device = t.device
    if not (device in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:[0-9]+", device)):
        raise ConfigError(f"train.device = {device!r}; choose auto, cpu, cuda, cuda:N or mps")
    _positive("data.n_train", d.n_train, allow_none=True)
    _positive("data.n_test", d.n_test, allow_none=True)
    _check_sizes(cfg)


def _check_finite(cfg: Config) -> None:
    """Refuse NaN and infinity in every numeric setting (and inside the pairs)."""
    for section in _SECTIONS:
        part = getattr(cfg, section)
        for f in fields(part):
            value = getattr(part, f.name)
            items = value if isinstance(value, (list, tuple)) else (value,)
            if any(isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral)
                   and not math.isfinite(v) for v in items):
                default = _plain(f.default if f.default_factory is dataclasses.MISSING
                                 else f.default_factory())
                raise ConfigError(f"{section}.{f.name} = {_plain(value)} is not finite; give "
                                  f"finite numbers, e.g. {section}.{f.name}={json.dumps(default)}")


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
    if n is not None and m.prior == "vamp" and m.vamp_init == "data" and n < m.n_components:
        raise ConfigError(f"model.vamp_init = data starts model.n_components = {m.n_components} "
                          f"pseudo-inputs at distinct training images, but {images} has fewer; "
                          f"lower model.n_components{' or raise ' + key if key else ''}")
    if m.prior == "gmm" and m.gmm_fit == "em":
        need = max(2, m.n_components)
        what = f"the GMM prior's EM refit of model.n_components = {m.n_components} components"
        other = "lower model.n_components or set model.gmm_fit = gradient"
    elif m.prior == "ladder" and m.dpgmm_priors == "sklearn":
        need = m.d_t + 1  # a non-singular covariance of the encodings in t-space
        what = f"model.dpgmm_priors = sklearn (a covariance prior from the encodings, d_t = {m.d_t})"
        other = "set model.dpgmm_priors = paper"
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
