"""Algorithm 1 end to end on small MNIST subsets: learning, resume, faults, CLI."""

import inspect
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import few_components

from ladder.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ladder.cli import main
from ladder.config import ConfigError, load_config, preset_config
from ladder.config_yaml import update_settings
from ladder.data import load_dataset
from ladder.runs import RunInUseError, load_run
from ladder.train import Trainer, derived_seed, train
from ladder.trainer_state import TrainingDivergedError


@pytest.fixture(scope="module")
def mnist_small():
    return (load_dataset("mnist", "train", n=1024, seed=0), load_dataset("mnist", "test", n=256))


def _cfg(prior, epochs=2, components=10, **model):
    cfg = preset_config("paper", "mnist", prior)
    cfg.train.epochs, cfg.train.batch_size, cfg.train.progress = epochs, 64, False
    cfg.train.prior_finetune_epochs = 0  # Algorithm 1 alone; the fine-tuning has its own tests
    cfg.model.n_mc = 10
    few_components(cfg.model, components)
    update_settings(cfg.model, model, "model.")  # e.g. vamp={"init": "data"}
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
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 1\b.*epoch 1") as error:
        trainer.fit()
    assert (f"ladder train --resume {tmp_path / 'run'} --set train.epochs=2 --set "
            "train.lr=0.00005`") in str(error.value)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == saved
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_failed_gmm_refit_is_a_divergence_not_a_crash(tiny, tmp_path):
    cfg = _cfg("gmm", epochs=1)
    cfg.train.lr = 1.0  # the encodings explode and scikit-learn's EM cannot fit them
    with pytest.raises(TrainingDivergedError, match="refit .* failed at the end of epoch 1") as error:
        train(cfg, tmp_path / "run", **tiny)
    assert isinstance(error.value.__cause__, ValueError)
    assert "--set train.lr=0.1" in str(error.value)


def test_corrupt_checkpoint_and_occupied_run_folder(mnist_small, tmp_path):
    data = {"train_set": mnist_small[0], "test_set": mnist_small[1]}
    trainer = train(_cfg("normal", epochs=1), tmp_path / "run", **data)
    assert train(trainer.cfg, tmp_path / "run", **data).epoch == 1  # the same config: done
    with pytest.raises(FileExistsError, match="another config .*model.prior.*--resume"):
        train(_cfg("gmm", epochs=1), tmp_path / "run", **data)
    cfg, model = load_run(tmp_path / "run", device="cpu")
    assert cfg.model.prior == "normal" and not model.training
    path = tmp_path / "run" / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer.resume(tmp_path / "run", **data)


@pytest.mark.parametrize("constrain", ["none", "sigmoid"])
def test_vamp_data_init_starts_every_pseudo_input_at_a_training_image(constrain, tiny, tmp_path):
    cfg = _cfg("vamp", vamp={"init": "data", "constrain": constrain})
    trainer = Trainer(cfg, tmp_path, **tiny)
    images = tiny["train_set"].take(len(tiny["train_set"]))
    if constrain == "sigmoid":
        images = images.clamp(0.01, 0.99)
    pseudo = trainer.model.prior.pseudo_images().detach()
    gap = (pseudo[:, None] - images[None]).abs().flatten(2).amax(-1).min(1).values
    assert (gap < 1e-6).all()
    random = Trainer(_cfg("vamp", vamp={"init": "random", "constrain": constrain}),
                     tmp_path / "random", **tiny)
    assert random.model.prior.pseudo_inputs.std() > 0.9  # left at its N(0, 1) draw


@pytest.fixture(scope="module")
def tiny():
    return {"train_set": load_dataset("mnist", "train", n=256, seed=1),
            "test_set": load_dataset("mnist", "test", n=64)}


@pytest.fixture(scope="module")
def one_epoch_run(tiny, tmp_path_factory):
    """A finished one-epoch run of the normal prior; tests copy it before changing it."""
    run = tmp_path_factory.mktemp("one") / "run"
    train(_cfg("normal", epochs=1), run, **tiny)
    return run


