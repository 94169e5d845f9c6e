"""``ladder reproduce --launcher slurm``: the resources, the order and the states of the jobs (with
a fake submitit executor), then a tiny batch on a real one-node SLURM cluster
(tests/slurm/cluster.py): two training runs on a few hundred MNIST images, one of them cancelled
with scancel mid-run and submitted again, which must end where an uninterrupted run ends.

Where no cluster can be started (SLURM not installed, not root) the real-cluster test is skipped
with the reason, except where ``$LADDER_REQUIRE_SLURM`` is set (CI sets it): there it fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from ladder.cli import main
from ladder.config import preset_config
from ladder.experiments import slurm
from ladder.experiments.manifest import ManifestError, Scale, load_manifest
from ladder.experiments.report import report_folders
from ladder.runs import RunDir
from ladder.train import train

# ----------------------------------------------------------------------------------------------
# Resources, order and states, without a cluster


def _scale(**resources) -> Scale:
    return Scale("quick", "tiny", 3, "quick", {}, {}, slurm=resources)


def test_resources_come_from_the_scale_and_the_command_line_overrides_them():
    got = slurm.slurm_resources(_scale(cpus_per_task=2, mem_gb=8, partition="cpu"),
                                ["mem_gb=16", "gpus_per_node=1", "partition=gpu"])
    assert got == {"cpus_per_task": 2, "mem_gb": 16.0, "partition": "gpu", "gpus_per_node": 1,
                   "processes": 1}
    params = slurm.submitit_parameters(got, "ladder-x", after=["12", "13"])
    assert params["slurm_partition"] == "gpu" and params["gpus_per_node"] == 1
    assert "processes" not in params and params["tasks_per_node"] == 1  # torchrun's, in the task
    assert slurm.slurm_resources(_scale(gpus_per_node=4))["processes"] == 4  # one per GPU
    assert params["mem_gb"] == 16.0 and params["slurm_dependency"] == "afterok:12:13"


@pytest.mark.parametrize("override, message", [
    ("nodes=2", "unknown resource 'nodes'"),
    ("cpus_per_task=many", "is not a int"),
    ("timeout_min=0", "must be positive"),
    ("partition", "takes KEY=VALUE"),
    ("gpus_per_node=2 processes=3", "2 GPUs train with 2 processes"),
])
def test_a_bad_resource_is_one_clear_error(override, message):
    with pytest.raises(ManifestError, match=message):
        slurm.slurm_resources(_scale(), override.split())


def test_a_manifest_scale_naming_an_unknown_resource_is_refused(tmp_path, manifest):
    text = manifest.path.read_text().replace("slurm: {cpus_per_task: 2,",
                                             "slurm: {gpus: 1, cpus_per_task: 2,", 1)
    (tmp_path / "manifest.yaml").write_text(text)
    for notebook in manifest.notebook_dir.glob("*.ipynb"):
        (tmp_path / notebook.name).write_bytes(notebook.read_bytes())
    with pytest.raises(ManifestError, match="slurm names unknown resources"):
        load_manifest(tmp_path / "manifest.yaml")


class FakeExecutor:
    """Stands in for submitit's AutoExecutor: records each job's parameters, numbers the jobs."""

    jobs: list[tuple[dict, object]] = []

    def __init__(self, folder: Path, parameters: dict) -> None:
        self.parameters = parameters

    def submit(self, call):
        FakeExecutor.jobs.append((self.parameters, call))

        class Job:
            job_id = str(100 + len(FakeExecutor.jobs))
        return Job()


@pytest.fixture
def fake_cluster(monkeypatch):
    FakeExecutor.jobs = []
    queue: dict[str, str] = {}
    monkeypatch.setattr(slurm, "_executor", FakeExecutor)
    monkeypatch.setattr(slurm, "queue_states", lambda: dict(queue))
    monkeypatch.setattr(slurm, "prepare_classifiers", lambda datasets, *_: sorted(datasets))
    return queue


def test_runs_wait_for_the_runs_they_need_and_for_the_classifier_job(manifest, tmp_path,
                                                                     fake_cluster):
    landed = tmp_path / "results" / "quick" / "runs" / "mnist-gmm-seed0"  # no checkpoint here
    landed.mkdir(parents=True)
    (landed / RunDir.DONE).write_text("{}")
    lines: list[str] = []
    got = slurm.submit("quick", "fig5-mnist-*-seed0", tmp_path / "runs", manifest,
                       tmp_path / "results", ["cpus_per_task=2"], echo=lines.append)
    by_name = {params["name"]: (params, call) for params, call in FakeExecutor.jobs}
    assert FakeExecutor.jobs[0][0]["name"] == "ladder-classifiers"  # Fig 5 scores its frames
    needs = ["mnist-normal-seed0", "mnist-gmm-seed0", "mnist-ladder-seed0"]
    assert list(got.submitted)[:3] == needs  # the needed runs first, the landed one again
    assert list(got.submitted)[3:] == [f"fig5-{n}" for n in reversed(needs)]
    assert [by_name[f"ladder-quick-{n}"][1].again for n in needs] == [False, True, False]
    assert lines[1].startswith("again quick/mnist-gmm-seed0: fig5-mnist-gmm-seed0 loads its model")
    fig5, _ = by_name["ladder-quick-fig5-mnist-gmm-seed0"]
    assert fig5["slurm_dependency"].removeprefix("afterok:").split(":") == (
        [got.submitted["mnist-gmm-seed0"], "101"])  # its model and the classifier job
    assert all(call.threads == 2 for _, call in FakeExecutor.jobs[1:])
    assert "job(s) submitted" in lines[0]


def test_queued_runs_are_not_submitted_twice_and_failed_ones_are(manifest, tmp_path,
                                                                 fake_cluster):
    runs, results = tmp_path / "runs", tmp_path / "results"
    first = slurm.submit("quick", "mnist-normal-seed0,mnist-gmm-seed0", runs, manifest, results,
                         echo=lambda line: None)
    normal, gmm = first.submitted["mnist-normal-seed0"], first.submitted["mnist-gmm-seed0"]
    fake_cluster[normal] = "RUNNING"  # the GMM run's job left the queue unfinished
    report = slurm.status_report("quick", "mnist-normal-seed0,mnist-gmm-seed0", runs, manifest,
                                 results)
    assert report.splitlines()[0] == "quick: 2 runs: 1 failed, 1 running"
    assert f"job {gmm} left the queue unfinished" in report
    again = slurm.submit("quick", "mnist-normal-seed0,mnist-gmm-seed0", runs, manifest, results,
                         echo=lambda line: None)
    assert again.in_queue == {"mnist-normal-seed0": normal}
    assert list(again.submitted) == ["mnist-gmm-seed0"]


def test_cuda_runs_need_a_gpu_asked_for(manifest, tmp_path, fake_cluster):
    got = slurm.submit("quick", "celeba-normal-seed0", tmp_path, manifest, tmp_path,
                       echo=lambda line: None)
    assert not got.submitted and "gpus_per_node=1" in got.skipped["celeba-normal-seed0"]
    got = slurm.submit("quick", "celeba-normal-seed0", tmp_path, manifest, tmp_path,
                       ["gpus_per_node=1"], echo=lambda line: None)
    assert list(got.submitted) == ["celeba-normal-seed0"]


def test_status_without_jobs_reads_the_folders_and_never_the_queue(manifest, tmp_path,
                                                                  monkeypatch, capsys):
    def no_queue():
        raise AssertionError("the queue was read")

    monkeypatch.setattr(slurm, "queue_states", no_queue)
    (tmp_path / "quick" / "mnist-normal-seed0").mkdir(parents=True)
    RunDir(tmp_path / "quick" / "mnist-normal-seed0").metrics.write_text('{"epoch": 1}\n')
    assert main(["reproduce", "--status", "--only", "mnist-normal-seed0,mnist-gmm-seed0",
                 "--runs", str(tmp_path), "--results", str(tmp_path / "results")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "quick: 2 runs: 1 interrupted, 1 new"
    assert len(lines) == 2 and lines[1].split(maxsplit=2) == [
        "interrupted", "quick/mnist-normal-seed0",
        "no SLURM job: stopped, or running on this machine now, 1 epoch(s) done"]


def test_cli_refuses_slurm_resources_without_the_slurm_launcher(capsys):
    assert main(["reproduce", "--slurm", "mem_gb=4"]) == 2
    assert "add --launcher slurm" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# A real one-node cluster

CONFIG = {"n_train": 600, "n_test": 200, "epochs": 6, "batch_size": 100, "progress": False}
NOTEBOOK = """
import json
import torch
from ladder.config import preset_config
from ladder.evaluate import evaluate_once
from ladder.train import train

