"""Every table and figure of the paper as runs: the manifest, ``ladder reproduce`` and
``ladder report``.

``experiments/manifest.yaml`` lists every run: which notebook of ``experiments/``, its parameters,
its seed and its scale (``quick``, ``medium``, ``paper``). :func:`reproduce` executes the runs that
are missing through the papermill Python API, one papermill execution per run, into
``runs/<scale>/<id>/``: the executed notebook, ``log.txt`` (the kernel's output), the run folder
of :mod:`ladder.train` (``config.yaml``, ``metrics.jsonl``, ``checkpoint.pt``), the notebook's
results (``evaluation.json``, figures) and, written last, ``done.json``. A run folder with a
``done.json`` is never redone; one without it was interrupted and is executed again, and its
notebook resumes training from the checkpoint (:func:`train_run`) and keeps a current evaluation
(:func:`evaluate_once`). :func:`report` aggregates the finished runs of a scale into tables
(Markdown and CSV, mean ± std over seeds, each row citing its runs) under ``results/<scale>/``.

The paper's own numbers, shown beside ours, are in :data:`PAPER_VALUES` (one place, each with the
table it comes from).
"""

from __future__ import annotations

import concurrent.futures as futures
import csv
import datetime as _dt
import fnmatch
import io
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ladder.checkpoint import atomic_write
from ladder.config import Config, load_config, preset_config

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS_DIR = REPO_ROOT / "experiments"
DEFAULT_MANIFEST = EXPERIMENTS_DIR / "manifest.yaml"
SCALES = ("quick", "medium", "paper")
MODEL_PRESETS = ("paper", "reference")
DONE_FILE = "done.json"
LOG_FILE = "log.txt"
ATTEMPTS_FILE = "attempts.jsonl"  # one line per execution: an interrupted run is resumed
#: Settings a scale shortens; a reference-preset run gets the same as the paper's model there.
SIZE_KEYS = ("data.n_train", "data.n_test", "train.epochs", "train.batch_size")
#: Parameters reproduce fills in itself when the notebook declares them.
AUTO_PARAMETERS = ("run_dir", "threads", "model_runs")


class ManifestError(ValueError):
    """The manifest is malformed; the message names the experiment and the key."""


# ----------------------------------------------------------------------------------------------
# The manifest


@dataclass
class Scale:
    """How big every run is at one scale (the ``scales`` section of the manifest)."""

    name: str
    description: str
    budget_minutes: float | None  # the promised wall time per run on a 2-core CPU (None: GPU)
    preset: str  # the config preset of the paper's model at this scale
    overrides: dict[str, list[str]]  # per dataset, on top of the preset
    evaluate: dict[str, Any]  # evaluate_run's sample counts


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
    needs: list[str] = field(default_factory=list)
    requires: str | None = None
    trains: bool = True


@dataclass
class Run:
    """One papermill execution: ``runs/<scale>/<id>/``."""

    id: str
    scale: str
    notebook: str
    parameters: dict[str, Any]  # papermill parameters (reproduce adds run_dir, threads, ...)
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

    def runs(self, scale: str) -> list[Run]:
        """Every run at ``scale``, in manifest order; runs that two experiments compose alike
        (same notebook, needs and parameters after :func:`compose_training` drops overrides that
        change nothing) are one run, named by the first experiment and labelled by all."""
        if scale not in self.scales:
            raise ManifestError(f"unknown scale {scale!r}; the manifest defines "
                                f"{', '.join(self.scales)}")
        spec = self.scales[scale]
        by_key: dict[str, Run] = {}
        by_id: dict[str, Run] = {}
        for exp in self.experiments.values():
            for values in _grid(exp, self.seeds):
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
                                 evaluate=dict(s.get("evaluate") or {}))
        except (KeyError, TypeError) as err:
            raise ManifestError(f"scale {name!r}: missing or malformed {err}") from err
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
        bad = set(exp.scale_parameters) - set(scales)
        if bad:
            raise ManifestError(f"experiment {name!r}: scale_parameters for unknown scales "
                                f"{sorted(bad)}")
        experiments[name] = exp
    return Manifest(path=path, seeds=list(data["seeds"]), scales=scales, experiments=experiments)


def _grid(exp: Experiment, seeds: Sequence[int]) -> Iterable[dict[str, Any]]:
    grid = dict(exp.grid)
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
    params.update(exp.scale_parameters.get(scale.name, {}))
    params["scale"] = scale.name
    if exp.trains:
        dataset = params.get("dataset", "mnist")
        prior = params.get("prior", "ladder")
        model_preset = values.get("preset", exp.parameters.get("preset", "paper"))
        preset, overrides = compose_training(scale, dataset, prior, model_preset,
                                             [_fill(o, fields) for o in exp.overrides])
        params.update(preset=preset, overrides=override_dict(overrides), **scale.evaluate)
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


# ----------------------------------------------------------------------------------------------
# Inside a notebook: resumable training, evaluation kept current


def train_run(cfg: Config, run_dir: str | os.PathLike) -> Any:
    """Train ``cfg`` in ``run_dir``, or resume it there from its checkpoint (an interrupted run);
    returns the :class:`ladder.train.Trainer` after its last epoch. A checkpoint made with
    another config is refused."""
    from ladder.checkpoint import load_checkpoint
    from ladder.train import CHECKPOINT, Trainer

    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT).exists():
        # read through Config, so a checkpoint from before a key existed holds its default
        saved = Config.from_dict(
            load_checkpoint(run_dir / CHECKPOINT, map_location="cpu")["config"]).to_dict()
        if saved != cfg.to_dict():
            diff = sorted(f"{s}.{k}" for s, section in cfg.to_dict().items()
                          if isinstance(section, dict) for k, v in section.items()
                          if saved.get(s, {}).get(k) != v)
            raise ValueError(f"{run_dir} holds a run with another config (differs in "
                             f"{', '.join(diff) or 'preset'}); delete the folder to start over")
        trainer = Trainer.resume(run_dir)
        print(f"resuming {run_dir.name} after epoch {trainer.epoch} of {cfg.train.epochs}")
    else:
        trainer = Trainer(cfg, run_dir)
    trainer.fit()
    return trainer


