"""Why are the shortest likely path's frames further from the test images than the straight line's?

    scripts/fig5_frames.py RESULTS RUNS [--resamples 10] [--threads 2]
    e.g. scripts/fig5_frames.py results/paper runs/paper

For each landed Fig 5 run ``RESULTS/runs/fig5-*/fig5.json`` whose model checkpoint is in ``RUNS``
(checkpoints are not committed: only the machine that trained a model can score it), this runs
the same comparison again (its data set, seed, pairs and SLP iterations, no bootstrap) and splits
each method's Fréchet classifier distance to the test images into its parts
(:func:`ladder.frechet_parts.frechet_parts`): the mean term, the class mix of the frames, and the
distance after drawing the frames to the test images' class mix. It writes ``frames.json`` beside
``fig5.json`` (a rerun skips a run that has one) and the table of every landed ``frames.json`` to
``RESULTS/fig5_frames.md``. A Fig 5 run whose checkpoint is not here is listed and left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ladder.markdown import markdown_table

METHODS = ("slp", "sp")
COLUMNS = ["run", "path", "FCD", "mean term", "class mix TV", "classes lacking",
           "resampled FCD", "class-matched FCD", "FCD as fig5.json"]  # fmt: skip


def analyse(fig5: dict[str, Any], model_run: Path, resamples: int) -> dict[str, Any]:
    """``frames.json``'s content for the Fig 5 run described by ``fig5`` (its ``fig5.json``)."""
    from ladder.classifier_cache import load_classifier
    from ladder.data import load_dataset
    from ladder.frechet_parts import frechet_parts
    from ladder.runs import load_run
    from ladder.slp_eval import compare_slp_sp

    _, model = load_run(model_run)
    device = next(model.parameters()).device
    test = load_dataset(fig5["dataset"], "test", device=device, seed=fig5["seed"])
    images = test.take(len(test))
    classifier, meta = load_classifier(fig5["dataset"])
    classifier = classifier.to(device).eval()
    comparison = compare_slp_sp(
        model,
        images,
        classifier,
        n_pairs=fig5["n_pairs"],
        seed=fig5["seed"],
        n_boot=0,
        iters=fig5["iters"],
    )
    parts = {
        method: frechet_parts(images, comparison.frames[method][:, 1:-1].flatten(0, 1),
                              classifier, n_resamples=resamples, seed=fig5["seed"])
        for method in METHODS
    }  # fmt: skip
    return {"model_run": model_run.name, "classifier": meta["weights_hash"],
            "resamples": resamples, "parts": parts}  # fmt: skip


def table(results: Path) -> str:
    """The Markdown table of every ``frames.json`` under ``results/runs``."""
    rows = []
    for path in sorted(results.glob("runs/fig5-*/frames.json")):
        frames = json.loads(path.read_text())
        landed = {
            r["metric"]: r for r in json.loads((path.parent / "fig5.json").read_text())["rows"]
        }
        for method in METHODS:
            p = frames["parts"][method]
            rows.append([
                path.parent.name, method.upper(), f"{p['fcd']:.1f}", f"{p['mean_term']:.1f}",
                f"{p['class_tv']:.3f}", f"{p['unmatched_share']:.1%}",
                f"{p['resampled_fcd']:.1f} ± {p['resampled_fcd_std']:.1f}",
                f"{p['class_matched_fcd']:.1f} ± {p['class_matched_fcd_std']:.1f}",
                f"{landed['fcd'][method]:.1f}",
            ])  # fmt: skip
    head = f"""# Fig 5: the parts of the frames' Fréchet classifier distance

Written by `scripts/fig5_frames.py {results} RUNS`: each Fig 5 run again, the J interior frames
of every pair against the test images.
- `mean term`: ||mu - mu_test||^2 of the classifier features; the rest of `FCD` is the
  covariance term.
- `class mix TV`: total variation between the classes the evaluation classifier gives the
  frames and the test images.
- `classes lacking`: the test images' share of the classes no frame has, which the
  class-matched draw leaves out.
- `resampled FCD`: the frames drawn again with replacement (mean ± std over the draws).
- `class-matched FCD`: the frames drawn within each class to the test images' class mix. The two
  draws repeat frames alike, so compare them with each other.
- `FCD as fig5.json`: the run's own value, which `FCD` repeats.

"""
    return head + markdown_table(COLUMNS, rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results folder, e.g. results/paper")
    parser.add_argument("runs", type=Path, help="the runs folder with checkpoints, e.g. runs/paper")
    parser.add_argument("--resamples", type=int, default=10, help="draws of each resampled FCD")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    landed = sorted(args.results.glob("runs/fig5-*/fig5.json"))
    if not landed or not args.runs.is_dir():
        print(
            f"fig5_frames: need landed Fig 5 runs under {args.results}/runs and a runs folder "
            f"{args.runs}; pass e.g. results/paper runs/paper",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(args.threads)
    for path in landed:
        fig5 = json.loads(path.read_text())
        if (path.parent / "frames.json").exists():
            continue
        if len(fig5["models"]) != 1:
            print(f"{path.parent.name}: compares {len(fig5['models'])} models, not one, left alone")
            continue
        (model_path,) = fig5["models"].values()
        model_run = args.runs / Path(model_path).name
        if not (model_run / "checkpoint.pt").exists():
            print(f"{path.parent.name}: no checkpoint at {model_run}, left alone")
            continue
        started = time.perf_counter()
        frames = analyse(fig5, model_run, args.resamples)
        (path.parent / "frames.json").write_text(json.dumps(frames, indent=2) + "\n")
        print(f"{path.parent.name}: frames.json in {time.perf_counter() - started:.0f} s")
    (args.results / "fig5_frames.md").write_text(table(args.results))
    print(f"wrote {args.results / 'fig5_frames.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