@pytest.fixture()
def run_copy(one_epoch_run, tmp_path):
    import shutil

    return Path(shutil.copytree(one_epoch_run, tmp_path / "run"))


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_applies_optimiser_changes_and_records_them(run_copy, tiny):
    victim = run_copy.parent / "victim"
    victim.write_text("precious")
    for name in ("checkpoint.pt.tmp", "metrics.jsonl.tmp", "config.yaml.tmp"):
        (run_copy / name).symlink_to(victim)  # the fixed temporary names of old
    with open(run_copy / "metrics.jsonl", "a") as handle:  # a stale line of an older run
        handle.write(json.dumps({"epoch": 2, "stale": True}) + "\n")
    overrides = ["train.epochs=2", "train.lr=0.0001", "train.betas=[0.5, 0.9]"]
    stale = Trainer.resume(run_copy, overrides, **tiny)
    resumed = Trainer.resume(run_copy, overrides, **tiny)
    changes = {"train.epochs": [1, 2], "train.lr": [0.0005, 0.0001],
               "train.betas": [[0.9, 0.999], [0.5, 0.9]]}
    assert resumed.pending_changes == changes and resumed.epoch == 1
    resumed.fit()
    records = _metrics(run_copy)
    assert [r["epoch"] for r in records] == [1, 2] and "stale" not in records[1]
    assert records[1]["config_changes"] == changes and "config_changes" not in records[0]
    assert records[1]["lr"] == 0.0001 and resumed.vae_opt.param_groups[0]["betas"] == (0.5, 0.9)
    state = load_checkpoint(run_copy / "checkpoint.pt")
    assert state["resumes"] == [{"epoch": 1, "changes": changes}]
    assert state["history"] == records
    assert yaml.safe_load((run_copy / "config.yaml").read_text()) == state["config"]
    assert state["config"]["train"]["lr"] == 0.0001
    assert victim.read_text() == "precious"
    with pytest.raises(CheckpointError, match="changed after this trainer loaded it"):
        stale.fit()  # it loaded epoch 1, which the other trainer has since moved on from


@pytest.mark.parametrize("override", ["model.d_z=8", "model.prior=gmm", "data.n_train=128",
                                      "data.dataset=fashion", "train.seed=3",
                                      "train.batch_size=32"])
def test_resume_refuses_a_change_of_model_data_or_batches(override, run_copy, tiny):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"cannot change {key} \(.* -> .*\) when resuming"):
        Trainer.resume(run_copy, [override], **tiny)


def test_a_change_no_epoch_would_use_is_refused(run_copy, tiny):
    with pytest.raises(ConfigError, match="train.epochs = 1, but .* has completed 1 epochs"):
        Trainer.resume(run_copy, ["train.lr=0.001"], **tiny)
    with pytest.raises(ConfigError, match="completed 1 epochs"):
        Trainer.resume(run_copy, ["train.epochs=1", "train.grad_clip=1.0"], **tiny)
    assert Trainer.resume(run_copy, [], **tiny).pending_changes == {}  # nothing to do is fine


def test_run_files_agree_with_the_checkpoint_on_resume_and_on_a_fresh_start(run_copy, tiny):
    with open(run_copy / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"epoch": 2}) + "\n" + json.dumps({"epoch": 3}) + "\n")
    (run_copy / "config.yaml").write_text("stale: true\n")
    Trainer.resume(run_copy, [], **tiny).fit()  # complete: trains nothing, rewrites the files
    assert [r["epoch"] for r in _metrics(run_copy)] == [1]
    state = load_checkpoint(run_copy / "checkpoint.pt")
    assert yaml.safe_load((run_copy / "config.yaml").read_text()) == state["config"]
    with pytest.raises(FileExistsError, match="already holds a run"):
        Trainer(_cfg("normal", epochs=1), run_copy, **tiny).fit()  # never over another's checkpoint
    (run_copy / "checkpoint.pt").unlink()  # as the corrupt-checkpoint message advises
    with open(run_copy / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"epoch": 2, "stale": True}) + "\n")
    train(_cfg("normal", epochs=1), run_copy, **tiny)
    assert [r["epoch"] for r in _metrics(run_copy)] == [1]  # a fresh start: no stale epochs
    assert "stale" not in _metrics(run_copy)[0]


_HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)  # as run_lock does: a longer pid of an earlier holder must not remain
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_trainer_is_refused_and_a_dead_holder_does_not_block(run_copy, tiny):
    before = (run_copy / "metrics.jsonl").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run_copy / "train.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunInUseError, match=rf"{run_copy} is in use .*pid {holder.pid}\b"):
            Trainer.resume(run_copy, ["train.epochs=2"], **tiny).fit()
        with pytest.raises(RunInUseError):
            train(_cfg("normal", epochs=1), run_copy, **tiny)
        assert (run_copy / "metrics.jsonl").read_bytes() == before
    finally:
        holder.kill()  # dies holding the lock, as a trainer killed with -9 would
        holder.wait()
    Trainer.resume(run_copy, ["train.epochs=2"], **tiny).fit()
    assert [r["epoch"] for r in _metrics(run_copy)] == [1, 2]


def test_checkpoints_that_cannot_be_resumed_or_used(run_copy, tiny):
    path = run_copy / "checkpoint.pt"
    good = load_checkpoint(path)
    state = {k: v for k, v in good.items() if k not in ("rng", "history")}
    save_checkpoint(state, path)
    with pytest.raises(CheckpointError, match="lacks rng, history, which resuming needs"):
        Trainer.resume(run_copy, ["train.epochs=2"], **tiny)
    assert load_run(run_copy, "cpu")[0].model.prior == "normal"  # still usable for evaluation
    state = dict(good, rng={"torch": "not a tensor"})
    save_checkpoint(state, path)
    with pytest.raises(CheckpointError, match="malformed random state"):
        Trainer.resume(run_copy, ["train.epochs=2"], **tiny)
    name = next(k for k, v in good["model"].items() if v.is_floating_point())
    good["model"][name] = torch.full_like(good["model"][name], float("nan"))
    save_checkpoint(good, path)
    with pytest.raises(CheckpointError, match=rf"weight {name} is not finite"):
        load_run(run_copy, "cpu")


def test_derived_seeds_fit_torch_for_every_seed():
    assert derived_seed(3, 7) == 3 * 1_000_003 + 7  # unchanged for the seeds runs have used
    for seed in (0, 2**44, 2**63, 2**64 - 1):
        torch.Generator().manual_seed(derived_seed(seed, 500_009))


def test_cli_refuses_bad_config_with_a_message(capsys):
    assert main(["train", "--preset", "quick", "--set", "model.prior_vae.d_t=99"]) == 2
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
    capsys.readouterr()
    assert main(["report", "--runs", str(tmp_path)]) == 0  # the one-line pipeline's last step
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("| mnist | normal |"))
    assert f"| {result['elbo']:.1f} |" in row and row.endswith("| 1/1 | run |")


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


