"""ladder.prior_block: the prior block of Algorithm 1 on a frozen autoencoder."""

import pytest
import torch
from conftest import few_components

from ladder.config import preset_config
from ladder.data import load_dataset
from ladder.model import build_model
from ladder.prior_block import fit_prior


@pytest.mark.parametrize("prior", ["gmm", "ladder"])
def test_fit_prior_to_a_frozen_autoencoder(prior):
    cfg = preset_config("paper", "mnist", prior).model
    cfg.n_mc = 10
    few_components(cfg, 10)
    cfg.d_z = 2 if prior == "gmm" else 4
    model = build_model(cfg, "mnist", (1, 28, 28))
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    history = fit_prior(model, load_dataset("mnist", "test", n=256), epochs=3, batch_size=64)
    assert history[-1] > history[0]
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in before.items())
