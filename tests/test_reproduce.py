"""The reproduction machinery: manifest expansion, --only, idempotent and resumable batches, the
CPU skip of CelebA, and the report's aggregation (on synthetic runs; no real training except one
two-step resume)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from ladder import reproduce as rp
from ladder.cli import main
from ladder.config import load_config, preset_config

EXPECTED = {  # runs labelled by each experiment, at every scale
    "tables": 50, "celeba": 25, "dt-ablation": 40, "fig2": 1, "fig4": 15, "fig5": 2,
    "ladder-levels": 20, "presets": 20,
}
UNIQUE = 50 + 25 + 30 + 1 + 15 + 2 + 10 + 10  # d_t = 2, n_levels = 1, paper preset: shared


@pytest.fixture(scope="module")
def manifest() -> rp.Manifest:
    return rp.load_manifest()


@pytest.mark.parametrize("scale", rp.SCALES)
def test_manifest_expands_to_every_run(manifest, scale):
    runs = manifest.runs(scale)
    assert len(runs) == UNIQUE == len({r.id for r in runs})
    labelled = Counter(exp for r in runs for exp in r.experiments)
    assert dict(labelled) == EXPECTED
    tables = [r for r in runs if "tables" in r.labels]
    assert Counter((r.parameters["dataset"], r.parameters["prior"]) for r in tables) == {
        (d, p): 5 for d in ("mnist", "fashion")
        for p in ("normal", "vamp", "gmm", "hierarchical", "ladder")}
    assert {r.parameters["seed"] for r in tables} == {0, 1, 2, 3, 4}
    assert all(r.requires == "cuda" for r in runs if "celeba" in r.labels)
    assert all(r.requires is None for r in runs if "celeba" not in r.labels)


def test_equal_runs_are_shared(manifest):
    runs = {r.id: r for r in manifest.runs("quick")}
    shared = runs["mnist-ladder-seed0"]
    assert shared.labels == {
        "tables": {"dataset": "mnist", "prior": "ladder", "seed": 0},
        "dt-ablation": {"dataset": "mnist", "d_t": 8, "seed": 0},
        "ladder-levels": {"dataset": "mnist", "n_levels": 1, "seed": 0},
        "presets": {"dataset": "mnist", "preset": "paper", "seed": 0},
    }
    assert runs["mnist-ladder-dt4-seed0"].parameters["overrides"] == {"model.n_mc": 10,
                                                                       "model.d_t": 4}
    assert rp.override_dict(rp.override_list({"a.b": None, "c.d": [0.9, 0.95], "e.f": "x"})) == {
        "a.b": None, "c.d": [0.9, 0.95], "e.f": "x"}
    assert runs["fig5-mnist-seed0"].needs == (
        "mnist-ladder-seed0", "mnist-gmm-seed0", "mnist-normal-seed0")


def _config(run: rp.Run):
    p = run.parameters
    return load_config(preset=p["preset"], dataset=p["dataset"], prior=p["prior"],
                       overrides=rp.override_list(p["overrides"]))


def test_scales_compose_the_documented_configs(manifest):
    quick = {r.id: r for r in manifest.runs("quick")}
    medium = {r.id: r for r in manifest.runs("medium")}
    paper = {r.id: r for r in manifest.runs("paper")}
    cfg = _config(quick["fashion-gmm-seed3"])
    assert (cfg.preset, cfg.data.n_train, cfg.train.epochs, cfg.model.n_mc) == ("quick", 10_000,
                                                                                 3, 10)
    assert quick["fashion-gmm-seed3"].parameters["n_samples"] == 2000
    cfg = _config(medium["mnist-vamp-seed0"])
    assert (cfg.preset, cfg.data.n_train, cfg.train.epochs, cfg.model.n_mc) == ("paper", 20_000,
                                                                                 6, 10)
    # paper: SM E exactly, and the celeba preset's own settings
    assert _config(paper["mnist-ladder-seed0"]).to_dict() == preset_config(
        "paper", "mnist", "ladder").to_dict()
    assert paper["mnist-ladder-seed0"].parameters["n_is"] == 1000
    assert _config(paper["celeba-ladder-seed0"]).model.d_t == 32
    # the reference preset gets the paper model's sizes below the paper scale, its own at it
    ref = _config(quick["mnist-ladder-reference-seed0"])
    assert (ref.preset, ref.model.d_z, ref.data.n_train, ref.train.epochs,
            ref.train.warmup_epochs) == ("reference", 8, 10_000, 3, 1)
    ref = _config(paper["fashion-ladder-reference-seed0"])
    assert (ref.data.n_train, ref.train.epochs, ref.train.warmup_epochs) == (None, 30, 10)


def test_only_selects_by_pattern_and_pulls_in_needs(manifest):
    runs = manifest.runs("quick")
    chosen = rp.select(runs, "mnist-*-seed0")
    assert {r.id for r in chosen} >= {"mnist-normal-seed0", "mnist-ladder-dt2-seed0"}
    assert all(r.id.startswith("mnist-") and r.id.endswith("seed0") for r in chosen)
    assert [r.id for r in rp.select(runs, "fig5-mnist-*")] == [
        "mnist-normal-seed0", "mnist-gmm-seed0", "mnist-ladder-seed0", "fig5-mnist-seed0"]
    assert len(rp.select(runs, "fig2, quick/fig4-*-seed1")) == 4
    with pytest.raises(rp.ManifestError, match="matches no run"):
        rp.select(runs, "nothing-like-this")


def test_every_manifest_parameter_is_declared_by_its_notebook(manifest, tmp_path):
    declared = {nb: rp.notebook_parameters(manifest.notebook_dir / nb)
                for nb in {e.notebook for e in manifest.experiments.values()}}
    for scale in rp.SCALES:
        for run in manifest.runs(scale):
            params = rp.run_parameters(run, tmp_path / run.id, 1, tmp_path, declared[run.notebook])
            assert params["run_dir"] == str((tmp_path / run.id).resolve())
            assert len(params.get("model_runs", [])) == len(run.needs)


# ----------------------------------------------------------------------------------------------
# Batches on a tiny manifest, with a fake executor


def _notebook(path: Path, source: str) -> None:
    cell = new_code_cell(source, metadata={"tags": ["parameters"]})
    nbformat.write(new_notebook(cells=[cell], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), path)


@pytest.fixture
def tiny(tmp_path) -> rp.Manifest:
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
    return rp.load_manifest(folder / "manifest.yaml")


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
    summary = rp.reproduce("quick", jobs=2, runs_root=runs_root, manifest=tiny, executor=first,
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
    assert b_params["threads"] == max(1, rp._cores() // 2)
    done = json.loads((runs_root / "quick" / "a-2-seed0" / rp.DONE_FILE).read_text())
    assert done["parameters"]["x"] == 2 and done["experiments"] == {"a": {"x": 2, "seed": 0}}
    assert {"commit", "device", "wall_time_s", "started"} <= set(done) and done["attempts"] == 1
    assert (runs_root / "quick" / "a-2-seed0" / rp.LOG_FILE).read_text().startswith("== ")
    assert "start  quick/a-1-seed0" in "\n".join(lines)
    assert "resume quick/a-2-seed1" in "\n".join(lines)

    second = FakeExecutor()
    again = rp.reproduce("quick", runs_root=runs_root, manifest=tiny, executor=second,
                         cuda=False, echo=lines.append)
    assert second.calls == [] and again.ran == [] and len(again.already_done) == 5
    assert (runs_root / "quick" / "reproduce.log").read_text().count("reproduce quick:") == 2


def test_gpu_runs_are_skipped_on_a_cpu_with_the_reason(tiny, tmp_path):
    lines: list[str] = []
    summary = rp.reproduce("quick", only="gpu*", runs_root=tmp_path / "runs", manifest=tiny,
                           executor=FakeExecutor(), cuda=False, echo=lines.append)
    assert summary.ran == [] and set(summary.skipped) == {"gpu-seed0", "gpu-seed1"}
    assert "skip quick/gpu-seed0: needs a CUDA GPU" in "\n".join(lines)
    assert "torch.cuda.is_available() is False" in summary.skipped["gpu-seed0"]
    on_gpu = rp.reproduce("quick", only="gpu*", runs_root=tmp_path / "runs", manifest=tiny,
                          executor=FakeExecutor(), cuda=True, echo=lines.append)
    assert sorted(on_gpu.ran) == ["gpu-seed0", "gpu-seed1"]


def test_celeba_is_skipped_on_a_cpu(manifest, tmp_path):
    executor = FakeExecutor()
    summary = rp.reproduce("quick", only="celeba", runs_root=tmp_path, manifest=manifest,
                           executor=executor, cuda=False, echo=lambda line: None)
    assert len(summary.skipped) == 25 and executor.calls == [] and summary.ok
    assert all("CUDA" in reason for reason in summary.skipped.values())


def test_a_failed_run_is_not_marked_done_and_blocks_its_dependants(tiny, tmp_path):
    runs_root = tmp_path / "runs"
    summary = rp.reproduce("quick", only="b-*", runs_root=runs_root, manifest=tiny,
                           executor=FakeExecutor(fail="a-2-seed0"), cuda=False,
                           echo=lambda line: None)
    assert not summary.ok and list(summary.failed) == ["a-2-seed0"]
    assert summary.skipped == {"b-seed0": "needs a-2-seed0, which did not run"}
    assert rp.run_status(rp.select(tiny.runs("quick"), "a-2-seed0")[0], runs_root) == "interrupted"
    assert not (runs_root / "quick" / "a-2-seed0" / rp.DONE_FILE).exists()
    again = rp.reproduce("quick", only="b-*", runs_root=runs_root, manifest=tiny,
                         executor=FakeExecutor(), cuda=False, echo=lambda line: None)
    assert sorted(again.ran) == ["a-2-seed0", "b-seed0"] and again.resumed == ["a-2-seed0"]
    done = json.loads((runs_root / "quick" / "a-2-seed0" / rp.DONE_FILE).read_text())
    assert done["attempts"] == 2  # the failed attempt's time is counted too


def test_the_batch_asks_for_the_classifiers_of_the_datasets_it_scores(manifest, tmp_path):
    asked: list[set[str]] = []
    rp.reproduce("quick", only="fig2,fashion-gmm-seed0", runs_root=tmp_path, manifest=manifest,
                 executor=lambda *args: None, cuda=False, echo=lambda line: None,
                 classifiers=lambda datasets, say: asked.append(datasets))
    assert asked == [{"fashion"}]  # fig2 trains on MNIST but scores nothing with a classifier


def test_ensure_classifiers_trains_only_the_missing_ones(tmp_path, monkeypatch):
    from ladder import classifier as cl

    monkeypatch.setenv("LADDER_CACHE", str(tmp_path))
    torch.manual_seed(0)
    cl.save_classifier(cl.LeNetClassifier(), "mnist", 0.5)
    trained: list[str] = []

    def fake_train(dataset, root=None, progress=True):
        trained.append(dataset)
        return tmp_path / f"{dataset}.pt", 0.9

    monkeypatch.setattr(cl, "train_and_cache", fake_train)
    lines: list[str] = []
    rp.ensure_classifiers({"mnist", "fashion", "celeba"}, lines.append)
    assert trained == ["fashion"]  # mnist is cached; CelebA has no classifier
    assert "no evaluation classifier cached for fashion" in lines[0]
    assert "test accuracy 0.9000" in lines[1]


def test_a_run_that_misses_an_output_fails(tiny, tmp_path):
    summary = rp.reproduce("quick", only="a-1-seed0", runs_root=tmp_path, manifest=tiny,
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
    rp.papermill_executor(notebook, run_dir, {"x": 7, "run_dir": str(run_dir)}, 1, log)
    out = json.loads((run_dir / "out.json").read_text())
    assert out == {"x": 7, "omp": "1", "cwd": str(run_dir)}
    assert "hello from the kernel" in log.read_text()
    executed = nbformat.read(run_dir / "write.ipynb", 4)
    assert "injected-parameters" in executed.cells[1].metadata.tags


# ----------------------------------------------------------------------------------------------
# Resumable training and a current evaluation


def test_train_run_resumes_an_interrupted_run_and_refuses_another_config(data_root, tmp_path):
    from ladder.checkpoint import save_checkpoint
    from ladder.train import Trainer

    cfg = load_config(preset="quick", prior="normal", overrides=[
        "data.n_train=256", "data.n_test=64", "train.epochs=2", "train.progress=false"])
    half = Trainer(cfg, tmp_path)
    half.history.append(half.run_epoch())  # what fit() does, stopped after the first epoch
    state = half.state()
    del state["config"]["train"]["prior_steps"]  # a checkpoint from before that key existed
    save_checkpoint(state, half.checkpoint_path)
    trainer = rp.train_run(cfg, tmp_path)
    assert [r["epoch"] for r in trainer.history] == [1, 2]
    assert trainer.history[0] == half.history[0]
    assert rp.train_run(cfg, tmp_path).epoch == 2  # finished: nothing more to train
    other = load_config(preset="quick", prior="gmm", overrides=[
        "data.n_train=256", "data.n_test=64", "train.epochs=2", "train.progress=false"])
    with pytest.raises(ValueError, match="another config .*model.prior"):
        rp.train_run(other, tmp_path)


def test_evaluate_once_keeps_a_current_evaluation(tmp_path, monkeypatch):
    import ladder.evaluate
    from ladder.checkpoint import file_sha256

    (tmp_path / "checkpoint.pt").write_bytes(b"weights")
    calls = []
    monkeypatch.setattr(ladder.evaluate, "evaluate_run",
                        lambda run_dir, **counts: calls.append(counts) or {"fresh": True})
    sha = file_sha256(tmp_path / "checkpoint.pt")
    old = {"provenance": {"checkpoint": {"sha256": sha},
                          "sample_counts": {"n_samples": 100, "n_is": 10, "n_test": 200}}}
    (tmp_path / "evaluation.json").write_text(json.dumps(old))
    assert rp.evaluate_once(tmp_path, n_samples=100, n_is=10, n_test=200) == old
    assert rp.evaluate_once(tmp_path, n_samples=100, n_is=20, n_test=200) == {"fresh": True}
    assert rp.evaluate_once(tmp_path, n_samples=100, n_is=10, n_test=200,
                            n_nll=50) == {"fresh": True}  # every count is compared
    (tmp_path / "checkpoint.pt").write_bytes(b"newer weights")
    assert rp.evaluate_once(tmp_path, n_samples=100, n_is=10, n_test=200) == {"fresh": True}
    assert len(calls) == 3


# ----------------------------------------------------------------------------------------------
# The report, on synthetic finished runs


def _finish(runs_root: Path, run: rp.Run, result: dict, wall: float = 60.0) -> None:
    folder = run.directory(runs_root)
    folder.mkdir(parents=True)
    (folder / run.outputs[0]).write_text(json.dumps(result))
    (folder / rp.DONE_FILE).write_text(json.dumps({
        "id": run.id, "wall_time_s": wall, "device": "cpu (test, 2 cores)",
        "commit": "abc1234"}))


def test_report_aggregates_seeds_and_cites_runs(manifest, tmp_path):
    runs = {r.id: r for r in manifest.runs("quick")}
    elbos = [-100.0, -102.0, -104.0]
    for seed, elbo in enumerate(elbos):
        metrics = {"elbo": {"elbo": elbo, "pixel_error_x100": 5.0 + seed},
                   "cross_entropy": {"skipped": "test"}, "generation": {"fcd_generated": 10.0}}
        if seed < 2:  # seed 2's evaluation predates -log p(x) in the tables: it is left out
            metrics["log_likelihood"] = {"nll": 110.0 + 4 * seed}
        _finish(tmp_path / "runs", runs[f"mnist-ladder-seed{seed}"], {"metrics": metrics})
    _finish(tmp_path / "runs", runs["mnist-ladder-dt2-seed0"], {"metrics": {
        "elbo": {"elbo": -99.0}, "generation": {"fcd_generated": 7.5}}})
    _finish(tmp_path / "runs", runs["fig4-mnist-vamp-seed0"], {"clusters": {
        "nmi": 0.5, "ari": 0.25, "n_components_used": 12}})
    (runs["fig4-mnist-vamp-seed0"].directory(tmp_path / "runs") / "fig4.png").write_bytes(b"png")
    lines: list[str] = []
    written = rp.report("quick", tmp_path / "runs", tmp_path / "results", manifest,
                        echo=lines.append)
    out = tmp_path / "results" / "quick"
    assert out / "table3_elbo.md" in written and out / "figures" / \
        "fig4_clusters_mnist_vamp.png" in written
    md = (out / "table3_elbo.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| mnist | ladder |"))
    # mean -102, sample std 2 (ddof 1); the paper's value beside it; the three runs cited
    assert "| -102.0 ± 2.0 | 1562.5 ± 25.1 | 6.00 ± 1.00 | 2.2 ± 0.06 | 112.0 ± 2.8 | 3/5 |" \
        in row
    assert row.endswith("| mnist-ladder-seed0, mnist-ladder-seed1, mnist-ladder-seed2 |")
    assert "| mnist | normal | - | 1528.6 ± 21.3 | - | 2.3 ± 0.06 | - | 0/5 | not run |" in md
    assert "Scale: **quick**" in md and "Seeds: 0, 1, 2" in md
    assert "Device: cpu (test, 2 cores). Commit: abc1234. Total run time: 3 min 00 s over 3 " \
           "runs" in md
    assert "| fashion | ladder |" in md  # planned rows are listed even when not run
    rows = list(__import__("csv").DictReader(open(out / "table3_elbo.csv")))
    ladder = next(r for r in rows if r["dataset"] == "mnist" and r["prior"] == "ladder")
    assert math.isclose(float(ladder["ELBO mean"]), -102.0)
    assert math.isclose(float(ladder["ELBO std"]), 2.0)
    assert ladder["runs"] == "mnist-ladder-seed0 mnist-ladder-seed1 mnist-ladder-seed2"
    assert ladder["ELBO (paper)"] == "1562.5 ± 25.1" and ladder["scale"] == "quick"
    assert ladder["-log p(x) IS n"] == "2" and math.isclose(float(ladder["-log p(x) IS mean"]),
                                                             112.0)
    ablation = (out / "sm_table2_dt_ablation.md").read_text()
    assert "| mnist | 8 | 10.00 ± 0.00 | 6.4 ± 1.3 |" in ablation  # d_t = 8: Table 3's runs
    assert "| mnist | 2 | 7.50 | 58.7 ± 1.8 |" in ablation  # one seed: no ±
    assert "E[log p(z)] prior's estimate" in (out / "table2_cross_entropy.md").read_text()
    assert "| mnist | vamp | 0.500 | 0.250 | 12.0 | 1/5 | fig4-mnist-vamp-seed0 |" in (
        out / "fig4_clusters.md").read_text()
    assert not (out / "table1_celeba_fid.md").exists()  # no CelebA run finished
    assert "table3_elbo.md" in (out / "README.md").read_text()


def test_report_shows_kl_beside_the_cross_entropy_and_blanks_older_evaluations(manifest,
                                                                               tmp_path):
    runs = {r.id: r for r in manifest.runs("quick")}
    ce = {"bound": -30.0, "importance_sampled": -29.0}
    for seed, kl in ((0, 4.0), (1, 6.0)):
        _finish(tmp_path / "runs", runs[f"mnist-gmm-seed{seed}"], {"metrics": {
            "elbo": {"elbo": -100.0}, "cross_entropy": {**ce, "kl": kl, "kl_loo": kl - 3}}})
    _finish(tmp_path / "runs", runs["mnist-normal-seed0"], {"metrics": {  # an older evaluation
        "elbo": {"elbo": -100.0}, "cross_entropy": ce}})
    rp.report("quick", tmp_path / "runs", tmp_path / "results", manifest, echo=lambda _: None)
    md = (tmp_path / "results" / "quick" / "table2_cross_entropy.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| dataset |"))
    assert header.endswith("| E[log p(z)] importance sampled | KL(q(z)||p(z)) | seeds | runs |")
    # bound, the paper's value, importance sampled, KL (mean ± std over seeds)
    assert "| mnist | gmm | -30.00 ± 0.00 | -8.4 ± 0.9 | -29.00 ± 0.00 | 5.00 ± 1.41 | 2/5 |" in md
    assert "| mnist | normal | -30.00 | -19.0 ± 0.1 | -29.00 | - | 1/5 |" in md


def test_cli_lists_runs_and_reports_nothing_to_report(tmp_path, capsys):
    assert main(["reproduce", "--list", "--only", "fig5-mnist*", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4 runs at scale quick" in out
    assert "needs mnist-ladder-seed0,mnist-gmm-seed0,mnist-normal-seed0" in out
    assert main(["report", "--runs", str(tmp_path), "--results", str(tmp_path / "r")]) == 2
    assert "no finished runs" in capsys.readouterr().err
    assert main(["reproduce", "--only", "no-such-run", "--runs", str(tmp_path)]) == 2
