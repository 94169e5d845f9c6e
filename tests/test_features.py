from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.linalg
import torch

from ladder.features import (
    DEFAULT_SAMPLE_COUNT,
    FCD_LABEL,
    cluster_agreement,
    extract_features,
    frechet_distance,
    inception_fid,
    prdc_metrics,
)


def _closed_form(mu1, s1, mu2, s2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) with scipy's matrix square root."""
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def _random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.5 * np.eye(d)


def test_constants_are_documented():
    assert DEFAULT_SAMPLE_COUNT == 10_000
    assert "FID" not in FCD_LABEL and "classifier" in FCD_LABEL


def test_frechet_distance_of_a_set_to_itself_is_zero():
    x = torch.randn(2000, 16, generator=torch.Generator().manual_seed(0))
    assert abs(frechet_distance(x, x)) < 1e-8


def test_frechet_distance_equals_closed_form_on_sample_moments():
    # Same sample means/covariances into scipy's sqrtm: agreement to float64 round-off.
    rng = np.random.default_rng(1)
    a = rng.multivariate_normal(np.zeros(6), _random_spd(6, rng), size=3000)
    b = rng.multivariate_normal(np.ones(6), _random_spd(6, rng), size=2000)
    expected = _closed_form(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert frechet_distance(torch.from_numpy(a), b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_two_gaussians_matches_population_closed_form():
    # n = 200k per side, d = 4: the estimate is within 2% (+0.02 absolute) of the population value.
    rng = np.random.default_rng(2)
    mu1, mu2 = np.zeros(4), np.array([1.0, -0.5, 0.0, 2.0])
    s1, s2 = _random_spd(4, rng), _random_spd(4, rng)
    a = torch.from_numpy(rng.multivariate_normal(mu1, s1, size=200_000))
    b = torch.from_numpy(rng.multivariate_normal(mu2, s2, size=200_000))
    expected = _closed_form(mu1, s1, mu2, s2)
    assert expected > 5.0
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02, abs=0.02)


def test_frechet_distance_of_diagonal_gaussians():
    # Diagonal covariances: Tr term is sum (sqrt(a_i) - sqrt(b_i))^2.
    g = torch.Generator().manual_seed(3)
    var_a, var_b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([4.0, 1.0, 0.25])
    a = torch.randn(200_000, 3, generator=g, dtype=torch.float64) * var_a.sqrt().double()
    b = torch.randn(200_000, 3, generator=g, dtype=torch.float64) * var_b.sqrt().double() + 1.0
    expected = 3.0 + float(((var_a.sqrt() - var_b.sqrt()) ** 2).sum())  # 3 + 2 = 5
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_rejects_bad_input_and_warns_on_few_samples():
    x = torch.randn(50, 4)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        frechet_distance(x, torch.randn(50, 5))
    with pytest.raises(ValueError, match="feature matrix"):
        frechet_distance(torch.randn(50), x)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(torch.full((50, 4), float("nan")), x)
    with pytest.warns(UserWarning, match="singular"):
        frechet_distance(torch.randn(3, 4), x)


def test_extract_features_batches_without_grad():
    lin = torch.nn.Linear(12, 3)
    x = torch.randn(1001, 12)
    feats = extract_features(lin, x, batch_size=100)
    assert feats.shape == (1001, 3) and not feats.requires_grad
    torch.testing.assert_close(feats, lin(x).detach())


def test_prdc_of_a_set_against_itself_and_a_shifted_set():
    g = torch.Generator().manual_seed(4)
    real = torch.randn(1000, 8, generator=g)
    same = prdc_metrics(real, real, k=5)
    assert same == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}
    shifted = prdc_metrics(real, real + 2.0, k=5)
    assert set(shifted) == {"precision", "recall", "density", "coverage"}
    assert all(isinstance(v, float) for v in shifted.values())
    assert shifted["precision"] < 0.5 and shifted["recall"] < 0.5 and shifted["coverage"] < 0.5
    # A fresh sample of the same distribution scores close to 1 on precision and recall.
    fresh = prdc_metrics(real, torch.randn(1000, 8, generator=g), k=5)
    assert fresh["precision"] > 0.8 and fresh["recall"] > 0.8
    with pytest.raises(ValueError, match="k must be"):
        prdc_metrics(real[:5], real[:5], k=5)


def test_cluster_agreement_perfect_permuted_random():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 10, size=5000)
    assert cluster_agreement(labels, labels) == pytest.approx({"nmi": 1.0, "ari": 1.0})
    permuted = rng.permutation(10)[labels] + 100  # renamed clusters
    assert cluster_agreement(torch.from_numpy(permuted), labels) == pytest.approx(
        {"nmi": 1.0, "ari": 1.0}
    )
    random = cluster_agreement(rng.integers(0, 10, size=5000), labels)
    assert abs(random["ari"]) < 0.01 and random["nmi"] < 0.01
    # Merging two classes into one cluster lowers both.
    merged = cluster_agreement(np.where(labels == 1, 0, labels), labels)
    assert 0.5 < merged["ari"] < 1.0 and 0.5 < merged["nmi"] < 1.0
    with pytest.raises(ValueError, match="equal"):
        cluster_agreement(labels[:10], labels[:11])


def test_inception_fid_needs_a_local_weights_file(tmp_path):
    x = torch.rand(4, 1, 28, 28)
    with pytest.raises(ValueError, match="cannot be downloaded"):
        inception_fid(x, x)
    with pytest.raises(FileNotFoundError):
        inception_fid(x, x, weights_path=tmp_path / "missing.pth")


@pytest.mark.skipif(
    importlib.util.find_spec("torch_fidelity") is not None, reason="torch-fidelity is installed"
)
def test_inception_fid_says_torch_fidelity_is_needed(tmp_path):
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"not used")
    x = torch.rand(4, 1, 28, 28)
    with pytest.raises(ModuleNotFoundError, match="torch-fidelity"):
        inception_fid(x, x, weights_path=weights)
