"""Tests of shortest likely path interpolation, Eq (9), and its figures."""

from __future__ import annotations

import math
import warnings

import matplotlib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from sklearn.exceptions import ConvergenceWarning
from torch import distributions as D
from torch import nn

from ladder.dpgmm import DPGMM
from ladder.plots.animation import animation_html
from ladder.plots.slp import (
    plot_interpolation_strips,
    plot_objective_curves,
    plot_paths_over_density,
    walk_along_paths,
)
from ladder.slp import (
    decode_path,
    objective_terms,
    path_stats,
    shortest_likely_path,
    shortest_path,
)
from ladder.slp_config import PRESETS, SLPConfig, SLPWeights

matplotlib.use("Agg")


def ring(dtype: torch.dtype = torch.float32, k: int = 12) -> D.Distribution:
    """A ring of k Gaussians of radius 3: a low-density hole inside."""
    ang = torch.arange(k, dtype=dtype) * 2 * math.pi / k
    means = 3 * torch.stack([ang.cos(), ang.sin()], -1)
    cov = 0.25 * torch.eye(2, dtype=dtype).expand(k, 2, 2)
    return D.MixtureSameFamily(
        D.Categorical(logits=torch.zeros(k, dtype=dtype)), D.MultivariateNormal(means, cov)
    )


def on_ring(deg: float) -> torch.Tensor:
    return 3 * torch.tensor([math.cos(math.radians(deg)), math.sin(math.radians(deg))])


def test_shortest_path_is_the_equally_spaced_line():
    a, b = torch.tensor([0.0, 1.0]), torch.tensor([0.3, -2.0])
    p = shortest_path(a, b, n_steps=8)
    assert p.shape == (10, 2)
    assert torch.equal(p[0], a) and torch.equal(p[-1], b)
    seg = (p[1:] - p[:-1]).norm(dim=-1)
    torch.testing.assert_close(seg, torch.full((9,), float((b - a).norm()) / 9))


def test_terms_follow_the_reference_definitions():
    """Population std over the J+1 segments, log p summed over interior points only."""
    path = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0], [1.0, 5.0]])  # segments 1, 2, 3

    def lp(x):
        return -x.sum(-1)

    t = objective_terms(lp, path, (10.0, 100.0, 1.0))
    std = torch.tensor([1.0, 2.0, 3.0]).std(unbiased=False)
    torch.testing.assert_close(t["length"], torch.tensor(6.0))
    torch.testing.assert_close(t["step_std"], std)
    torch.testing.assert_close(t["log_lik"], torch.tensor(-4.0))  # -(1) + -(3)
    torch.testing.assert_close(t["objective"], 10 * 6.0 + 100 * std + 4.0)


def test_slp_avoids_the_hole_and_keeps_endpoints_bit_exact():
    dist = ring()
    a, b = on_ring(200.0), on_ring(-20.0)
    res = shortest_likely_path(dist.log_prob, a, b, iters=300)
    assert res.path.shape == (10, 2)
    assert torch.equal(res.path[0], a) and torch.equal(res.path[-1], b)
    slp = path_stats(dist.log_prob, res.path)
    sp = path_stats(dist.log_prob, shortest_path(a, b))
    assert slp["log_p_min"] > sp["log_p_min"] + 4.0
    assert slp["length"] > sp["length"]  # it pays in length for likelihood
    h = res.history["objective"]
    assert h.shape == (301,) and h[-1] < h[0] - 10.0
    # Row 0 of the history is the SP baseline (straight-line start).
    sp_terms = objective_terms(dist.log_prob, shortest_path(a, b), PRESETS["reference"].weights)
    for k, v in sp_terms.items():
        torch.testing.assert_close(res.history[k][0], v)
    torch.testing.assert_close(res.terms["objective"], h[-1])


def test_a_batch_gives_the_paths_of_the_pairs_one_by_one():
    """Adam and the clip act element-wise, so pairs are independent. The batched log_prob
    differs from the single one in the last bit, and the reference settings amplify such
    differences (the w_eq = 100 step-std gradient chatters near equal steps), so compare a
    short run in float64 to float precision."""
    dist = ring(torch.float64)
    g = torch.Generator().manual_seed(0)
    starts = torch.rand(5, 2, generator=g, dtype=torch.float64) * 8 - 4
    ends = torch.rand(5, 2, generator=g, dtype=torch.float64) * 8 - 4
    batch = shortest_likely_path(dist.log_prob, starts, ends, iters=30)
    assert batch.path.shape == (5, 10, 2) and batch.history["log_lik"].shape == (31, 5)
    for i in range(5):
        one = shortest_likely_path(dist.log_prob, starts[i], ends[i], iters=30)
        torch.testing.assert_close(batch.path[i], one.path, rtol=0, atol=1e-10)
        for k in one.history:
            torch.testing.assert_close(batch.history[k][:, i], one.history[k])
    assert not torch.allclose(batch.path, shortest_path(starts, ends))


