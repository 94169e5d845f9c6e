"""Tabulate ``ladder evaluate`` results of stall-survey runs: one row per survey, dataset, prior
and evaluation file, each metric as mean ± std over the seeds (issue 15's default measurements).

    scripts/survey_evaluations.py [--out runs/stall] [--files eval-noise.json eval-mean.json]
                                  TAG [TAG ...] [--table FILE]

Reads ``OUT/TAG/<dataset>-<prior>-seed<k>/<file>`` as written by
``ladder evaluate RUN --out RUN/<file>``; a run without the file is left out (the seeds column
counts the rest).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

PRIORS = ("normal", "vamp", "gmm", "hierarchical", "ladder")  # the paper's column order
COLUMNS = (  # (header, metric block of evaluation.json, key)
    ("test ELBO", "elbo", "elbo"),
    ("E log p(z), IS", "cross_entropy", "importance_sampled"),
    ("KL(q(z) ‖ p(z))", "cross_entropy", "kl"),
    ("-log p(x)", "log_likelihood", "nll"),
    ("FCD generated", "generation", "fcd_generated"),
    ("precision", "generation", "precision"),
    ("recall", "generation", "recall"),
)


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"


def rows(out: Path, tag: str, file: str) -> list[str]:
    by_row: dict[tuple[str, str], list[dict]] = {}
    for run in sorted((out / tag).glob("*-seed*")):
        path = run / file
        if path.exists():
            metrics = json.loads(path.read_text())["metrics"]
            dataset, prior = run.name.rsplit("-seed", 1)[0].split("-", 1)
            by_row.setdefault((dataset, prior), []).append(metrics)
    lines = []
    for (dataset, prior), runs in sorted(by_row.items(), key=lambda item: (
            item[0][0], PRIORS.index(item[0][1]) if item[0][1] in PRIORS else len(PRIORS))):
        cells = [cell([m[block][key] for m in runs if key in m.get(block, {})])
                 for _, block, key in COLUMNS]
        lines.append(f"| {tag} | {dataset} | {prior} | {file} | {len(runs)} | "
                     + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tags", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("runs/stall"))
    parser.add_argument("--files", nargs="+", default=["eval-noise.json", "eval-mean.json"])
    parser.add_argument("--table", type=Path)
    args = parser.parse_args()
    lines = ["| survey | dataset | prior | evaluation | seeds | "
             + " | ".join(c[0] for c in COLUMNS) + " |", "|---|---|---|---|---|" + "---|" * len(COLUMNS)]
    for tag in args.tags:
        for file in args.files:
            lines += rows(args.out, tag, file)
    text = "\n".join(lines)
    print(text)
    if args.table:
        args.table.write_text(text + "\n")


if __name__ == "__main__":
    main()
