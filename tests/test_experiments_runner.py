"""The papermill batch: idempotent and resumable runs, their order, the CPU skip of CUDA runs, the
classifiers it asks for first, and `ladder reproduce` (with a fake executor; one real papermill
execution)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ladder.cli import main
from ladder.experiments.manifest import SCALES, Manifest, load_manifest, select
from ladder.experiments.runner import (
    LOG_FILE,
    _cores,
    cpu_model,
    landed_needs,
    notebook_parameters,
    papermill_executor,
    reproduce,
    run_parameters,
    run_status,
)
from ladder.runs import RunDir


def test_every_manifest_parameter_is_declared_by_its_notebook(manifest, tmp_path):
    declared = {nb: notebook_parameters(manifest.notebook_dir / nb)
                for nb in {e.notebook for e in manifest.experiments.values()}}
    for scale in SCALES:
        for run in manifest.runs(scale):
            params = run_parameters(run, tmp_path / run.id, 1, tmp_path, declared[run.notebook])
            assert params["run_dir"] == str((tmp_path / run.id).resolve())
            assert len(params.get("model_runs", [])) == len(run.needs)


# ----------------------------------------------------------------------------------------------
# Batches on a tiny manifest, with a fake executor


def _notebook(path: Path, source: str) -> None:
    cell = new_code_cell(source, metadata={"tags": ["parameters"]})
    nbformat.write(new_notebook(cells=[cell], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), path)


@pytest.fixture
def tiny(tmp_path) -> Manifest:
    folder = tmp_path / "experiments"
    folder.mkdir()
    _notebook(folder / "fake.ipynb", 'x: int = 1  # a value\nseed: int = 0  # seed\n'
                                     'run_dir: str = ""  # output\nthreads: int = 1  # threads\n'
                                     'model_runs: list = []  # input runs')
    spec = {
        "version": 1, "seeds": [0, 1],
        "scales": {"quick": {"description": "tiny", "budget_minutes": 3, "preset": "quick",
                             "overrides": {}, "evaluate": {}}},
        "experiments": {
            "a": {"paper": "A", "notebook": "fake.ipynb", "outputs": ["out.json"],
                  "trains": False, "id": "a-{x}-seed{seed}", "grid": {"x": [1, 2]},
                  "parameters": {"x": "{x}"}},
            "gpu": {"paper": "G", "notebook": "fake.ipynb", "outputs": ["out.json"],
                    "trains": False, "requires": "cuda", "id": "gpu-seed{seed}", "grid": {}},
            "b": {"paper": "B", "notebook": "fake.ipynb", "outputs": ["out.json"],
                  "trains": False, "id": "b-seed{seed}", "grid": {"seed": [0]},
                  "needs": ["a-1-seed0", "a-2-seed0"]},
        },
    }
    (folder / "manifest.yaml").write_text(json.dumps(spec))
    return load_manifest(folder / "manifest.yaml")


class FakeExecutor:
    """Records calls; writes out.json unless told to fail for a run folder name."""

    def __init__(self, fail: str = "") -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail = fail

    def __call__(self, notebook, run_dir, parameters, threads, log) -> None:
        self.calls.append((run_dir.name, parameters))
        if run_dir.name == self.fail:
            raise RuntimeError(f"{notebook.name} failed (exit 1); see {log}")
        (run_dir / "out.json").write_text(json.dumps({"x": parameters.get("x")}))


def test_batch_is_idempotent_and_resumes_the_interrupted(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    runs_root = tmp_path / "runs"
    interrupted = runs_root / "quick" / "a-2-seed1"
    interrupted.mkdir(parents=True)  # a folder without done.json: stopped half way
    lines: list[str] = []
    first = FakeExecutor()
    summary = reproduce("quick", jobs=2, runs_root=runs_root, manifest=tiny, executor=first,
                        cuda=False, echo=lines.append)
    assert summary.failed == {}
    assert sorted(summary.ran) == sorted(
        ["a-1-seed0", "a-1-seed1", "a-2-seed0", "a-2-seed1", "b-seed0"])
    assert summary.resumed == ["a-2-seed1"]
    order = [name for name, _ in first.calls]
    assert order.index("b-seed0") > max(order.index("a-1-seed0"), order.index("a-2-seed0"))
    b_params = dict(first.calls)["b-seed0"]
    assert b_params["model_runs"] == [str((runs_root / "quick" / n).resolve())
                                      for n in ("a-1-seed0", "a-2-seed0")]
    assert b_params["threads"] == max(1, _cores() // 2)
    done = json.loads((runs_root / "quick" / "a-2-seed0" / RunDir.DONE).read_text())
    assert done["parameters"]["x"] == 2 and done["experiments"] == {"a": {"x": 2, "seed": 0}}
    assert {"commit", "device", "wall_time_s", "started"} <= set(done) and done["attempts"] == 1
    assert (runs_root / "quick" / "a-2-seed0" / LOG_FILE).read_text().startswith("== ")
    assert "start  quick/a-1-seed0" in "\n".join(lines)
    assert "resume quick/a-2-seed1" in "\n".join(lines)

    second = FakeExecutor()
    again = reproduce("quick", runs_root=runs_root, manifest=tiny, executor=second,
                      cuda=False, echo=lines.append)
    assert second.calls == [] and again.ran == [] and len(again.already_done) == 5
    assert (runs_root / "quick" / "reproduce.log").read_text().count("reproduce quick:") == 2


def test_gpu_runs_are_skipped_on_a_cpu_with_the_reason(tiny, tmp_path):
    lines: list[str] = []
    summary = reproduce("quick", only="gpu*", runs_root=tmp_path / "runs", manifest=tiny,
                        executor=FakeExecutor(), cuda=False, echo=lines.append)
    assert summary.ran == [] and set(summary.skipped) == {"gpu-seed0", "gpu-seed1"}
    assert "skip quick/gpu-seed0: needs a CUDA GPU" in "\n".join(lines)
    assert "torch.cuda.is_available() is False" in summary.skipped["gpu-seed0"]
    on_gpu = reproduce("quick", only="gpu*", runs_root=tmp_path / "runs", manifest=tiny,
                       executor=FakeExecutor(), cuda=True, echo=lines.append)
    assert sorted(on_gpu.ran) == ["gpu-seed0", "gpu-seed1"]


def test_celeba_is_skipped_on_a_cpu(manifest, tmp_path):
    executor = FakeExecutor()
    summary = reproduce("quick", only="celeba", runs_root=tmp_path, manifest=manifest,
                        executor=executor, cuda=False, echo=lambda line: None)
    assert len(summary.skipped) == 25 and executor.calls == [] and summary.ok
    assert all("CUDA" in reason for reason in summary.skipped.values())


def test_a_failed_run_is_not_marked_done_and_blocks_its_dependants(tiny, tmp_path):
    runs_root = tmp_path / "runs"
    summary = reproduce("quick", only="b-*", runs_root=runs_root, manifest=tiny,
                        executor=FakeExecutor(fail="a-2-seed0"), cuda=False,
                           echo=lambda line: None)
    assert not summary.ok and list(summary.failed) == ["a-2-seed0"]
    assert summary.skipped == {"b-seed0": "needs a-2-seed0, which did not run"}
    assert run_status(select(tiny.runs("quick"), "a-2-seed0")[0], runs_root) == "interrupted"
    assert not (runs_root / "quick" / "a-2-seed0" / RunDir.DONE).exists()
    again = reproduce("quick", only="b-*", runs_root=runs_root, manifest=tiny,
                      executor=FakeExecutor(), cuda=False, echo=lambda line: None)
    assert sorted(again.ran) == ["a-2-seed0", "b-seed0"] and again.resumed == ["a-2-seed0"]
    done = json.loads((runs_root / "quick" / "a-2-seed0" / RunDir.DONE).read_text())
    assert done["attempts"] == 2  # the failed attempt's time is counted too


def test_a_landed_run_that_an_unfinished_run_needs_is_executed_again(tiny, tmp_path):
    runs_root, results = tmp_path / "runs", tmp_path / "results"
    by_id = {r.id: r for r in tiny.runs("quick")}
    for name in ("a-1-seed0", "a-2-seed0", "a-1-seed1"):  # finished elsewhere: no checkpoint here
        landed = by_id[name].landed(results)
        landed.mkdir(parents=True)
        (landed / RunDir.DONE).write_text("{}")
    assert landed_needs(list(by_id.values()), {n: run_status(r, runs_root, results)
                                               for n, r in by_id.items()}) == {
        "a-1-seed0": "b-seed0", "a-2-seed0": "b-seed0"}
    lines: list[str] = []
    executor = FakeExecutor()
    summary = reproduce("quick", only="b-*,a-1-seed1", runs_root=runs_root, results_root=results,
                        manifest=tiny, executor=executor, cuda=False, echo=lines.append)
    order = [name for name, _ in executor.calls]
    assert sorted(order[:2]) == ["a-1-seed0", "a-2-seed0"] and order[2:] == ["b-seed0"]
    assert summary.already_done == ["a-1-seed1"]  # landed, and nothing selected needs it
    assert "again quick/a-2-seed0: b-seed0 loads its model" in "\n".join(lines)
    assert (runs_root / "quick" / "a-1-seed0" / RunDir.DONE).is_file()
    # once its dependants are done, a landed run is done again
    assert landed_needs(list(by_id.values()), {n: "landed" for n in by_id}) == {}


def test_the_batch_asks_for_the_classifiers_of_the_datasets_it_scores(manifest, tmp_path):
    asked: list[set[str]] = []
    reproduce("quick", only="fig2,fashion-gmm-seed0", runs_root=tmp_path, manifest=manifest,
              executor=lambda *args: None, cuda=False, echo=lambda line: None,
              results_root=tmp_path / "results",
                 classifiers=lambda datasets, say: asked.append(datasets))
    assert asked == [{"fashion"}]  # fig2 trains on MNIST but scores nothing with a classifier


def test_a_run_that_misses_an_output_fails(tiny, tmp_path):
    summary = reproduce("quick", only="a-1-seed0", runs_root=tmp_path, manifest=tiny,
                        executor=lambda *args: None, cuda=False, echo=lambda line: None)
    assert "without writing ['out.json']" in summary.failed["a-1-seed0"]


def test_papermill_executes_a_notebook_into_its_run_folder(tmp_path):
    notebook = tmp_path / "write.ipynb"
    _notebook(notebook, 'x: int = 1  # value\nrun_dir: str = ""  # folder')
    nb = nbformat.read(notebook, 4)
    nb.cells.append(new_code_cell("import json, os\nfrom pathlib import Path\n"
                                  "Path(run_dir, 'out.json').write_text(json.dumps("
                                  "{'x': x, 'omp': os.environ['OMP_NUM_THREADS'], 'cwd': os.getcwd()}))\n"
                                  "print('hello from the kernel')"))
    nbformat.write(nb, notebook)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log = run_dir / "log.txt"
    papermill_executor(notebook, run_dir, {"x": 7, "run_dir": str(run_dir)}, 1, log)
    out = json.loads((run_dir / "out.json").read_text())
    assert out == {"x": 7, "omp": "1", "cwd": str(run_dir)}
    assert "hello from the kernel" in log.read_text()
    executed = nbformat.read(run_dir / "write.ipynb", 4)
    assert "injected-parameters" in executed.cells[1].metadata.tags


# ----------------------------------------------------------------------------------------------
# Resumable training and a current evaluation



def test_cli_lists_runs_and_reports_nothing_to_report(tmp_path, capsys):
    assert main(["reproduce", "--list", "--only", "fig5-mnist*", "--runs", str(tmp_path),
                 "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "18 runs at scale quick" in out
    assert "fig5-mnist-gmm-seed1" in out and "needs mnist-gmm-seed1" in out
    assert main(["report", "--scale", "quick", "--runs", str(tmp_path), "--results",
                 str(tmp_path / "r")]) == 2
    assert "no finished runs" in capsys.readouterr().err
    assert main(["reproduce", "--only", "no-such-run", "--runs", str(tmp_path)]) == 2


def test_the_cpu_model_comes_from_cpuinfo_or_else_the_platform(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n")
    assert cpu_model(cpuinfo) == "AMD EPYC"
    cpuinfo.write_text("processor\t: 0\nmodel name\t:\n")  # an empty name is no name
    assert cpu_model(cpuinfo) == cpu_model(tmp_path / "missing") != ""
