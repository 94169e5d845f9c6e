"""Train the evaluation classifiers on full MNIST / Fashion-MNIST; measure the real-vs-real floor.

For each dataset: train :class:`ladder.classifier.LeNetClassifier` on the 60k training images,
report its test accuracy (goals: >= 99% MNIST, >= 90% Fashion-MNIST) and wall time, save it to the
classifier cache (``$LADDER_CACHE`` or ``~/.cache/ladder``), then compute on its penultimate
features the Fréchet classifier distance (FCD) and PRDC of a seeded random 10k subset of the training images
against the 10k test images: the "Real image" column of Table 1 (the floor a generator can reach).

    OMP_NUM_THREADS=1 LADDER_DATA=../shared/data .venv/bin/python benchmarks/bench_classifier.py
"""

from __future__ import annotations

import argparse
import inspect
import platform
import time

import torch

from ladder.classifier import train_classifier
from ladder.classifier_cache import save_classifier
from ladder.data import load_dataset
from ladder.features import (
    DEFAULT_SAMPLE_COUNT,
    FCD_LABEL,
    extract_features,
    frechet_distance,
    prdc_metrics,
)

DEFAULT_EPOCHS = inspect.signature(train_classifier).parameters["epochs"].default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion"])
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", help="data root (default $LADDER_DATA)")
    parser.add_argument("--cache-dir", help="classifier cache (default $LADDER_CACHE or ~/.cache)")
    parser.add_argument("--no-save", action="store_true", help="do not write to the cache")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.processor()}")
    print(f"{FCD_LABEL} and PRDC (k=5): {DEFAULT_SAMPLE_COUNT} random train vs the test images")
    rows = []
    for name in args.datasets:
        train = load_dataset(name, "train", root=args.root)
        test = load_dataset(name, "test", root=args.root)
        start = time.perf_counter()
        model, acc = train_classifier(
            train.data, train.labels, test.data, test.labels, epochs=args.epochs, seed=args.seed
        )
        seconds = time.perf_counter() - start
        info = {"epochs": args.epochs, "seed": args.seed, "n_train": len(train)}
        path = None if args.no_save else save_classifier(model, name, acc, args.cache_dir, info)

        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        real_train = train.data[pick[:DEFAULT_SAMPLE_COUNT]]
        f_train = extract_features(model.features, real_train)
        f_test = extract_features(model.features, test.data[:DEFAULT_SAMPLE_COUNT])
        fcd = frechet_distance(f_train, f_test)
        prdc = prdc_metrics(f_test, f_train, k=5)
        rows.append((train.name, acc, seconds, fcd, prdc, path))

    print("\n| dataset | epochs | test acc | train s | FCD floor | P | R | D | C | saved to |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, acc, seconds, fcd, prdc, path in rows:
        p, r, d, c = (prdc[k] for k in ("precision", "recall", "density", "coverage"))
        print(
            f"| {name} | {args.epochs} | {100 * acc:.2f}% | {seconds:.0f} | {fcd:.3f} | {p:.3f} | "
            f"{r:.3f} | {d:.3f} | {c:.3f} | {path or '-'} |"
        )


if __name__ == "__main__":
    main()
