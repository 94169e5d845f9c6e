"""Tests of the real images' k-NN manifold: radii, membership, and agreement with ``prdc``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.features import prdc_metrics
from ladder.knn_manifold import ball_membership, manifold_radii


def points(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_radii_are_the_distance_to_the_kth_other_point():
    real = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert manifold_radii(real, 1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert manifold_radii(real, 2).tolist() == [3.0, 2.0, 3.0, 6.0]


def test_membership_is_strict_and_per_ball():
    real = torch.tensor([[0.0], [10.0]])
    radii = torch.tensor([1.0, 2.0])
    fake = torch.tensor([[0.5], [1.0], [11.5], [5.0]])
    inside = ball_membership(real, radii, fake)
    assert inside.tolist() == [[True, False], [False, False], [False, True], [False, False]]


def test_precision_and_coverage_agree_with_prdc():
    real, fake = points(300, 6, 0), 1.3 * points(200, 6, 1) + 0.4
    inside = ball_membership(real, manifold_radii(real, 5), fake)
    expected = prdc_metrics(real, fake, k=5)
    assert float(inside.any(1).double().mean()) == pytest.approx(expected["precision"])
    assert float(inside.any(0).double().mean()) == pytest.approx(expected["coverage"])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 40), d=st.integers(1, 5), k=st.integers(1, 5), seed=st.integers(0, 99))
def test_each_real_point_lies_in_its_own_ball_and_balls_grow_with_k(n, d, k, seed):
    k = min(k, n - 2)
    real = points(n, d, seed)
    small, large = manifold_radii(real, k), manifold_radii(real, k + 1)
    assert (large >= small).all()
    assert ball_membership(real, small, real).diagonal().all()
    fake = points(2 * n, d, seed + 1)
    assert (ball_membership(real, large, fake) >= ball_membership(real, small, fake)).all()
    far = fake + 100.0 * (1 + real.abs().max())
    assert not ball_membership(real, large, far).any()


def test_bad_input_is_refused():
    real = points(5, 3, 0)
    with pytest.raises(ValueError, match="k must be in"):
        manifold_radii(real, 5)
    with pytest.raises(ValueError, match="feature matrix"):
        manifold_radii(real[0], 1)
    with pytest.raises(ValueError, match="NaN"):
        manifold_radii(torch.full((4, 2), float("nan")), 1)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        ball_membership(real, manifold_radii(real, 1), points(4, 2, 1))
    with pytest.raises(ValueError, match="one entry per real sample"):
        ball_membership(real, torch.ones(4), points(4, 3, 1))
