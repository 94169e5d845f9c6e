"""`ladder` on bad input: every command answers with one line on stderr naming what is wrong and
what to do, exit status 2, never a traceback (only with --debug); resume, locks and output paths
end to end."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

from ladder.checkpoint import OutputPathError, load_checkpoint, save_checkpoint
from ladder.cli import main
from ladder.config import load_config
from ladder.train import Trainer

TINY = ["--preset", "quick", "--prior", "normal", "--set", "data.n_train=128",
        "--set", "data.n_test=64", "--set", "train.epochs=1", "--set", "train.progress=false"]
COUNTS = ["--n-test", "64", "--n-samples", "16", "--n-is", "2", "--n-nll", "4", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    """A good one-epoch run and broken copies: a NaN weight, no random state and history, and a
    ladder run whose DP-GMM state is malformed."""
    root = tmp_path_factory.mktemp("cli")
    good = root / "good"
    assert main(["train", *TINY, "--run-dir", str(good)]) == 0
    state = load_checkpoint(good / "checkpoint.pt")
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    broken = {
        "nan": {**state, "model": {**state["model"],
                                   name: torch.full_like(state["model"][name], float("nan"))}},
        "norng": {k: v for k, v in state.items() if k not in ("rng", "history")},
    }
    for key, payload in broken.items():
        shutil.copytree(good, root / key)
        save_checkpoint(payload, root / key / "checkpoint.pt")
    cfg = load_config(preset="quick", prior="ladder", overrides=[
        "data.n_train=128", "data.n_test=64", "model.n_mc=4", "model.dpgmm.truncation=5"])
    ladder = Trainer(cfg, root / "dpgmm").state()
    ladder["model"]["prior.hyper._extra_state"] = {"dpgmm": {"format": "not a DP-GMM"}}
    save_checkpoint(ladder, root / "dpgmm" / "checkpoint.pt")
    (root / "file").write_text("")
    return root


CASES = {
    # train --resume: every option is applied or refused
    "resume-model-key": (["train", "--resume", "{good}", "--set", "model.d_z=8"],
                         "cannot change model.d_z (16 -> 8) when resuming"),
    "resume-seed": (["train", "--resume", "{good}", "--set", "train.seed=5"], "train.seed"),
    "resume-prior-flag": (["train", "--resume", "{good}", "--prior", "gmm"],
                          "--prior cannot be combined with --resume"),
    "resume-run-dir": (["train", "--resume", "{good}", "--run-dir", "{root}/x"], "--run-dir"),
    "resume-unused-change": (["train", "--resume", "{good}", "--set", "train.lr=0.001"],
                             "set train.epochs above 1"),
    "resume-no-rng": (["train", "--resume", "{norng}", "--set", "train.epochs=2"],
                      "lacks rng, history, which resuming needs"),
    "resume-missing": (["train", "--resume", "{root}/absent"], "no checkpoint at"),
    # train
    "occupied": (["train", *TINY, "--set", "train.seed=7", "--run-dir", "{good}"],
                 "already holds a run of another config (it differs in train.seed)"),
    "diverged": (["train", *TINY, "--set", "train.lr=1000000", "--run-dir", "{root}/dv"],
                 "non-finite loss at epoch 1"),
    "no-cuda": (["train", *TINY, "--device", "cuda", "--run-dir", "{root}/cuda"],
                "CUDA is not available here; use --device cpu"),
    "n-train-too-big": (["train", *TINY, "--set", "data.n_train=70000", "--run-dir",
                         "{root}/big"], "70000"),
    "seed-negative": (["train", *TINY, "--set", "train.seed=-1", "--run-dir", "{root}/neg"],
                      "train.seed"),
    "run-dir-under-a-file": (["train", *TINY, "--run-dir", "{root}/file/run"],
                             "cannot create run folder"),
    # sample
    "sample-n-0": (["sample", "{good}", "--n", "0"], "--n: 0 is not between 1 and 10000"),
    "sample-n-negative": (["sample", "{good}", "--n", "-3"], "--n: -3 is not between"),
    "sample-n-huge": (["sample", "{good}", "--n", "20000"], "--n: 20000 is not between"),
    "sample-seed-huge": (["sample", "{good}", "--seed", str(2**64)], "--seed"),
    "sample-out-missing": (["sample", "{good}", "--out", "{root}/no/s.png"],
                           "its folder {root}/no does not exist; create it"),
    "sample-nan": (["sample", "{nan}", "--out", "{root}/nan.png"], "is not finite (NaN or inf)"),
    "sample-dpgmm": (["sample", "{dpgmm}", "--out", "{root}/d.png"], "not a DPGMM state"),
    "sample-no-cuda": (["sample", "{good}", "--device", "cuda"], "CUDA is not available"),
    # evaluate
    "evaluate-out-missing": (["evaluate", "{good}", *COUNTS, "--out", "{root}/no/such/e.json"],
                             "its folder {root}/no/such does not exist"),
    "evaluate-nan": (["evaluate", "{nan}", *COUNTS], "is not finite (NaN or inf)"),
    "evaluate-dpgmm": (["evaluate", "{dpgmm}", *COUNTS], "not a DPGMM state"),
    "evaluate-missing": (["evaluate", "{root}/absent"], "no checkpoint at"),
    # diagnose
    "diagnose-missing": (["diagnose", "{root}/absent"], "no checkpoint at"),
    "diagnose-nan": (["diagnose", "{nan}"], "is not finite (NaN or inf)"),
    "diagnose-n-1": (["diagnose", "{good}", "--n", "1"], "--n: 1 is not between 2 and 10000"),
    "diagnose-no-cuda": (["diagnose", "{good}", "--device", "cuda"], "CUDA is not available"),
    # slp
    "slp-missing": (["slp", "{root}/absent"], "no checkpoint at"),
    "slp-nan": (["slp", "{nan}"], "is not finite (NaN or inf)"),
    "slp-pairs-0": (["slp", "{good}", "--pairs", "0"], "--pairs: 0 is not between 1 and 10000"),
    "slp-preset": (["slp", "{good}", "--preset", "fast"], "unknown SLP preset 'fast'"),
    "slp-no-cuda": (["slp", "{good}", "--device", "cuda"], "CUDA is not available"),
    # train-classifier
    "classifier-cifar": (["train-classifier", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    "classifier-celeba": (["train-classifier", "--dataset", "celeba"],
                          "no evaluation classifier for celeba"),
    "classifier-cache": (["train-classifier", "--dataset", "mnist"],
                         "cannot create classifier cache folder"),
    "classifier-epochs": (["train-classifier", "--dataset", "mnist", "--epochs", "0"],
                          "--epochs: 0 is not between"),
    # config, reproduce, report, the parser
    "config-unknown-key": (["config", "--set", "model.nope=1"], "unknown key 'model.nope'"),
    "reproduce-manifest": (["reproduce", "--list", "--manifest", "{root}/absent.yaml"],
                           "does not exist"),
    "report-no-runs": (["report", "--scale", "quick", "--runs", "{root}/absent", "--results",
                        "{root}/results"], "no finished runs"),
    "report-no-folder": (["report", "--runs", "{root}/absent"], "is not a folder of runs"),
    "report-no-evaluations": (["report", "--runs", "{norng}"], "no evaluated run folders"),
    "unknown-option": (["sample", "{good}", "--bogus"], "unrecognized arguments: --bogus"),
}


def _fill(argv, root):
    return [a.format(root=root, good=root / "good", nan=root / "nan", norng=root / "norng",
                     dpgmm=root / "dpgmm") for a in argv]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_line_and_status_2(case, runs, capsys, monkeypatch):
    import ladder.classifier_cache
    import ladder.evaluate

    def work(*args, **kwargs):
        raise AssertionError("the work started before the input was checked")

    monkeypatch.setattr(ladder.evaluate, "_evaluate", work)
    monkeypatch.setattr(ladder.classifier_cache, "train_and_cache", work)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LADDER_CACHE", str(runs / "file" / "cache"))
    argv, message = CASES[case]
    capsys.readouterr()
    assert main(_fill(argv, runs)) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"ladder {argv[0]}: error: ") or case == "unknown-option", err
    assert _fill([message], runs)[0] in err
    assert not list(runs.glob("*.png"))  # nothing half-made was written


def test_diagnose_prints_a_table_or_json(runs, capsys):
    assert main(["diagnose", str(runs / "good"), "--n", "32"]) == 0
    table = capsys.readouterr().out
    assert "| active_z |" in table and "| dead_outputs |" in table
    assert main(["diagnose", str(runs / "good"), "--n", "32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_images"] == 32 and len(data["kl_per_dim"]) == 16
    assert isinstance(data["findings"], list) and isinstance(data["stalled"], bool)


def test_debug_shows_the_traceback(runs):
    with pytest.raises(OutputPathError, match="does not exist"):
        main(["--debug", "sample", str(runs / "good"), "--out", str(runs / "no" / "s.png")])
    with pytest.raises(OutputPathError):
        main(["sample", str(runs / "good"), "--out", str(runs / "no" / "s.png"), "--debug"])


def test_an_internal_error_is_one_line_with_status_1(runs, capsys, monkeypatch):
    import ladder.evaluate

    monkeypatch.setattr(ladder.evaluate, "save_sample_grid",
                        lambda *a, **k: [][1])  # a bug of the program, not of the input
    assert main(["sample", str(runs / "good"), "--out", str(runs / "s.png")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "internal error: IndexError" in err and "--debug" in err


def test_no_traceback_reaches_stderr_of_the_real_program(runs):
    """`python -m ladder` in a subprocess: the message is the whole of stderr."""
    out = subprocess.run([sys.executable, "-m", "ladder", "sample", str(runs / "nan"), "--out",
                          str(runs / "nan.png")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("ladder sample: error: ") and out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr and not (runs / "nan.png").exists()


def test_train_classifier_takes_the_dataset_aliases_of_train(runs, tmp_path, capsys, monkeypatch):
    import ladder.classifier_cache

    calls = []
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ladder.classifier_cache, "train_and_cache",
                        lambda name, **kw: calls.append(name) or (tmp_path / "c.pt", 0.9))
    assert main(["train-classifier", "--dataset", "fmnist", "--epochs", "1"]) == 0
    assert calls == ["fashion"] and json.loads(capsys.readouterr().out)["dataset"] == "fashion"
    assert (tmp_path / "cache" / "classifiers").is_dir()  # checked (made) before the training


def test_resume_after_a_divergence_applies_the_advice(runs, tmp_path, capsys):
    run = shutil.copytree(runs / "good", tmp_path / "run")
    before = (run / "config.yaml").read_text()
    argv = ["train", "--resume", str(run), "--set", "train.epochs=2"]
    assert main([*argv, "--set", "train.lr=1000000"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "non-finite loss at epoch 2" in err
    assert f"`ladder train --resume {run} --set train.epochs=2 --set train.lr=100000`" in err
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert (run / "config.yaml").read_text() == before  # it agrees with the checkpoint
    assert main([*argv, "--set", "train.lr=0.0001"]) == 0
    assert "changing train.epochs: 1 -> 2; train.lr: 0.0005 -> 0.0001" in capsys.readouterr().err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["config_changes"] == {"train.epochs": [1, 2], "train.lr": [0.0005, 0.0001]}
    assert main(["train", "--resume", str(run)]) == 0  # complete: says so, trains nothing
    assert "has completed its 2 epochs; nothing to train" in capsys.readouterr().err


def test_two_trainers_on_one_folder(runs, tmp_path, capsys):
    """A real second process trains; this one is refused, and the first's files stay whole."""
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "ladder", "train", *TINY, "--set", "train.epochs=2",
         "--run-dir", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = run / "train.lock"
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.read_text().strip()) and first.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert main(["train", *TINY, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"run folder {run} is in use by another trainer (pid {first.pid}," in err
    out, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert load_checkpoint(run / "checkpoint.pt")["history"] == records
    assert sorted(os.listdir(run)) == ["checkpoint.pt", "config.yaml", "metrics.jsonl",
                                       "train.lock"]
