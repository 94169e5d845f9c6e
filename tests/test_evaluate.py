"""ladder.evaluate and `ladder evaluate`: the JSON, its schema and provenance, skipped blocks."""

import json
import math

import pytest
import torch
from conftest import few_components

from ladder.checkpoint import OutputPathError, file_sha256
from ladder.classifier import LeNetClassifier
from ladder.classifier_cache import save_classifier, weights_hash
from ladder.cli import main
from ladder.clusters import cluster_statistics
from ladder.config import preset_config
from ladder.data import load_dataset
from ladder.evaluate import EvaluationSkipped, evaluate_once, evaluate_run
from ladder.evaluation_file import SCHEMA_VERSION, validate_evaluation
from ladder.runs import RunDir, load_run
from ladder.train import train

# 30 images of 128 classifier features: singular covariances, which is fine for a schema test.
pytestmark = pytest.mark.filterwarnings("ignore:Fréchet distance from:UserWarning")

SMALL = {"n_test": 60, "n_samples": 30, "n_is": 3, "n_nll": 4, "n_inner": 2, "progress": False}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    """One-epoch runs on 256 MNIST images for a prior with components and one without."""
    folder = tmp_path_factory.mktemp("runs")
    train_set = load_dataset("mnist", "train", n=256, seed=0)
    test_set = load_dataset("mnist", "test", n=64, seed=0)
    out = {}
    for prior in ("ladder", "normal"):
        cfg = preset_config("quick", "mnist", prior)
        cfg.train.epochs, cfg.train.batch_size, cfg.train.progress = 1, 64, False
        cfg.model.n_mc = 4
        few_components(cfg.model, 5)
        cfg.train.device = "cpu"
        train(cfg, folder / prior, train_set=train_set, test_set=test_set)
        out[prior] = folder / prior
    return out


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    torch.manual_seed(0)
    return save_classifier(LeNetClassifier(), "mnist", 0.5, tmp_path_factory.mktemp("cache"))


def test_evaluation_json_has_the_schema_and_provenance(runs, classifier_file):
    run = runs["ladder"]
    data = evaluate_run(run, classifier=classifier_file, **SMALL)
    on_disk = json.loads((run / RunDir.EVALUATION).read_text())
    assert on_disk == data
    validate_evaluation(on_disk)
    assert data["schema_version"] == SCHEMA_VERSION and data["notes"] == []
    prov = data["provenance"]
    assert prov["checkpoint"]["sha256"] == file_sha256(run / "checkpoint.pt")
    assert prov["checkpoint"]["epoch"] == 1 and prov["config"]["model"]["prior"] == "ladder"
    assert prov["sample_counts"] == {"n_test": 60, "n_samples": 30, "n_is": 3, "n_nll": 4,
                                     "n_inner": 2}
    assert prov["classifier"]["weights_hash"] == classifier_file.stem.split("-")[-1]
    assert prov["wall_time_s"] >= sum(prov["stage_seconds"].values()) * 0.99
    m = data["metrics"]
    assert m["elbo"]["n_images"] == 60 and m["log_likelihood"]["nested"] is True
    assert m["cross_entropy"]["exact"] is False and m["cross_entropy"]["n_is"] == 3
    ce = m["cross_entropy"]  # KL = E[log q] - E[log p], and leaving the own posterior out
    assert ce["kl"] == pytest.approx(-ce["aggregate_entropy"] - ce["importance_sampled"])
    assert ce["kl"] >= ce["kl_loo"] - math.log(60 / 59)  # only lowers log q (by log N/(N-1))
    cfg, model = load_run(run, "cpu")  # the clusters are those of the evaluated test subset
    test = load_dataset("mnist", "test", n=SMALL["n_test"], seed=cfg.train.seed)
    assert m["clusters"] == cluster_statistics(model, test)
    assert m["generation"]["n_samples"] == 30 and "FID" not in m["generation"]["label"]
    assert (run / RunDir.SAMPLES).is_file()
    # Each stage is seeded on its own: the same call gives the same numbers.
    again = evaluate_run(run, classifier=classifier_file, out=run / "again.json", grid=False,
                         **SMALL)
    assert again["metrics"] == data["metrics"]


def test_missing_classifier_and_components_are_skipped_with_a_reason(runs, tmp_path):
    model = LeNetClassifier()
    with pytest.warns(EvaluationSkipped) as record:
        data = evaluate_run(runs["normal"], classifier=tmp_path / "absent.pt",
                            out=tmp_path / "e.json", grid=False, **SMALL)
    validate_evaluation(data)
    m = data["metrics"]
    assert "train-classifier --dataset mnist" in m["generation"]["skipped"]
    assert "no mixture components" in m["clusters"]["skipped"]
    assert len(data["notes"]) == 2 == len(record)
    assert m["log_likelihood"]["nested"] is False and m["cross_entropy"]["exact"] is True
    assert data["provenance"]["classifier"] is None
    # A classifier object works too and its hash is recorded.
    with pytest.warns(EvaluationSkipped) as record:
        data = evaluate_run(runs["normal"], classifier=model, out=tmp_path / "f.json",
                            grid=False, **{**SMALL, "n_nll": 0})
    skipped = {str(w.message).split(" skipped")[0] for w in record
               if w.category is EvaluationSkipped}
    assert skipped == {"log_likelihood", "clusters"}
    assert data["provenance"]["classifier"]["weights_hash"] == weights_hash(model)
    assert data["metrics"]["log_likelihood"] == {"skipped": "n_nll = 0"}


