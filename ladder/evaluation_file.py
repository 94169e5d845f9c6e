"""``evaluation.json``, the file :func:`ladder.evaluate.evaluate_run` writes: its schema, the check
every written and read evaluation passes, and the Markdown table of evaluations side by side."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from ladder.config import EvaluationCounts
from ladder.markdown import format_pm, markdown_table

SCHEMA_VERSION = 1

METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "elbo": ("elbo", "elbo_stderr", "reconstruction", "entropy", "cross_entropy", "mae",
             "pixel_error_x100", "n_images"),
    "cross_entropy": ("bound", "bound_stderr", "importance_sampled", "importance_sampled_stderr",
                      "gap", "gap_stderr", "aggregate_entropy", "aggregate_entropy_stderr", "kl",
                      "kl_stderr", "aggregate_entropy_loo", "aggregate_entropy_loo_stderr",
                      "kl_loo", "kl_loo_stderr", "exact", "n_is", "n_images"),
    "log_likelihood": ("log_px", "nll", "stderr", "mc_stderr", "ess_mean", "n_images",
                       "n_samples", "n_inner", "nested"),
    "clusters": ("nmi", "ari", "n_components_used", "n_classes", "n_images"),
    "generation": ("label", "fcd_generated", "fcd_reconstructed", "fcd_difference",
                   "fcd_real_floor", "precision", "recall", "density", "coverage", "n_samples",
                   "classifier_hash"),
}
PROVENANCE_KEYS = ("run_dir", "config", "checkpoint", "seed", "ladder_version", "torch_version",
                   "python_version", "device", "sample_counts", "classifier", "laplace_sigma",
                   "started", "wall_time_s", "stage_seconds")


SAMPLE_COUNTS = tuple(f.name for f in dataclasses.fields(EvaluationCounts))
"""The sample counts an evaluation records in ``provenance.sample_counts``."""


# ----------------------------------------------------------------------------------------------
# Schema


def validate_evaluation(data: Any) -> None:
    """Check an evaluation dict against schema :data:`SCHEMA_VERSION`; :class:`ValueError` lists
    every problem. Each metric block is ``{"skipped": reason}`` or holds all of its
    :data:`METRIC_KEYS` with finite numbers (strings where named ``label`` / ``*_hash``)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ValueError(f"an evaluation is a JSON object, got {type(data).__name__}")
    if data.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version is {data.get('schema_version')!r}, expected "
                        f"{SCHEMA_VERSION}")
    prov = data.get("provenance")
    if not isinstance(prov, dict):
        problems.append("provenance is missing")
        prov = {}
    problems += [f"provenance.{key} is missing" for key in PROVENANCE_KEYS if key not in prov]
    if "config" in prov and not isinstance(prov["config"], dict):
        problems.append("provenance.config must be an object")
    sha = (prov.get("checkpoint") or {}).get("sha256") if isinstance(prov.get("checkpoint"),
                                                                      dict) else None
    if "checkpoint" in prov and not (isinstance(sha, str) and len(sha) == 64):
        problems.append("provenance.checkpoint.sha256 must be a 64-digit hex string")
    counts = prov.get("sample_counts", {})
    for key in SAMPLE_COUNTS:
        if "sample_counts" in prov and not isinstance(counts.get(key), int):
            problems.append(f"provenance.sample_counts.{key} must be an integer")
    wall = prov.get("wall_time_s")
    if "wall_time_s" in prov and not (_is_number(wall) and wall >= 0):
        problems.append("provenance.wall_time_s must be a non-negative number")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        problems.append("metrics is missing")
        metrics = {}
    for block, keys in METRIC_KEYS.items():
        values = metrics.get(block)
        if not isinstance(values, dict):
            problems.append(f"metrics.{block} is missing")
            continue
        if "skipped" in values:
            if not isinstance(values["skipped"], str) or not values["skipped"]:
                problems.append(f"metrics.{block}.skipped must give a reason")
            continue
        for key in keys:
            value = values.get(key)
            if key not in values:
                problems.append(f"metrics.{block}.{key} is missing")
            elif key == "label" or key.endswith("_hash"):
                if not isinstance(value, str):
                    problems.append(f"metrics.{block}.{key} must be a string")
            elif not _is_number(value):
                problems.append(f"metrics.{block}.{key} must be a finite number, got {value!r}")
    if not isinstance(data.get("notes"), list):
        problems.append("notes must be a list")
    if problems:
        raise ValueError("invalid evaluation: " + "; ".join(problems))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# ----------------------------------------------------------------------------------------------
