"""What makes a landed run's Fréchet classifier distance: the class mix or the images themselves?

    scripts/fcd_parts.py RESULTS RUNS [--draws 4] [--resamples 10] [--threads 2]
    e.g. scripts/fcd_parts.py results/paper runs/paper

Checkpoints are not committed, so only the machine that trained a model can score it again. For
each landed run under ``RESULTS/runs`` whose checkpoint is in ``RUNS``, this splits a Fréchet
classifier distance to the test images into its parts (:func:`ladder.frechet_parts.frechet_parts`):
the mean term, the class mix, and the distance once the set is drawn to the test images' class mix.

* A training run (``evaluation.json``, SM Table 1): its generated images, as many as the test
  images, drawn ``--draws`` times with torch seeds 0, 1, ... (how much the distance moves from one
  draw of the samples to the next), the parts of the first draw.
* A Fig 5 run (``fig5.json``): the same SLP and SP comparison again (its data set, seed, pairs and
  iterations, no bootstrap), the parts of each path's interior frames.

Each writes ``fcd_parts.json`` beside the run's files (a rerun skips a run that has one), and
``RESULTS/fcd_parts.md`` gets the tables of every landed ``fcd_parts.json``, and
``RESULTS/figures/fcd_parts_class_mix.png`` the class mix of each Fig 5 run's frames
(:func:`ladder.plots.class_mix.plot_class_mix`). A run whose checkpoint is not here is listed
and left alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ladder.experiments.results import Results, ResultsError
from ladder.markdown import markdown_table
from ladder.plots.class_mix import plot_class_mix

METHODS = ("slp", "sp")
PART_COLUMNS = ["FCD", "mean term", "class mix TV", "classes lacking", "resampled FCD",
                "class-matched FCD"]  # fmt: skip
HEAD = """# The parts of the Fréchet classifier distances

Written by `scripts/fcd_parts.py {results} RUNS` on the runs whose checkpoints were on the machine.
Every distance is to the test images, on the evaluation classifier's features.
- `mean term`: ||mu - mu_test||^2 of the features; the rest of `FCD` is the covariance term.
- `class mix TV`: total variation between the classes the evaluation classifier gives the set and
  the test images.
- `classes lacking`: the test images' share of the classes the set has none of, which the
  class-matched draw leaves out.
- `resampled FCD`: the set drawn again with replacement (mean ± std over the draws).
- `class-matched FCD`: the set drawn within each class to the test images' class mix. The two
  draws repeat images alike, so compare them with each other, not with `FCD`.