class VampLike(nn.Module):
    """A callable density with parameters, shaped like the VampPrior's log_prob."""

    def __init__(self) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.randn(4, 3))
        self.log_sd = nn.Parameter(torch.zeros(4, 3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        comp = D.Independent(D.Normal(self.mu, self.log_sd.exp()), 1)
        return torch.logsumexp(comp.log_prob(z[:, None]), -1) - math.log(4)


def gmm(dim: int = 3, k: int = 5) -> D.Distribution:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(k, dim, dim, generator=g)
    cov = a @ a.transpose(-1, -2) + 0.5 * torch.eye(dim)
    return D.MixtureSameFamily(
        D.Categorical(logits=torch.randn(k, generator=g)),
        D.MultivariateNormal(torch.randn(k, dim, generator=g) * 2, covariance_matrix=cov),
    )


@pytest.mark.parametrize("name", ["normal", "gmm", "callable"])
def test_gradients_flow_for_every_prior_log_prob(name):
    torch.manual_seed(0)
    model = VampLike()
    log_prob = {
        "normal": D.MultivariateNormal(torch.zeros(3), torch.eye(3)).log_prob,
        "gmm": gmm().log_prob,
        "callable": model,
    }[name]
    a, b = torch.tensor([[2.0, 1.0, 0.5], [0.0, -1.0, 2.0]]), torch.tensor([[-2.0, 1.0, 0.0]] * 2)
    with torch.no_grad():  # SLP turns gradients on itself
        res = shortest_likely_path(log_prob, a, b, iters=50, preset="paper")
    assert torch.isfinite(res.path).all()
    assert (res.path[:, 1:-1] - shortest_path(a, b)[:, 1:-1]).abs().amax() > 0.05
    assert (res.history["objective"][-1] < res.history["objective"][0]).all()
    assert model.mu.grad is None  # only the path gets gradients


def test_identical_endpoints_give_a_finite_constant_path():
    dist = ring()
    a = torch.tensor([[0.5, 0.5], [3.0, 0.0]])
    b = torch.tensor([[0.5, 0.5], [-3.0, 0.1]])
    res = shortest_likely_path(dist.log_prob, a, b, iters=20)
    assert torch.isfinite(res.path).all()
    assert torch.equal(res.path[0], a[0].expand(10, 2))
    assert res.terms["length"][0] == 0 and res.terms["step_std"][0] == 0
    assert not torch.allclose(res.path[1], shortest_path(a[1], b[1]))  # the other pair moved
    stats = path_stats(dist.log_prob, res.path)
    assert all(torch.isfinite(v).all() for v in stats.values())


def test_input_checks():
    dist = ring()
    with pytest.raises(ValueError, match="differ in shape"):
        shortest_likely_path(dist.log_prob, torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="dimension d=3"):
        shortest_likely_path(dist.log_prob, torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="unknown SLP preset"):
        shortest_likely_path(dist.log_prob, torch.zeros(2), torch.ones(2), preset="fast")
    with pytest.raises(ValueError, match="init must hold"):
        shortest_likely_path(
            dist.log_prob, torch.zeros(2), torch.ones(2), n_steps=8, init=torch.zeros(5, 2)
        )
    with pytest.raises(ValueError, match="not finite at iteration 0"):
        shortest_likely_path(
            lambda x: dist.log_prob(x) * torch.nan, torch.zeros(2), torch.ones(2), iters=5
        )
    with pytest.raises(ValueError, match="log_prob must map"):
        shortest_likely_path(lambda x: x, torch.zeros(2), torch.ones(2), iters=5)


def _never_called(x: torch.Tensor) -> torch.Tensor:
    raise AssertionError("log_prob was called before the caller's inputs were checked")


A, B = torch.tensor([0.0, 1.0]), torch.tensor([1.0, -1.0])


@pytest.mark.parametrize("kwargs,match", [
    (dict(start=A.half(), end=B.half()), "are torch.float16: .* half precision"),
    (dict(start=A.bfloat16(), end=B.bfloat16()), "are torch.bfloat16"),
    (dict(lr=math.inf), "lr must be a finite number > 0, got inf"),
    (dict(lr=math.nan), "lr must be a finite number > 0, got nan"),
    (dict(lr=-0.1), "lr must be"),
    (dict(iters=2.5), "iters is an int >= 0, got 2.5"),
    (dict(n_steps=0), "n_steps is the number of interior points, an int >= 1, got 0"),
    (dict(weights=(1.0, math.nan, 1.0)), r"weights \(length, step_std, log_lik\) must be finite"),
    (dict(weights=(-1.0, 1.0, 1.0)), "must be finite numbers >= 0"),
    (dict(preset=SLPConfig(betas=(1.0, 0.9))), r"betas must be two numbers in \[0, 1\)"),
    (dict(preset=SLPConfig(grad_clip=math.inf)), "grad_clip must be None or"),
    (dict(init=torch.full((8, 2), math.nan)), "init contains NaN or infinity"),
    (dict(init=torch.full((8, 2), 1e39, dtype=torch.float64)), r"init contains NaN or infinity "
                                                               r"\(in torch.float32\)"),
    (dict(start=torch.tensor([-1e20, 0.0]), end=torch.tensor([1e20, 0.0])),
     r"initial path of pair\(s\) \[0\] is too long for torch.float32: its length terms "
     "overflow"),
    (dict(start=torch.tensor([[0.0, 0.0], [-3e38, 0.0]]), end=torch.tensor([[1.0, 0.0],
                                                                            [3e38, 0.0]])),
     r"pair\(s\) \[1\] is too long"),
])
def test_the_callers_inputs_are_checked_before_log_prob(kwargs, match):
    """Each caller's error is named in one line before log_prob runs (it used to be blamed)."""
    kwargs = {"start": A, "end": B, "iters": 3, **kwargs}
    with pytest.raises(ValueError, match=match) as err:
        shortest_likely_path(_never_called, **kwargs)
    assert "\n" not in str(err.value)


def test_a_half_precision_endpoint_promoted_to_float32_is_accepted():
    res = shortest_likely_path(ring().log_prob, A.bfloat16(), B, iters=3)
    assert res.path.dtype == torch.float32 and torch.isfinite(res.path).all()


def test_non_finite_terms_are_named():
    """After the checks, a non-finite objective names its term: log_prob's value, or its
    gradient."""
    dist = ring()
    with pytest.raises(ValueError, match=r"log_prob is not finite at iteration 0 .* is -inf"):
        shortest_likely_path(lambda x: dist.log_prob(x) - math.inf, A, B, iters=3)

    def no_gradient(x: torch.Tensor) -> torch.Tensor:
        return dist.log_prob(x) + (x * 0.0).sqrt().sum(-1)  # d sqrt(x)/dx = inf at 0

    with pytest.raises(ValueError, match="the objective's gradient is not finite at iteration 0"):
        shortest_likely_path(no_gradient, torch.zeros(2), torch.ones(2), iters=3)


def test_custom_init_and_weights_override_the_preset():
    dist = ring()
    a, b = on_ring(200.0), on_ring(-20.0)
    init = shortest_path(a, b, n_steps=4)[1:-1] + 0.1
    res = shortest_likely_path(dist.log_prob, a, b, iters=0, init=init, weights=(1, 0, 0))
    torch.testing.assert_close(res.path[1:-1], init)
    assert res.config.weights == SLPWeights(1.0, 0.0, 0.0) and res.config.n_steps == 4
    torch.testing.assert_close(res.terms["objective"], res.terms["length"])


def test_decode_path_chains_decoders_and_clips():
    path = shortest_path(torch.zeros(2, 2), torch.ones(2, 2), n_steps=3)  # [2, 5, 2]
    calls = []

    def prior_decoder(t):
        calls.append(t.shape)
        return torch.cat([t, t], -1)  # t -> z, d 2 -> 4

    def image_decoder(z):
        return (3 * z - 1).reshape(-1, 1, 2, 2)

    x = decode_path(path, [prior_decoder, image_decoder])
    assert calls == [(10, 2)] and x.shape == (2, 5, 1, 2, 2)
    assert x.min() == 0 and x.max() == 1
    torch.testing.assert_close(x[1, 2, 0, 0, 0], torch.tensor(0.5))  # 3 * 0.5 - 1
    assert decode_path(path[0], [prior_decoder, image_decoder]).shape == (5, 1, 2, 2)
    with pytest.raises(ValueError, match="decoders is empty"):
        decode_path(path, [])


def test_the_walk_shows_step_j_of_every_path_in_frame_j():
    dist = ring()
    a, b = on_ring(200.0)[None], on_ring(-20.0)[None]
    paths = {"SLP": shortest_likely_path(dist.log_prob, a, b, iters=5).path[0],
             "SP": shortest_path(a, b)[0]}
    frames = {name: torch.rand(len(path), 1, 6, 6) for name, path in paths.items()}
    movie = walk_along_paths(dist.log_prob, paths, frames, extent=5.0)
    ring_marker = movie._fig.axes[0].lines[-1]  # the ring at the current point
    image = movie._fig.axes[1].images[0]  # the first row's decoded frame
    for step in (0, 3, len(paths["SLP"]) - 1):
        movie._func(step)
        assert np.allclose(np.asarray(ring_marker.get_data()).ravel(),
                           paths["SLP"][step].numpy())
        assert np.array_equal(image.get_array(), frames["SLP"][step, 0].numpy())
    player = animation_html(movie, "walk")  # one picture per step, offline
    assert player.count("data:image/jpeg;base64") == len(paths["SLP"])
    with pytest.raises(ValueError, match="same number of steps"):
        walk_along_paths(dist.log_prob, paths, {**frames, "SP": frames["SP"][:-1]}, extent=5.0)


def test_figures_build():
    dist = ring()
    a = torch.stack([on_ring(200.0), on_ring(100.0)])
    b = torch.stack([on_ring(-20.0), on_ring(10.0)])
    res = shortest_likely_path(dist.log_prob, a, b, iters=5)
    sp = shortest_path(a, b)

    fig = plot_paths_over_density(dist.log_prob, res.path, sp, extent=5.0, resolution=0.25)
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # heat map and colour bar

    sp_terms = {k: v[0] for k, v in res.history.items()}
    fig = plot_objective_curves(res.history, sp_terms)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert len(fig.axes[1].lines) == 4  # two SLP curves and two SP lines

    frames = torch.rand(2, 10, 1, 6, 6)
    fig = plot_interpolation_strips(frames, frames.flip(1))
    assert isinstance(fig, Figure) and len(fig.axes) == 4  # SLP and SP row per pair
    fig = plot_interpolation_strips(torch.rand(10, 3, 6, 6), torch.rand(10, 3, 6, 6))
    assert len(fig.axes) == 2
    fig.savefig(__import__("io").BytesIO(), format="png")


_DPGMMS: dict[int, DPGMM] = {}


def two_blob_dpgmm(d: int) -> DPGMM:
    """A DP-GMM hyper prior fitted to two blobs in R^d (cached per d)."""
    if d not in _DPGMMS:
        g = torch.Generator().manual_seed(d)
        X = torch.cat([torch.randn(100, d, generator=g) - 2, torch.randn(100, d, generator=g) + 2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            _DPGMMS[d] = DPGMM.paper_prior(d, n_components=4, random_state=0, max_iter=20).fit(
                X.double())
    return _DPGMMS[d]


@settings(deadline=None, max_examples=25)
@given(d=st.integers(1, 4), pairs=st.integers(0, 3), n_steps=st.integers(1, 4),
       ends=st.sampled_from(["random", "equal", "far"]), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([torch.float32, torch.float64]),
       kind=st.sampled_from(["bound", "plugin", "predictive"]))
def test_slp_paths_have_the_right_shape_and_their_endpoints(d, pairs, n_steps, ends, seed, dtype,
                                                            kind):
    """For random d, one pair [d] or a batch [P, d], equal, random or far (up to 1e15 apart)
    endpoints, the path under the DP-GMM is finite, [.., J+2, d], with the endpoints bit-exact;
    a pair with equal endpoints stays the constant path."""
    g = torch.Generator().manual_seed(seed)
    shape = (d,) if pairs == 0 else (pairs, d)
    start = (torch.randn(shape, generator=g) * 3).to(dtype)
    end = {
        "random": lambda: (torch.randn(shape, generator=g) * 3).to(dtype),
        "equal": lambda: start.clone(),
        "far": lambda: start + (10.0 ** torch.empty(shape).uniform_(3, 15, generator=g)
                                * torch.randn(shape, generator=g).sign()).to(dtype),
    }[ends]()
    dpgmm = two_blob_dpgmm(d)
    res = shortest_likely_path(lambda t: dpgmm.log_prob(t, kind), start, end, n_steps=n_steps,
                               iters=5)
    assert res.path.shape == (*shape[:-1], n_steps + 2, d) and res.path.dtype == dtype
    assert torch.equal(res.path[..., 0, :], start) and torch.equal(res.path[..., -1, :], end)
    assert torch.isfinite(res.path).all()
    if ends == "equal":
        assert torch.equal(res.path, start.unsqueeze(-2).expand_as(res.path))