def evaluate_once(run_dir: str | os.PathLike, **counts: Any) -> dict[str, Any]:
    """:func:`ladder.evaluate.evaluate_run` unless ``run_dir`` already holds an evaluation of its
    current checkpoint with the same sample counts, every one of
    :data:`ladder.evaluate.SAMPLE_COUNTS` given (a resumed notebook does not redo it; ``None``, "the
    whole test split", is not compared)."""
    from ladder.checkpoint import file_sha256
    from ladder.evaluate import EVALUATION_FILE, SAMPLE_COUNTS, evaluate_run
    from ladder.train import CHECKPOINT

    run_dir = Path(run_dir)
    path = run_dir / EVALUATION_FILE
    if path.exists():
        old = json.loads(path.read_text())
        prov = old.get("provenance", {})
        same = prov.get("checkpoint", {}).get("sha256") == file_sha256(run_dir / CHECKPOINT)
        have = prov.get("sample_counts", {})
        same = same and all(have.get(k) == v for k, v in counts.items()
                            if k in SAMPLE_COUNTS and v is not None)
        if same:
            print(f"{path.name} is current (checkpoint {prov['checkpoint']['sha256'][:12]})")
            return old
    return evaluate_run(run_dir, **counts)


# ----------------------------------------------------------------------------------------------
# Executing runs


def run_status(run: Run, runs_root: str | os.PathLike) -> str:
    """``"done"`` (``done.json`` written), ``"interrupted"`` (a folder without it) or ``"new"``."""
    folder = run.directory(runs_root)
    if (folder / DONE_FILE).is_file():
        return "done"
    return "interrupted" if folder.exists() else "new"


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def device_description() -> str:
    """The machine the runs execute on, for ``done.json`` and the tables."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def git_commit(root: Path = REPO_ROOT) -> str:
    """The checkout's short commit, ``+dirty`` when it has uncommitted changes; ``unknown``
    outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty.strip() else "")


def notebook_parameters(notebook: Path) -> set[str]:
    """The parameters a notebook declares in its ``parameters`` cell."""
    from papermill.inspection import inspect_notebook

    return set(inspect_notebook(str(notebook)))


def run_parameters(run: Run, run_dir: Path, threads: int, runs_root: Path,
                   declared: set[str]) -> dict[str, Any]:
    """What papermill injects: the run's parameters and those of :data:`AUTO_PARAMETERS` the
    notebook declares. A manifest parameter the notebook does not declare is an error."""
    extra = {"run_dir": str(run_dir.resolve()), "threads": threads,
             "model_runs": [str((Path(runs_root) / run.scale / n).resolve()) for n in run.needs]}
    params = {k: v for k, v in run.parameters.items() if k in declared}
    unknown = [k for k in run.parameters if k not in declared and k not in _OPTIONAL]
    if unknown:
        raise ManifestError(f"{run.notebook} declares no parameters {unknown} (run {run.id}); "
                            "add them to its `parameters` cell or drop them from the manifest")
    params.update({k: v for k, v in extra.items() if k in declared})
    return params


#: Parameters every training run is given, which a notebook may leave out (Fig 2 and Fig 4 do not
#: evaluate).
_OPTIONAL = ("scale", "n_test", "n_samples", "n_is", "n_nll", "n_inner")

Executor = Callable[[Path, Path, dict[str, Any], int, Path], None]


def papermill_executor(notebook: Path, run_dir: Path, parameters: dict[str, Any], threads: int,
                       log: Path) -> None:
    """Execute ``notebook`` into ``run_dir`` with papermill in a child process whose torch and
    BLAS use ``threads`` threads; the kernel's output goes to ``log``. Raises
    :class:`RuntimeError` naming the log when the notebook fails."""
    spec = {"input": str(notebook), "output": str(run_dir / notebook.name),
            "parameters": parameters, "cwd": str(run_dir), "log": str(log)}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONHASHSEED=os.environ.get("PYTHONHASHSEED", "0"), MPLBACKEND="Agg")
    code = ("import json, sys; from ladder.reproduce import _papermill_child; "
            "sys.exit(_papermill_child(json.loads(sys.argv[1])))")
    with open(log, "a") as handle:
        rc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], env=env,
                            stdout=handle, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise RuntimeError(f"{notebook.name} failed (exit {rc}); see {log}")


def _papermill_child(spec: dict[str, Any]) -> int:
    import papermill as pm

    with open(spec["log"], "a", buffering=1) as log:
        try:
            pm.execute_notebook(spec["input"], spec["output"], parameters=spec["parameters"],
                                kernel_name="python3", cwd=spec["cwd"], progress_bar=False,
                                log_output=False, stdout_file=log, stderr_file=log)
        except pm.PapermillExecutionError as err:
            print(f"papermill: {err}", file=log)
            return 1
    return 0


