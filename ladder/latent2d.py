"""Fig 2 as a tool: five priors fitted to one frozen 2-D latent space, on a grid and as numbers.

The protocol of Fig 2 (Sec 4.1): train a VAE with the N(0, I) prior and a 2-D latent, fix its
autoencoder, fit each of the other priors to its encodings (:func:`ladder.prior_block.fit_prior`: the
prior block of Algorithm 1 and its end-of-epoch refit, with theta and phi frozen), then compare

* the pictures: every prior's log p(z) on a grid beside the aggregate posterior of Eq (3),
  q(z) = (1/N) sum_i N(z; mu_i, diag std_i^2) (SM A.1), computed exactly on the same grid
  (panel a); and
* the numbers: each prior's cross-entropy E_q(z)[log p(z)], term 3 of Eq (2) rearranged as in
  Eq (3), estimated by Monte Carlo over z ~ q(z|x) of the test images (higher is better;
  Table 2's quantity, but with an importance-sampled log p(z) for the generative priors where
  the reference code logs the bound L(z)).

:func:`compare_priors` runs all of it; the pieces are public for chapters that need only one.
:mod:`ladder.plots.latent2d` draws the figure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ladder.aggregate import aggregate_log_density
from ladder.config import Config, ModelConfig
from ladder.image_sets import ImageSet
from ladder.metrics import mean_and_stderr
from ladder.model import VAE
from ladder.prior_block import encode_images as encode  # q(z|x) of every image, re-exported
from ladder.prior_block import fit_prior
from ladder.prior_registry import build_prior
from ladder.prior_vae import PriorVAE
from ladder.priors import Prior, reparameterise

#: The priors of Fig 2 b-f, in panel order.
FIG2_PRIORS: tuple[str, ...] = ("normal", "hierarchical", "vamp", "gmm", "ladder")
#: The reference code's grid half-width and colour range for 2-D log densities.
GRID_EXTENT = 6.0
COLOUR_RANGE = (-14.0, 0.0)


@dataclass
class PriorComparison:
    """What :func:`compare_priors` returns: Fig 2's panels on one grid, and Table 2's numbers.

    ``log_q`` and every ``log_p[name]`` are ``[len(ys), len(xs)]`` (row i is ``ys[i]``, as
    ``imshow(origin="lower")`` wants); ``log_q`` is the log of q's exact mass in each grid cell
    over the cell's area (:func:`aggregate_cell_masses`), so it sums to a mass of 1 whatever the
    posteriors' widths, and each ``log_p[name]`` is the prior's density at the grid points.
    ``cross_entropy[name]`` is the Monte Carlo estimate of E_q(z)[log p(z)] (Eq (3)) on the test
    encodings and ``cross_entropy_stderr[name]`` its standard error. The key ``"aggregate"``
    scores q(z) of the training encodings (an :class:`AggregatePosterior`) on the test encodings:
    on its own encodings q(z) is the optimum of Eq (3), but held out it is a mixture of N narrow
    Gaussians that overfits, so a smooth prior can score higher.
    """

    xs: Tensor
    ys: Tensor
    log_q: Tensor
    log_p: dict[str, Tensor] = field(default_factory=dict)
    cross_entropy: dict[str, float] = field(default_factory=dict)
    cross_entropy_stderr: dict[str, float] = field(default_factory=dict)
    priors: dict[str, Prior] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) of the grid, for ``imshow``."""
        return (float(self.xs[0]), float(self.xs[-1]), float(self.ys[0]), float(self.ys[-1]))

    @property
    def cell_area(self) -> float:
        """The area of one grid cell: a density times it, summed over the grid, is a mass."""
        return float((self.xs[1] - self.xs[0]) * (self.ys[1] - self.ys[0]))

    def log_densities(self) -> dict[str, Tensor]:
        """``{"aggregate": log_q, **log_p}``: the panels of Fig 2 in order."""
        return {"aggregate": self.log_q, **self.log_p}

    def mass(self, name: str) -> float:
        """The grid's share of the mass of ``name`` (``"aggregate"`` or a prior); about 1 when the
        grid covers the density and resolves it."""
        return float(self.log_densities()[name].double().exp().sum() * self.cell_area)

    def mass_where_q_below(self, name: str, log_threshold: float) -> float:
        """The mass of ``name`` in the grid cells where log q(z) < ``log_threshold``: how much of
        a prior sits where the data have (almost) no encodings (Fig 2's low-density regions)."""
        low = self.log_q < log_threshold
        density = self.log_densities()[name].double().exp()
        return float(density[low].sum() * self.cell_area)

    def low_density_threshold(self, q_mass: float = 0.01) -> float:
        """The log q(z) level below which the grid holds a share ``q_mass`` of q's own mass: the
        region {log q(z) < level} is where the data "are not" (e.g. 1% of the encodings' mass);
        :meth:`mass_where_q_below` at this level says how much of a prior sits there."""
        if not 0 < q_mass < 1:
            raise ValueError(f"q_mass is a share of q's mass in (0, 1), got {q_mass}")
        values = self.log_q.flatten().double().sort().values
        cumulative = values.exp().cumsum(0) * self.cell_area
        index = int(torch.searchsorted(cumulative, torch.tensor(q_mass, dtype=torch.float64)))
        return float(values[min(index, values.numel() - 1)])


