from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ladder.config import Config, ConfigError, load_config, preset_config
from ladder.config_priors import FLAT_MODEL_KEYS, flat_key_hint, nest_flat_model_keys

RESULTS = Path(__file__).parents[1] / "results"


def _at(cfg: Config, section: str, name: str):
    return getattr(getattr(cfg.model, section), name)


def test_a_stored_run_of_before_the_sections_reads_as_its_preset():
    """A landed paper-scale run's config.yaml (flat model keys) is the paper preset it was."""
    stored = yaml.safe_load((RESULTS / "paper/runs/mnist-ladder-seed0/config.yaml").read_text())
    assert "d_t" in stored["model"] and "prior_vae" not in stored["model"]
    read = Config.from_dict(stored)
    expected = preset_config("paper", "mnist", "ladder")
    expected.train.device, expected.train.progress = read.train.device, read.train.progress
    assert read == expected


@given(st.dictionaries(st.sampled_from(sorted(FLAT_MODEL_KEYS)), st.integers(1, 8), min_size=1))
def test_every_flat_key_lands_in_each_of_its_sections(values):
    nested = nest_flat_model_keys({"preset": "paper", "model": {"prior": "gmm", **values}})
    assert nested["preset"] == "paper" and nested["model"]["prior"] == "gmm"
    assert not FLAT_MODEL_KEYS.keys() & nested["model"].keys()
    for key, value in values.items():
        for section, name in FLAT_MODEL_KEYS[key]:
            assert nested["model"][section][name] == value


def test_flat_n_components_was_all_three_counts():
    cfg = Config.from_dict({"model": {"n_components": 7}})
    assert (_at(cfg, "gmm", "n_components"), _at(cfg, "vamp", "n_pseudo_inputs"),
            _at(cfg, "dpgmm", "truncation")) == (7, 7, 7)


def test_a_config_with_sections_passes_through_unchanged():
    data = preset_config("quick", "fashion", "vamp").to_dict()
    assert nest_flat_model_keys(data) is data


@pytest.mark.parametrize(("key", "now"), [("model.d_t", "model.prior_vae.d_t"),
                                          ("gmm_fit", "model.gmm.fit"),
                                          ("model.hyper_log_prob", "model.dpgmm.train_kind")])
def test_an_old_key_on_the_command_line_names_its_new_place(key, now):
    assert now in flat_key_hint(key)
    with pytest.raises(ConfigError, match=f"unknown key '{key}' \\(it is now {now}"):
        load_config(overrides=[f"{key}=1"])


def test_a_new_key_gets_no_hint():
    assert flat_key_hint("model.d_z") == flat_key_hint("train.epochs") == ""


@pytest.mark.parametrize("old", sorted(FLAT_MODEL_KEYS))
def test_an_old_attribute_set_in_python_raises_instead_of_doing_nothing(old):
    cfg = preset_config("quick", "mnist", "ladder")
    with pytest.raises(AttributeError):
        setattr(cfg.model, old, 1)