@dataclass
class Summary:
    """What :func:`reproduce` did."""

    scale: str
    selected: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def reproduce(
    scale: str = "quick",
    only: str | Sequence[str] | None = None,
    jobs: int = 1,
    runs_root: str | os.PathLike = "runs",
    manifest: Manifest | str | os.PathLike | None = None,
    executor: Executor | None = None,
    cuda: bool | None = None,
    echo: Callable[[str], None] = print,
    classifiers: Callable[[set[str], Callable[[str], None]], None] | None = None,
) -> Summary:
    """Execute the runs of ``scale`` (those matching ``only``, see :func:`select`) that are not
    finished, ``jobs`` at a time, each with ``cores // jobs`` threads (at most
    ``$OMP_NUM_THREADS`` where that is set); a run starts once the runs
    it needs are done. Runs that require CUDA are skipped, with the reason, when ``cuda`` (default:
    ``torch.cuda.is_available()``) is false. Progress goes to ``echo`` and to
    ``runs/<scale>/reproduce.log``; each run's own output to its ``log.txt``.

    Before the first run, ``classifiers`` (default with the papermill executor:
    :func:`ensure_classifiers`) makes sure the evaluation classifier of every dataset the runs
    score exists, so that a fresh clone's batch does not skip the Fréchet distances."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    started = time.perf_counter()
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    if classifiers is None and executor is None:
        classifiers = ensure_classifiers
    executor = executor or papermill_executor
    cuda = cuda_available() if cuda is None else cuda
    runs_root = Path(runs_root)
    runs = select(manifest.runs(scale), only)
    summary = Summary(scale, selected=[r.id for r in runs])
    (runs_root / scale).mkdir(parents=True, exist_ok=True)
    batch_log = open(runs_root / scale / "reproduce.log", "a", buffering=1)  # noqa: SIM115

    def say(line: str) -> None:
        echo(line)
        batch_log.write(f"{_now()} {line}\n")

    threads = max(1, _cores() // jobs)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # a shared machine's cap
        threads = max(1, min(threads, int(os.environ["OMP_NUM_THREADS"])))
    spec = manifest.scales[scale]
    pending: list[Run] = []
    for run in runs:
        status = run_status(run, runs_root)
        if status == "done":
            summary.already_done.append(run.id)
        elif run.requires == "cuda" and not cuda:
            summary.skipped[run.id] = (
                f"needs a CUDA GPU ({', '.join(run.experiments)}: `requires: cuda` in the "
                "manifest); torch.cuda.is_available() is False on this machine")
        else:
            pending.append(run)
    say(f"reproduce {scale}: {len(runs)} runs selected, {len(summary.already_done)} already done, "
        f"{len(pending)} to run, {len(summary.skipped)} skipped; {jobs} job(s) x {threads} "
        f"thread(s); runs in {runs_root / scale}")
    for run_id, reason in summary.skipped.items():
        say(f"skip {scale}/{run_id}: {reason}")
    if scale == "paper" and not cuda and pending:
        say("note: the paper scale is meant for a GPU; on this CPU a run takes hours")
    if classifiers is not None and pending:
        classifiers({str(r.parameters.get("dataset")) for r in pending
                     if r.notebook in CLASSIFIER_NOTEBOOKS}, say)

    total = len(pending)
    done_ids = set(summary.already_done)
    in_flight: dict[futures.Future, tuple[Run, float]] = {}
    counter = itertools.count(1)
    try:
        with futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            while pending or in_flight:
                for run in list(pending):
                    blocked = [n for n in run.needs
                               if n in summary.failed or n in summary.skipped]
                    if blocked:
                        pending.remove(run)
                        summary.skipped[run.id] = f"needs {', '.join(blocked)}, which did not run"
                        say(f"skip {run.name}: {summary.skipped[run.id]}")
                    elif len(in_flight) < jobs and all(n in done_ids for n in run.needs):
                        pending.remove(run)
                        folder = run.directory(runs_root)
                        resumed = folder.exists()
                        if resumed:
                            summary.resumed.append(run.id)
                        say(f"[{next(counter)}/{total}] {'resume' if resumed else 'start '} "
                            f"{run.name} ({', '.join(run.experiments)})")
                        job = pool.submit(_execute, run, manifest, runs_root, executor, threads,
                                          spec, jobs)
                        in_flight[job] = (run, time.perf_counter())
                if not in_flight:
                    if pending:  # only runs whose needs can never finish
                        for run in pending:
                            summary.skipped[run.id] = "its needs were not run"
                        pending.clear()
                    break
                finished, _ = futures.wait(in_flight, return_when=futures.FIRST_COMPLETED)
                for job in finished:
                    run, t0 = in_flight.pop(job)
                    seconds = time.perf_counter() - t0
                    try:
                        job.result()
                    except Exception as err:  # noqa: BLE001 - reported, the batch goes on
                        summary.failed[run.id] = str(err)
                        say(f"FAILED {run.name} after {_duration(seconds)}: {err}")
                        continue
                    done_ids.add(run.id)
                    summary.ran.append(run.id)
                    over = ""
                    if spec.budget_minutes and seconds > 60 * spec.budget_minutes:
                        over = f" (over the {scale} budget of {spec.budget_minutes} min)"
                    say(f"done   {run.name} in {_duration(seconds)}{over}")
    except KeyboardInterrupt:
        say(f"interrupted: {len(in_flight) + len(pending)} run(s) unfinished; the same command "
            "resumes them")
        raise
    finally:
        summary.seconds = time.perf_counter() - started
        batch_log.close()
    tail = f"; failed: {', '.join(summary.failed)}" if summary.failed else ""
    echo(f"reproduce {scale}: {len(summary.ran)} ran ({len(summary.resumed)} resumed), "
         f"{len(summary.already_done)} were done, {len(summary.skipped)} skipped, "
         f"{len(summary.failed)} failed in {_duration(summary.seconds)}{tail}")
    return summary


CLASSIFIER_NOTEBOOKS = ("train_evaluate.ipynb", "fig5_slp.ipynb")
"""The notebooks that score images with the evaluation classifier (FCD, SLP frame realism)."""


def ensure_classifiers(datasets: set[str], say: Callable[[str], None] = print,
                       root: str | os.PathLike | None = None) -> None:
    """Train and cache the evaluation classifier of each of ``datasets`` that has none
    (``ladder train-classifier``'s defaults); datasets without one (CelebA) are left alone."""
    from ladder.classifier import ClassifierNotFoundError, load_classifier, train_and_cache
    from ladder.evaluate import CLASSIFIER_DATASETS

    for dataset in sorted(datasets & set(CLASSIFIER_DATASETS)):
        try:
            load_classifier(dataset)
            continue
        except ClassifierNotFoundError:
            pass
        say(f"no evaluation classifier cached for {dataset}: training one first "
            "(as `ladder train-classifier`)")
        path, acc = train_and_cache(dataset, root=root, progress=False)
        say(f"evaluation classifier for {dataset}: test accuracy {acc:.4f}, saved to {path}")


def _execute(run: Run, manifest: Manifest, runs_root: Path, executor: Executor, threads: int,
             scale: Scale, jobs: int) -> None:
    """One run: execute its notebook, check its outputs, then write ``done.json`` (last)."""
    folder = run.directory(runs_root)
    folder.mkdir(parents=True, exist_ok=True)
    notebook = manifest.notebook_dir / run.notebook
    params = run_parameters(run, folder, threads, runs_root, notebook_parameters(notebook))
    log = folder / LOG_FILE
    started = _dt.datetime.now(_dt.timezone.utc)
    with open(log, "a") as handle:
        handle.write(f"== {started.isoformat(timespec='seconds')} {run.name}: {run.notebook} "
                     f"with {json.dumps(params)}\n")
    clock = time.perf_counter()
    try:
        executor(notebook, folder, params, threads, log)
    finally:  # every attempt's time counts, an interrupted or failed one too
        wall = time.perf_counter() - clock
        with open(folder / ATTEMPTS_FILE, "a") as handle:
            handle.write(json.dumps({"started": started.isoformat(timespec="seconds"),
                                     "wall_time_s": round(wall, 1)}) + "\n")
    missing = [o for o in run.outputs if not (folder / o).exists()]
    if missing:
        raise RuntimeError(f"{run.notebook} finished without writing {missing}; see {log}")
    attempts = [json.loads(line) for line in (folder / ATTEMPTS_FILE).read_text().splitlines()]
    done = {
        "id": run.id, "scale": run.scale, "experiments": run.labels, "notebook": run.notebook,
        "parameters": params, "outputs": list(run.outputs),
        "started": started.isoformat(timespec="seconds"),
        "wall_time_s": round(sum(a["wall_time_s"] for a in attempts), 1),
        "attempts": len(attempts), "threads": threads, "jobs": jobs,
        "device": device_description(), "commit": git_commit(),
        "python": platform.python_version(),
    }
    atomic_write(folder / DONE_FILE, json.dumps(done, indent=2) + "\n")
    with open(log, "a") as handle:
        handle.write(f"== done in {_duration(wall)}\n")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def list_runs(scale: str, only: str | None = None, runs_root: str | os.PathLike = "runs",
              manifest: Manifest | None = None) -> str:
    """A table of the runs of ``scale``: id, experiments, status and the key parameters."""
    manifest = manifest or load_manifest()
    runs = select(manifest.runs(scale), only)
    lines = [f"{len(runs)} runs at scale {scale} ({manifest.path}):"]
    for run in runs:
        status = run_status(run, runs_root)
        extra = " requires cuda" if run.requires else ""
        extra += f" needs {','.join(run.needs)}" if run.needs else ""
        overrides = " ".join(override_list(run.parameters.get("overrides", {})))
        lines.append(f"  {status:11s} {run.name:42s} {','.join(run.experiments):28s} "
                     f"{run.notebook} {overrides}{extra}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The paper's numbers (the only place they are written down)

_PRIOR_ORDER = ("normal", "vamp", "gmm", "hierarchical", "ladder")  # the paper's column order


def _row(*cells: str) -> dict[str, str]:
    return dict(zip(_PRIOR_ORDER, cells, strict=True))


#: The published numbers, as printed (mean ± std of 5 repeats), by table, quantity and dataset,
#: then prior (columns Normal, VampPrior, GMM, Hierarchical, Ours) or d_t.
PAPER_VALUES: dict[str, dict[str, dict[str, dict[Any, str]]]] = {
    # Table 3 (main text): ELBO and per-pixel reconstruction error x0.01.
    "table3": {
        "elbo": {
            "mnist": _row("1528.6 ± 21.3", "1476.3 ± 19.4", "1558.2 ± 24.4", "1534.9 ± 19.8",
                          "1562.5 ± 25.1"),
            "fashion": _row("1078.4 ± 23.4", "1069.6 ± 22.1", "1133.3 ± 23.9", "1152.9 ± 24.9",
                            "1174.0 ± 29.7"),
            "celeba": _row("55564.8 ± 1751.3", "56463.4 ± 1683.9", "54162.5 ± 1716.5",
                           "56176.2 ± 1763.9", "58596.1 ± 1815.3"),
        },
        "pixel_error": {
            "mnist": _row("2.3 ± 0.06", "2.5 ± 0.06", "2.3 ± 0.05", "2.4 ± 0.06", "2.2 ± 0.06"),
            "fashion": _row("4.3 ± 0.12", "4.1 ± 0.11", "4.0 ± 0.11", "3.7 ± 0.11", "3.6 ± 0.11"),
            "celeba": _row("5.8 ± 0.21", "5.9 ± 0.25", "5.9 ± 0.20", "5.7 ± 0.17", "5.5 ± 0.18"),
        },
    },
    # Table 2 (main text): cross-entropy E_q(z)[log p(z)].
    "table2": {
        "cross_entropy": {
            "mnist": _row("-19.0 ± 0.1", "-16.2 ± 0.1", "-8.4 ± 0.9", "-17.5 ± 0.1", "-12.3 ± 0.1"),
            "fashion": _row("-52.5 ± 0.6", "-60.8 ± 1.0", "-45.2 ± 0.8", "-63.8 ± 0.9",
                            "-32.8 ± 0.7"),
            "celeba": _row("-351.4 ± 4.3", "-380.7 ± 3.4", "-290.6 ± 54.8", "-358.0 ± 7.3",
                           "-71.9 ± 2.1"),
        },
    },
    # Table 1 (main text): CelebA FID of generated and reconstructed samples.
    "table1": {
        "generated": {"celeba": _row("250.3 ± 1.5", "182.9 ± 1.2", "140.4 ± 0.9", "143.8 ± 1.0",
                                     "132.7 ± 0.8")},
        "reconstructed": {"celeba": _row("100.3 ± 0.6", "95.5 ± 0.7", "102.3 ± 0.5",
                                         "99.7 ± 0.6", "95.3 ± 0.5")},
        "difference": {"celeba": _row("150.0 ± 2.1", "87.4 ± 1.9", "38.1 ± 1.4", "44.1 ± 1.6",
                                      "37.4 ± 1.3")},
        "real": {"celeba": {"all": "5.9 ± 0.5"}},  # SM Table 2's "Real image" column
    },
    # SM Table 1: FID on MNIST and Fashion-MNIST ("Real image": train against test).
    "sm_table1": {
        "generated": {
            "mnist": _row("401.4 ± 4.4", "47.2 ± 3.6", "2.3 ± 0.5", "52.4 ± 4.7", "6.4 ± 1.3"),
            "fashion": _row("266.1 ± 2.4", "23.6 ± 1.2", "6.0 ± 1.0", "243.8 ± 2.9", "5.2 ± 0.9"),
        },
        "reconstructed": {
            "mnist": _row("2.1 ± 0.8", "1.4 ± 0.4", "2.5 ± 0.8", "5.4 ± 1.4", "2.4 ± 0.4"),
            "fashion": _row("3.2 ± 0.4", "3.0 ± 0.2", "2.9 ± 0.4", "1.8 ± 0.2", "1.0 ± 0.4"),
        },
        "difference": {
            "mnist": _row("399.3 ± 5.2", "45.8 ± 4.0", "-0.2 ± 1.3", "47.0 ± 3.3", "4.0 ± 1.7"),
            "fashion": _row("262.9 ± 2.8", "20.6 ± 1.4", "3.1 ± 1.4", "242.0 ± 3.1", "4.2 ± 1.3"),
        },
        "real": {"mnist": {"all": "2.3 ± 0.4"}, "fashion": {"all": "0.4 ± 0.1"}},
    },
    # SM Table 2: FID of LaDDer's generated samples against the prior VAE's latent size d_t.
    "sm_table2": {
        "generated": {
            "mnist": {2: "58.7 ± 1.8", 4: "35.1 ± 8.1", 8: "6.4 ± 1.3", 16: "6.9 ± 0.8"},
            "fashion": {2: "25.3 ± 1.6", 4: "9.9 ± 1.2", 8: "5.5 ± 0.7", 16: "5.2 ± 0.9"},
            "celeba": {2: "175.7 ± 0.5", 4: "148.4 ± 0.6", 8: "138.4 ± 0.5", 16: "133.5 ± 0.6",
                       32: "132.7 ± 0.5"},
        },
    },
}


def paper_value(table: str, quantity: str, dataset: str, key: Any) -> str:
    """The paper's printed value, or ``""`` where the paper has none."""
    return PAPER_VALUES.get(table, {}).get(quantity, {}).get(dataset, {}).get(key, "")


# ----------------------------------------------------------------------------------------------
# ladder report


@dataclass
class Column:
    """One aggregated quantity: where it is in a run's result file, how to print it, and which
    paper value goes beside it (``paper = (table, quantity)``, looked up by dataset and the row's
    last label)."""

    header: str
    path: tuple[str, ...]
    digits: int = 1
    paper: tuple[str, str] | None = None


@dataclass
class TableSpec:
    """One file pair ``results/<scale>/<name>.{md,csv}``: rows grouped by ``rows`` labels over the
    runs of ``experiments``, mean ± std over seeds per :class:`Column`."""

    name: str
    title: str
    experiments: tuple[str, ...]
    rows: tuple[str, ...]
    columns: tuple[Column, ...]
    note: str = ""


_FCD_NOTE = ("Ours: Fréchet distance on the project's LeNet classifier features (FCD; "
             "`ladder.features`), not the Inception FID of the paper, whose feature network the "
             "paper does not name for MNIST; compare the ordering of the priors, not the values.")
_SCALE_NOTE = ("The paper's ELBO is on its own scale (reference-code-notes section 6); compare "
               "the ordering of the priors, and our numbers across scales.")

TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "table3_elbo", "Table 3: test ELBO (higher is better) and per-pixel reconstruction "
        "error x0.01 (lower is better)", ("tables", "celeba"), ("dataset", "prior"),
        (Column("ELBO", ("metrics", "elbo", "elbo"), 1, ("table3", "elbo")),
         Column("pixel error x0.01", ("metrics", "elbo", "pixel_error_x100"), 2,
                ("table3", "pixel_error")),
         Column("-log p(x) IS", ("metrics", "log_likelihood", "nll"), 1)),
        _SCALE_NOTE + " Beyond the paper: -log p(x) by importance sampling (lower is better; "
        "at most -ELBO up to Monte Carlo error), on the evaluation's n_nll test images."),
    TableSpec(
        "table2_cross_entropy", "Table 2: cross-entropy E_q(z)[log p(z)] between the aggregate "
        "posterior and the prior (higher is better)", ("tables", "celeba"), ("dataset", "prior"),
        (Column("E[log p(z)] prior's estimate", ("metrics", "cross_entropy", "bound"), 2,
                ("table2", "cross_entropy")),
         Column("E[log p(z)] importance sampled",
                ("metrics", "cross_entropy", "importance_sampled"), 2),
         Column("KL(q(z)||p(z))", ("metrics", "cross_entropy", "kl"), 2)),
        "The prior's own estimate is what the paper reports (for the hierarchical and LaDDer "
        "priors the bound L(z) of Eq (7), as the reference code logs it); the importance-sampled "
        "log p(z) is the tighter estimate. Both move with the latent's scale (z -> c z adds "
        "-d log c), so a prior that shrinks its latent gains nats; KL(q(z)||p(z)) (lower is "
        "better) does not. q(z) is the aggregate posterior of the test images, each code's own "
        "posterior included: an upper bound in expectation on the population's KL, loose where "
        "posteriors are narrow (`ladder.aggregate`; evaluation.json also holds the leave-one-out "
        "lower bound, `kl_loo`, which in 16 dimensions is too loose to tabulate). Blank: an "
        "evaluation written before KL was reported."),
    TableSpec(
        "table1_celeba_fid", "Table 1: CelebA FID of generated and reconstructed samples (lower "
        "is better)", ("celeba",), ("dataset", "prior"),
        (Column("FID generated", ("metrics", "inception_fid", "fid_generated"), 1,
                ("table1", "generated")),
         Column("FID reconstructed", ("metrics", "inception_fid", "fid_reconstructed"), 1,
                ("table1", "reconstructed")),
         Column("FID difference", ("metrics", "inception_fid", "fid_difference"), 1,
                ("table1", "difference")),
         Column("FID real (floor)", ("metrics", "inception_fid", "fid_real_floor"), 1,
                ("table1", "real"))),
        "CelebA runs need a CUDA GPU and local Inception weights (LADDER_INCEPTION_WEIGHTS)."),
    TableSpec(
        "sm_table1_frechet", "SM Table 1: Fréchet distance of generated and reconstructed samples "
        "(lower is better)", ("tables",), ("dataset", "prior"),
        (Column("generated", ("metrics", "generation", "fcd_generated"), 2,
                ("sm_table1", "generated")),
         Column("reconstructed", ("metrics", "generation", "fcd_reconstructed"), 2,
                ("sm_table1", "reconstructed")),
         Column("difference", ("metrics", "generation", "fcd_difference"), 2,
                ("sm_table1", "difference")),
         Column("real train vs test", ("metrics", "generation", "fcd_real_floor"), 2,
                ("sm_table1", "real"))),
        _FCD_NOTE),
    TableSpec(
        "sm_table2_dt_ablation", "SM Table 2: Fréchet distance of LaDDer's generated samples "
        "against the prior VAE's latent size d_t (lower is better)", ("dt-ablation",),
        ("dataset", "d_t"),
        (Column("generated", ("metrics", "generation", "fcd_generated"), 2,
                ("sm_table2", "generated")),
         Column("ELBO", ("metrics", "elbo", "elbo"), 1),
         Column("E[log p(z)]", ("metrics", "cross_entropy", "bound"), 2)),
        _FCD_NOTE + " The paper's SM Table 1 LaDDer FIDs (MNIST 6.4, Fashion 5.2) equal its "
        "d_t = 8 and d_t = 16 entries here, not d_t = 2 of SM E."),
    TableSpec(
        "fig2_cross_entropy", "Fig 2: priors fitted to a frozen 2-D latent, cross-entropy "
        "E_q(z)[log p(z)] on the test encodings (higher is better)", ("fig2",), ("dataset",),
        tuple(Column(name, ("cross_entropy", name), 3) for name in
              ("aggregate", "normal", "hierarchical", "vamp", "gmm", "ladder")),
        "`aggregate` scores q(z) of the training encodings itself, the optimum of Eq (3) up to "
        "the train/test gap. Figure: figures/fig2_frozen_latent.png."),
    TableSpec(
        "fig4_clusters", "Fig 4: agreement of the prior's mixture components with the class "
        "labels on a 2-D latent (higher is better)", ("fig4",), ("dataset", "prior"),
        (Column("NMI", ("clusters", "nmi"), 3), Column("ARI", ("clusters", "ari"), 3),
         Column("components used", ("clusters", "n_components_used"), 1)),
        "The paper shows the scatter plots only. Figures: figures/fig4_clusters_*.png."),
    TableSpec(
        "beyond_ladder_levels", "Beyond the paper: a ladder of two prior VAEs against one",
        ("ladder-levels",), ("dataset", "n_levels"),
        (Column("ELBO", ("metrics", "elbo", "elbo"), 1),
         Column("pixel error x0.01", ("metrics", "elbo", "pixel_error_x100"), 2),
         Column("E[log p(z)]", ("metrics", "cross_entropy", "bound"), 2),
         Column("E[log p(z)] IS", ("metrics", "cross_entropy", "importance_sampled"), 2),
         Column("FCD generated", ("metrics", "generation", "fcd_generated"), 2)),
        "n_levels = 1 is the paper's LaDDer (Table 3's runs)."),
    TableSpec(
        "beyond_presets", "Beyond the paper: LaDDer with the paper's settings (SM E) against "
        "the reference code's", ("presets",), ("dataset", "preset"),
        (Column("ELBO", ("metrics", "elbo", "elbo"), 1),
         Column("pixel error x0.01", ("metrics", "elbo", "pixel_error_x100"), 2),
         Column("E[log p(z)]", ("metrics", "cross_entropy", "bound"), 2),
         Column("E[log p(z)] IS", ("metrics", "cross_entropy", "importance_sampled"), 2),
         Column("FCD generated", ("metrics", "generation", "fcd_generated"), 2)),
        "Below the paper scale both presets get the scale's data and epochs (the reference's "
        "warm-up scaled with them); at the paper scale each its own (50 and 30 epochs)."),
)

