"""ladder.prior_registry: every value of model.prior builds its prior through one registry."""

import pytest
from torch import nn

from ladder.config import preset_config
from ladder.config_checks import PRIORS
from ladder.prior_registry import PRIOR_BUILDERS, build_prior


def test_the_registry_builds_every_configurable_prior():
    assert tuple(PRIOR_BUILDERS) == PRIORS
    for name in PRIORS:
        cfg = preset_config("quick", "mnist", name).model
        prior = build_prior(cfg, nn.Identity(), (1, 28, 28), seed=3)
        assert prior.dim == cfg.d_z, name
        assert prior.exact_density == (name in ("normal", "gmm", "vamp")), name


def test_an_unknown_prior_names_the_choices():
    cfg = preset_config("quick", "mnist", "gmm").model
    cfg.prior = "flow"
    with pytest.raises(ValueError, match="unknown prior 'flow'; choose one of normal, gmm"):
        build_prior(cfg, None, (1, 28, 28))
