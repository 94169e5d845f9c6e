"""ladder.frozen_latent and `ladder evaluate --frozen-latent`: every prior fitted to one run's
frozen codes, scored at the same test codes."""

import json

import pytest
import torch
from conftest import few_components

from ladder.cli import main
from ladder.config import preset_config
from ladder.frozen_latent import (
    FROZEN_LATENT_FILE,
    RUN_PRIOR,
    frozen_latent_comparison,
    frozen_latent_table,
)
from ladder.train import train


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_root):
    """A one-epoch N(0, I) run on 256 MNIST images (d_z = 16)."""
    cfg = preset_config("quick", "mnist", "normal")
    cfg.data.n_train, cfg.data.n_test = 256, 64
    cfg.train.epochs, cfg.train.batch_size, cfg.train.progress = 1, 64, False
    cfg.train.device = "cpu"
    cfg.model.n_mc = 4
    few_components(cfg.model, 3)
    folder = tmp_path_factory.mktemp("runs") / "normal"
    train(cfg, folder)
    return folder


def test_priors_are_fitted_to_the_run_s_codes_and_scored_at_the_same_z(run):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    result = frozen_latent_comparison(run, ("normal", "gmm", "ladder"), n_test=50, epochs=1,
                                      batch_size=64, n_samples=4, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's state is untouched
    ce, se = result["cross_entropy"], result["cross_entropy_stderr"]
    assert list(ce) == ["aggregate", "normal", "gmm", "ladder", RUN_PRIOR]
    assert result["settings"]["n_train"] == 256 and result["settings"]["n_test"] == 50
    assert result["settings"]["d_z"] == 16 and set(result["history"]) == {"gmm", "ladder"}
    # The run's own prior is N(0, I) too: the same density at the same z gives the same numbers.
    assert ce[RUN_PRIOR] == ce["normal"] and se[RUN_PRIOR] == se["normal"]
    assert all(v > 0 for v in se.values())
    again = frozen_latent_comparison(run, ("normal", "gmm", "ladder"), n_test=50, epochs=1,
                                     batch_size=64, n_samples=4, device="cpu")
    assert again["cross_entropy"] == ce  # seeded
    table = frozen_latent_table(result)
    assert f"| {RUN_PRIOR} (normal, as trained) | {ce[RUN_PRIOR]:.3f} |" in table
    with pytest.raises(ValueError, match="unknown priors"):
        frozen_latent_comparison(run, ("normal", "flow"))


def test_cli_writes_the_comparison_and_prints_its_table(run, capsys):
    args = ["evaluate", str(run), "--frozen-latent", "--prior-epochs", "1", "--n-test", "40",
            "--n-is", "4", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    written = json.loads((run / FROZEN_LATENT_FILE).read_text())
    assert written["settings"]["n_samples"] == 4 and written["settings"]["epochs"] == 1
    assert set(written["cross_entropy"]) == {"aggregate", "normal", "hierarchical", "vamp",
                                             "gmm", "ladder", RUN_PRIOR}
    out = capsys.readouterr().out
    assert "| prior | E_q(z)[log p(z)] | standard error |" in out and "| vamp |" in out
    assert main(args[:3] + ["--prior-epochs", "0"]) == 2
    assert "--prior-epochs: 0 is not between 1 and 10000" in capsys.readouterr().err