#: Figures the report copies into ``results/<scale>/figures/``: (experiment, file pattern in the
#: run folder, destination name from the run's grid labels and the file's ``stem``), seed 0 only.
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("fig2", "fig2.png", "fig2_frozen_latent_{dataset}.png"),
    ("fig4", "fig4.png", "fig4_clusters_{dataset}_{prior}.png"),
    ("fig5", "fig5*.png", "{stem}_{dataset}.png"),
    ("tables", "evaluation-samples.png", "samples_{dataset}_{prior}.png"),
    ("celeba", "evaluation-samples.png", "samples_{dataset}_{prior}.png"),
)


@dataclass
class Finished:
    """A finished run as the report sees it: its manifest entry, done.json and result file."""

    run: Run
    done: dict[str, Any]
    result: dict[str, Any]


def finished_runs(runs: Sequence[Run], runs_root: str | os.PathLike = "runs") -> list[Finished]:
    """The ``runs`` with a ``done.json``, and the result file (first output) of each."""
    out = []
    for run in runs:
        folder = run.directory(runs_root)
        if not (folder / DONE_FILE).is_file():
            continue
        done = json.loads((folder / DONE_FILE).read_text())
        result_file = folder / run.outputs[0]
        result = json.loads(result_file.read_text()) if result_file.suffix == ".json" else {}
        out.append(Finished(run, done, result))
    return out


