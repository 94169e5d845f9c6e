"""Tests of the settings of the SLP optimisation, Eq (9): its presets."""

from ladder.slp_config import PRESETS, SLPWeights


def test_presets_match_eq9_and_reference_notebook():
    assert PRESETS["paper"].weights == SLPWeights(1.0, 1.0, 1.0)
    ref = PRESETS["reference"]
    assert ref.weights == SLPWeights(10.0, 100.0, 1.0)
    assert (ref.n_steps, ref.iters, ref.lr, ref.betas, ref.grad_clip, ref.init) == (
        8, 500, 1e-2, (0.9, 0.95), 1.0, "line",
    )  # fmt: skip