torch.set_num_threads(threads)
cfg = preset_config("quick", "mnist", "ladder", seed=seed, **config)
trainer = train(cfg, run_dir)
evaluate_once(run_dir, n_test=100, n_samples=100, n_is=4, n_nll=8, n_inner=2, grid=False,
              progress=False)
torch.save(trainer.model.state_dict(), "weights.pt")
json.dump({"epochs": trainer.epoch}, open("result.json", "w"))
"""


@pytest.fixture(scope="module")
def cluster():
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from slurm.cluster import ClusterUnavailable, one_node_cluster

    try:
        with one_node_cluster() as root:
            yield root
    except ClusterUnavailable as err:
        if os.environ.get("LADDER_REQUIRE_SLURM"):
            pytest.fail(f"no SLURM cluster could be started, and CI requires one: {err}")
        pytest.skip(f"no SLURM cluster could be started here: {err}")


def _write_notebook(path: Path, parameters: str, code: str) -> None:
    """A notebook of a papermill ``parameters`` cell and one code cell."""
    cells = [new_code_cell(parameters, metadata={"tags": ["parameters"]}), new_code_cell(code)]
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), path)


def _tiny_manifest(folder: Path) -> Path:
    folder.mkdir()
    parameters = ('run_dir: str = ""\nthreads: int = 1\nseed: int = 0\n'
                  f'config: dict = {CONFIG!r}\n')
    _write_notebook(folder / "train.ipynb", parameters, NOTEBOOK)
    spec = {"version": 1, "seeds": [0, 1],
            "scales": {"quick": {"description": "tiny", "budget_minutes": 3, "preset": "quick",
                                 "overrides": {}, "evaluate": {},
                                 "slurm": {"cpus_per_task": 1, "mem_gb": 2, "timeout_min": 10}}},
            "experiments": {"tiny": {"paper": "-", "notebook": "train.ipynb", "trains": False,
                                     "outputs": ["result.json", "weights.pt", RunDir.EVALUATION],
                                     "id": "tiny-seed{seed}", "grid": {}}}}
    (folder / "manifest.yaml").write_text(json.dumps(spec))
    return folder / "manifest.yaml"


def _wait(condition, what: str, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _reference_weights(tmp_path: Path, seed: int) -> dict:
    """The weights of the same run trained in this process without interruption."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = preset_config("quick", "mnist", "ladder", seed=seed, **CONFIG)
        return train(cfg, tmp_path / f"reference-{seed}").model.state_dict()
    finally:
        torch.set_num_threads(threads)