def grid_points(
    extent: float = GRID_EXTENT,
    resolution: float = 0.1,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor, Tensor]:
    """A square grid ``[-extent, extent]^2`` with step ``resolution``: ``(xs, ys, points)``, where
    ``points`` is ``[len(ys) * len(xs), 2]`` in row-major order (x varies fastest)."""
    if not extent > 0 or not 0 < resolution < extent:
        raise ValueError(
            f"need extent > 0 and 0 < resolution < extent, got extent={extent}, "
            f"resolution={resolution}"
        )
    n = int(round(2 * extent / resolution)) + 1
    xs = torch.linspace(-extent, extent, n, device=device)
    ys = xs.clone()
    points = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    return xs, ys, points


def aggregate_cell_masses(xs: Tensor, ys: Tensor, mu: Tensor, std: Tensor) -> Tensor:
    """The mass of the aggregate posterior q(z) of Eq (3) (SM A.1) in each cell of a 2-D grid,
    ``[len(ys), len(xs)]``: cells centred on the grid points, with edges half-way between them
    and the outermost cells open to infinity, so the masses sum to 1. Exact for any posterior
    width (a product of normal CDF differences per Gaussian), unlike density times cell area,
    which misses posteriors narrower than the grid step."""
    if mu.shape != std.shape or mu.dim() != 2 or mu.shape[-1] != 2:
        raise ValueError(f"need mu, std [N, 2]; got {tuple(mu.shape)}, {tuple(std.shape)}")

    def axis_masses(centres: Tensor, m: Tensor, s: Tensor) -> Tensor:  # [N, len(centres)]
        inf = torch.full((1,), math.inf, dtype=torch.float64, device=centres.device)
        edges = torch.cat([-inf, (centres[1:] + centres[:-1]).double() / 2, inf])
        cdf = torch.special.ndtr((edges[None] - m.double()[:, None]) / s.double()[:, None])
        return cdf.diff(dim=1)

    per_x = axis_masses(xs, mu[:, 0], std[:, 0])
    per_y = axis_masses(ys, mu[:, 1], std[:, 1])
    return per_y.T @ per_x / mu.shape[0]


def log_density(prior: Prior, z: Tensor, n_samples: int = 256, chunk: int = 256) -> Tensor:
    """log p(z) at ``z`` ``[P, d]``, ``chunk`` rows at a time: ``prior.log_prob`` where it is
    exact, else ``prior.log_prob_estimate`` with ``n_samples`` importance samples (a stochastic
    lower bound that tightens as ``n_samples`` grows; see
    :meth:`ladder.prior_vae.PriorVAE.log_prob_estimate`)."""
    exact = prior.exact_density
    with torch.no_grad():
        out = [prior.log_prob(c) if exact else prior.log_prob_estimate(c, n_samples)
               for c in z.split(chunk)]
    return torch.cat(out)


def cross_entropy(
    prior: Prior,
    mu: Tensor,
    std: Tensor,
    n_z: int = 1,
    n_samples: int = 256,
    seed: int = 0,
    chunk: int = 256,
) -> tuple[float, float]:
    """E_q(z)[log p(z)] of Eq (3) (term 3 of Eq (2); Table 2), as ``(mean, standard error)``.

    Monte Carlo over ``n_z`` samples z ~ q(z|x_i) of each encoding ``(mu_i, std_i)``, with
    :func:`log_density` (exact, or ``n_samples`` importance samples). Seeded by ``seed`` without
    touching the global random state.
    """
    with _seeded(seed, mu.device), torch.no_grad():
        z = reparameterise(mu, std, n_z).reshape(-1, mu.shape[-1])
        return mean_and_stderr(log_density(prior, z, n_samples, chunk))