# Tables


def _pm(block: dict, key: str, err: str | None = None, scale: float = 1.0, digits: int = 1) -> str:
    if "skipped" in block or key not in block:
        return "-"
    error = scale * block[err] if err is not None and err in block else None
    return format_pm(scale * block[key], error, digits)


def summary_table(evaluations: Sequence[dict[str, Any]], names: Sequence[str] | None = None) -> str:
    """A Markdown table of evaluations side by side (one column per run, default names: the
    priors), the sample counts and classifier below it."""
    from ladder.features import FCD_LABEL

    names = list(names) if names is not None else [
        e["provenance"]["config"]["model"]["prior"] for e in evaluations]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, block: str, key: str, err: str | None = None, scale: float = 1.0,
            digits: int = 1) -> None:
        rows.append((label, [_pm(e["metrics"].get(block, {"skipped": ""}), key, err, scale,
                                 digits) for e in evaluations]))

    row("ELBO (nats/image, Table 3)", "elbo", "elbo", "elbo_stderr")
    row("per-pixel error x0.01 (Table 3)", "elbo", "mae", None, 100.0, 2)
    row("E_q(z)[log p(z)], prior's own estimate (Table 2)", "cross_entropy", "bound",
        "bound_stderr", digits=2)
    row("E_q(z)[log p(z)], importance sampled", "cross_entropy", "importance_sampled",
        "importance_sampled_stderr", digits=2)
    row("H[q(z)], aggregate posterior of the test images", "cross_entropy", "aggregate_entropy",
        "aggregate_entropy_stderr", digits=2)
    row("KL(q(z) || p(z)) (scale-free; upper in expectation)", "cross_entropy", "kl",
        "kl_stderr", digits=2)
    row("KL(q(z) || p(z)), leave one out (lower in expectation)", "cross_entropy", "kl_loo",
        "kl_loo_stderr", digits=2)
    row("-log p(x) (nats/image, IS)", "log_likelihood", "nll", "stderr")
    row("  Monte Carlo s.e. of -log p(x)", "log_likelihood", "mc_stderr", digits=2)
    row("  mean effective sample size of K", "log_likelihood", "ess_mean", digits=1)
    short = "FCD"
    row(f"{short} generated (Table 1)", "generation", "fcd_generated", digits=2)
    row(f"{short} reconstructed (Table 1)", "generation", "fcd_reconstructed", digits=2)
    row(f"{short} difference (Table 1)", "generation", "fcd_difference", digits=2)
    row(f"{short} real train vs test (floor)", "generation", "fcd_real_floor", digits=2)
    for key in ("precision", "recall", "density", "coverage"):
        row(f"{key} (generated)", "generation", key, digits=3)
    row("NMI components vs classes (Fig 4)", "clusters", "nmi", digits=3)
    row("ARI components vs classes (Fig 4)", "clusters", "ari", digits=3)
    lines = [markdown_table(["metric", *names], ([label, *cells] for label, cells in rows))]
    first = evaluations[0]["provenance"]
    counts = first["sample_counts"]
    hashes = {(e["provenance"].get("classifier") or {}).get("weights_hash") for e in evaluations}
    hashes = ", ".join(sorted(h for h in hashes if h)) or "none"
    lines.append("")
    lines.append(
        f"{short} = {FCD_LABEL} on the project's LeNet classifier (weights {hashes}), not "
        "comparable with Inception FID. "
        f"Counts: {counts['n_test']} test images (ELBO, cross-entropy, NMI/ARI); "
        f"{counts['n_samples']} images per side (FCD, PRDC k=5); K = {counts['n_is']} importance "
        f"samples; log p(x) on {counts['n_nll']} images ({counts['n_inner']} inner samples for "
        "the generative priors). ± is one standard error across images."
    )
    return "\n".join(lines)