def _lookup(data: Mapping[str, Any], path: Sequence[str]) -> float | None:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return float(data) if isinstance(data, (int, float)) and not isinstance(data, bool) else None


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof 1; None for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def format_mean_std(values: Sequence[float], digits: int) -> str:
    if not values:
        return "-"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


@dataclass
class Table:
    """An aggregated table: the Markdown and CSV text and the runs it cites."""

    spec: TableSpec
    markdown: str
    csv: str
    runs: list[str]


def build_table(spec: TableSpec, finished: Sequence[Finished], scale: Scale,
                planned: Sequence[Run]) -> Table | None:
    """Aggregate ``finished`` runs into ``spec``, one row per row the ``planned`` runs (the
    manifest's at this scale) give it; None when none of its runs has finished."""
    groups: dict[tuple, list[tuple[Finished, dict[str, Any]]]] = {}
    for f in finished:
        for exp in spec.experiments:
            if exp in f.run.labels:
                labels = f.run.labels[exp]
                key = tuple(labels.get(r) for r in spec.rows)
                groups.setdefault(key, []).append((f, labels))
    expected = _expected_rows(spec, planned)
    if not groups:
        return None
    header = [*spec.rows]
    for col in spec.columns:
        header.append(col.header)
        if col.paper:
            header.append(f"{col.header} (paper)")
    header += ["seeds", "runs"]
    md_rows, csv_rows, cited = [], [], []
    for key in expected:
        members = sorted(groups.get(key, []), key=lambda m: m[1].get("seed", 0))
        planned = expected[key]
        cells = [str(k) for k in key]
        csv_cells: dict[str, Any] = dict(zip(spec.rows, key, strict=True))
        for col in spec.columns:
            values = [v for f, _ in members if (v := _lookup(f.result, col.path)) is not None]
            cells.append(format_mean_std(values, col.digits))
            mean, std = mean_std(values) if values else (None, None)
            csv_cells[f"{col.header} mean"] = "" if mean is None else round(mean, 6)
            csv_cells[f"{col.header} std"] = "" if std is None else round(std, 6)
            csv_cells[f"{col.header} n"] = len(values)
            if col.paper:
                dataset = dict(zip(spec.rows, key, strict=True)).get("dataset", "")
                value = paper_value(*col.paper, dataset, key[-1]) or paper_value(
                    *col.paper, dataset, "all")
                cells.append(value or "-")
                csv_cells[f"{col.header} (paper)"] = value
        seeds = [m[1].get("seed") for m in members]
        ids = [f.run.id for f, _ in members]
        cited += ids
        cells.append(f"{len(seeds)}/{planned}")
        cells.append(", ".join(ids) if ids else "not run")
        csv_cells.update(seeds=" ".join(map(str, seeds)), runs=" ".join(ids))
        md_rows.append(cells)
        csv_rows.append(csv_cells)
    used = [f for f in finished if f.run.id in set(cited)]
    md = _markdown(spec, header, md_rows, used, scale)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(csv_rows[0]) + ["scale", "commit", "device"],
                            lineterminator="\n")
    writer.writeheader()
    meta = _meta(used)
    for row in csv_rows:
        writer.writerow({**row, "scale": scale.name, "commit": meta["commits"],
                         "device": meta["devices"]})
    return Table(spec, md, buffer.getvalue(), sorted(set(cited)))


