import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.mixture import GaussianMixture
from torch.distributions import (
    Categorical,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
)

from ladder.nets import GaussianMLPEncoder
from ladder.priors import (
    ACTIVITY_THRESHOLD,
    GMMPrior,
    NormalPrior,
    VampPrior,
    active_dimensions,
    floor_share,
    gaussian_entropy,
    principal_shares,
    reparameterise,
)


def test_entropy_matches_torch():
    std = torch.rand(5, 3) + 0.1
    expected = Normal(torch.zeros(5, 3), std).entropy().sum(-1)
    torch.testing.assert_close(gaussian_entropy(std), expected)


def test_normal_cross_entropy_analytic_matches_monte_carlo():
    torch.manual_seed(0)
    prior = NormalPrior(4)
    mu, std = torch.randn(3, 4), torch.rand(3, 4) + 0.2
    analytic = prior.cross_entropy(mu, std, mu)
    mc = prior.log_prob(reparameterise(mu, std, 200_000)).mean(0)
    torch.testing.assert_close(analytic, mc, atol=0.02, rtol=0)
    expected = MultivariateNormal(torch.zeros(4), torch.eye(4)).log_prob(mu)
    torch.testing.assert_close(prior.log_prob(mu), expected)


def _clusters(n=600, d=2, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])[:, :d]
    return torch.tensor(centres[rng.integers(0, 3, n)] + 0.3 * rng.standard_normal((n, d)),
                        dtype=torch.float32)


def test_gmm_em_refit_matches_an_independent_mixture():
    z = _clusters()
    prior = GMMPrior(2, n_components=3, fit="em", covariance_reg=0.01, n_mc=10)
    torch.testing.assert_close(prior.log_prob(z[:5]), NormalPrior(2).log_prob(z[:5]))  # unfitted
    info = prior.refit(z)
    assert info["gmm_converged"]
    independent = MixtureSameFamily(
        Categorical(probs=prior.weights),
        MultivariateNormal(prior.means, prior.covariances + 0.01 * torch.eye(2)),
    )
    torch.testing.assert_close(prior.log_prob(z), independent.log_prob(z))
    assert prior.log_prob(z).mean() > NormalPrior(2).log_prob(z).mean() + 1.0
    sample = prior.sample(20_000)
    torch.testing.assert_close(sample.mean(0), z.mean(0), atol=0.1, rtol=0)
    # warm start: a second refit on the same data keeps the solution
    before = prior.means.clone()
    prior.refit(z)
    torch.testing.assert_close(prior.means, before, atol=1e-3, rtol=0)


def test_gmm_em_refit_is_sklearns_gaussian_mixture():
    """The torch refit (ladder.gmm_em) gives what scikit-learn's GaussianMixture gave in its place:
    a k-means start with the prior's seed, then warm starts from the stored buffers."""
    z = _clusters(d=2)
    prior = GMMPrior(2, n_components=4, fit="em", n_mc=10, seed=3)
    warm: dict = {}
    moved = z + 0.2 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    for points in (z, moved):
        sk = GaussianMixture(4, covariance_type="full", max_iter=prior.max_iter, random_state=3,
                             **warm).fit(points.double().numpy())
        assert prior.refit(points) == {"gmm_iter": sk.n_iter_, "gmm_converged": sk.converged_}
        for name in ("weights", "means", "covariances"):  # float32 buffers
            np.testing.assert_allclose(getattr(prior, name).numpy(), getattr(sk, name + "_"),
                                       rtol=1e-6, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(prior.precisions.numpy(), sk.precisions_, rtol=1e-8, atol=0)
        weights = prior.weights.double()
        warm = {"weights_init": (weights / weights.sum()).numpy(),
                "means_init": prior.means.double().numpy(),
                "precisions_init": prior.precisions.numpy()}
    assert sk.n_iter_ > 1  # the warm start did some work


def test_gmm_cross_entropy_is_monte_carlo_of_log_prob():
    torch.manual_seed(1)
    prior = GMMPrior(2, n_components=4, fit="gradient", n_mc=50_000)
    mu, std = torch.randn(2, 2), torch.rand(2, 2) + 0.1
    ce = prior.cross_entropy(mu, std, mu)
    reference = torch.stack([
        prior.log_prob(Normal(mu[i], std[i]).sample((50_000,))).mean() for i in range(2)
    ])
    torch.testing.assert_close(ce, reference, atol=0.05, rtol=0)
    ce.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in prior.parameters())


