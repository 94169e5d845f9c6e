"""Run-level evaluation: every quantity of Tables 1-3 and more, one JSON per run.

:func:`evaluate_run` loads a run folder, computes on the test split the :mod:`ladder.metrics`
quantities and writes ``RUN_DIR/evaluation.json``:

* ``schema_version`` (:data:`ladder.evaluation_file.SCHEMA_VERSION`);
* ``provenance``: config, checkpoint SHA-256 and epoch, seed, ladder / torch / Python versions,
  device, sample counts, the evaluation classifier's weights hash and accuracy, wall time per
  stage and in all;
* ``metrics``: ``elbo`` (Table 3), ``cross_entropy`` (Table 2, with the aggregate posterior's
  entropy and KL(q(z) || p(z)) beside it), ``log_likelihood``, ``clusters``
  (Fig 4 as NMI / ARI), ``generation`` (Table 1 and SM Table 1 as the Fréchet classifier distance,
  FCD, with PRDC), and for CelebA ``inception_fid``. A block that cannot be computed holds
  ``{"skipped": reason}`` (and the reason is also in ``notes`` and warned on stderr);
* ``notes``: what was skipped and why.

Sample counts: the defaults are the paper's protocol, :data:`ladder.config.EVALUATION` (the whole
test split for the ELBO, the cross-entropy and the clusters; FCD and PRDC on ``n_samples`` images
per side; K = ``n_is`` importance samples for log p(z) and log p(x); log p(x) on a class-balanced
seeded subset of ``n_nll`` test images with ``n_inner`` inner samples for the generative priors).
On a CPU, lower them as the manifest's quick and medium scales do. FCDs are comparable only at
equal ``n_samples`` and under the same classifier (its hash is in the provenance). The file's
schema, its check and the side-by-side table are :mod:`ladder.evaluation_file`.

A missing evaluation classifier does not fail the evaluation: the classifier metrics are skipped
with a message that names the command that trains one, so the ELBO, cross-entropy and log p(x),
which take most of the time, are not lost; the ``generation`` block then says ``skipped``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ladder.checkpoint import atomic_write, check_writable, file_sha256
from ladder.classifier import CLASSIFIER_DATASETS
from ladder.clusters import cluster_statistics, has_components
from ladder.config import EVALUATION
from ladder.data import balanced_subset, load_dataset
from ladder.evaluation_file import SAMPLE_COUNTS, SCHEMA_VERSION, validate_evaluation
from ladder.image_sets import ImageSet
from ladder.metrics import (
    DEFAULT_INNER_SAMPLES,
    DEFAULT_IS_SAMPLES,
    cross_entropy_statistics,
    fixed_laplace_scale,
    generate,
    generation_statistics,
    log_likelihood,
    reconstruct,
)
from ladder.model import VAE, elbo_statistics
from ladder.runs import RunDir, load_run_with_source
from ladder.train import derived_seed


class EvaluationSkipped(UserWarning):
    """A metric block could not be computed (no classifier, no labels, no components ...)."""


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    device: str = "auto",
    n_test: int | None = None,
    n_samples: int = EVALUATION.n_samples,
    n_is: int = DEFAULT_IS_SAMPLES,
    n_nll: int = EVALUATION.n_nll,
    n_inner: int = DEFAULT_INNER_SAMPLES,
    classifier: Any = None,
    inception_weights: str | os.PathLike | None = None,
    seed: int | None = None,
    out: str | os.PathLike | None = None,
    grid: bool = True,
    progress: bool = True,
    sample_noise: bool | None = None,
) -> dict[str, Any]:
    """Evaluate the run in ``run_dir``; write and return the evaluation dict (module docstring).

    ``n_test``: a seeded class-balanced subset of the test split (None: all of it). ``n_samples``:
    images per side for FCD / PRDC (generated, reconstructed, test, and train for the floor).
    ``n_is``: importance samples K for log p(z) and log p(x); ``n_nll``: test images for log p(x)
    (0 skips it); ``n_inner``: inner samples of the nested log p(x). ``classifier``: None (the
    newest cached one for the dataset), a file path, or a ``(LeNetClassifier, metadata)`` pair as
    :func:`ladder.classifier_cache.load_classifier` returns. ``seed``: default the run's training seed;
    every stage is seeded on its own. ``out``: default ``RUN_DIR/evaluation.json``. ``grid``: also
    save ``RUN_DIR/evaluation-samples.png`` (test images | reconstructions | prior samples).
    ``sample_noise``: for the hierarchical and LaDDer priors, draw generated images with
    (True) or without (False, the reference code) the noise of p(z|t), overriding the run's
    ``model.prior_vae.sample_noise``; recorded in the provenance's config. The output files are checked
    before the evaluation starts, so an unwritable path never costs the work.
    """
    for name, value, low in (("n_samples", n_samples, 2), ("n_is", n_is, 1),
                             ("n_nll", n_nll, 0), ("n_inner", n_inner, 1)):
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    started, clock = _dt.datetime.now(_dt.timezone.utc), time.perf_counter()
    run_dir = Path(run_dir)
    cfg, model, source = load_run_with_source(run_dir, device)
    path = check_writable(out if out is not None else RunDir(run_dir).evaluation, "evaluation file")
    if grid:
        check_writable(RunDir(run_dir).samples, "sample grid")
    if sample_noise is not None:
        set_sample_noise(model, sample_noise)
        cfg.model.prior_vae.sample_noise = bool(sample_noise)
    torch_device = next(model.parameters()).device
    devices = [torch_device] if torch_device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # leave the caller's random state alone
        data = _evaluate(run_dir, cfg, model, torch_device, started, clock, source=source,
                         n_test=n_test, n_samples=n_samples, n_is=n_is, n_nll=n_nll, n_inner=n_inner,
                         classifier=classifier, inception_weights=inception_weights, seed=seed,
                         grid=grid, progress=progress)
    validate_evaluation(data)
    atomic_write(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return data


def evaluate_once(run_dir: str | os.PathLike, **counts: Any) -> dict[str, Any]:
    """:func:`evaluate_run` unless ``run_dir`` already holds an evaluation of its current
    checkpoint with the same sample counts, every one of :data:`SAMPLE_COUNTS` given (a resumed
    ``ladder reproduce`` notebook does not redo it; ``None``, "the whole test split", is not
    compared)."""
    run_dir = Path(run_dir)
    path = RunDir(run_dir).evaluation
    if path.exists():
        old = json.loads(path.read_text())
        prov = old.get("provenance", {})
        same = prov.get("checkpoint", {}).get("sha256") == file_sha256(RunDir(run_dir).checkpoint)
        have = prov.get("sample_counts", {})
        same = same and all(have.get(k) == v for k, v in counts.items()
                            if k in SAMPLE_COUNTS and v is not None)
        if same:
            print(f"{path.name} is current (checkpoint {prov['checkpoint']['sha256'][:12]})")
            return old
    return evaluate_run(run_dir, **counts)


def set_sample_noise(model: VAE, sample_noise: bool) -> None:
    """Sample p(z|t) with or without its noise at every prior-VAE level of ``model``'s prior."""
    if not model.prior.set_sample_noise(sample_noise):
        raise ValueError(f"sample_noise applies to the hierarchical and LaDDer priors (a prior "
                         f"VAE's p(z|t)); this run's prior is {type(model.prior).__name__}")


