"""``ladder reproduce --launcher slurm``: each missing run of the manifest as one SLURM job.

:func:`submit` hands every run of a scale that is neither finished nor already queued to SLURM
through submitit, one job per run, and returns at once. A job executes its run as the local
launcher does (:func:`ladder.experiments.runner.execute_run`: the notebook into
``runs/<scale>/<id>/``, ``done.json`` last), so ``ladder report`` reads the same folders.

- **Resources** come from the scale's ``slurm`` section of the manifest, and ``--slurm KEY=VALUE``
  overrides them (:data:`ladder.experiments.manifest.SLURM_RESOURCES`). The run's torch threads
  are its ``cpus_per_task``. With ``processes`` > 1 (by default one per GPU of
  ``gpus_per_node``) a training run trains first under ``torchrun``, data-parallel
  (:mod:`ladder.distributed`), then its notebook evaluates it.
- **Order.** A run that needs another waits for its job (``afterok``); runs that score images
  wait for one job that trains the missing evaluation classifiers first.
- **Resumable.** The job's id is kept in the run folder (``slurm-job.json``, its logs under
  ``slurm/``). A job that reaches its time limit or is preempted is requeued by submitit
  (:meth:`RunJob.checkpoint`); one that was cancelled or failed is submitted again by the next
  ``ladder reproduce --launcher slurm``. Either way the notebook resumes training from the run's
  last checkpoint, and a finished run is never redone.
- :func:`status_report` (``ladder reproduce --status``) reads the queue (``squeue``) and the run
  folders.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ladder.checkpoint import atomic_write
from ladder.experiments.classifiers import (
    ensure_classifiers,
    prepare_classifiers,
    scored_datasets,
)
from ladder.experiments.manifest import (
    SLURM_RESOURCES,
    Manifest,
    ManifestError,
    Run,
    Scale,
    load_manifest,
    override_dict,
    select,
    training_overrides,
)
from ladder.experiments.runner import (
    LOG_FILE,
    again_note,
    batch_status,
    execute_run,
    papermill_executor,
    run_status,
)
from ladder.runs import RunDir

#: SLURM job states (squeue's %T) by what they mean for a run.
QUEUED_STATES = ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                 "RESV_DEL_HOLD", "SUSPENDED", "STAGE_OUT")
RUNNING_STATES = ("RUNNING", "COMPLETING", "SIGNALING")
#: submitit's own names of the resources a manifest names without the ``slurm_`` prefix.
_SUBMITIT_GENERIC = ("timeout_min", "cpus_per_task", "gpus_per_node", "mem_gb")


class SlurmUnavailableError(RuntimeError):
    """No SLURM client here (``sbatch``, ``squeue``); the message says what to do."""


def slurm_resources(scale: Scale, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """One run's resources: the scale's ``slurm`` section updated by ``KEY=VALUE`` overrides,
    each cast to its type; :class:`ManifestError` names an unknown key or a bad value."""
    malformed = [item for item in overrides if "=" not in item]
    if malformed:
        raise ManifestError(f"--slurm takes KEY=VALUE, got {malformed[0]!r}")
    resources = dict(scale.slurm)
    resources.update(override_dict(overrides))
    for key, value in resources.items():
        if key not in SLURM_RESOURCES:
            raise ManifestError(f"--slurm: unknown resource {key!r}; valid: "
                                f"{', '.join(SLURM_RESOURCES)}")
        kind = SLURM_RESOURCES[key]
        try:
            resources[key] = kind(value)
        except (TypeError, ValueError):
            raise ManifestError(f"--slurm: {key}={value!r} is not a {kind.__name__}") from None
        if kind is not str and resources[key] < (1 if key != "gpus_per_node" else 0):
            raise ManifestError(f"--slurm: {key}={value!r} must be positive")
    gpus = resources.get("gpus_per_node", 0)
    resources.setdefault("processes", max(1, gpus))
    if gpus > 1 and resources["processes"] != gpus:
        raise ManifestError(f"--slurm: {gpus} GPUs train with {gpus} processes (one each), not "
                            f"processes={resources['processes']}")
    return resources


def submitit_parameters(resources: dict[str, Any], name: str,
                        after: Sequence[str] = ()) -> dict[str, Any]:
    """``resources`` as ``AutoExecutor.update_parameters`` keywords, the job waiting for the jobs
    ``after`` to succeed."""
    parameters: dict[str, Any] = {"name": name, "nodes": 1, "tasks_per_node": 1}
    for key, value in resources.items():
        if key != "processes":  # torchrun's, inside the one task
            parameters[key if key in _SUBMITIT_GENERIC else f"slurm_{key}"] = value
    if after:
        parameters["slurm_dependency"] = "afterok:" + ":".join(after)
    return parameters


#: The notebooks that train their run's model with ``ladder.train.train`` on the config of
#: :func:`ladder.experiments.manifest.training_overrides`, so that the SLURM launcher can train it
#: first under torchrun (``processes`` > 1); the notebook then finds the training done.
DATA_PARALLEL_NOTEBOOKS = ("train_evaluate.ipynb",)


@dataclass
class RunJob:
    """One run as a submitit job: :meth:`__call__` executes it unless it is finished."""

    run: Run
    manifest_path: Path
    runs_root: Path
    results_root: Path
    threads: int
    processes: int = 1
    again: bool = False  # landed, but a run that needs it loads its model (runner.landed_needs)

    def __call__(self) -> str:
        status = run_status(self.run, self.runs_root, self.results_root)
        if status == "done" or (status == "landed" and not self.again):
            return f"{self.run.name} was already done"
        if self.processes > 1 and self.run.notebook in DATA_PARALLEL_NOTEBOOKS:
            self.train_data_parallel()
        execute_run(self.run, load_manifest(self.manifest_path), self.runs_root,
                    papermill_executor, self.threads, jobs=1)
        return f"{self.run.name} done"

    def train_data_parallel(self) -> None:
        """``torchrun --nproc_per_node=processes -m ladder train`` on the run's config, into its
        folder (resuming what is there); its output goes to the run's log."""
        p = self.run.parameters
        folder = self.run.directory(self.runs_root)
        folder.mkdir(parents=True, exist_ok=True)
        settings = [arg for item in training_overrides(p["overrides"], p["seed"])
                    for arg in ("--set", item)]
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={self.processes}", "-m", "ladder", "train",
                   "--preset", p["preset"], "--dataset", p["dataset"], "--prior", p["prior"],
                   *settings, "--run-dir", str(folder)]
        threads = str(max(1, self.threads // self.processes))
        env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        with open(folder / LOG_FILE, "a") as log:
            log.write(f"== data-parallel training: {' '.join(command)}\n")
            log.flush()
            rc = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            raise RuntimeError(f"data-parallel training of {self.run.name} failed (exit {rc}); "
                               f"see {folder / LOG_FILE}")

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit at the time limit or on preemption: requeue this same call, which
        resumes the run from its last checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


@dataclass
class ClassifierJob:
    """The job that trains the missing evaluation classifiers before the runs that use them."""

    datasets: list[str]
    results_root: Path

    def __call__(self) -> str:
        ensure_classifiers(set(self.datasets), results_root=self.results_root)
        return f"classifiers of {', '.join(self.datasets)} cached and landed"


@dataclass
class Submission:
    """What :func:`submit` did."""

    scale: str
    submitted: dict[str, str] = field(default_factory=dict)  # run id -> job id
    in_queue: dict[str, str] = field(default_factory=dict)  # run id -> job id, from before
    done: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # run id -> why


def submit(
    scale: str,
    only: str | Sequence[str] | None = None,
    runs_root: str | os.PathLike = "runs",
    manifest: Manifest | str | os.PathLike | None = None,
    results_root: str | os.PathLike = "results",
    overrides: Sequence[str] = (),
    echo: Callable[[str], None] = print,
) -> Submission:
    """Submit a job for every run of ``scale`` (those matching ``only``) that is neither done,
    landed nor queued or running under an earlier job; returns without waiting."""
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    spec = manifest.scale(scale)
    resources = slurm_resources(spec, overrides)
    runs_root, results_root = Path(runs_root).resolve(), Path(results_root).resolve()
    queue = queue_states()
    summary = Submission(scale)
    jobs: dict[str, str] = {}  # run id -> the job that will finish it
    to_submit: list[Run] = []
    runs = _needs_first(select(manifest.runs(scale), only))
    status, again = batch_status(runs, runs_root, results_root)
    for run in runs:
        if status[run.id] in ("done", "landed"):
            summary.done.append(run.id)
            continue
        job_id = recorded_job(run.directory(runs_root))
        if job_id in queue:
            jobs[run.id] = summary.in_queue[run.id] = job_id
        elif run.requires == "cuda" and not resources.get("gpus_per_node"):
            summary.skipped[run.id] = "needs a CUDA GPU; ask for one with --slurm gpus_per_node=1"
        else:
            blocked = [n for n in run.needs if n not in jobs and n not in summary.done]
            if blocked:
                summary.skipped[run.id] = f"needs {', '.join(blocked)}, which will not run"
                continue
            to_submit.append(run)
            jobs[run.id] = ""  # submitted below, in this order
    classifier_job = _submit_classifier_job(to_submit, runs_root / scale, results_root, resources,
                                            echo)
    for run in to_submit:
        after = [jobs[n] for n in run.needs if jobs.get(n)]
        if classifier_job and run in classifier_job[1]:
            after.append(classifier_job[0])
        jobs[run.id] = summary.submitted[run.id] = _submit_run(
            run, manifest, runs_root, results_root, resources, after, run.id in again)
    echo(f"reproduce {scale} on SLURM: {len(summary.submitted)} job(s) submitted, "
         f"{len(summary.in_queue)} already queued or running, {len(summary.done)} done, "
         f"{len(summary.skipped)} skipped; `ladder reproduce --scale {scale} --status` follows "
         "them")
    for run_id, reason in summary.skipped.items():
        echo(f"skip {scale}/{run_id}: {reason}")
    for run_id in [r for r in summary.submitted if r in again]:
        echo(again_note(scale, run_id, again[run_id]))
    return summary


def _needs_first(runs: list[Run]) -> list[Run]:
    """``runs`` reordered so that each comes after the runs it needs (manifest order otherwise)."""
    ordered: list[Run] = []
    placed: set[str] = set()
    pending = list(runs)
    present = {r.id for r in runs}
    while pending:
        ready = [r for r in pending if all(n in placed or n not in present for n in r.needs)]
        if not ready:  # a cycle: the manifest forbids it, keep the rest as it is
            ready = pending
        ordered += ready
        placed |= {r.id for r in ready}
        pending = [r for r in pending if r.id not in placed]
    return ordered


def _executor(folder: Path, parameters: dict[str, Any]) -> Any:
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    except RuntimeError as err:
        raise SlurmUnavailableError(
            f"no SLURM here ({err}); run on the cluster's login node, or use --launcher local"
        ) from None
    executor.update_parameters(**parameters)
    return executor


def _submit_run(run: Run, manifest: Manifest, runs_root: Path, results_root: Path,
                resources: dict[str, Any], after: list[str], again: bool) -> str:
    folder = RunDir(run.directory(runs_root))
    folder.path.mkdir(parents=True, exist_ok=True)
    parameters = submitit_parameters(resources, f"ladder-{run.scale}-{run.id}", after)
    job = _executor(folder.slurm_logs, parameters).submit(
        RunJob(run, manifest.path.resolve(), runs_root, results_root,
               int(resources.get("cpus_per_task", 1)), resources["processes"], again))
    record = {"job_id": job.job_id, "submitted": _dt.datetime.now().isoformat(timespec="seconds"),
              "resources": resources, "after": after, "logs": str(folder.slurm_logs)}
    atomic_write(folder.slurm_job, json.dumps(record, indent=2) + "\n")
    return job.job_id


def _submit_classifier_job(runs: list[Run], scale_folder: Path, results_root: Path,
                           resources: dict[str, Any], echo: Callable[[str], None]
                           ) -> tuple[str, list[Run]] | None:
    """Submit one job that trains the evaluation classifiers ``runs`` lack (neither landed nor
    cached); returns its id and the runs that must wait for it, or None when none is missing."""
    missing = prepare_classifiers(scored_datasets(runs), results_root, echo)
    if not missing:
        return None
    waiting = [r for r in runs if scored_datasets([r]) & set(missing)]
    parameters = submitit_parameters(resources, "ladder-classifiers")
    job = _executor(scale_folder / "classifiers", parameters).submit(
        ClassifierJob(missing, results_root))
    return job.job_id, waiting


def recorded_job(run_dir: Path) -> str | None:
    """The id of the last SLURM job submitted for the run in ``run_dir``, None if none was."""
    path = RunDir(run_dir).slurm_job
    if not path.is_file():
        return None
    return str(json.loads(path.read_text())["job_id"])


def queue_states() -> dict[str, str]:
    """Job id -> state (squeue's %T) of this user's jobs in the SLURM queue."""
    try:
        result = subprocess.run(["squeue", "-h", "-u", getpass.getuser(), "-o", "%i %T"],
                                capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SlurmUnavailableError("no SLURM here (`squeue` is not on PATH); run on the "
                                    "cluster's login node, or use --launcher local") from None
    if result.returncode != 0:
        raise SlurmUnavailableError(f"squeue failed: {result.stderr.strip()}")
    return dict(line.split(maxsplit=1) for line in result.stdout.splitlines() if line.strip())


def run_state(run: Run, runs_root: str | os.PathLike, results_root: str | os.PathLike,
              queue: dict[str, str]) -> tuple[str, str]:
    """A run's state and a note: ``done``/``landed`` (:func:`run_status`), ``queued``,
    ``running``, ``failed`` (its job left the queue unfinished: cancelled, failed or out of
    time without a requeue), ``interrupted`` (a folder without a job) or ``new``."""
    status = run_status(run, runs_root, results_root)
    folder = run.directory(runs_root)
    job_id = recorded_job(folder)
    if status in ("done", "landed", "new"):
        return status, ""
    epochs = sum(1 for r in RunDir(folder).read_records() if "phase" not in r)
    progress = f", {epochs} epoch(s) done" if epochs else ""
    if job_id is None:
        return status, f"no SLURM job: stopped, or running on this machine now{progress}"
    state = queue.get(job_id)
    if state is None:
        return "failed", (f"job {job_id} left the queue unfinished{progress}; see "
                          f"{RunDir(folder).slurm_logs / job_id}; submitting again resumes it")
    kind = ("queued" if state in QUEUED_STATES else "running" if state in RUNNING_STATES
            else state.lower())
    return kind, f"job {job_id} {state}{progress}"


def status_report(scale: str, only: str | None = None, runs_root: str | os.PathLike = "runs",
                  manifest: Manifest | None = None, results_root: str | os.PathLike = "results"
                  ) -> str:
    """``ladder reproduce --status``: how many runs of ``scale`` are in each state, then each run
    that has started and not finished, with its state. Reads the queue only where a job was
    submitted."""
    manifest = manifest or load_manifest()
    runs = select(manifest.runs(scale), only)
    submitted = any(recorded_job(r.directory(runs_root)) for r in runs)
    queue = queue_states() if submitted else {}
    states = {run.name: run_state(run, runs_root, results_root, queue) for run in runs}
    counts: dict[str, int] = {}
    for state, _ in states.values():
        counts[state] = counts.get(state, 0) + 1
    lines = [f"{scale}: {len(runs)} runs: "
             + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))]
    lines += [f"  {state:11s} {name:42s} {note}".rstrip()
              for name, (state, note) in states.items()
              if state not in ("done", "landed", "new")]
    return "\n".join(lines)
