"""How far the Fréchet classifier distance moves when the evaluation classifier is retrained.

The evaluation classifier's weights depend on the CPU's rounding and the thread count, so a
retrained one is another feature space. This scores the same image sets under each classifier
given and prints the FCD of each set against the test images: a real floor (10k training images),
test images with Gaussian noise of a few strengths, and, with ``--run``, the samples of a trained
run. The spread across classifiers, against the spread across seeds, says whether runs scored
with two classifiers can share a table.

    OMP_NUM_THREADS=2 LADDER_DATA=../shared/data .venv/bin/python \
        benchmarks/bench_classifier_spread.py mnist A.pt B.pt [--run runs/paper/mnist-ladder-seed0]
"""

from __future__ import annotations

import argparse

import torch

from ladder.classifier_cache import load_classifier
from ladder.data import load_dataset
from ladder.features import DEFAULT_SAMPLE_COUNT, extract_features, frechet_distance
from ladder.markdown import markdown_table
from ladder.runs import load_run


def image_sets(dataset: str, n: int, noise: list[float], run: str | None,
               seed: int) -> dict[str, torch.Tensor]:
    """The sets to score against the test images, by name."""
    generator = torch.Generator().manual_seed(seed)
    train = load_dataset(dataset, "train")
    test = load_dataset(dataset, "test").take(n)
    chosen = torch.randperm(len(train), generator=generator)[:n]
    sets = {"test": test, "train (the real floor)": train.gather(chosen)}
    for sigma in noise:
        noisy = test + sigma * torch.randn(test.shape, generator=generator)
        sets[f"test + N(0, {sigma}^2) noise"] = noisy.clamp(0, 1)
    if run:
        _, model = load_run(run, "cpu")
        torch.manual_seed(seed)
        with torch.no_grad():
            sets[f"samples of {run}"] = torch.cat(
                [model.images(model.sample(500)) for _ in range(n // 500)])
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("classifiers", nargs="+", help="classifier .pt files")
    parser.add_argument("--run", help="a trained run folder whose samples to score too")
    parser.add_argument("--n", type=int, default=DEFAULT_SAMPLE_COUNT)
    parser.add_argument("--noise", type=float, nargs="*", default=[0.05, 0.1, 0.2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sets = image_sets(args.dataset, args.n, args.noise, args.run, args.seed)
    loaded = [load_classifier(args.dataset, path=p) for p in args.classifiers]
    columns = [f"{meta['weights_hash']} ({meta['test_accuracy']:.4f})" for _, meta in loaded]
    test = sets.pop("test")
    real = [extract_features(model.features, test) for model, _ in loaded]
    rows = []
    for name, images in sets.items():
        scores = [frechet_distance(features, extract_features(model.features, images))
                  for features, (model, _) in zip(real, loaded, strict=True)]
        spread = (max(scores) - min(scores)) / min(scores)
        rows.append([name, *(f"{s:.2f}" for s in scores), f"{100 * spread:.1f}%"])
    print(f"FCD against {args.n} {args.dataset} test images, per classifier (weights hash, test "
          "accuracy):\n")
    print(markdown_table(["image set", *columns, "spread (max-min)/min"], rows))


if __name__ == "__main__":
    main()
