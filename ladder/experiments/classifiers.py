"""The evaluation classifiers a batch scores with, one per dataset, shared by every machine.

The Fréchet distances (Table 1, SM Table 1) and the realism of SLP's frames (Fig 5) are measured
in the feature space of a LeNet the project trains itself (:mod:`ladder.classifier`, cached by
:mod:`ladder.classifier_cache`). Its weights depend on the CPU's float rounding and the thread
count, so two machines that each train one get two feature spaces, and their Fréchet distances do
not compare. A batch therefore *lands* the classifier it scores with under
``results/classifiers/`` (1 MB each, committed with the results), and every later batch, on any
machine, installs that one into its cache and scores with it.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ladder.classifier import CLASSIFIER_DATASETS
from ladder.classifier_cache import (
    ClassifierNotFoundError,
    classifier_cache_dir,
    load_classifier,
    train_and_cache,
)
from ladder.experiments.manifest import Run

__all__ = [
    "CLASSIFIER_NOTEBOOKS",
    "ClassifierMismatchError",
    "classifier_note",
    "ensure_classifiers",
    "landed_classifier",
    "prepare_classifiers",
    "scored_datasets",
]

CLASSIFIER_NOTEBOOKS = ("train_evaluate.ipynb", "fig5_slp.ipynb")
"""The notebooks that score images with the evaluation classifier (FCD, SLP frame realism)."""


class ClassifierMismatchError(ValueError):
    """The cache would score with another classifier than the one the landed results used."""


def scored_datasets(runs: Sequence[Run]) -> set[str]:
    """The datasets whose evaluation classifier ``runs`` use."""
    return {str(r.parameters.get("dataset")) for r in runs if r.notebook in CLASSIFIER_NOTEBOOKS}


def landed_classifier(dataset: str, results_root: str | os.PathLike) -> Path | None:
    """``results/classifiers/<dataset>-<hash>.pt``, the classifier the landed results of
    ``dataset`` were scored with, or None if none has landed (more than one is an error)."""
    found = sorted((Path(results_root) / "classifiers").glob(f"{dataset}-*.pt"))
    if len(found) > 1:
        raise ClassifierMismatchError(
            f"{len(found)} classifiers for {dataset} under {Path(results_root) / 'classifiers'} "
            f"({', '.join(p.name for p in found)}); a batch scores with one: keep the one its "
            "landed results name (their evaluation.json's provenance.classifier.weights_hash)"
        )
    return found[0] if found else None


def _copy_with_sidecar(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for source in (path, path.with_suffix(".json")):
        if source.is_file() and not (folder / source.name).is_file():
            shutil.copy2(source, folder / source.name)
    return folder / path.name


def prepare_classifiers(datasets: set[str], results_root: str | os.PathLike,
                        say: Callable[[str], None] = print) -> list[str]:
    """Make the cache score each of ``datasets`` with its landed classifier: install a landed one
    that the cache lacks, land a cached one where none has landed. Returns the datasets that
    have neither, whose classifier must be trained. Raises :class:`ClassifierMismatchError`
    where the cache's newest classifier is not the landed one."""
    missing = []
    for dataset in sorted(datasets & set(CLASSIFIER_DATASETS)):
        landed = landed_classifier(dataset, results_root)
        if landed is not None:
            _copy_with_sidecar(landed, classifier_cache_dir())
        try:
            _, meta = load_classifier(dataset)
        except ClassifierNotFoundError:
            missing.append(dataset)
            continue
        if landed is None:
            path = _copy_with_sidecar(Path(meta["path"]), Path(results_root) / "classifiers")
            say(f"evaluation classifier for {dataset}: landed the cached {meta['weights_hash']} "
                f"as {path}, so that later batches score with it")
        elif Path(meta["path"]).name != landed.name:
            raise ClassifierMismatchError(
                f"the newest cached classifier for {dataset} is {meta['path']}, but the landed "
                f"results were scored with {landed}; their Fréchet distances compare only under "
                f"one classifier: remove {meta['path']} (or point LADDER_CACHE at another folder)"
            )
    return missing


def ensure_classifiers(datasets: set[str], say: Callable[[str], None] = print,
                       root: str | os.PathLike | None = None,
                       results_root: str | os.PathLike = "results") -> None:
    """Before a batch scores ``datasets``: use the landed classifiers (:func:`prepare_classifiers`),
    and train, cache and land the ones that are neither landed nor cached (``ladder
    train-classifier``'s defaults). Datasets without a classifier (CelebA) are left alone."""
    for dataset in prepare_classifiers(datasets, results_root, say):
        say(f"no evaluation classifier cached for {dataset}: training one first "
            "(as `ladder train-classifier`)")
        path, acc = train_and_cache(dataset, root=root, progress=False)
        landed = _copy_with_sidecar(path, Path(results_root) / "classifiers")
        say(f"evaluation classifier for {dataset}: test accuracy {acc:.4f}, saved to {path} and "
            f"landed as {landed}")


def classifier_note(scored: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """The line of a table that names the classifier each dataset's Fréchet distances were scored
    with (``scored``: each run's dataset and evaluation.json), and says so where one dataset's
    runs used more than one; "" where none was used."""
    used: dict[str, Counter[str]] = {}
    for dataset, result in scored:
        digest = ((result.get("provenance") or {}).get("classifier") or {}).get("weights_hash")
        if digest:
            used.setdefault(dataset, Counter())[digest] += 1
    if not used:
        return ""
    parts = [f"{dataset} " + ", ".join(f"{digest} ({n} run{'s' * (n != 1)})"
                                        for digest, n in sorted(counts.items()))
             for dataset, counts in used.items()]
    mixed = [dataset for dataset, counts in used.items() if len(counts) > 1]
    warning = "".join(f" **{d}'s runs were scored with {len(used[d])} classifiers: their Fréchet "
                      "distances are not in one feature space.**" for d in mixed)
    return f"Evaluation classifier (weights hash): {'; '.join(parts)}.{warning}"