def prior_config(name: str, d_z: int = 2, d_t: int = 2, base: ModelConfig | None = None
                 ) -> ModelConfig:
    """The :class:`~ladder.config.ModelConfig` of prior ``name`` on a ``d_z``-dimensional latent:
    ``base`` (the paper's settings if None) with ``prior``, ``d_z`` and ``prior_vae.d_t`` replaced, and
    validated (d_t <= d_z)."""
    base = base or ModelConfig()
    cfg = dataclasses.replace(base, prior=name, d_z=d_z,
                              prior_vae=dataclasses.replace(base.prior_vae, d_t=d_t))
    Config(model=cfg).validate()
    return cfg


def fit_priors(
    model: VAE,
    images: ImageSet,
    names: Sequence[str] = FIG2_PRIORS,
    d_t: int = 2,
    base: ModelConfig | None = None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 5e-4,
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict[str, Prior], dict[str, list[float]]]:
    """Fit each prior in ``names`` to the encodings of ``images`` with ``model``'s autoencoder
    fixed (Fig 2's protocol): built by :func:`ladder.prior_registry.build_prior` from
    :func:`prior_config`, then :func:`ladder.prior_block.fit_prior` for ``epochs`` epochs. Returns the
    fitted priors and each fitted one's per-epoch objective (its cross-entropy estimate);
    ``"normal"`` has nothing to fit. Every prior is seeded with ``seed``, independently of the
    others and without touching the global random state."""
    mu, _ = encode(model, images)
    d_z = mu.shape[-1]
    priors: dict[str, Prior] = {}
    history: dict[str, list[float]] = {}
    for name in names:
        cfg = prior_config(name, d_z, d_t, base)
        with _seeded(seed, mu.device):
            prior = build_prior(cfg, model.encoder, images.image_shape, seed).to(mu.device)
            prior.init_from_data(images, seed)
            if name != "normal":  # N(0, I) has nothing to fit
                frozen_vae = VAE(model.encoder, model.decoder, model.likelihood, prior)
                history[name] = fit_prior(frozen_vae, images, epochs, batch_size, lr, seed,
                                          progress)
        priors[name] = prior.eval()
    return priors, history


def compare_priors(
    model: VAE,
    train_images: ImageSet,
    test_images: ImageSet,
    names: Sequence[str] = FIG2_PRIORS,
    d_t: int = 2,
    base: ModelConfig | None = None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 5e-4,
    extent: float = GRID_EXTENT,
    resolution: float = 0.1,
    n_z: int = 1,
    n_samples: int = 256,
    seed: int = 0,
    progress: bool = False,
    grid_samples: int | None = None,
) -> PriorComparison:
    """Fig 2 as a tool: fit ``names`` to the frozen 2-D latent of ``model`` and compare them.

    1. :func:`fit_priors` on ``train_images`` (the autoencoder stays as it is);
    2. the aggregate posterior q(z) of Eq (3) from the ``train_images`` encodings (panel a) and
       every prior's log p(z) on the grid ``[-extent, extent]^2`` (step ``resolution``; panels
       b-f), with :func:`log_density`;
    3. each prior's cross-entropy E_q(z)[log p(z)] (Eq (3)) on ``n_z`` samples of q(z|x) per
       ``test_images`` encoding (:func:`cross_entropy`), and that of q(z) itself
       (key ``"aggregate"``).

    ``d_t`` is the prior-VAE latent size of the hierarchical and LaDDer priors (1 or 2; the paper
    uses 2); ``base`` their other settings (the paper's if None); ``epochs``, ``batch_size`` and
    ``lr`` drive :func:`ladder.prior_block.fit_prior`; ``n_samples`` importance samples estimate the
    generative priors' log p(z), and ``grid_samples`` (``n_samples`` if None) those of the grid's
    panels: a picture on a 14-nat colour scale needs fewer than the numbers, and the grid has
    far more points than there are test encodings.
    """
    unknown = [n for n in names if n not in FIG2_PRIORS]
    if unknown:
        raise ValueError(f"unknown priors {unknown}; choose from {', '.join(FIG2_PRIORS)}")
    mu_train, std_train = encode(model, train_images)
    if mu_train.shape[-1] != 2:
        raise ValueError(
            f"Fig 2 needs a 2-D latent space; this model has d_z = {mu_train.shape[-1]} "
            "(train it with model.d_z = 2)"
        )
    mu_test, std_test = encode(model, test_images)
    priors, history = fit_priors(model, train_images, names, d_t, base, epochs, batch_size, lr,
                                 seed, progress)
    result = _evaluate(priors, (mu_train, std_train), (mu_test, std_test), extent, resolution,
                       n_z, n_samples, seed, grid_samples)
    result.history = history
    return result


