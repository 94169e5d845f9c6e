"""``ladder reproduce``: execute the manifest's runs through papermill, resumably.

:func:`reproduce` executes the runs of a scale that are missing, one papermill execution per run,
into ``runs/<scale>/<id>/``: the executed notebook, ``log.txt`` (the kernel's output), the run
folder of :mod:`ladder.train` (``config.yaml``, ``metrics.jsonl``, ``checkpoint.pt``), the
notebook's results (``evaluation.json``, figures) and, written last, ``done.json``. A run folder
with a ``done.json`` is never redone; one without it was interrupted and is executed again, and
its notebook resumes training from the checkpoint (:func:`ladder.train.train`) and keeps a
current evaluation (:func:`ladder.evaluate.evaluate_once`).
"""

from __future__ import annotations

import concurrent.futures as futures
import datetime as _dt
import functools
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ladder.checkpoint import atomic_write
from ladder.experiments.attempts import begin_attempt, end_attempt, total_wall_time
from ladder.experiments.classifiers import ensure_classifiers, scored_datasets
from ladder.experiments.manifest import (
    REPO_ROOT,
    Manifest,
    ManifestError,
    Run,
    load_manifest,
    override_list,
    select,
)
from ladder.markdown import format_duration
from ladder.runs import RunDir

LOG_FILE = "log.txt"
#: Parameters the runner fills in itself when the notebook declares them.
AUTO_PARAMETERS = ("run_dir", "threads", "model_runs")


def run_status(run: Run, runs_root: str | os.PathLike,
               results_root: str | os.PathLike = "results") -> str:
    """``"done"`` (its folder's ``done.json`` written), ``"landed"`` (finished elsewhere: its
    small files are committed under ``results/<scale>/runs/``), ``"interrupted"`` (a folder
    without ``done.json``) or ``"new"``. A landed run is never redone, as a done one."""
    folder = run.directory(runs_root)
    if RunDir(folder).done.is_file():
        return "done"
    if RunDir(run.landed(results_root)).done.is_file():
        return "landed"
    return "interrupted" if folder.exists() else "new"


def landed_needs(runs: Sequence[Run], status: Mapping[str, str]) -> dict[str, str]:
    """The landed runs among ``runs`` that an unfinished run of ``runs`` needs, each with the
    first run that needs it. A run that needs another loads its trained model from the run
    folder, and a landed copy holds only the small files, so such a run is executed again."""
    again: dict[str, str] = {}
    for run in runs:
        if status[run.id] in ("done", "landed"):
            continue
        for need in run.needs:
            if status.get(need) == "landed":
                again.setdefault(need, run.id)
    return again


def batch_status(runs: Sequence[Run], runs_root: str | os.PathLike,
                 results_root: str | os.PathLike) -> tuple[dict[str, str], dict[str, str]]:
    """Each run's :func:`run_status`, except that a landed run an unfinished run needs is
    ``"again"`` (:func:`landed_needs`); and, for each such run, the first run that needs it."""
    status = {run.id: run_status(run, runs_root, results_root) for run in runs}
    again = landed_needs(runs, status)
    status.update(dict.fromkeys(again, "again"))
    return status, again


