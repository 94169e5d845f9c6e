"""Priors compared on one run's frozen latent: Fig 2's protocol for any run folder and any d_z.

Table 2 compares priors trained with their own autoencoders, and each prior shapes its own q(z):
a prior that shrinks its latent gains nats in E_q(z)[log p(z)]. Fig 2 (Sec 4.1) separates the two
by fixing one autoencoder and fitting every prior to the same codes. :func:`frozen_latent_comparison`
does that for a trained run: it fits each prior family to the run's training codes
(:func:`ladder.latent2d.fit_priors`, the prior blocks of Algorithm 1 with theta and phi fixed) and
scores E_q(z)[log p(z)] on its test codes (:func:`ladder.latent2d.cross_entropies`: exact log p(z)
for Normal, GMM and VampPrior, importance sampled for the hierarchical and LaDDer priors), beside
the run's own prior as trained and the training codes' aggregate posterior. On one q(z), these
differences are differences of KL(q(z) || p(z)).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ladder.checkpoint import atomic_write, check_writable
from ladder.data import load_dataset
from ladder.latent2d import FIG2_PRIORS, cross_entropies, encode, fit_priors
from ladder.markdown import markdown_table
from ladder.runs import load_run

FROZEN_LATENT_FILE = "frozen_latent.json"
RUN_PRIOR = "run"
"""The key of the run's own prior, as trained with its autoencoder."""


def frozen_latent_comparison(
    run_dir: str | os.PathLike,
    priors: Sequence[str] = FIG2_PRIORS,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    d_t: int | None = None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 5e-4,
    n_samples: int = 256,
    seed: int | None = None,
    device: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Fit ``priors`` to the frozen training codes of ``run_dir`` and score them on its test codes.

    ``n_train``: training images (default the run's own subset, ``data.n_train`` with its seed);
    ``n_test``: a seeded class-balanced subset of the test split (default all of it). ``d_t``:
    the prior-VAE latent size (default the run's ``model.prior_vae.d_t``); the priors' other settings are the
    run's ``model`` config. ``epochs``, ``batch_size``, ``lr``: the prior fit; ``n_samples``:
    importance samples of the generative priors' log p(z). ``seed``: default the run's.

    Returns ``cross_entropy[name]`` (mean log p(z) over one z ~ q(z|x) per test image, nats) and
    ``cross_entropy_stderr[name]`` (across images) for each prior, for the run's own prior
    (key :data:`RUN_PRIOR`) and for ``"aggregate"``; ``history`` (each fit's objective per epoch)
    and the settings.
    """
    unknown = [name for name in priors if name not in FIG2_PRIORS]
    if unknown:
        raise ValueError(f"unknown priors {unknown}; choose from {', '.join(FIG2_PRIORS)}")
    with torch.random.fork_rng():  # loading a run seeds torch; the caller's state stays
        cfg, model = load_run(run_dir, device)
        seed = cfg.train.seed if seed is None else int(seed)
        d_t = cfg.model.prior_vae.d_t if d_t is None else int(d_t)
        torch_device = next(model.parameters()).device
        data = cfg.data
        train = load_dataset(data.dataset, "train", root=data.root, device=torch_device,
                             n=data.n_train if n_train is None else n_train, seed=cfg.train.seed)
        test = load_dataset(data.dataset, "test", root=data.root, n=n_test, device=torch_device,
                            seed=seed)
        fitted, history = fit_priors(model, train, priors, d_t, cfg.model, epochs, batch_size, lr,
                                     seed, progress)
        means, stderrs = cross_entropies({**fitted, RUN_PRIOR: model.prior}, encode(model, train),
                                         encode(model, test), 1, n_samples, seed)
    return {
        "run_dir": str(run_dir),
        "prior_of_run": cfg.model.prior,
        "cross_entropy": means,
        "cross_entropy_stderr": stderrs,
        "history": history,
        "settings": {"d_z": cfg.model.d_z, "d_t": d_t, "n_train": len(train),
                     "n_test": len(test), "epochs": epochs, "batch_size": batch_size, "lr": lr,
                     "n_samples": n_samples, "seed": seed},
    }


def write_frozen_latent_comparison(
    run_dir: str | os.PathLike, out: str | os.PathLike | None = None, **options: Any
) -> tuple[Path, dict[str, Any]]:
    """:func:`frozen_latent_comparison` of ``run_dir`` written (atomically) to ``out`` (default
    ``RUN_DIR/frozen_latent.json``); the path is checked before the work starts."""
    path = check_writable(Path(run_dir) / FROZEN_LATENT_FILE if out is None else out,
                          "frozen-latent file")
    result = frozen_latent_comparison(run_dir, **options)
    atomic_write(path, json.dumps(result, indent=2, allow_nan=False) + "\n")
    return path, result


def frozen_latent_table(result: dict[str, Any]) -> str:
    """A Markdown table of a :func:`frozen_latent_comparison`: one row per prior."""
    settings, ce = result["settings"], result["cross_entropy"]
    lines = [f"E_q(z)[log p(z)] on {settings['n_test']} test codes of {result['run_dir']} "
             f"(d_z = {settings['d_z']}; priors fitted to {settings['n_train']} frozen training "
             f"codes for {settings['epochs']} epochs; higher is better)", ""]
    rows = []
    for name, value in ce.items():
        label = f"{name} ({result['prior_of_run']}, as trained)" if name == RUN_PRIOR else name
        rows.append([label, f"{value:.3f}", f"{result['cross_entropy_stderr'][name]:.3f}"])
    lines.append(markdown_table(["prior", "E_q(z)[log p(z)]", "standard error"], rows))
    return "\n".join(lines)