def test_vamp_prior_is_the_mixture_of_encoded_pseudo_inputs():
    torch.manual_seed(0)
    encoder = GaussianMLPEncoder(12, 3, hidden=16, n_layers=1)
    flat = torch.nn.Sequential(torch.nn.Flatten(), encoder)
    prior = VampPrior(lambda u: encoder(u.flatten(1)), 3, (1, 3, 4), n_components=5, n_mc=8)
    z = torch.randn(7, 3)
    mu, std = flat(prior.pseudo_inputs)
    manual = torch.logsumexp(Normal(mu, std).log_prob(z[:, None]).sum(-1), 1) - math.log(5)
    torch.testing.assert_close(prior.log_prob(z), manual)
    assert [name for name, _ in prior.named_parameters()] == ["pseudo_inputs"]
    prior.cross_entropy(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3)).sum().backward()
    assert prior.pseudo_inputs.grad.abs().sum() > 0
    assert prior.sample(11).shape == (11, 3)
    images = torch.rand(20, 1, 3, 4)
    prior.init_from_images(images, seed=0)
    matches = (prior.pseudo_inputs.detach()[:, None] == images[None]).flatten(2).all(-1)
    assert matches.any(1).all()  # every pseudo-input is one of the images
    with pytest.raises(ValueError, match="at least 5 images"):
        prior.init_from_images(images[:3])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=6), st.integers(0, 2**31 - 1))
def test_active_dimensions_are_those_whose_mean_varies_over_the_data(scales, seed):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(4000, len(scales), generator=g, dtype=torch.float64) * torch.tensor(scales)
    variance = torch.tensor(scales, dtype=torch.float64).square()
    clear = (variance - ACTIVITY_THRESHOLD).abs() > 0.2 * variance + 1e-3  # away from the edge
    assert torch.equal(active_dimensions(mu)[clear], (variance > ACTIVITY_THRESHOLD)[clear])
    assert torch.equal(active_dimensions(mu + 5.0)[clear], active_dimensions(mu)[clear])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.05, 3.0), min_size=2, max_size=5), st.integers(0, 2**31 - 1))
def test_principal_shares_see_a_line_that_every_axis_is_active_on(scales, seed):
    g = torch.Generator().manual_seed(seed)
    rotation = torch.linalg.qr(torch.randn(len(scales), len(scales), generator=g,
                                           dtype=torch.float64))[0]
    spread = torch.randn(20000, len(scales), generator=g, dtype=torch.float64) * torch.tensor(scales)
    shares = principal_shares(spread @ rotation.T + 3.0)  # rotated and shifted
    expected = sorted((torch.tensor(scales) ** 2 / sum(s * s for s in scales)).tolist(), reverse=True)
    assert shares == sorted(shares, reverse=True) and abs(sum(shares) - 1) < 1e-9
    torch.testing.assert_close(torch.tensor(shares), torch.tensor(expected),
                               atol=0.03, rtol=0.1)
    line = torch.randn(500, 1, generator=g, dtype=torch.float64) * rotation[:, :1].T
    assert active_dimensions(line).sum() >= 1 and principal_shares(line)[0] > 1 - 1e-9
    assert principal_shares(torch.ones(4, len(scales))) == [0.0] * len(scales)


def test_floor_share_counts_the_std_entries_on_their_floor():
    std = torch.tensor([[1e-3, 1.009e-3, 1.02e-3, 0.5]])
    assert floor_share(std, 1e-3) == 0.5
    assert floor_share(std + 1.0, 1e-3) == 0.0


def test_gmm_and_vamp_diagnostics():
    gmm = GMMPrior(2, n_components=4)
    assert gmm.diagnostics(torch.zeros(3, 2)) == {"active_components": 4}  # N(0, I) start
    gmm.weights.copy_(torch.tensor([0.97, 0.02, 0.005, 0.005]))  # 1 / (10 K) = 0.025
    assert gmm.diagnostics(torch.zeros(3, 2)) == {"active_components": 1}
    assert NormalPrior(2).diagnostics(torch.zeros(3, 2)) == {}
    vamp = VampPrior(GaussianMLPEncoder(4, 2, hidden=8, n_layers=1), 2, (1, 2, 2), n_components=3)
    with torch.no_grad():
        vamp.pseudo_inputs.copy_(torch.linspace(-0.5, 1.5, 12).view(3, 1, 2, 2))
    found = vamp.diagnostics(torch.zeros(3, 2))
    assert found == {"pseudo_input_min": -0.5, "pseudo_input_max": 1.5}


