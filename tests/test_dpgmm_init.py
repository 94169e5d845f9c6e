"""Tests of the initial responsibilities of a DP-GMM fit: ladder/dpgmm_init.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import blobs
from sklearn.metrics import adjusted_rand_score

from ladder.dpgmm_init import INIT_PARAMS, initial_responsibilities, kmeans, kmeans_plusplus


@pytest.mark.parametrize("init_params", INIT_PARAMS)
@pytest.mark.parametrize("n", [3, 200])  # fewer points than components, and more
def test_initial_responsibilities(init_params, n):
    """"kmeans" and "random" give every point a distribution over the components; "k-means++"
    and "random_from_data" one point to each component, as scikit-learn; with n <= K each point
    gets a component of its own (but for "random")."""
    X = torch.from_numpy(blobs(n, 2, 3, seed=1))
    resp = initial_responsibilities(X, 5, init_params, torch.Generator().manual_seed(0))
    assert resp.shape == (n, 5) and (resp >= 0).all()
    if init_params == "random" or (n > 5 and init_params == "kmeans"):
        torch.testing.assert_close(resp.sum(1), torch.ones(n, dtype=torch.float64))
    elif n > 5:
        torch.testing.assert_close(resp.sum(0), torch.ones(5, dtype=torch.float64))
        assert resp.sum() == 5
    else:
        torch.testing.assert_close(resp.sum(1), torch.ones(n, dtype=torch.float64))
        assert len(set(resp.argmax(1).tolist())) == n


def test_kmeans_recovers_separated_blobs_and_seeds_distinct_points():
    rng = np.random.RandomState(0)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    truth = rng.randint(3, size=300)
    X = torch.from_numpy(centres[truth] + rng.randn(300, 2))
    gen = torch.Generator().manual_seed(0)
    assert len(set(kmeans_plusplus(X, 3, gen).tolist())) == 3
    assert adjusted_rand_score(truth, kmeans(X, 3, gen).numpy()) == 1.0
