import pytest

from ladder.config import (
    Config,
    ConfigError,
    apply_overrides,
    load_config,
    preset_config,
    save_yaml,
)


def test_paper_preset_is_sm_e():
    mnist = preset_config("paper", "mnist", "ladder")
    assert (mnist.model.d_z, mnist.model.d_t, mnist.train.epochs) == (16, 2, 50)
    assert (mnist.train.batch_size, mnist.train.lr) == (256, 5e-4)
    assert mnist.model.prior_layers == 3
    celeba = preset_config("paper", "celeba", "ladder")
    assert (celeba.model.d_z, celeba.model.d_t, celeba.train.epochs) == (256, 32, 75)
    assert celeba.model.prior_layers == 5


def test_reference_preset_takes_the_code_choices():
    cfg = preset_config("reference", "fashion", "ladder")
    assert cfg.model.activation == "leaky_relu" and cfg.model.hyper_log_prob == "plugin"
    assert cfg.train.betas == (0.9, 0.95) and cfg.train.grad_clip == 1.0
    assert cfg.train.warmup_epochs == 10 and cfg.train.refit_points == 2048


def test_yaml_round_trip_and_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: quick\ndata: {dataset: fashion-mnist}\ntrain: {epochs: 4}\n")
    cfg = load_config(path, overrides=["train.seed=3", "d_t=4"])
    assert cfg.preset == "quick" and cfg.data.dataset == "fashion"
    assert cfg.train.epochs == 4 and cfg.train.seed == 3 and cfg.model.d_t == 4
    assert cfg.data.n_train == 10_000  # from the quick preset
    out = tmp_path / "out.yaml"
    save_yaml(cfg, out)
    again = load_config(out)
    assert again.to_dict() == cfg.to_dict()
    assert Config.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.bogus=1", "valid keys here"),
        ("train.epochs=three", "must be an integer"),
        ("model.d_t=32", "exceeds model.d_z"),
        ("train.batch_size=-1", "must be positive"),
        ("model.prior=flow", "choose one of: normal, gmm, vamp, hierarchical, ladder"),
        ("train.betas=[0.9]", "list of 2 numbers"),
        ("nonsense=1", "unknown key"),
        ("epochs", "key=value"),
    ],
)
def test_bad_settings_are_refused_with_a_useful_message(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(preset="paper", overrides=[override])


def test_unknown_dataset_lists_choices():
    with pytest.raises(ConfigError, match="mnist, fashion, celeba"):
        preset_config("paper", "cifar10")


def test_overrides_parse_yaml_scalars():
    cfg = preset_config("paper")
    apply_overrides(cfg, ["train.grad_clip=null", "train.betas=[0.9, 0.95]", "model.sample_noise=true"])
    assert cfg.train.grad_clip is None and cfg.train.betas == (0.9, 0.95)
    assert cfg.model.sample_noise is True


def test_every_shipped_config_file_loads():
    from pathlib import Path

    files = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert len(files) == 15
    for path in files:
        cfg = load_config(path)
        dataset, prior = path.stem.split("-")
        assert (cfg.data.dataset, cfg.model.prior, cfg.preset) == (dataset, prior, "paper")
