"""Tests of the DP-GMM's fitted attributes (ladder/dpgmm_fitted.py): the active components."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import blobs

from ladder.dpgmm import DPGMM


def test_active_components_and_mixture():
    X = blobs(400, 2, 4, seed=6)
    m = DPGMM.paper_prior(2, n_components=8, random_state=0, max_iter=500).fit(X)
    idx = m.active_components(0.01)
    assert (m.weights_[idx] >= 0.01).all()
    assert (m.weights_[np.setdiff1d(np.arange(8), idx.numpy())] < 0.01).all()
    w, mu, cov = m.active_mixture(0.01)
    assert w.sum() == pytest.approx(1.0) and mu.shape == (len(idx), 2)
    torch.testing.assert_close(cov, m.covariances_[idx])