def _expected_rows(spec: TableSpec, planned: Sequence[Run]) -> dict[tuple, int]:
    """Every row the manifest plans for ``spec``, in manifest order, with its seed count."""
    rows: dict[tuple, int] = {}
    for run in planned:
        for exp in spec.experiments:
            if exp in run.labels:
                key = tuple(run.labels[exp].get(r) for r in spec.rows)
                rows[key] = rows.get(key, 0) + 1
    return rows


def _meta(used: Sequence[Finished]) -> dict[str, str]:
    seeds = sorted({f.run.parameters.get("seed") for f in used if "seed" in f.run.parameters})
    return {
        "seeds": ", ".join(map(str, seeds)),
        "devices": "; ".join(sorted({f.done.get("device", "?") for f in used})),
        "commits": ", ".join(sorted({f.done.get("commit", "?") for f in used})),
        "seconds": sum(float(f.done.get("wall_time_s", 0.0)) for f in used),
    }


def _markdown(spec: TableSpec, header: list[str], rows: list[list[str]],
              used: Sequence[Finished], scale: Scale) -> str:
    meta = _meta(used)
    counts = ", ".join(f"{k} {v}" for k, v in scale.evaluate.items() if v is not None)
    lines = [
        f"# {spec.title}",
        "",
        f"- Scale: **{scale.name}**: {scale.description}.",
        f"- Evaluation: {counts}.",
        f"- Seeds: {meta['seeds']}; each cell is the mean ± sample std (ddof 1) over the seeds "
        "that finished (the `seeds` column: finished/planned). The paper's ± is the std over its "
        "5 repeats.",
        f"- Device: {meta['devices']}. Commit: {meta['commits']}. Total run time: "
        f"{_duration(meta['seconds'])} over {len(used)} runs.",
        f"- Runs: folders under `runs/{scale.name}/` (run ids in the last column); regenerate "
        f"with `ladder reproduce --scale {scale.name}` and `ladder report --scale {scale.name}`.",
    ]
    if spec.note:
        lines.append(f"- {spec.note}")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def _slp_table(finished: Sequence[Finished], scale: Scale) -> tuple[str, str, list[str]] | None:
    """Fig 5's SLP-against-SP table (one model per row and metric) from the fig5 runs."""
    runs = [f for f in finished if "fig5" in f.run.labels]
    if not runs:
        return None
    header = ["run", "model", "space", "metric", "better", "SLP", "SP", "SLP - SP", "SLP better",
              "pairs"]
    md_rows, csv_rows = [], []
    for f in runs:
        for row in f.result.get("rows", []):
            frac = row.get("slp_better")
            frac_text = "n/a" if frac is None or (isinstance(frac, float) and math.isnan(frac)) \
                else f"{frac:.0%}"
            cells = [f.run.id, row["model"], row["space"], row["metric"], row["better"],
                     _pm(row["slp"], row.get("slp_se")), _pm(row["sp"], row.get("sp_se")),
                     _pm(row["diff"], row.get("diff_se")), frac_text, str(row.get("n_pairs", ""))]
            md_rows.append(cells)
            csv_rows.append({**dict(zip(header, cells, strict=True)), **{
                k: row.get(k) for k in ("slp", "slp_se", "sp", "sp_se", "diff", "diff_se",
                                        "slp_better")}})
    spec = TableSpec("fig5_slp", "Fig 5: shortest likely path (SLP) against the straight line "
                     "(SP) over random test pairs", ("fig5",), (), (),
                     "Per-pair metrics: mean ± standard error over pairs (SLP - SP paired); "
                     "fcd: distance ± bootstrap error over pairs. Figures: "
                     "figures/fig5_*.png.")
    md = _markdown(spec, header, md_rows, runs, scale)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(csv_rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows)
    return md, buffer.getvalue(), [f.run.id for f in runs]


