"""Tests of the parts of a Fréchet distance: mean term, class mix, class-matched resampling."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.classifier import LeNetClassifier
from ladder.features import frechet_distance
from ladder.frechet_parts import (
    class_shares,
    classify,
    frechet_parts,
    mean_term,
    resampled_frechet,
    total_variation,
)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@settings(max_examples=25, deadline=None)
@given(shift=st.lists(st.floats(-5, 5), min_size=3, max_size=3), seed=st.integers(0, 99))
def test_the_mean_term_of_a_shifted_set_is_the_squared_shift(shift, seed):
    a = torch.randn(50, 3, generator=generator(seed), dtype=torch.float64)
    step = torch.tensor(shift, dtype=torch.float64)
    assert mean_term(a, a + step) == pytest.approx(float(step.square().sum()), abs=1e-9)


def test_the_mean_term_is_part_of_the_distance():
    a = torch.randn(3000, 4, generator=generator(0))
    b = 2 * torch.randn(3000, 4, generator=generator(1)) + 1
    assert 0 < mean_term(a, b) < frechet_distance(a, b)
    with pytest.raises(ValueError, match="feature matrices"):
        mean_term(a, b[:, :3])


@settings(max_examples=25, deadline=None)
@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=60),
       other=st.lists(st.integers(0, 4), min_size=1, max_size=60))  # fmt: skip
def test_class_shares_sum_to_one_and_their_distance_is_a_share(labels, other):
    p, q = class_shares(torch.tensor(labels), 5), class_shares(torch.tensor(other), 5)
    assert float(p.sum()) == pytest.approx(1.0) and p.shape == (5,)
    assert float(p[labels[0]]) == pytest.approx(labels.count(labels[0]) / len(labels))
    tv = total_variation(p, q)
    assert 0.0 <= tv <= 1.0 + 1e-12
    assert tv == pytest.approx(total_variation(q, p))
    assert total_variation(p, p) == 0.0
    if not set(labels) & set(other):
        assert tv == pytest.approx(1.0)


def test_bad_labels_and_shares_are_refused():
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        class_shares(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="non-empty"):
        class_shares(torch.tensor([], dtype=torch.long), 3)
    with pytest.raises(ValueError, match="different lengths"):
        total_variation(torch.ones(2) / 2, torch.ones(3) / 3)


def classed_set(counts: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features whose class sets their mean (class k sits at 4 e_k), ``counts[k]`` of class k."""
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    features = torch.randn(len(labels), 3, generator=generator(seed)) + 4 * torch.eye(3)[labels]
    return features, labels


def test_drawing_to_the_reference_class_mix_removes_the_distance_the_mix_makes():
    reference, reference_labels = classed_set([1000, 1000, 1000], seed=0)
    skewed, labels = classed_set([2000, 600, 400], seed=1)  # same classes, other proportions
    shares = class_shares(reference_labels, 3)
    plain = resampled_frechet(reference, skewed, n_resamples=4, seed=0)
    matched = resampled_frechet(reference, skewed, labels, shares, n_resamples=4, seed=0)
    assert plain.shape == matched.shape == (4,)
    assert float(matched.max()) < 0.1 * float(plain.min())
    again = resampled_frechet(reference, skewed, labels, shares, n_resamples=4, seed=0)
    assert torch.equal(matched, again)


def test_a_class_the_set_lacks_is_left_out_of_the_match():
    reference, reference_labels = classed_set([100, 100, 100], seed=0)
    partial, labels = classed_set([250, 50, 0], seed=1)
    shares = class_shares(reference_labels, 3)
    matched = resampled_frechet(reference, partial, labels, shares, n_resamples=2, seed=0)
    halves = resampled_frechet(reference, partial, labels, torch.tensor([0.5, 0.5, 0.0]),
                               n_resamples=2, seed=0)  # fmt: skip
    assert torch.equal(matched, halves)
    with pytest.raises(ValueError, match="none of the reference's classes"):
        resampled_frechet(reference, partial, labels, torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="both labels and shares"):
        resampled_frechet(reference, partial, labels)


def test_the_parts_of_a_set_of_images_add_up():
    torch.manual_seed(0)
    classifier = LeNetClassifier(feature_dim=8).eval()
    reference = torch.rand(300, 1, 28, 28, generator=generator(0))
    images = 0.5 * torch.rand(200, 1, 28, 28, generator=generator(1))
    classified = classify(reference, classifier)
    parts = frechet_parts(classified, images, classifier, n_resamples=3, seed=0)
    assert parts["fcd"] == pytest.approx(parts["mean_term"] + parts["covariance_term"])
    assert parts["fcd"] == frechet_distance(classified.features,
                                            classify(images, classifier).features)  # fmt: skip
    assert classified.n_classes == 10
    assert torch.equal(classified.labels, classifier(reference).argmax(-1))
    assert sum(parts["class_shares"]) == pytest.approx(1.0)
    assert len(parts["class_shares"]) == len(parts["reference_shares"]) == 10
    assert 0.0 <= parts["class_tv"] <= 1.0 and 0.0 <= parts["unmatched_share"] < 1.0
    assert parts["resampled_fcd_std"] >= 0.0
    itself = frechet_parts(classified, reference, classifier, n_resamples=2, seed=0)
    assert itself["class_tv"] == itself["unmatched_share"] == 0.0 and abs(itself["fcd"]) < 1e-6
