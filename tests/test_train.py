"""Algorithm 1 end to end on small MNIST subsets: learning, resume, faults, CLI."""

import inspect
import json
import warnings

import pytest
import torch

from ladder.checkpoint import CheckpointError, load_checkpoint
from ladder.cli import main
from ladder.config import preset_config
from ladder.data import load_dataset
from ladder.model import build_model
from ladder.train import (
    Trainer,
    TrainingDivergedError,
    fit_prior,
    load_run,
    select_precision,
    train,
)


@pytest.fixture(scope="module")
def mnist_small():
    return (load_dataset("mnist", "train", n=1024, seed=0), load_dataset("mnist", "test", n=256))


def _cfg(prior, epochs=2, **model):
    cfg = preset_config("paper", "mnist", prior)
    cfg.train.epochs, cfg.train.batch_size, cfg.train.progress = epochs, 64, False
    cfg.model.n_mc, cfg.model.n_components = 10, 10
    for key, value in model.items():
        setattr(cfg.model, key, value)
    return cfg


@pytest.mark.parametrize("prior", ["normal", "gmm", "vamp", "hierarchical", "ladder"])
def test_two_epochs_raise_the_elbo(prior, mnist_small, tmp_path):
    trainer = train(_cfg(prior), tmp_path / prior, train_set=mnist_small[0],
                    test_set=mnist_small[1])
    first, second = trainer.history
    assert second["train_elbo"] > first["train_elbo"]
    assert second["test_elbo"] > first["test_elbo"] - 5.0
    lines = (tmp_path / prior / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    if prior in ("gmm", "ladder"):
        assert any(key.startswith("refit_") for key in second)


def test_resumed_run_equals_uninterrupted_run(mnist_small, tmp_path):
    small = (load_dataset("mnist", "train", n=256, seed=1), mnist_small[1])
    straight = train(_cfg("ladder", epochs=2), tmp_path / "a", train_set=small[0],
                     test_set=small[1])
    interrupted = Trainer(_cfg("ladder", epochs=2), tmp_path / "b", small[0], small[1])
    interrupted.cfg.train.epochs = 1
    interrupted.fit()
    resumed = Trainer.resume(tmp_path / "b", train_set=small[0], test_set=small[1])
    assert resumed.epoch == 1 and resumed.cfg.train.epochs == 1
    resumed.cfg.train.epochs = 2
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key, value in a.items():
        if torch.is_tensor(value):
            assert torch.equal(value, b[key]), key
    assert straight.history[-1]["test_elbo"] == resumed.history[-1]["test_elbo"]


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(mnist_small, tmp_path):
    trainer = Trainer(_cfg("normal", epochs=2), tmp_path / "run", *mnist_small)
    trainer.cfg.train.epochs = 1
    trainer.fit()
    saved = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with torch.no_grad():
        next(trainer.model.decoder.parameters()).fill_(float("nan"))
    trainer.cfg.train.epochs = 2
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 1\b.*epoch 1"):
        trainer.fit()
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == saved
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1


def test_corrupt_checkpoint_and_occupied_run_folder(mnist_small, tmp_path):
    data = {"train_set": mnist_small[0], "test_set": mnist_small[1]}
    trainer = train(_cfg("normal", epochs=1), tmp_path / "run", **data)
    with pytest.raises(FileExistsError, match="--resume"):
        train(trainer.cfg, tmp_path / "run", **data)
    cfg, model = load_run(tmp_path / "run", device="cpu")
    assert cfg.model.prior == "normal" and not model.training
    path = tmp_path / "run" / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer.resume(tmp_path / "run", **data)


def test_cli_refuses_bad_config_with_a_message(capsys):
    assert main(["train", "--preset", "quick", "--set", "model.d_t=99"]) == 2
    assert "exceeds model.d_z" in capsys.readouterr().err
    assert main(["config", "--preset", "quick", "--prior", "gmm"]) == 0
    assert "n_train: 10000" in capsys.readouterr().out


def test_cli_train_evaluate_sample(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--preset", "quick", "--prior", "normal", "--set", "data.n_train=512",
            "--set", "data.n_test=256", "--set", "train.epochs=1", "--set", "train.progress=false"]
    assert main(["train", *args, "--run-dir", str(run)]) == 0
    assert main(["evaluate", str(run), "--n-test", "256", "--n-samples", "64", "--n-is", "4",
                 "--n-nll", "8", "--no-progress", "--no-grid"]) == 0
    result = json.loads((run / "evaluation.json").read_text())["metrics"]["elbo"]
    assert result["n_images"] == 256 and result["mae"] < 0.5
    assert main(["sample", str(run), "--n", "16"]) == 0
    assert (run / "samples.png").stat().st_size > 1000


@pytest.mark.parametrize("prior", ["gmm", "ladder"])
def test_fit_prior_to_a_frozen_autoencoder(prior, mnist_small):
    cfg = _cfg(prior).model
    cfg.d_z = 2 if prior == "gmm" else 4
    model = build_model(cfg, "mnist", (1, 28, 28))
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    history = fit_prior(model, mnist_small[1], epochs=3, batch_size=64)
    assert history[-1] > history[0]
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("capabilities, expected", [
    ({"avx2": True, "amx_bf16": True}, "bf16"),
    ({"avx2": True, "avx512_bf16": True}, "bf16"),
    ({"avx2": True, "amx_bf16": False, "avx512_bf16": False}, "fp32"),
    ({}, "fp32"),
])
def test_auto_precision_is_bf16_only_on_a_cpu_that_computes_it(capabilities, expected,
                                                                monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert select_precision("auto", torch.device("cpu")) == expected
    assert select_precision("fp32", torch.device("cpu")) == "fp32"


def test_bf16_on_a_cpu_without_it_warns_and_is_kept(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    with pytest.warns(UserWarning, match="without native bf16"):
        assert select_precision("bf16", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert select_precision("bf16", torch.device("cpu")) == "bf16"


@pytest.mark.filterwarnings("ignore:train.precision = bf16")
def test_bf16_precision_keeps_float32_state_and_the_elbo(mnist_small, tmp_path):
    """train.precision = bf16 autocasts the networks of both gradient blocks; the parameters,
    the optimiser state and the (float32) evaluation stay float32, and one epoch lands near the
    float32 run's test ELBO."""
    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = _cfg("ladder", epochs=1)
        cfg.train.precision = precision
        runs[precision] = train(cfg, tmp_path / precision, train_set=mnist_small[0],
                                test_set=mnist_small[1])
    half, full = (runs[p].history[0]["test_elbo"] for p in ("bf16", "fp32"))
    assert half != full and abs(half - full) < 0.03 * abs(full)
    trainer = runs["bf16"]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    states = [s for opt in (trainer.vae_opt, trainer.prior_opt) for s in opt.state.values()]
    assert all(s["exp_avg"].dtype == torch.float32 for s in states)


READ_BACKS = ("item", "tolist", "__bool__", "__float__", "__int__")


@pytest.mark.parametrize("prior", ["normal", "gmm", "vamp", "hierarchical", "ladder"])
def test_a_training_step_never_reads_a_tensor_back(prior, mnist_small, tmp_path, monkeypatch):
    """Inside a step of Algorithm 1 no tensor is read back into Python (on a GPU each such read
    waits for every queued kernel); the one exception is Adam's step counter, a CPU tensor."""
    small = load_dataset("mnist", "train", n=256, seed=2)
    trainer = train(_cfg(prior, epochs=1), tmp_path, train_set=small,
                    test_set=mnist_small[1])  # one epoch: the GMM and the DP-GMM are fitted
    x = mnist_small[0].take(64).contiguous(memory_format=torch.channels_last)
    reads = []
    for name in READ_BACKS:
        original = getattr(torch.Tensor, name)

        def spy(tensor, *args, _name=name, _original=original, **kwargs):
            caller = inspect.stack()[1].filename
            if "torch/optim" not in caller.replace("\\", "/"):
                reads.append(f"{_name} from {caller}")
            return _original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    trainer._step(x, warmup=False)
    monkeypatch.undo()
    assert reads == []