def _pm(value: float, se: float | None) -> str:
    if se is None or not math.isfinite(se) or se <= 0:
        return f"{value:.4g}"
    digits = max(0, 1 - math.floor(math.log10(se)))
    return f"{value:.{digits}f} ± {se:.{digits}f}"


def report(
    scale: str = "quick",
    runs_root: str | os.PathLike = "runs",
    results_root: str | os.PathLike = "results",
    manifest: Manifest | str | os.PathLike | None = None,
    echo: Callable[[str], None] = print,
) -> list[Path]:
    """Write the tables (:data:`TABLES` and Fig 5's) of the finished runs of ``scale`` to
    ``results/<scale>/<name>.{md,csv}``, copy the figures into ``results/<scale>/figures/`` and
    an index to ``results/<scale>/README.md``; returns the files written."""
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    spec = manifest.scales[scale] if scale in manifest.scales else None
    if spec is None:
        raise ManifestError(f"unknown scale {scale!r}; the manifest defines "
                            f"{', '.join(manifest.scales)}")
    planned = manifest.runs(scale)
    finished = finished_runs(planned, runs_root)
    out_dir = Path(results_root) / scale
    if not finished:
        raise FileNotFoundError(f"no finished runs under {Path(runs_root) / scale}; run "
                                f"`ladder reproduce --scale {scale}` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index = [f"# Results at scale {scale}", "", f"{spec.description}.", "",
             f"Made by `ladder report --scale {scale}` from {len(finished)} finished runs under "
             f"`runs/{scale}/`; each table names its runs, seeds, device, commit and run time.",
             "", "| file | what | runs |", "|---|---|---|"]
    for table_spec in TABLES:
        table = build_table(table_spec, finished, spec, planned)
        if table is None:
            continue
        written += _write_pair(out_dir, table_spec.name, table.markdown, table.csv)
        index.append(f"| [{table_spec.name}.md]({table_spec.name}.md) | {table_spec.title} | "
                     f"{len(table.runs)} |")
    slp = _slp_table(finished, spec)
    if slp is not None:
        written += _write_pair(out_dir, "fig5_slp", slp[0], slp[1])
        index.append(f"| [fig5_slp.md](fig5_slp.md) | Fig 5: SLP against SP | {len(slp[2])} |")
    figures = out_dir / "figures"
    for exp, pattern, target in FIGURES:
        for f in finished:
            labels = f.run.labels.get(exp)
            if labels is None or labels.get("seed", 0) != 0:
                continue
            for src in sorted(f.run.directory(runs_root).glob(pattern)):
                figures.mkdir(exist_ok=True)
                dest = figures / target.format(**labels, stem=src.stem)
                shutil.copyfile(src, dest)
                written.append(dest)
                index.append(f"| [figures/{dest.name}](figures/{dest.name}) | {exp}: {src.name} "
                             f"of {f.run.id} | 1 |")
    readme = out_dir / "README.md"
    readme.write_text("\n".join(index) + "\n")
    written.append(readme)
    for path in written:
        echo(f"wrote {path}")
    return written


def _write_pair(out_dir: Path, name: str, markdown: str, csv_text: str) -> list[Path]:
    md, cs = out_dir / f"{name}.md", out_dir / f"{name}.csv"
    md.write_text(markdown)
    cs.write_text(csv_text)
    return [md, cs]