"""


def _load(model_run: Path, dataset: str) -> tuple[Any, torch.Tensor, Any, str]:
    """The model of ``model_run``, the test images, the evaluation classifier and its hash."""
    from ladder.classifier_cache import load_classifier
    from ladder.data import load_dataset
    from ladder.runs import load_run

    _, model = load_run(model_run)
    device = next(model.parameters()).device
    test = load_dataset(dataset, "test", device=device)
    classifier, meta = load_classifier(dataset)
    return model.eval(), test.take(len(test)), classifier.to(device).eval(), meta["weights_hash"]


def analyse_frames(fig5: dict[str, Any], model_run: Path, resamples: int) -> dict[str, Any]:
    """``fcd_parts.json`` of the Fig 5 run described by ``fig5`` (its ``fig5.json``)."""
    from ladder.frechet_parts import classify, frechet_parts
    from ladder.slp_eval import compare_slp_sp

    model, images, classifier, weights = _load(model_run, fig5["dataset"])
    comparison = compare_slp_sp(model, images, classifier, n_pairs=fig5["n_pairs"],
                                seed=fig5["seed"], n_boot=0, iters=fig5["iters"])  # fmt: skip
    reference = classify(images, classifier)
    parts = {
        method: frechet_parts(reference, comparison.frames[method][:, 1:-1].flatten(0, 1),
                              classifier, n_resamples=resamples, seed=fig5["seed"])
        for method in METHODS
    }  # fmt: skip
    return {"model_run": model_run.name, "classifier": weights, "resamples": resamples,
            "parts": parts}  # fmt: skip


def analyse_samples(model_run: Path, dataset: str, draws: int, resamples: int) -> dict[str, Any]:
    """``fcd_parts.json`` of a training run: its generated images' distance over ``draws`` draws
    and the parts of the first."""
    from ladder.features import extract_features, frechet_distance
    from ladder.frechet_parts import classify, frechet_parts
    from ladder.metrics import generate

    model, images, classifier, weights = _load(model_run, dataset)
    reference = classify(images, classifier)
    torch.manual_seed(0)
    parts = frechet_parts(reference, generate(model, len(images)), classifier,
                          n_resamples=resamples)  # fmt: skip
    distances = [parts["fcd"]]
    for draw in range(1, draws):
        torch.manual_seed(draw)
        generated = extract_features(classifier.features, generate(model, len(images)))
        distances.append(frechet_distance(reference.features, generated))
    return {"model_run": model_run.name, "classifier": weights, "resamples": resamples,
            "draws": distances, "parts": parts}  # fmt: skip


def _part_cells(p: dict[str, Any]) -> list[str]:
    return [f"{p['fcd']:.1f}", f"{p['mean_term']:.1f}", f"{p['class_tv']:.3f}",
            f"{p['unmatched_share']:.1%}",
            f"{p['resampled_fcd']:.1f} ± {p['resampled_fcd_std']:.1f}",
            f"{p['class_matched_fcd']:.1f} ± {p['class_matched_fcd_std']:.1f}"]  # fmt: skip


def table(results: Path) -> str:
    """The Markdown tables of every ``fcd_parts.json`` under ``results/runs``."""
    samples, frames = [], []
    for path in sorted(results.glob("runs/*/fcd_parts.json")):
        found = json.loads(path.read_text())
        if (path.parent / "fig5.json").exists():
            landed = json.loads((path.parent / "fig5.json").read_text())["rows"]
            fcd = {r["metric"]: r for r in landed}["fcd"]
            frames += [[path.parent.name, m.upper(), *_part_cells(found["parts"][m]),
                        f"{fcd[m]:.1f}"] for m in METHODS]  # fmt: skip
        else:
            evaluation = json.loads((path.parent / "evaluation.json").read_text())
            landed = evaluation["metrics"]["generation"]["fcd_generated"]
            draws = found["draws"]
            spread = statistics.stdev(draws) if len(draws) > 1 else 0.0
            samples.append([path.parent.name, f"{landed:.1f}",
                            f"{statistics.mean(draws):.1f} ± {spread:.1f} ({len(draws)})",
                            *_part_cells(found["parts"])])  # fmt: skip
    return (
        HEAD.format(results=results)
        + "\n**Generated images (SM Table 1).** `FCD as evaluation.json`: the run's own value. "
        "`FCD over draws`: mean ± std over draws of the samples (their count), torch seeds 0, "
        "1, ...; the parts are the first draw's.\n\n"
        + markdown_table(
            ["run", "FCD as evaluation.json", "FCD over draws", *PART_COLUMNS], samples
        )  # fmt: skip
        + "\n\n**Fig 5: the interior frames of each path.** `FCD as fig5.json`: the run's own "
        "value, which `FCD` repeats.\n\n"
        + markdown_table(["run", "path", *PART_COLUMNS, "FCD as fig5.json"], frames)
        + "\n"
    )


class LeftAlone(Exception):
    """A landed run this machine cannot score again, and why."""


def _checkpointed(model_run: Path) -> Path:
    """``model_run``, where its checkpoint is on this machine (else :class:`LeftAlone`)."""
    if not (model_run / "checkpoint.pt").exists():
        raise LeftAlone(f"no checkpoint at {model_run}")
    return model_run


def analyse(folder: Path, runs: Path, draws: int, resamples: int) -> dict[str, Any]:
    """``fcd_parts.json`` of the landed run in ``folder``, its checkpoint found under ``runs``
    (:class:`LeftAlone` where it cannot be)."""
    fig5 = folder / "fig5.json"
    if not fig5.exists():
        evaluation = json.loads((folder / "evaluation.json").read_text())
        dataset = evaluation["provenance"]["config"]["data"]["dataset"]
        return analyse_samples(_checkpointed(runs / folder.name), dataset, draws, resamples)
    described = json.loads(fig5.read_text())
    if len(described["models"]) != 1:
        raise LeftAlone(f"compares {len(described['models'])} models, not one")
    (model_path,) = described["models"].values()
    return analyse_frames(described, _checkpointed(runs / Path(model_path).name), resamples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results folder, e.g. results/paper")
    parser.add_argument("runs", type=Path, help="the runs folder with checkpoints, e.g. runs/paper")
    parser.add_argument("--draws", type=int, default=4, help="draws of a run's generated images")
    parser.add_argument("--resamples", type=int, default=10, help="draws of each resampled FCD")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    landed = sorted(p.parent for p in args.results.glob("runs/*/*.json")
                    if p.name in ("fig5.json", "evaluation.json"))  # fmt: skip
    if not landed or not args.runs.is_dir() or min(args.draws, args.resamples) < 1:
        print(f"fcd_parts: need landed runs under {args.results}/runs, a runs folder {args.runs} "
              "and at least one draw and resample; pass e.g. results/paper runs/paper",
              file=sys.stderr)  # fmt: skip
        return 2
    torch.set_num_threads(args.threads)
    for folder in landed:
        if (folder / "fcd_parts.json").exists():
            continue
        started = time.perf_counter()
        try:
            found = analyse(folder, args.runs, args.draws, args.resamples)
        except LeftAlone as reason:
            print(f"{folder.name}: {reason}, left alone")
            continue
        (folder / "fcd_parts.json").write_text(json.dumps(found, indent=2) + "\n")
        print(f"{folder.name}: fcd_parts.json in {time.perf_counter() - started:.0f} s")
    (args.results / "fcd_parts.md").write_text(table(args.results))
    print(f"wrote {args.results / 'fcd_parts.md'}")
    try:
        mixes = Results(args.results.parent, [args.results.name]).class_mixes(args.results.name)
    except ResultsError as err:
        print(f"fcd_parts: no class-mix figure: {err}", file=sys.stderr)
        return 2
    frames = {run: mix for run, mix in mixes.items() if run.startswith("fig5-")}
    if frames:
        figure = args.results / "figures" / "fcd_parts_class_mix.png"
        figure.parent.mkdir(exist_ok=True)
        plot_class_mix(frames).savefig(figure, dpi=120)
        print(f"wrote {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
