"""The manifest: expansion at every scale, runs shared between experiments, the composed configs
and --only."""

from __future__ import annotations

from collections import Counter

import pytest

from ladder.config import load_config, preset_config
from ladder.experiments.manifest import (
    DEFAULT_MANIFEST,
    SCALES,
    ManifestError,
    Run,
    load_manifest,
    override_dict,
    override_list,
    select,
)

EXPECTED = {  # runs labelled by each experiment, at every scale
    "tables": 50, "celeba": 25, "dt-ablation": 40, "fig2": 1, "fig4": 15, "fig5": 18,
    "ladder-levels": 20, "presets": 20, "vamp-std-head": 20,
    "hierarchical-dt": 20,
}
# d_t = 8, n_levels = 1, the paper preset and std_activation = relu: Table 3's runs, shared
UNIQUE = 50 + 25 + 30 + 1 + 15 + 18 + 10 + 10 + 10 + 10
FIG2_SEEDS = {"quick": [0], "medium": [0], "paper": [0, 1, 2]}  # its scale_grid


@pytest.mark.parametrize("scale", SCALES)
def test_manifest_expands_to_every_run(manifest, scale):
    runs = manifest.runs(scale)
    extra_fig2 = len(FIG2_SEEDS[scale]) - 1
    assert len(runs) == UNIQUE + extra_fig2 == len({r.id for r in runs})
    labelled = Counter(exp for r in runs for exp in r.experiments)
    assert dict(labelled) == {**EXPECTED, "fig2": 1 + extra_fig2}
    assert [r.parameters["seed"] for r in runs if "fig2" in r.labels] == FIG2_SEEDS[scale]
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
    assert runs["mnist-vamp-seed0"].labels["vamp-std-head"] == {
        "dataset": "mnist", "std_activation": "relu", "seed": 0}
    assert runs["fashion-hierarchical-seed0"].labels["hierarchical-dt"] == {
        "dataset": "fashion", "d_t": 8, "seed": 0}
    assert runs["fashion-hierarchical-dt2-seed0"].parameters["overrides"] == {
        "model.n_mc": 10, "model.prior_vae.d_t": 2}
    assert runs["mnist-vamp-relu_leaky_grad-seed0"].parameters["overrides"] == {
        "model.n_mc": 10, "model.std_activation": "relu_leaky_grad"}
    assert runs["mnist-ladder-dt4-seed0"].parameters["overrides"] == {"model.n_mc": 10,
                                                                       "model.prior_vae.d_t": 4}
    assert override_dict(override_list({"a.b": None, "c.d": [0.9, 0.95], "e.f": "x"})) == {
        "a.b": None, "c.d": [0.9, 0.95], "e.f": "x"}
    assert runs["fig5-mnist-gmm-seed2"].needs == ("mnist-gmm-seed2",)
    assert runs["fig5-mnist-gmm-seed2"].parameters["prior"] == "gmm"


def _config(run: Run):
    p = run.parameters
    return load_config(preset=p["preset"], dataset=p["dataset"], prior=p["prior"],
                       overrides=override_list(p["overrides"]))


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
    assert _config(paper["celeba-ladder-seed0"]).model.prior_vae.d_t == 32
    # the reference preset gets the paper model's sizes below the paper scale, its own at it
    ref = _config(quick["mnist-ladder-reference-seed0"])
    assert (ref.preset, ref.model.d_z, ref.data.n_train, ref.train.epochs,
            ref.train.warmup_epochs) == ("reference", 8, 10_000, 3, 1)
    ref = _config(paper["fashion-ladder-reference-seed0"])
    assert (ref.data.n_train, ref.train.epochs, ref.train.warmup_epochs) == (None, 30, 10)


@pytest.mark.parametrize("scale", SCALES)
def test_an_experiments_own_counts_win_over_the_scales(manifest, scale):
    """Fig 2's n_samples are importance samples per encoding (its scale_parameters), not the
    scale's evaluation count of generated images, which the training runs keep."""
    runs = {r.id: r for r in manifest.runs(scale)}
    own = manifest.experiments["fig2"].scale_parameters[scale]["n_samples"]
    evaluation = manifest.scale(scale).evaluate["n_samples"]
    assert own != evaluation
    assert runs["fig2-mnist-seed0"].parameters["n_samples"] == own
    assert runs["mnist-ladder-seed0"].parameters["n_samples"] == evaluation


def test_only_selects_by_pattern_and_pulls_in_needs(manifest):
    runs = manifest.runs("quick")
    chosen = select(runs, "mnist-*-seed0")
    assert {r.id for r in chosen} >= {"mnist-normal-seed0", "mnist-ladder-dt2-seed0"}
    assert all(r.id.startswith("mnist-") and r.id.endswith("seed0") for r in chosen)
    assert [r.id for r in select(runs, "fig5-mnist-*-seed0")] == [
        "mnist-normal-seed0", "mnist-gmm-seed0", "mnist-ladder-seed0", "fig5-mnist-ladder-seed0",
        "fig5-mnist-gmm-seed0", "fig5-mnist-normal-seed0"]
    assert len(select(runs, "fig2, quick/fig4-*-seed1")) == 4
    with pytest.raises(ManifestError, match="matches no run"):
        select(runs, "nothing-like-this")


def test_a_scale_names_only_known_evaluation_counts(tmp_path):
    import yaml

    from ladder.config import EVALUATION

    data = yaml.safe_load(DEFAULT_MANIFEST.read_text())
    assert set(data["scales"]["paper"]["evaluate"]) <= set(vars(EVALUATION))
    data["scales"]["quick"]["evaluate"]["n_iss"] = 10
    with pytest.raises(ManifestError, match=r"scale 'quick': evaluate names unknown .*n_iss"):
        _load_edited(tmp_path, data)


@pytest.mark.parametrize(("scale_grid", "message"), [
    ({"huge": {"seed": [0, 1]}}, r"experiment 'fig2': scale_grid for unknown scales \['huge'\]"),
    ({"paper": {"prior": ["ladder"]}},
     r"experiment 'fig2': scale_grid of 'paper' names \['prior'\], which its grid lacks"),
])
def test_a_scale_grid_names_known_scales_and_axes(tmp_path, scale_grid, message):
    import yaml

    data = yaml.safe_load(DEFAULT_MANIFEST.read_text())
    data["experiments"]["fig2"]["scale_grid"] = scale_grid
    with pytest.raises(ManifestError, match=message):
        _load_edited(tmp_path, data)


def _load_edited(folder, data: dict):
    """:func:`load_manifest` of ``data`` written into ``folder``, beside the experiments'
    notebooks (linked), as an edited copy of the default manifest."""
    import yaml

    for notebook in DEFAULT_MANIFEST.parent.glob("*.ipynb"):
        (folder / notebook.name).symlink_to(notebook)
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_manifest(path)
