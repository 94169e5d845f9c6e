"""``experiments/manifest.yaml``: every table and figure of the paper as runs.

The manifest lists experiments: a notebook of ``experiments/`` over a grid of parameters (seeds
included), with its outputs. :meth:`Manifest.runs` expands them at one scale (``quick``,
``medium``, ``paper``) into runs (:class:`Run`, one papermill execution each) and composes the
config of every training run (:func:`compose_training`); :func:`select` picks runs by pattern.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ladder.config import Config, EvaluationCounts, load_config, preset_config

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS_DIR = REPO_ROOT / "experiments"
DEFAULT_MANIFEST = EXPERIMENTS_DIR / "manifest.yaml"
SCALES = ("quick", "medium", "paper")
MODEL_PRESETS = ("paper", "reference")
#: Settings a scale shortens; a reference-preset run gets the same as the paper's model there.
SIZE_KEYS = ("data.n_train", "data.n_test", "train.epochs", "train.batch_size")
#: The resources a scale may ask of SLURM for one run (its ``slurm`` section, ``--slurm KEY=V``),
#: by type; the names are submitit's (``slurm_partition`` for ``partition``, ...).
SLURM_RESOURCES: dict[str, type] = {
    "partition": str, "timeout_min": int, "cpus_per_task": int, "gpus_per_node": int,
    "mem_gb": float, "account": str, "qos": str, "constraint": str,
    "processes": int,  # training processes of one run under torchrun (DDP); one per GPU
}


class ManifestError(ValueError):
    """The manifest is malformed; the message names the experiment and the key."""


@dataclass
class Scale:
    """How big every run is at one scale (the ``scales`` section of the manifest)."""

    name: str
    description: str
    budget_minutes: float | None  # the promised wall time per run on a 2-core CPU (None: GPU)
    preset: str  # the config preset of the paper's model at this scale
    overrides: dict[str, list[str]]  # per dataset, on top of the preset
    evaluate: dict[str, Any]  # evaluate_run's sample counts
    #: one run's SLURM resources (``ladder reproduce --launcher slurm``; keys of
    #: :data:`SLURM_RESOURCES`)
    slurm: dict[str, Any] = field(default_factory=dict)


@dataclass
class Experiment:
    """One entry of the ``experiments`` section: a notebook over a grid of parameters."""

    name: str
    paper: str
    notebook: str
    outputs: list[str]
    id: str
    grid: dict[str, list[Any]]
    parameters: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    scale_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per scale, grid values that replace the grid's there (Fig 2: more seeds at the paper scale)
    scale_grid: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)
    requires: str | None = None
    trains: bool = True


@dataclass
class Run:
    """One papermill execution: ``runs/<scale>/<id>/``."""

    id: str
    scale: str
    notebook: str
    parameters: dict[str, Any]  # papermill parameters (the runner adds run_dir, threads, ...)
    outputs: tuple[str, ...]
    needs: tuple[str, ...] = ()
    requires: str | None = None
    #: experiment name -> that experiment's grid values for this run (several experiments can
    #: share a run: SM Table 2's d_t = 2 is Table 3's LaDDer run)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<scale>/<id>``, the run's folder under the runs root."""
        return f"{self.scale}/{self.id}"

    @property
    def experiments(self) -> list[str]:
        return list(self.labels)

    def directory(self, runs_root: str | os.PathLike) -> Path:
        return Path(runs_root) / self.scale / self.id

    def landed(self, results_root: str | os.PathLike) -> Path:
        """``results/<scale>/runs/<id>/``: the run's small text files, committed once it finished
        (``ladder report``), so that a fresh clone knows it is done and can tabulate it."""
        return Path(results_root) / self.scale / "runs" / self.id