def again_note(scale: str, run_id: str, needed_by: str) -> str:
    """The line that says why a landed run is executed again (:func:`landed_needs`)."""
    return (f"again {scale}/{run_id}: {needed_by} loads its model, and its landed copy keeps no "
            "checkpoint")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name from Linux's ``cpuinfo`` (e.g. ``AMD EPYC``), else the platform's
    processor or machine: two CPUs of one architecture train at very different speeds."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description() -> str:
    """The machine the runs execute on, for ``done.json`` and the tables."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({cpu_model()}, {platform.machine()}, {os.cpu_count()} cores)"


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
    code = ("import json, sys; from ladder.experiments.runner import _papermill_child; "
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
    results_root: str | os.PathLike = "results",
    cuda: bool | None = None,
    echo: Callable[[str], None] = print,
    classifiers: Callable[[set[str], Callable[[str], None]], None] | None = None,
) -> Summary:
    """Execute the runs of ``scale`` (those matching ``only``, see :func:`select`) that are not
    finished (done, or landed under ``results_root``: :func:`run_status`), ``jobs`` at a time,
    each with ``cores // jobs`` threads (at most ``$OMP_NUM_THREADS`` where that is set); a run
    starts once the runs it needs are done. Runs that require CUDA are skipped, with the
    reason, when ``cuda`` (default: ``torch.cuda.is_available()``) is false. Progress goes to ``echo`` and to
    ``runs/<scale>/reproduce.log``; each run's own output to its ``log.txt``.

    Before the first run, ``classifiers`` (default with the papermill executor:
    :func:`ladder.experiments.classifiers.ensure_classifiers`) makes sure every dataset the runs
    score has its evaluation classifier, the one landed under ``results_root/classifiers/`` where
    there is one, so that a fresh clone's batch neither skips the Fréchet distances nor scores
    them in another feature space than the landed runs."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    started = time.perf_counter()
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    if classifiers is None and executor is None:
        classifiers = functools.partial(ensure_classifiers, results_root=results_root)
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
    spec = manifest.scale(scale)
    status, rerun = batch_status(runs, runs_root, results_root)
    pending: list[Run] = []
    for run in runs:
        if status[run.id] in ("done", "landed"):
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
    for run_id, needed_by in rerun.items():
        say(again_note(scale, run_id, needed_by))
    if scale == "paper" and not cuda and pending:
        say("note: the paper scale is meant for a GPU; on this CPU a run takes hours")
    if classifiers is not None and pending:
        classifiers(scored_datasets(pending), say)

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
                        job = pool.submit(execute_run, run, manifest, runs_root, executor, threads,
                                          jobs)
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
                        say(f"FAILED {run.name} after {format_duration(seconds)}: {err}")
                        continue
                    done_ids.add(run.id)
                    summary.ran.append(run.id)
                    over = ""
                    if spec.budget_minutes and seconds > 60 * spec.budget_minutes:
                        over = f" (over the {scale} budget of {spec.budget_minutes} min)"
                    say(f"done   {run.name} in {format_duration(seconds)}{over}")
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
         f"{len(summary.failed)} failed in {format_duration(summary.seconds)}{tail}")
    return summary


def execute_run(run: Run, manifest: Manifest, runs_root: Path, executor: Executor, threads: int,
                jobs: int) -> None:
    """One run, by either launcher: execute its notebook, check its outputs, then write
    ``done.json`` (last)."""
    folder = run.directory(runs_root)
    folder.mkdir(parents=True, exist_ok=True)
    notebook = manifest.notebook_dir / run.notebook
    params = run_parameters(run, folder, threads, runs_root, notebook_parameters(notebook))
    log = folder / LOG_FILE
    started = _dt.datetime.now(_dt.timezone.utc)
    begin_attempt(folder, started)
    with open(log, "a") as handle:
        handle.write(f"== {started.isoformat(timespec='seconds')} {run.name}: {run.notebook} "
                     f"with {json.dumps(params)}\n")
    clock = time.perf_counter()
    try:
        executor(notebook, folder, params, threads, log)
    finally:  # every attempt's time counts, a failed one too (and a killed one: begin_attempt)
        wall = time.perf_counter() - clock
        attempts = end_attempt(folder, wall)
    missing = [o for o in run.outputs if not (folder / o).exists()]
    if missing:
        raise RuntimeError(f"{run.notebook} finished without writing {missing}; see {log}")
    done = {
        "id": run.id, "scale": run.scale, "experiments": run.labels, "notebook": run.notebook,
        "parameters": params, "outputs": list(run.outputs),
        "started": started.isoformat(timespec="seconds"),
        "wall_time_s": total_wall_time(attempts),
        "attempts": len(attempts), "threads": threads, "jobs": jobs,
        "device": device_description(), "commit": git_commit(),
        "python": platform.python_version(),
    }
    atomic_write(RunDir(folder).done, json.dumps(done, indent=2) + "\n")
    with open(log, "a") as handle:
        handle.write(f"== done in {format_duration(wall)}\n")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")



def list_runs(scale: str, only: str | None = None, runs_root: str | os.PathLike = "runs",
              manifest: Manifest | None = None, results_root: str | os.PathLike = "results"
              ) -> str:
    """A table of the runs of ``scale``: id, experiments, status and the key parameters."""
    manifest = manifest or load_manifest()
    runs = select(manifest.runs(scale), only)
    lines = [f"{len(runs)} runs at scale {scale} ({manifest.path}):"]
    for run in runs:
        status = run_status(run, runs_root, results_root)
        extra = " requires cuda" if run.requires else ""
        extra += f" needs {','.join(run.needs)}" if run.needs else ""
        overrides = " ".join(override_list(run.parameters.get("overrides", {})))
        lines.append(f"  {status:11s} {run.name:42s} {','.join(run.experiments):28s} "
                     f"{run.notebook} {overrides}{extra}")
    return "\n".join(lines)
