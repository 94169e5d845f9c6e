"""The quantities of the paper's tables and the ones a careful reader wants beside them.

Paper (Sec 4, SM F):

* :func:`ladder.model.elbo_statistics`: Table 3, the ELBO per image in nats with the Laplace normaliser
  -D log 2 sigma included, its three terms (Eq (2)), and the per-pixel mean absolute
  reconstruction error (Table 3 reports it x0.01).
* :func:`cross_entropy_statistics`: Table 2, E_q(z)[log p(z)] two ways: the prior's own estimate
  (what the reference code logs: the prior-VAE bound L(z) of Eq (4) / L'(z) of Eq (7) for the
  hierarchical and LaDDer priors) and an importance-sampled log p(z) (exact for Normal, GMM and
  VampPrior); beside it, beyond the paper, the entropy of the aggregate posterior q(z) and
  KL(q(z) || p(z)), which unlike the cross-entropy do not move with the latent's scale.
* :func:`generation_statistics`: Table 1 and SM Table 1 on the project's classifier features, the
  Fréchet classifier distance (FCD, :data:`ladder.features.FCD_LABEL`) of generated and of
  reconstructed images to the test images, their difference and the real-vs-real floor.

Beyond the paper:

* :func:`log_likelihood`: the test negative log-likelihood by importance sampling with the full
  model (nested for the generative priors).
* :func:`generation_statistics` also gives precision, recall, density and coverage.
* Fig 4 as a number (NMI and ARI of the prior's mixture components against the class labels) and
  Fig 4's data: :mod:`ladder.clusters`.

The Laplace likelihood in ``sigma_mode="batch_mae"`` (the reference code) sets sigma from the batch,
so p(x|z) is not a fixed density. Under :func:`fixed_laplace_scale`, which :mod:`ladder.evaluate`
uses for every quantity, sigma is held at ``max(|v|, MAE of the whole evaluation set)``: the value
the reference code's rule gives with the evaluation set as one batch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ladder.aggregate import aggregate_log_density_at_codes
from ladder.config import EVALUATION
from ladder.image_sets import ImageSet
from ladder.likelihoods import LaplaceLikelihood
from ladder.model import VAE, elbo_statistics
from ladder.priors import Prior, reparameterise

if TYPE_CHECKING:
    from ladder.classifier import LeNetClassifier

# ladder.features (torchmetrics, scikit-learn, prdc) is imported where it is used: slow to import,
# and only the Fréchet distances need it.

DEFAULT_IS_SAMPLES = EVALUATION.n_is
"""K, the importance samples per point for log p(z) (Table 2) and log p(x)."""

DEFAULT_INNER_SAMPLES = EVALUATION.n_inner
"""Inner samples t ~ q(t|z) per outer z of the nested log p(x) estimate (generative priors).