def _evaluate(run_dir, cfg, model, torch_device, started, clock, *, source, n_test, n_samples, n_is,
              n_nll, n_inner, classifier, inception_weights, seed, grid,
              progress) -> dict[str, Any]:
    """The body of :func:`evaluate_run`, inside its forked random state."""
    seed = cfg.train.seed if seed is None else int(seed)
    dataset = cfg.data.dataset
    stage_seconds: dict[str, float] = {}
    notes: list[str] = []
    metrics: dict[str, Any] = {}

    def skip(block: str, reason: str) -> None:
        metrics[block] = {"skipped": reason}
        notes.append(f"{block}: {reason}")
        warnings.warn(f"{block} skipped: {reason}", EvaluationSkipped, stacklevel=4)

    def stage(name: str, offset: int) -> _Stage:
        return _Stage(name, stage_seconds, derived_seed(seed, offset, stride=1000))

    test = load_dataset(dataset, "test", root=cfg.data.root, n=n_test, device=torch_device,
                        seed=seed)
    if n_samples > len(test):
        raise ValueError(f"n_samples = {n_samples} exceeds the {len(test)} test images; lower "
                         "--n-samples (or raise --n-test)")
    # The classifier first: a corrupt file fails before the long stages, not after them.
    classifier_info, loaded = None, None
    if dataset not in CLASSIFIER_DATASETS:
        skip("generation", f"the project's evaluation classifier is for 28x28 greyscale images "
             f"({', '.join(CLASSIFIER_DATASETS)}); {dataset} is scored by Inception FID")
    else:
        loaded = _load_classifier(classifier, dataset)
        if isinstance(loaded, str):
            skip("generation", loaded)
    with fixed_laplace_scale(model, test, cfg.train.eval_batch_size) as sigma:
        with stage("elbo", 1):
            elbo = elbo_statistics(model, test, cfg.train.eval_batch_size, progress=progress)
            elbo["pixel_error_x100"] = 100.0 * elbo["mae"]
            metrics["elbo"] = elbo
        with stage("cross_entropy", 2):
            metrics["cross_entropy"] = cross_entropy_statistics(
                model, test, n_is, batch_size=cfg.train.eval_batch_size, progress=progress)
        if n_nll > 0:
            with stage("log_likelihood", 3):
                images = _subset(test, min(n_nll, len(test)), seed)
                metrics["log_likelihood"] = log_likelihood(model, images, n_is, n_inner,
                                                           progress=progress)
        else:
            skip("log_likelihood", "n_nll = 0")

    if test.labels is None:
        skip("clusters", f"{dataset} has no class labels")
    elif not has_components(model.prior):
        skip("clusters", f"the {cfg.model.prior} prior has no mixture components")
    else:
        with stage("clusters", 4):
            metrics["clusters"] = cluster_statistics(model, test, cfg.train.eval_batch_size,
                                                     progress=progress)

    if loaded is not None and not isinstance(loaded, str):
        net, meta = loaded
        classifier_info = {"weights_hash": meta.get("weights_hash"),
                           "test_accuracy": meta.get("test_accuracy"),
                           "path": meta.get("path")}
        with stage("generation", 5):
            train = load_dataset(dataset, "train", root=cfg.data.root, device=torch_device)
            result = generation_statistics(
                model, _subset(test, n_samples, seed), net, _subset(train, n_samples, seed),
                batch_size=cfg.train.eval_batch_size, progress=progress)
            from ladder.features import FCD_LABEL

            metrics["generation"] = {"label": FCD_LABEL, **result,
                                     "classifier_hash": meta.get("weights_hash")}
    if dataset == "celeba":
        with stage("inception_fid", 6):
            _inception_block(model, test, dataset, cfg, n_samples, seed, inception_weights,
                             metrics, skip)
    if grid:
        with stage("grid", 7):
            n = min(100, len(test))
            save_sample_grid(model, test.take(n), RunDir(run_dir).samples, seed)

    return {
        "schema_version": SCHEMA_VERSION,
        "provenance": _provenance(run_dir, source, cfg, seed, torch_device, started, clock,
                                  stage_seconds, classifier_info, sigma,
                                  {"n_test": len(test), "n_samples": n_samples, "n_is": n_is,
                                   "n_nll": min(n_nll, len(test)), "n_inner": n_inner}),
        "metrics": metrics,
        "notes": notes,
    }


