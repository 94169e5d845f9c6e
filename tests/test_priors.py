
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import (
    MultivariateNormal,
    Normal,
)

from ladder.nets import GaussianMLPEncoder
from ladder.prior_gmm import GMMPrior
from ladder.prior_vamp import VampPrior
from ladder.priors import (
    ACTIVITY_THRESHOLD,
    NormalPrior,
    active_dimensions,
    floor_share,
    gaussian_entropy,
    principal_shares,
    reparameterise,
    signal_to_noise,
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
@given(st.lists(st.floats(0.01, 3.0), min_size=1, max_size=5), st.floats(1e-3, 1.0),
       st.floats(1e-4, 1e4), st.integers(0, 2**31 - 1))  # fmt: skip
def test_signal_to_noise_is_the_spread_of_the_means_in_units_of_the_posterior_width(
    scales, width, shrink, seed
):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(4000, len(scales), generator=g, dtype=torch.float64) * torch.tensor(scales)
    std = width * (0.5 + torch.rand(mu.shape, generator=g, dtype=torch.float64))
    ratio = signal_to_noise(mu, std)
    # Var(mu) = scale^2; E[std^2] = width^2 E[(0.5 + U)^2] = width^2 13/12 for U ~ U(0, 1)
    expected = torch.tensor(scales, dtype=torch.float64).square() / (width**2 * 13 / 12)
    torch.testing.assert_close(ratio, expected, rtol=0.15, atol=0)
    torch.testing.assert_close(signal_to_noise(shrink * mu + 3.0, shrink * std), ratio)
    # the fixed threshold does change with the scale: a latent shrunk far enough is inactive
    assert not active_dimensions(1e-3 * mu).any()


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
    encoder = GaussianMLPEncoder(4, 2, hidden=8, n_layers=1)
    vamp = VampPrior(lambda u: encoder(u.flatten(1)), 2, (1, 2, 2), n_components=3)
    with torch.no_grad():
        vamp.pseudo_inputs.copy_(torch.linspace(-0.5, 1.5, 12).view(3, 1, 2, 2))
    found = vamp.diagnostics(torch.zeros(3, 2))
    assert set(found) == {"pseudo_input_min", "pseudo_input_max", "pseudo_std_median"}
    assert (found["pseudo_input_min"], found["pseudo_input_max"]) == (-0.5, 1.5)
    assert found["pseudo_std_median"] >= 1e-3  # the encoder's floor


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
    for prior, mixture in ((gmm, gmm.torch_mixture()), (vamp, vamp.torch_mixture())):
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
        if path.name in ("priors.py", "prior_gmm.py", "prior_vamp.py", "prior_vae.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance"
                    and len(node.args) == 2):
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                if names & concrete:
                    found.append(f"{path.name}:{node.lineno}")
    assert found == []