@pytest.mark.parametrize(("prior", "budget"), [
    ("normal", 1), ("gmm", 1), ("vamp", 1), ("hierarchical", 1), ("ladder", 1),
    ("ladder", 2),  # two prior steps per batch, with a closed-form decoder std
])
def test_a_training_step_never_reads_a_tensor_back(prior, budget, mnist_small, tmp_path,
                                                    monkeypatch):
    """Inside a step of Algorithm 1 no tensor is read back into Python (on a GPU each such read
    waits for every queued kernel); the one exception is Adam's step counter, a CPU tensor."""
    small = load_dataset("mnist", "train", n=256, seed=2)
    cfg = _cfg(prior, epochs=1)
    if budget > 1:
        cfg.train.prior_steps, cfg.model.prior_vae.scale_mode = budget, "closed_form"
    trainer = train(cfg, tmp_path, train_set=small,
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


# ----------------------------------------------------------------------------------------------
# The prior's training budget and its closed-form decoder std


def _ladder(tiny, run, epochs=1, model=(), **train_settings):
    cfg = _cfg("ladder", epochs=epochs, components=5, **dict(model))
    for key, value in train_settings.items():
        setattr(cfg.train, key, value)
    return Trainer(cfg, run, **tiny)


@pytest.mark.parametrize(("bca", "prior_steps"), [("sequential", 3), ("joint", 1)])
def test_prior_steps_and_the_closed_form_scale(bca, prior_steps, tiny, tmp_path):
    """train.prior_steps Adam steps of the prior block per batch; a closed-form s moves once per
    prior-block step and never in the data-VAE block."""
    trainer = _ladder(tiny, tmp_path / "run", model={"prior_vae": {"scale_mode": "closed_form"}}, bca=bca,
                      prior_steps=prior_steps)
    trainer.fit()
    batches = len(tiny["train_set"]) // 64
    adam_steps = {int(state["step"]) for state in trainer.prior_opt.state.values()}
    assert adam_steps == {batches * prior_steps}
    assert {int(state["step"]) for state in trainer.vae_opt.state.values()} == {batches}
    likelihood = trainer.model.prior.likelihood
    assert int(likelihood.mse_steps) == batches * prior_steps
    (scale,) = trainer.history[0]["prior_scale"]
    assert scale == pytest.approx(float(likelihood.scale())) and scale != pytest.approx(0.1)


def test_prior_finetune_epochs_train_the_prior_alone_and_resume_exactly(tiny, tmp_path):
    plain = _ladder(tiny, tmp_path / "plain")
    plain.fit()
    straight = _ladder(tiny, tmp_path / "straight", prior_finetune_epochs=2)
    straight.fit()
    records = _metrics(tmp_path / "straight")
    assert [(r["epoch"], r.get("phase")) for r in records] == [
        (1, None), (1, "prior_finetune"), (2, "prior_finetune")]
    assert records[0] == {**plain.history[0], **{k: records[0][k] for k in records[0]
                                                   if k.startswith("seconds")}}
    assert all(math.isfinite(r["train_prior_objective"]) and "test_elbo" in r
               and "refit_dpgmm_active" in r for r in records[1:])
    a, b = plain.model.state_dict(), straight.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("prior."))  # theta, phi
    assert not torch.equal(a["prior.decoder.body.0.0.weight"], b["prior.decoder.body.0.0.weight"])

    interrupted = _ladder(tiny, tmp_path / "resumed", prior_finetune_epochs=1)
    interrupted.fit()
    resumed = Trainer.resume(tmp_path / "resumed", ["train.prior_finetune_epochs=2"], **tiny)
    assert not resumed.is_complete
    resumed.fit()
    c = resumed.model.state_dict()
    assert all(torch.equal(b[k], c[k]) for k in b if torch.is_tensor(b[k]))
    assert resumed.records[-1]["test_elbo"] == straight.records[-1]["test_elbo"]
    assert [r["epoch"] for r in resumed.finetune_history] == [1, 2] and len(resumed.history) == 1
    assert resumed.records == _metrics(tmp_path / "resumed")
    assert resumed.resumes == [{"epoch": 1, "phase": "prior_finetune",
                                "changes": {"train.prior_finetune_epochs": [1, 2]}}]

    with pytest.raises(ConfigError, match="has begun its prior fine-tuning after epoch 1"):
        Trainer.resume(tmp_path / "resumed", ["train.epochs=2"], **tiny)
    with pytest.raises(ConfigError, match="completed 2 prior fine-tuning epochs"):
        Trainer.resume(tmp_path / "resumed", ["train.prior_finetune_epochs=1"], **tiny)
    with pytest.raises(ConfigError, match="set train.prior_finetune_epochs above 2"):
        Trainer.resume(tmp_path / "resumed", ["train.lr=0.001"], **tiny)
    assert Trainer.resume(tmp_path / "resumed", [], **tiny).is_complete