class _Stage:
    """Times a stage into ``seconds[name]`` and seeds torch for it (stages are reproducible one by
    one, whichever others run)."""

    def __init__(self, name: str, seconds: dict[str, float], seed: int) -> None:
        self.name, self.seconds, self.seed = name, seconds, seed

    def __enter__(self) -> None:
        torch.manual_seed(self.seed)
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self.name] = round(time.perf_counter() - self.start, 3)


def _subset(images: ImageSet, n: int, seed: int) -> Tensor:
    """``n`` images: all of them in order, else a seeded class-balanced subset (the first ``n``
    where there are no labels)."""
    if n == len(images):
        return images.take(n)
    if images.labels is None:
        return images.take(n)
    return images.gather(balanced_subset(images.labels, n, seed))


def _load_classifier(classifier: Any, dataset: str) -> tuple[Any, dict] | str:
    """(model, metadata), or the reason there is none."""
    from ladder.classifier import LeNetClassifier
    from ladder.classifier_cache import ClassifierNotFoundError, load_classifier

    if isinstance(classifier, tuple):
        return classifier
    if isinstance(classifier, LeNetClassifier):
        from ladder.classifier_cache import weights_hash

        return classifier, {"weights_hash": weights_hash(classifier)}
    try:
        if classifier is None:
            return load_classifier(dataset)
        return load_classifier(dataset, path=classifier)
    except ClassifierNotFoundError as err:
        return (f"{err}. FCD and PRDC need it: run `ladder train-classifier --dataset {dataset}` "
                "(minutes on a CPU), then evaluate again")