def _assert_equal(got, want, name: str = "weights") -> None:
    """Bitwise equality of two state dicts (the DP-GMM's nested state included)."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), name
        for key in want:
            _assert_equal(got[key], want[key], f"{name}.{key}")
    elif torch.is_tensor(want):
        assert torch.equal(got, want), name
    else:
        assert got == want, name


def test_a_batch_on_slurm_finishes_and_a_cancelled_run_resumes_to_the_same_result(
        cluster, tmp_path, data_root, capsys):
    manifest = _tiny_manifest(tmp_path / "experiments")
    runs, results = tmp_path / "runs", tmp_path / "results"
    args = ["reproduce", "--manifest", str(manifest), "--runs", str(runs),
            "--results", str(results)]
    assert main([*args, "--launcher", "slurm"]) == 0
    assert "2 job(s) submitted" in capsys.readouterr().out
    seed1 = RunDir(runs / "quick" / "tiny-seed1")
    job = slurm.recorded_job(seed1.path)
    _wait(lambda: 1 <= len(seed1.read_records()) < CONFIG["epochs"], "seed 1's first epoch")
    subprocess.run(["scancel", job], check=True)
    _wait(lambda: job not in slurm.queue_states(), "the cancelled job to leave the queue")
    assert main([*args, "--status"]) == 0
    status = capsys.readouterr().out
    assert "failed      quick/tiny-seed1" in status and f"job {job} left the queue" in status
    assert not seed1.done.exists()

    assert main([*args, "--launcher", "slurm"]) == 0  # submits seed 1 again, and only it
    out = capsys.readouterr().out
    assert "1 job(s) submitted" in out and "0 skipped" in out
    _wait(lambda: all((runs / "quick" / f"tiny-seed{s}" / RunDir.DONE).exists() for s in (0, 1))
          and not slurm.queue_states(), "both runs to finish")
    assert main([*args, "--status"]) == 0
    assert capsys.readouterr().out.strip() == "quick: 2 runs: 2 done"

    attempts = (seed1.path / "attempts.jsonl").read_text().splitlines()
    assert len(attempts) == 2  # cancelled, then resumed
    epochs = [r["epoch"] for r in seed1.read_records() if "phase" not in r]
    assert epochs == list(range(1, CONFIG["epochs"] + 1))  # each epoch once
    for seed in (0, 1):
        result = json.loads((runs / "quick" / f"tiny-seed{seed}" / "result.json").read_text())
        assert result["epochs"] == CONFIG["epochs"]
        weights = torch.load(runs / "quick" / f"tiny-seed{seed}" / "weights.pt",
                             weights_only=True)
        _assert_equal(weights, _reference_weights(tmp_path, seed), f"seed {seed}")
    table = report_folders(runs / "quick")
    rows = [line for line in table.splitlines() if line.startswith("| mnist | ladder |")]
    assert len(rows) == 1 and rows[0].endswith("| 2/2 | tiny-seed0, tiny-seed1 |")  # pooled


DATA_PARALLEL_NOTEBOOK = """
import torch
from ladder.config import load_config
from ladder.experiments.manifest import training_overrides
from ladder.train import train