def compare_hyper_prior(
    prior: PriorVAE,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    extent: float = 4.0,
    resolution: float = 0.1,
    n_z: int = 1,
    n_samples: int = 256,
    seed: int = 0,
) -> PriorComparison:
    """The same comparison one level up (SM A.2): the hyper prior p(t) of a fitted prior VAE
    against its aggregate hyper posterior q(t) = E_q(z)[q_beta(t|z)] (SM A.2).

    ``train`` and ``test`` are data-VAE encodings ``(mu, std)``; one z ~ q(z|x) is drawn per
    encoding and mapped to q_beta(t|z). ``log_q`` is q(t) of the training encodings on the grid
    ``[-extent, extent]^2`` (needs d_t = 2), ``log_p["hyper"]`` is log p(t) (N(0, I) for the
    hierarchical prior, the fitted DP-GMM for LaDDer) and ``cross_entropy`` holds
    E_q(t)[log p(t)] (SM A.2) of the test encodings for ``"hyper"`` and for q(t) itself
    (``"aggregate"``); ``n_samples`` matters only for a hyper prior without an exact density (a
    ladder of prior VAEs).
    """
    if prior.latent_dim != 2:
        raise ValueError(f"the t-space grid needs d_t = 2, this prior VAE has {prior.latent_dim}")
    with _seeded(seed, train[0].device), torch.no_grad():
        hyper_train, hyper_test = (prior.encode(reparameterise(mu, std)) for mu, std in (train, test))
    return _evaluate({"hyper": prior.hyper}, hyper_train, hyper_test, extent, resolution, n_z,
                     n_samples, seed)


def _evaluate(
    priors: dict[str, Prior],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    extent: float,
    resolution: float,
    n_z: int,
    n_samples: int,
    seed: int,
    grid_samples: int | None = None,
) -> PriorComparison:
    """Grid densities (``grid_samples`` importance samples, ``n_samples`` if None) and
    cross-entropies (``n_samples``) of ``priors`` against the aggregate posterior of the
    ``train`` encodings (steps 2 and 3 of :func:`compare_priors`)."""
    mu_train, std_train = train
    xs, ys, points = grid_points(extent, resolution, mu_train.device)
    shape = (len(ys), len(xs))
    # q's exact mass per cell over the cell's area: a density average that, unlike the density at
    # the grid points, never misses posteriors narrower than the grid step.
    cell_area = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    masses = aggregate_cell_masses(xs, ys, mu_train, std_train).clamp(min=1e-300)
    log_q = (masses / cell_area).log().to(mu_train.dtype).reshape(shape).cpu()
    result = PriorComparison(xs.cpu(), ys.cpu(), log_q, priors=dict(priors))
    result.cross_entropy, result.cross_entropy_stderr = cross_entropies(priors, train, test, n_z,
                                                                        n_samples, seed)
    for name, prior in priors.items():
        with _seeded(seed, mu_train.device):
            result.log_p[name] = log_density(prior, points, grid_samples or n_samples
                                             ).reshape(shape).cpu()
    return result


def cross_entropies(
    priors: dict[str, Prior],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    n_z: int = 1,
    n_samples: int = 256,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, float]]:
    """E_q(z)[log p(z)] (Eq (3)) on the ``test`` encodings ``(mu, std)`` for each of ``priors``
    and, first, for the aggregate posterior of the ``train`` encodings (key ``"aggregate"``), by
    :func:`cross_entropy`: ``(means, standard errors)``. Every prior is scored at the same z."""
    means, stderrs = {}, {}
    for name, prior in {"aggregate": AggregatePosterior(*train), **priors}.items():
        means[name], stderrs[name] = cross_entropy(prior, *test, n_z, n_samples, seed)
    return means, stderrs


class AggregatePosterior(Prior):
    """The aggregate posterior q(z) = (1/N) sum_i N(z; mu_i, diag std_i^2) of a set of encodings
    (Eq (3), SM A.1) as a prior with an exact density: the prior that maximises term 3 of
    Eq (2) for exactly these encodings. Its cross-entropy on the same encodings is -H[q(z)]."""

    def __init__(self, mu: Tensor, std: Tensor) -> None:
        super().__init__(mu.shape[-1])
        self.mu, self.std = mu, std

    def log_prob(self, z: Tensor) -> Tensor:
        return aggregate_log_density(z, self.mu, self.std)

    def sample(self, n: int) -> Tensor:
        pick = torch.randint(0, self.mu.shape[0], (n,), device=self.mu.device)
        return reparameterise(self.mu[pick], self.std[pick])


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with torch seeded by ``seed``, restoring the global random state after it."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