@pytest.mark.parametrize("prior", ["normal", "gmm"])
def test_a_prior_without_parameters_skips_the_fine_tuning(prior, tiny, tmp_path):
    cfg = _cfg(prior, epochs=1, components=5)
    cfg.train.prior_finetune_epochs = 2
    trainer = train(cfg, tmp_path / prior, **tiny)
    assert trainer.is_complete and trainer.finetune_epochs_due == 0
    assert [r.get("phase") for r in _metrics(tmp_path / prior)] == [None]

def test_each_epoch_records_diagnostics_without_changing_any_other_number(mnist_small, tmp_path,
                                                                          monkeypatch):
    with_diagnostics = train(_cfg("ladder", epochs=2), tmp_path / "a", train_set=mnist_small[0],
                             test_set=mnist_small[1])
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text()
               .splitlines()]
    for key in ("diag_active_z", "diag_dead_outputs", "diag_floor_share", "diag_stalled",
                "diag_collapsed", "diag_prior_active_t", "diag_prior_hyper_active_components"):
        assert all(key in record for record in records), key
    assert records[0]["diag_n_images"] == 256
    monkeypatch.setattr(Trainer, "_diagnose", lambda self: {})
    without = train(_cfg("ladder", epochs=2), tmp_path / "b", train_set=mnist_small[0],
                    test_set=mnist_small[1])

    def numbers(record):
        return {k: v for k, v in record.items() if not k.startswith(("diag_", "seconds_"))}

    assert [numbers(r) for r in with_diagnostics.history] == [numbers(r) for r in without.history]
    a, b = with_diagnostics.model.state_dict(), without.model.state_dict()
    assert all(torch.equal(value, b[key]) for key, value in a.items() if torch.is_tensor(value))


def test_dead_outputs_are_warned_about_and_training_goes_on(mnist_small, tmp_path):
    from ladder.train import TrainingStallWarning

    trainer = Trainer(_cfg("normal", epochs=1, output_activation="relu"), tmp_path / "run",
                      *mnist_small)
    with torch.no_grad():  # a ReLU output below 0 for every image: dead, as Fashion seed 1
        trainer.model.decoder.body[-2].bias.fill_(-100.0)
    with pytest.warns(TrainingStallWarning) as caught:
        trainer.fit()
    messages = [str(w.message) for w in caught if w.category is TrainingStallWarning]
    assert any("output pixels" in m and "output_activation=relu_leaky_grad" in m for m in messages)
    assert not any("all-black" in m or "active" in m for m in messages)  # they wait for epoch 2
    record = trainer.history[-1]
    assert record["epoch"] == 1 and record["diag_dead_share"] > 0.5 and record["diag_stalled"]


def test_train_resumes_an_interrupted_run_and_refuses_another_config(data_root, tmp_path):
    cfg = load_config(preset="quick", prior="normal", overrides=[
        "data.n_train=256", "data.n_test=64", "train.epochs=2", "train.progress=false"])
    half = Trainer(cfg, tmp_path)
    half.history.append(half.run_epoch())  # what fit() does, stopped after the first epoch
    state = half.state()
    del state["config"]["train"]["prior_steps"]  # a checkpoint from before that key existed
    save_checkpoint(state, half.checkpoint_path)
    trainer = train(cfg, tmp_path)
    assert [r["epoch"] for r in trainer.history] == [1, 2]
    assert trainer.history[0] == half.history[0]
    assert train(cfg, tmp_path).epoch == 2  # finished: nothing more to train
    other = load_config(preset="quick", prior="gmm", overrides=[
        "data.n_train=256", "data.n_test=64", "train.epochs=2", "train.progress=false"])
    with pytest.raises(FileExistsError, match="another config .*model.prior"):
        train(other, tmp_path)