torch.set_num_threads(threads)
cfg = load_config(preset=preset, dataset=dataset, prior=prior,
                  overrides=training_overrides(overrides, seed))
torch.save(train(cfg, run_dir).model.state_dict(), "weights.pt")
"""


def test_a_run_given_two_processes_trains_data_parallel_under_torchrun(
        cluster, tmp_path, data_root, monkeypatch, capsys):
    """``processes: 2``: the job trains the run under torchrun (gloo on the CPU), then its notebook
    finds the training done; the weights are a two-process run's (tests/distributed)."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    parameters = ('run_dir: str = ""\nthreads: int = 1\nseed: int = 0\ndataset: str = "mnist"\n'
                  'prior: str = "ladder"\npreset: str = "quick"\noverrides: dict = {}\n')
    _write_notebook(folder / slurm.DATA_PARALLEL_NOTEBOOKS[0], parameters, DATA_PARALLEL_NOTEBOOK)
    sizes = ["data.n_train=512", "data.n_test=128", "train.epochs=2", "train.batch_size=128",
             "train.prior_finetune_epochs=1"]  # tests/distributed/train_tiny.py's SETTINGS
    spec = {"version": 1, "seeds": [0],
            "scales": {"quick": {"description": "tiny", "budget_minutes": 3, "preset": "quick",
                                 "overrides": {"mnist": sizes}, "evaluate": {},
                                 "slurm": {"cpus_per_task": 2, "processes": 2, "mem_gb": 4,
                                           "timeout_min": 10}}},
            "experiments": {"ddp": {"paper": "-", "notebook": slurm.DATA_PARALLEL_NOTEBOOKS[0],
                                    "outputs": ["weights.pt"], "id": "ddp-seed{seed}",
                                    "grid": {"dataset": ["mnist"], "prior": ["ladder"]}}}}
    (folder / "manifest.yaml").write_text(json.dumps(spec))
    monkeypatch.setattr(slurm, "prepare_classifiers", lambda datasets, *_: [])  # scores nothing
    runs = tmp_path / "runs"
    assert main(["reproduce", "--manifest", str(folder / "manifest.yaml"), "--runs", str(runs),
                 "--results", str(tmp_path / "results"), "--launcher", "slurm"]) == 0
    assert "1 job(s) submitted" in capsys.readouterr().out
    run = RunDir(runs / "quick" / "ddp-seed0")
    _wait(lambda: run.done.exists() and not slurm.queue_states(), "the run to finish")
    assert "== data-parallel training: " in (run.path / "log.txt").read_text()

    reference = tmp_path / "reference.pt"
    script = Path(__file__).parent / "distributed" / "train_tiny.py"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node=2", str(script), str(tmp_path / "reference"),
                    str(reference)], check=True, capture_output=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    _assert_equal(torch.load(run.path / "weights.pt", weights_only=True),
                  torch.load(reference, weights_only=True))