@dataclass
class Manifest:
    """``experiments/manifest.yaml`` parsed; :meth:`runs` expands it at one scale."""

    path: Path
    seeds: list[int]
    scales: dict[str, Scale]
    experiments: dict[str, Experiment]

    @property
    def notebook_dir(self) -> Path:
        return self.path.parent

    def scale(self, name: str) -> Scale:
        """The scale called ``name``."""
        if name not in self.scales:
            raise ManifestError(f"unknown scale {name!r}; the manifest defines "
                                f"{', '.join(self.scales)}")
        return self.scales[name]

    def runs(self, scale: str) -> list[Run]:
        """Every run at ``scale``, in manifest order; runs that two experiments compose alike
        (same notebook, needs and parameters after :func:`compose_training` drops overrides that
        change nothing) are one run, named by the first experiment and labelled by all."""
        spec = self.scale(scale)
        by_key: dict[str, Run] = {}
        by_id: dict[str, Run] = {}
        for exp in self.experiments.values():
            for values in _grid(exp, self.seeds, scale):
                run = _expand(exp, values, spec)
                key = json.dumps([run.notebook, run.parameters, run.needs, run.requires],
                                 sort_keys=True)
                if key in by_key:
                    by_key[key].labels[exp.name] = values
                    continue
                if run.id in by_id:
                    raise ManifestError(
                        f"experiment {exp.name!r}: run id {run.id!r} is already used by "
                        f"{by_id[run.id].experiments[0]!r} with other parameters; make the id "
                        "template tell them apart")
                by_key[key] = by_id[run.id] = run
        for run in by_id.values():
            missing = [n for n in run.needs if n not in by_id]
            if missing:
                raise ManifestError(f"run {run.id!r} needs {missing}, which no experiment defines")
        return list(by_id.values())


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Read and check the manifest (default ``experiments/manifest.yaml`` of this checkout)."""
    path = Path(path) if path is not None else DEFAULT_MANIFEST
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist; pass --manifest, or run from a "
                            "checkout of the repository (experiments/manifest.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    for key in ("seeds", "scales", "experiments"):
        if key not in data:
            raise ManifestError(f"manifest {path} has no {key!r} section")
    scales = {}
    for name, s in data["scales"].items():
        try:
            scales[name] = Scale(name=name, description=" ".join(str(s["description"]).split()),
                                 budget_minutes=s.get("budget_minutes"), preset=s["preset"],
                                 overrides=dict(s.get("overrides") or {}),
                                 evaluate=dict(s.get("evaluate") or {}),
                                 slurm=dict(s.get("slurm") or {}))
        except (KeyError, TypeError) as err:
            raise ManifestError(f"scale {name!r}: missing or malformed {err}") from err
        counts = [f.name for f in dataclasses.fields(EvaluationCounts)]
        unknown_counts = sorted(set(scales[name].evaluate) - set(counts))
        if unknown_counts:
            raise ManifestError(f"scale {name!r}: evaluate names unknown sample counts "
                                f"{unknown_counts}; valid: {', '.join(counts)}")
        unknown_slurm = sorted(set(scales[name].slurm) - set(SLURM_RESOURCES))
        if unknown_slurm:
            raise ManifestError(f"scale {name!r}: slurm names unknown resources {unknown_slurm}; "
                                f"valid: {', '.join(SLURM_RESOURCES)}")
    known = {f for f in Experiment.__dataclass_fields__ if f != "name"}
    experiments = {}
    for name, e in data["experiments"].items():
        unknown = set(e) - known
        if unknown:
            raise ManifestError(f"experiment {name!r}: unknown keys {sorted(unknown)}; valid "
                                f"keys: {', '.join(sorted(known))}")
        try:
            exp = Experiment(name=name, **e)
        except TypeError as err:
            raise ManifestError(f"experiment {name!r}: {err}") from err
        if not (path.parent / exp.notebook).is_file():
            raise ManifestError(f"experiment {name!r}: notebook {exp.notebook} is not in "
                                f"{path.parent}")
        if exp.requires not in (None, "cuda"):
            raise ManifestError(f"experiment {name!r}: requires is 'cuda' or absent, got "
                                f"{exp.requires!r}")
        for key in ("scale_parameters", "scale_grid"):
            bad = set(getattr(exp, key)) - set(scales)
            if bad:
                raise ManifestError(f"experiment {name!r}: {key} for unknown scales "
                                    f"{sorted(bad)}")
        for scale_name, values in exp.scale_grid.items():
            unknown_axes = set(values) - set(exp.grid) - {"seed"}
            if unknown_axes:
                raise ManifestError(f"experiment {name!r}: scale_grid of {scale_name!r} names "
                                    f"{sorted(unknown_axes)}, which its grid lacks; a scale can "
                                    "change a grid's values, not add an axis (seed excepted)")
        experiments[name] = exp
    return Manifest(path=path, seeds=list(data["seeds"]), scales=scales, experiments=experiments)


def _grid(exp: Experiment, seeds: Sequence[int], scale: str) -> Iterable[dict[str, Any]]:
    grid = {**exp.grid, **exp.scale_grid.get(scale, {})}
    grid.setdefault("seed", list(seeds))
    names = list(grid)
    for combo in itertools.product(*(grid[n] for n in names)):
        yield dict(zip(names, combo, strict=True))


def _fill(template: Any, values: Mapping[str, Any]) -> Any:
    """``template`` with ``{name}`` filled from ``values``; exactly ``"{name}"`` keeps the value's
    type (an int stays an int)."""
    if not isinstance(template, str):
        return template
    if template.startswith("{") and template.endswith("}") and template[1:-1] in values:
        return values[template[1:-1]]
    return template.format(**values)


def _expand(exp: Experiment, values: dict[str, Any], scale: Scale) -> Run:
    fields = {**exp.parameters, **values}
    params = {k: _fill(v, fields) for k, v in exp.parameters.items()}
    params.update({k: v for k, v in values.items() if k in ("dataset", "prior", "seed")})
    params["scale"] = scale.name
    if exp.trains:
        dataset = params.get("dataset", "mnist")
        prior = params.get("prior", "ladder")
        model_preset = values.get("preset", exp.parameters.get("preset", "paper"))
        preset, overrides = compose_training(scale, dataset, prior, model_preset,
                                             [_fill(o, fields) for o in exp.overrides])
        params.update(preset=preset, overrides=override_dict(overrides), **scale.evaluate)
    # the experiment's own counts win over the scale's evaluation counts of the same name: Fig
    # 2's n_samples are importance samples per encoding, not the evaluation's generated images
    params.update(exp.scale_parameters.get(scale.name, {}))
    return Run(id=_fill(exp.id, fields), scale=scale.name, notebook=exp.notebook,
               parameters=params, outputs=tuple(exp.outputs),
               needs=tuple(_fill(n, fields) for n in exp.needs), requires=exp.requires,
               labels={exp.name: values})


def compose_training(
    scale: Scale, dataset: str, prior: str, model_preset: str, overrides: Sequence[str] = ()
) -> tuple[str, list[str]]:
    """The config preset and overrides of a training run: what its notebook passes to
    :func:`ladder.config.load_config`.

    ``model_preset`` ``"paper"``: the scale's preset and its per-dataset overrides. ``"reference"``:
    the reference preset, with the sizes of :data:`SIZE_KEYS` set to those of the paper's model at
    this scale wherever the scale shortens them (so both presets get the same data and epochs at
    ``quick`` and ``medium``, and their own at ``paper``) and ``train.warmup_epochs`` scaled with
    the epochs (at least 1 where the preset has a warm-up). Then ``overrides``, each kept only if it
    changes the config, so equal runs compose equal parameters.
    """
    if model_preset not in MODEL_PRESETS:
        raise ManifestError(f"model preset {model_preset!r}: choose {' or '.join(MODEL_PRESETS)}")
    size = list(scale.overrides.get(dataset, []))
    preset = scale.preset
    if model_preset == "reference":
        preset = "reference"
        at_scale = load_config(preset=scale.preset, dataset=dataset, prior=prior, overrides=size)
        paper = preset_config("paper", dataset, prior)
        reference = preset_config("reference", dataset, prior)
        size = []
        for key in SIZE_KEYS:
            value = _get(at_scale, key)
            if value != _get(paper, key):
                size.append(f"{key}={'null' if value is None else value}")
        epochs = at_scale.train.epochs
        if epochs != paper.train.epochs and reference.train.warmup_epochs:
            warmup = max(1, round(reference.train.warmup_epochs * epochs
                                  / reference.train.epochs))
            size.append(f"train.warmup_epochs={min(warmup, epochs)}")
    cfg = load_config(preset=preset, dataset=dataset, prior=prior, overrides=size)
    kept = list(size)
    for item in overrides:
        trial = load_config(preset=preset, dataset=dataset, prior=prior, overrides=[*kept, item])
        if trial.to_dict() != cfg.to_dict():
            kept.append(item)
            cfg = trial
    return preset, kept


def training_overrides(overrides: Mapping[str, Any], seed: int) -> list[str]:
    """The ``--set`` overrides of a training run's config: the manifest's (a run's ``overrides``
    parameter), then its seed, without progress bars. Its notebook and the SLURM launcher's
    data-parallel training compose the config from them alike."""
    return [*override_list(overrides), f"train.seed={seed}", "train.progress=false"]


def override_dict(overrides: Sequence[str]) -> dict[str, Any]:
    """``["section.key=value", ...]`` as ``{"section.key": value}`` with YAML-parsed values: how a
    notebook's ``overrides`` parameter holds them (papermill cannot read a parameter line with a
    second ``=`` in it)."""
    out = {}
    for item in overrides:
        key, _, raw = item.partition("=")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return out


def override_list(overrides: Mapping[str, Any]) -> list[str]:
    """The inverse of :func:`override_dict`: ``key=value`` strings for
    :func:`ladder.config.load_config` (values written as JSON, which YAML reads back)."""
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]


def _get(cfg: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def select(runs: Sequence[Run], only: str | Sequence[str] | None) -> list[Run]:
    """The runs matching ``only`` (comma-separated shell patterns, each matched against the run
    id, ``<scale>/<id>`` and the names of the experiments that use the run), plus every run they
    need (in manifest order). ``None`` or empty: all of them."""
    if not only:
        return list(runs)
    patterns = [p.strip() for p in (only.split(",") if isinstance(only, str) else only)
                if p.strip()]
    by_id = {r.id: r for r in runs}

    def hit(run: Run) -> bool:
        names = [run.id, run.name, *run.experiments]
        return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)

    chosen = {r.id for r in runs if hit(r)}
    stack = list(chosen)
    while stack:
        for need in by_id[stack.pop()].needs:
            if need not in chosen:
                chosen.add(need)
                stack.append(need)
    if not chosen:
        raise ManifestError(f"--only {','.join(patterns)} matches no run; `ladder reproduce "
                            "--list` shows the run ids and experiments")
    return [r for r in runs if r.id in chosen]