def _inception_block(model, test, dataset, cfg, n_samples, seed, weights, metrics, skip) -> None:
    """Standard Inception FID of generated and reconstructed images and the floor (CelebA)."""
    if weights is None:
        skip("inception_fid", "Inception FID needs a local weights file (nothing is downloaded): "
             "pass --inception-weights /path/to/weights-inception-2015-12-05-6726825d.pth "
             "(torch-fidelity's release file)")
        return
    from ladder.features import inception_fid

    real = _subset(test, n_samples, seed).cpu()
    train = load_dataset(dataset, "train", root=cfg.data.root)
    floor = _subset(train, n_samples, seed).cpu()
    generated = generate(model, n_samples)
    recon = reconstruct(model, _subset(test, n_samples, seed))
    result = {name: inception_fid(real, fake, weights)
              for name, fake in (("fid_generated", generated), ("fid_reconstructed", recon),
                                 ("fid_real_floor", floor))}
    result["fid_difference"] = result["fid_generated"] - result["fid_reconstructed"]
    result.update(n_samples=n_samples, weights=str(weights), weights_sha256=file_sha256(weights))
    metrics["inception_fid"] = result


def save_sample_grid(model: VAE, images: Tensor, path: str | os.PathLike, seed: int) -> Path:
    """A PNG (written atomically) of ``images``, their reconstructions and as many prior samples
    drawn with ``seed``, side by side (``ladder sample`` and the evaluation's grid)."""
    from torchvision.utils import save_image

    from ladder.plots.grids import samples_and_reconstructions

    picture = samples_and_reconstructions(model, images, len(images), seed=seed)
    return atomic_write(path, lambda handle: save_image(picture, handle, format="png"))


def _provenance(run_dir, source, cfg, seed, device, started, clock, stage_seconds, classifier,
                sigma, counts) -> dict[str, Any]:
    from ladder import __version__

    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = f"{platform.processor() or platform.machine()}, " \
                      f"{torch.get_num_threads()} thread(s)"
    return {
        "run_dir": str(run_dir),
        "config": cfg.to_dict(),
        "checkpoint": source,
        "seed": seed,
        "ladder_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "device_name": device_name,
        "sample_counts": counts,
        "classifier": classifier,
        "laplace_sigma": {"mode": cfg.model.sigma_mode, "sigma": sigma},
        "started": started.isoformat(timespec="seconds"),
        "wall_time_s": round(time.perf_counter() - clock, 3),
        "stage_seconds": stage_seconds,
        "argv": list(sys.argv),
    }