def test_vamp_sigmoid_pseudo_inputs_stay_in_the_image_range_and_start_at_images():
    encoder = GaussianMLPEncoder(12, 3, hidden=16, n_layers=1)
    prior = VampPrior(lambda u: encoder(u.flatten(1)), 3, (1, 3, 4), n_components=5, n_mc=8,
                      constrain="sigmoid")
    free = VampPrior(lambda u: encoder(u.flatten(1)), 3, (1, 3, 4), n_components=5, n_mc=8)
    torch.testing.assert_close(prior.pseudo_inputs, free.pseudo_inputs)  # the same N(0, 1) draw
    assert (free.pseudo_images() < 0).any()
    images = torch.rand(20, 1, 3, 4)
    images[0, 0, 0] = 0.0  # black and white pixels get finite logits
    images[1, 0, 0] = 1.0
    prior.init_from_images(images, seed=0)
    assert torch.isfinite(prior.pseudo_inputs).all()
    with torch.no_grad():
        prior.pseudo_inputs.mul_(1e3)  # however far Adam pushes them
    pseudo = prior.pseudo_images().detach()
    assert pseudo.min() >= 0 and pseudo.max() <= 1
    prior.init_from_images(images, seed=0)
    clamped = images.clamp(0.01, 0.99)
    close = (prior.pseudo_images().detach()[:, None] - clamped[None]).abs().flatten(2).amax(-1)
    assert (close.min(1).values < 1e-6).all()  # every pseudo-input is one of the images
    prior.cross_entropy(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3)).sum().backward()
    assert prior.pseudo_inputs.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="constrain"):
        VampPrior(encoder, 3, (1, 3, 4), constrain="tanh")


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 6), d=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_mixture_priors_give_their_components_and_most_responsible_one(k, d, seed):
    """GMM and VampPrior: ``mixture_components`` are the torch mixture's, and
    ``assign_components`` is argmax_k w_k p_k(z), the same as the posterior's argmax."""
    torch.manual_seed(seed)
    gmm = GMMPrior(d, n_components=k)
    gmm.refit(torch.randn(max(40, 5 * k), d) * 2)
    encoder = GaussianMLPEncoder(4, d, hidden=8, n_layers=1)
    vamp = VampPrior(lambda u: encoder(u.flatten(1)), d, (1, 2, 2), n_components=k)
    z = torch.randn(20, d)
    for prior, mixture in ((gmm, gmm.mixture()), (vamp, vamp.components())):
        assert prior.is_mixture and prior.exact_density and prior.levels() == [prior]
        found = prior.mixture_components()
        torch.testing.assert_close(found.weights, mixture.mixture_distribution.probs)
        torch.testing.assert_close(found.means, mixture.component_distribution.mean)
        assert found.covariances.shape == (k, d, d)
        log_joint = (mixture.mixture_distribution.probs.log()
                     + mixture.component_distribution.log_prob(z[:, None]))
        assert torch.equal(prior.assign_components(z), log_joint.argmax(-1))
    assert not NormalPrior(d).is_mixture and not NormalPrior(d).set_sample_noise(True)


def test_no_module_outside_the_priors_tests_for_a_concrete_prior():
    """Callers dispatch through the Prior interface: no isinstance on a concrete prior class
    outside the modules that define them."""
    import ast
    from pathlib import Path

    concrete = {"NormalPrior", "GMMPrior", "VampPrior", "PriorVAE", "DPGMMHyperPrior",
                "AggregatePosterior"}
    package = Path(__file__).resolve().parent.parent / "ladder"
    found = []
    for path in package.rglob("*.py"):
        if path.name in ("priors.py", "prior_vae.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance"
                    and len(node.args) == 2):
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                if names & concrete:
                    found.append(f"{path.name}:{node.lineno}")
    assert found == []