def test_sample_noise_overrides_the_run_and_is_recorded(runs, classifier_file, tmp_path):
    counts = {**SMALL, "n_nll": 0}
    noisy = evaluate_run(runs["ladder"], classifier=classifier_file, out=tmp_path / "noisy.json",
                         grid=False, **counts)  # the run's own setting, the default
    mean = evaluate_run(runs["ladder"], classifier=classifier_file, out=tmp_path / "mean.json",
                        grid=False, sample_noise=False, **counts)
    assert noisy["provenance"]["config"]["model"]["prior_vae"]["sample_noise"] is True
    assert mean["provenance"]["config"]["model"]["prior_vae"]["sample_noise"] is False
    assert noisy["metrics"]["elbo"] == mean["metrics"]["elbo"]  # only the samples change
    assert noisy["metrics"]["generation"]["fcd_generated"] != \
        mean["metrics"]["generation"]["fcd_generated"]
    with pytest.raises(ValueError, match="hierarchical and LaDDer"):
        evaluate_run(runs["normal"], out=tmp_path / "n.json", grid=False, sample_noise=True,
                     **counts)


def test_unwritable_outputs_are_refused_before_any_work(runs, tmp_path, monkeypatch):
    import ladder.evaluate

    def work(*args, **kwargs):
        raise AssertionError("the evaluation started")

    monkeypatch.setattr(ladder.evaluate, "_evaluate", work)
    with pytest.raises(OutputPathError, match=r"no-such does not exist; create it"):
        evaluate_run(runs["normal"], out=tmp_path / "no-such" / "e.json", **SMALL)
    with pytest.raises(OutputPathError, match="is a folder"):
        evaluate_run(runs["normal"], out=tmp_path, **SMALL)
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputPathError, match="does not exist"):
        evaluate_run(runs["normal"], out=tmp_path / "file" / "e.json", **SMALL)


def test_the_json_and_grid_are_written_atomically(runs, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    run = runs["normal"]
    for name in (f"{RunDir.EVALUATION}.tmp", RunDir.SAMPLES):  # an old temporary name; the target
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(victim)
    with pytest.warns(EvaluationSkipped):
        evaluate_run(run, classifier=tmp_path / "absent.pt", **{**SMALL, "n_nll": 0})
    assert victim.read_text() == "precious"
    assert not (run / RunDir.SAMPLES).is_symlink() and (run / RunDir.SAMPLES).stat().st_size > 1000
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary is left
    (run / f"{RunDir.EVALUATION}.tmp").unlink()


def test_bad_counts_are_refused_before_any_work(runs):
    with pytest.raises(ValueError, match="exceeds the 60 test images"):
        evaluate_run(runs["normal"], **{**SMALL, "n_samples": 61})
    with pytest.raises(ValueError, match="n_is must be >= 1"):
        evaluate_run(runs["normal"], **{**SMALL, "n_is": 0})


def test_cli_writes_the_json_and_prints_a_table(runs, classifier_file, tmp_path, capsys):
    out = tmp_path / "cli.json"
    args = ["evaluate", str(runs["ladder"]), "--n-test", "60", "--n-samples", "30", "--n-is",
            "3", "--n-nll", "4", "--n-inner", "2", "--classifier", str(classifier_file),
            "--out", str(out), "--no-progress", "--no-grid"]
    assert main(args) == 0
    validate_evaluation(json.loads(out.read_text()))
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0] == "| metric | ladder |" and any(r.startswith("| FCD generated") for r in rows)
    assert not any("FID" in r for r in rows)
    assert main(args[:-4] + ["--n-samples", "99", "--no-grid"]) == 2
    assert "exceeds the 60 test images" in capsys.readouterr().err
    assert main(["evaluate", str(runs["ladder"]), str(runs["normal"]), "--out", "x"]) == 2


def test_evaluate_once_keeps_a_current_evaluation(tmp_path, monkeypatch):
    import ladder.evaluate

    (tmp_path / "checkpoint.pt").write_bytes(b"weights")
    calls = []
    monkeypatch.setattr(ladder.evaluate, "evaluate_run",
                        lambda run_dir, **counts: calls.append(counts) or {"fresh": True})
    sha = file_sha256(tmp_path / "checkpoint.pt")
    old = {"provenance": {"checkpoint": {"sha256": sha},
                          "sample_counts": {"n_samples": 100, "n_is": 10, "n_test": 200}}}
    (tmp_path / "evaluation.json").write_text(json.dumps(old))
    assert evaluate_once(tmp_path, n_samples=100, n_is=10, n_test=200) == old
    assert evaluate_once(tmp_path, n_samples=100, n_is=20, n_test=200) == {"fresh": True}
    assert evaluate_once(tmp_path, n_samples=100, n_is=10, n_test=200,
                         n_nll=50) == {"fresh": True}  # every count is compared
    (tmp_path / "checkpoint.pt").write_bytes(b"newer weights")
    assert evaluate_once(tmp_path, n_samples=100, n_is=10, n_test=200) == {"fresh": True}
    assert len(calls) == 3