Any inner count gives a valid stochastic lower bound on log p(x): the inner average is an unbiased
estimate of p(z), so the outer average is an unbiased estimate of p(x). More inner samples only
lower the variance; see ``benchmarks/bench_evaluate.py`` for its effect and its cost."""

MAX_DECODED_PIXELS = 2000 * 784
"""Memory bound: at most this many image pixels decoded in one forward pass (2000 MNIST images)."""

MAX_PRIOR_ROWS = 50_000
"""Memory bound: at most this many (z, t) pairs in one prior-VAE forward pass (about 100 MB per
512-wide hidden layer)."""


# ----------------------------------------------------------------------------------------------
# Helpers


def mean_and_stderr(values: Tensor) -> tuple[float, float]:
    """The mean of ``values`` and its standard error std / sqrt(n) (0 for a single value)."""
    values = values.detach().double().flatten()
    n = values.numel()
    if n == 0:
        raise ValueError("mean_and_stderr needs at least one value")
    stderr = float(values.std() / math.sqrt(n)) if n > 1 else 0.0
    return float(values.mean()), stderr


@contextlib.contextmanager
def fixed_laplace_scale(model: VAE, images: ImageSet, batch_size: int = 500) -> Iterator[float]:
    """Hold the Laplace scale of ``model`` fixed while the block runs; yields sigma.

    ``sigma_mode="mae"`` or ``"learned"``: sigma is already a constant; nothing changes.
    ``"batch_mae"`` (the reference code, SM C): sigma = ``max(abs(v), batch MAE)`` depends on the
    batch, so within the block the likelihood is a fixed-scale Laplace (Eq (14)) with sigma =
    ``max(abs(v), MAE over images)``, the MAE taken as in training (one z ~ q(z|x) per image).
    That makes ELBO and log p(x) properties of each image, independent of batch size, and p(x|z)
    a normalised density.
    """
    likelihood = model.likelihood
    if likelihood.sigma_mode != "batch_mae":
        yield float(likelihood.scale().detach())
        return
    mae = elbo_statistics(model, images, batch_size)["mae"]
    sigma = max(float(likelihood.v.detach().abs()), mae)
    fixed = LaplaceLikelihood("learned", sigma).to(likelihood.v.device)
    model.likelihood = fixed
    try:
        yield sigma
    finally:
        model.likelihood = likelihood


@torch.no_grad()
def prior_log_prob(prior: Prior, z: Tensor, n_samples: int = DEFAULT_IS_SAMPLES) -> Tensor:
    """log p(z) per row of ``z`` [..., d]: exact for Normal, GMM and VampPrior; for the generative
    priors ``prior.log_prob_estimate`` (importance sampling with proposal q(t|z), K = ``n_samples``),
    in chunks of rows that keep memory within :data:`MAX_PRIOR_ROWS`."""
    flat = z.reshape(-1, z.shape[-1])
    rows = max(1, MAX_PRIOR_ROWS // prior.importance_fan_out(n_samples))
    out = [prior.log_prob_estimate(part, n_samples) for part in flat.split(rows)]
    return torch.cat(out).view(z.shape[:-1])


# ----------------------------------------------------------------------------------------------
# Table 2: the cross-entropy between the aggregate posterior and the prior


@torch.no_grad()
def cross_entropy_statistics(
    model: VAE,
    images: ImageSet,
    n_is: int = DEFAULT_IS_SAMPLES,
    batch_size: int = 500,
    progress: bool = False,
) -> dict[str, float | int | bool]:
    """E_q(z)[log p(z)] over ``images`` (Table 2), two ways, with standard errors across images.

    One z ~ q(z|x) per image (a draw from the aggregate posterior q(z)); at that z:

    * ``bound``: the prior's own ``cross_entropy`` (term 3 of Eq (2)): the prior-VAE bound L(z) of
      Eq (4) (hierarchical) or L'(z) of Eq (7) (LaDDer), which the reference code logs; a 100-sample
      Monte Carlo E_q(z|x)[log p(z)] for GMM and VampPrior (``model.n_mc``); analytic for Normal.
    * ``importance_sampled``: log p(z) by :func:`prior_log_prob`, K = ``n_is`` (exact for Normal,
      GMM and VampPrior; for LaDDer the hyper prior's normalised ``density_kind`` density).

    ``gap`` is importance_sampled - bound at the same z (paired standard error). The standard errors
    are across images, so they include both the spread of log p(z) over q(z) and the Monte Carlo
    noise of each estimate.

    E_q(z)[log p(z)] moves with the latent's scale: z -> c z shifts it by -d log c, so a prior that
    shrinks its latent gains nats. KL(q(z) || p(z)) = E_q(z)[log q(z)] - E_q(z)[log p(z)] does not
    (both terms shift together). With log q(z) at the same z from the N images' posteriors
    (:func:`ladder.aggregate.aggregate_log_density_at_codes`; N >= 2, else these keys are absent):

    * ``aggregate_entropy`` and ``kl``: q = (1/N) sum_n q(z|x_n), the images' own aggregate
      posterior (unbiased for it; an upper bound, in expectation, on the population's KL);
    * ``aggregate_entropy_loo`` and ``kl_loo``: q(z_n) by the other N - 1 posteriors (a lower
      bound, in expectation, on the population's KL).

    Both KLs use ``importance_sampled`` log p(z) (paired standard errors); for the generative
    priors its own downward bias raises both.
    """
    if n_is < 1:
        raise ValueError(f"n_is must be >= 1, got {n_is}")
    prior = model.prior
    bounds, estimates, codes = [], [], []
    total = -(-len(images) // batch_size)
    batches = images.iter_batches(batch_size, shuffle=False, drop_last=False)
    for x, _ in tqdm(batches, total=total, desc="cross-entropy", disable=not progress,
                     leave=False):
        mu, std = model.encoder(x)
        z = reparameterise(mu, std)
        bounds.append(prior.cross_entropy(mu, std, z).double())
        estimates.append(prior_log_prob(prior, z, n_is).double())
        codes.append((z, mu, std))
    bound, estimate = torch.cat(bounds), torch.cat(estimates)
    columns = [("bound", bound), ("importance_sampled", estimate), ("gap", estimate - bound)]
    if bound.numel() >= 2:
        z, mu, std = (torch.cat(parts) for parts in zip(*codes, strict=True))
        with_own, held_out = (v.double() for v in aggregate_log_density_at_codes(z, mu, std))
        columns += [("aggregate_entropy", -with_own), ("kl", with_own - estimate),
                    ("aggregate_entropy_loo", -held_out), ("kl_loo", held_out - estimate)]
    result: dict[str, float | int | bool] = {}
    for name, values in columns:
        result[name], result[f"{name}_stderr"] = mean_and_stderr(values)
    result.update(exact=prior.exact_density, n_is=n_is, n_images=int(bound.numel()))
    return result


# ----------------------------------------------------------------------------------------------
# Beyond the paper: the test log-likelihood


@torch.no_grad()
def importance_log_px(
    model: VAE,
    x: Tensor,
    n_samples: int = DEFAULT_IS_SAMPLES,
    n_inner: int = DEFAULT_INNER_SAMPLES,
) -> tuple[Tensor, Tensor]:
    """Per image of ``x`` [B, C, H, W]: log p(x) by importance sampling, and its Monte Carlo
    standard error.

        log p(x) ~ log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x),   z_k ~ q(z | x),  K = n_samples,

    with p(z_k) exact (Normal, GMM, VampPrior) or, for the generative priors, itself importance
    sampled with ``n_inner`` samples t ~ q(t | z_k) (nested; see :data:`DEFAULT_INNER_SAMPLES`).
    A stochastic lower bound on log p(x) (Jensen) that tightens as K grows (Burda et al. 2016).
    The standard error is the delta-method one, sqrt(sum_k w_k^2 - 1/K) with w the normalised
    weights, i.e. sqrt(1/ESS - 1/K). z_k are decoded in chunks within :data:`MAX_DECODED_PIXELS`.
    """
    if n_samples < 1 or n_inner < 1:
        raise ValueError(f"n_samples and n_inner must be >= 1, got {n_samples}, {n_inner}")
    mu, std = model.encoder(x)
    q = torch.distributions.Normal(mu, std)
    batch, pixels = x.shape[0], math.prod(x.shape[1:])
    per_chunk = max(1, min(MAX_DECODED_PIXELS // pixels,
                           MAX_PRIOR_ROWS // model.prior.importance_fan_out(n_inner)) // batch)
    log_w = []
    for start in range(0, n_samples, per_chunk):
        k = min(per_chunk, n_samples - start)
        z = reparameterise(mu, std, k)  # [k, B, d]
        x_hat = model.decoder(z.flatten(0, 1)).view(k, batch, *x.shape[1:])
        log_w.append(model.likelihood.log_prob(x, x_hat).double()
                     + prior_log_prob(model.prior, z, n_inner).double()
                     - q.log_prob(z).sum(-1).double())
    log_w = torch.cat(log_w)  # [K, B]
    estimate = torch.logsumexp(log_w, 0) - math.log(n_samples)
    weights = torch.softmax(log_w, 0)
    stderr = (weights.square().sum(0) - 1.0 / n_samples).clamp_min(0).sqrt()
    return estimate, stderr


def log_likelihood(
    model: VAE,
    images: Tensor,
    n_samples: int = DEFAULT_IS_SAMPLES,
    n_inner: int = DEFAULT_INNER_SAMPLES,
    batch_size: int = 50,
    progress: bool = False,
) -> dict[str, float | int | bool]:
    """Mean test log p(x) per image in nats over ``images`` [N, C, H, W] (:func:`importance_log_px`).

    ``stderr`` is across images (the spread of log p(x) over the test set plus the Monte Carlo
    noise); ``mc_stderr`` is the Monte Carlo error of the mean alone (sqrt(sum_i se_i^2) / N), the
    one to compare two estimators with. ``ess_mean`` is the mean effective sample size of the K
    weights: where it is a handful, the weights are heavy tailed, the delta-method ``mc_stderr``
    understates the error and the estimate still rises with K (raise ``n_samples``).
    ``nll`` = -``log_px``. ``nested`` says whether log p(z) was itself importance sampled.
    A ``batch_mae`` Laplace scale must be fixed first (:func:`fixed_laplace_scale`), or p(x|z)
    would depend on the chunking.
    """
    if getattr(model.likelihood, "sigma_mode", None) == "batch_mae":
        raise ValueError("the Laplace scale is set per batch (sigma_mode='batch_mae'); call "
                         "log_likelihood inside `with fixed_laplace_scale(model, test_set):`")
    was_training = model.training
    model.eval()
    estimates, errors = [], []
    starts = range(0, images.shape[0], batch_size)
    for start in tqdm(starts, desc="log p(x)", disable=not progress, leave=False):
        est, err = importance_log_px(model, images[start:start + batch_size], n_samples, n_inner)
        estimates.append(est)
        errors.append(err)
    model.train(was_training)
    estimate, error = torch.cat(estimates), torch.cat(errors)
    mean, stderr = mean_and_stderr(estimate)
    nested = not model.prior.exact_density
    return {
        "log_px": mean,
        "nll": -mean,
        "stderr": stderr,
        "mc_stderr": float(error.square().sum().sqrt() / estimate.numel()),
        "ess_mean": float((1.0 / (error.square() + 1.0 / n_samples)).mean()),
        "n_images": int(estimate.numel()),
        "n_samples": n_samples,
        "n_inner": n_inner if nested else 0,
        "nested": nested,
    }


# ----------------------------------------------------------------------------------------------
# Table 1 and SM Table 1: sample quality on classifier features


@torch.no_grad()
def generate(model: VAE, n: int, batch_size: int = 500, progress: bool = False) -> Tensor:
    """``n`` images decoded from prior samples (no Laplace noise, as ``VAE.sample``;
    ``VAE.decode_images``, clamped to [0, 1]), on the CPU. The prior is sampled once for all
    ``n``: the DP-GMM's sampler restarts its seeded generator on every call, so batches of calls
    would repeat the same samples."""
    z = model.prior.sample(n)
    out = []
    for part in tqdm(z.split(batch_size), desc="generate", disable=not progress, leave=False):
        out.append(model.decode_images(part).cpu())
    return torch.cat(out)


@torch.no_grad()
def reconstruct(model: VAE, images: Tensor, batch_size: int = 500,
                progress: bool = False) -> Tensor:
    """Reconstructions at the posterior mean (``VAE.reconstruct``) as images (``VAE.images``,
    clamped to [0, 1]), on the CPU."""
    out = []
    for part in tqdm(images.split(batch_size), desc="reconstruct", disable=not progress,
                     leave=False):
        out.append(model.images(model.reconstruct(part)).cpu())
    return torch.cat(out)


def generation_statistics(
    model: VAE,
    test_images: Tensor,
    classifier: LeNetClassifier,
    train_images: Tensor | None = None,
    k: int = 5,
    batch_size: int = 500,
    progress: bool = False,
) -> dict[str, float | int]:
    """FCD and PRDC on the penultimate features of ``classifier`` (Table 1, SM Table 1).

    N = len(``test_images``) on every side: N generated images (:func:`generate`) and the
    reconstructions of the N test images (:func:`reconstruct`) are compared with the N test images;
    ``fcd_difference`` = generated - reconstructed (the paper's "Difference" row). With
    ``train_images`` (N of them) the real-vs-real floor, train against test (the paper's "Real
    image" column). Precision, recall, density and coverage (k nearest neighbours) of the generated
    images against the test images. Fréchet distances are biased upwards by an amount that shrinks
    with N: compare only at equal N (:data:`ladder.features.DEFAULT_SAMPLE_COUNT`).
    """
    from ladder.features import extract_features, frechet_distance, prdc_metrics

    n = test_images.shape[0]
    if train_images is not None and train_images.shape[0] != n:
        raise ValueError(f"train_images must hold as many images as test_images ({n}), got "
                         f"{train_images.shape[0]}")
    device = test_images.device
    classifier = classifier.to(device).eval()

    def features(images: Tensor) -> Tensor:
        return extract_features(classifier.features, images, batch_size, device=device)

    was_training = model.training
    model.eval()
    stages = ["test", "generated", "reconstructed"] + (["train"] if train_images is not None
                                                       else [])
    bar = tqdm(stages, desc="classifier features", disable=not progress, leave=False)
    feats: dict[str, Tensor] = {}
    for stage in bar:
        bar.set_postfix_str(stage)
        if stage == "test":
            feats[stage] = features(test_images)
        elif stage == "generated":
            feats[stage] = features(generate(model, n, batch_size, progress))
        elif stage == "reconstructed":
            feats[stage] = features(reconstruct(model, test_images, batch_size, progress))
        else:
            feats[stage] = features(train_images)
    model.train(was_training)
    result: dict[str, float | int] = {
        "fcd_generated": frechet_distance(feats["test"], feats["generated"]),
        "fcd_reconstructed": frechet_distance(feats["test"], feats["reconstructed"]),
    }
    result["fcd_difference"] = result["fcd_generated"] - result["fcd_reconstructed"]
    if "train" in feats:
        result["fcd_real_floor"] = frechet_distance(feats["test"], feats["train"])
    prdc = prdc_metrics(feats["test"], feats["generated"], k=k)
    result.update({name: prdc[name] for name in ("precision", "recall", "density", "coverage")})
    result.update(prdc_k=k, n_samples=n, feature_dim=int(feats["test"].shape[1]))
    return result
