"""Fig 5's table: the shortest likely path (SLP, Eq 9) against the straight line (SP), one row
per data set, model and measure, each the mean ± sample std over the seeds of its fig5 runs
(:func:`ladder.slp_eval.compare_slp_sp` scores the pairs of one run)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ladder.experiments.manifest import Run
from ladder.markdown import format_fraction, format_with_error, mean_std
from ladder.slp_eval import WHOLE_SET, whole_set_share

EXPERIMENT = "fig5"
HEADER = ["dataset", "model", "space", "metric", "better", "SLP", "SP", "SLP - SP",
          "SLP better", "pairs", "seeds", "runs"]
_VALUES = ("slp", "sp", "diff")  # the per-run means of a row of fig5.json, pooled over seeds


def slp_rows(finished: Sequence[tuple[Run, Mapping[str, Any]]], planned: Sequence[Run]
             ) -> tuple[list[list[str]], list[dict[str, Any]], list[str]]:
    """The Markdown cells (:data:`HEADER`) and CSV rows of the table from ``finished`` fig5 runs
    (each with its ``fig5.json``), and the run ids they cite. ``SLP better`` is the share of
    pairs where SLP wins (of a whole-set measure, :func:`~ladder.slp_eval.whole_set_share` of
    the run's difference and its error, so that a ``fig5.json`` written before that measure,
    which held the share of bootstrap replicates, reads alike), as the range over seeds;
    ``seeds`` counts the seeds that finished against the ``planned`` runs of that data set and
    prior."""
    planned_seeds: dict[tuple[str, str], int] = {}
    for run in planned:
        if EXPERIMENT in run.labels:
            labels = run.labels[EXPERIMENT]
            key = (labels["dataset"], labels["prior"])
            planned_seeds[key] = planned_seeds.get(key, 0) + 1
    groups: dict[tuple[str, str, str], list[tuple[Run, Mapping[str, Any]]]] = {}
    for run, result in sorted(finished, key=lambda f: f[0].labels[EXPERIMENT].get("seed", 0)):
        dataset = run.labels[EXPERIMENT]["dataset"]
        for row in result.get("rows", []):
            groups.setdefault((dataset, row["model"], row["metric"]), []).append((run, row))
    order = {key: i for i, key in enumerate(planned_seeds)}
    md_rows, csv_rows, cited = [], [], []
    for (dataset, model, metric), members in sorted(
            groups.items(), key=lambda g: order.get(g[0][:2], len(order))):
        first = members[0][1]
        ids = [run.id for run, _ in members]
        cited += ids
        stats = {k: mean_std([row[k] for _, row in members]) for k in _VALUES}
        wins = [_wins(row) for _, row in members]
        pairs = sorted({str(row.get("n_pairs", "")) for _, row in members})
        seeds = f"{len(members)}/{planned_seeds.get((dataset, model), len(members))}"
        md_rows.append([dataset, model, first["space"], metric, first["better"],
                        *(format_with_error(*stats[k]) for k in _VALUES),
                        _win_range(wins), ", ".join(pairs), seeds, ", ".join(ids)])
        csv_rows.append({
            "dataset": dataset, "model": model, "space": first["space"], "metric": metric,
            "better": first["better"],
            **{f"{k} {part}": "" if v is None else v
               for k, (mean, std) in stats.items() for part, v in (("mean", mean), ("std", std))},
            "slp_better min": min(_known(wins), default=""),
            "slp_better max": max(_known(wins), default=""),
            "pairs": " ".join(pairs), "seeds": seeds, "runs": " ".join(ids)})
    return md_rows, csv_rows, list(dict.fromkeys(cited))


def _wins(row: Mapping[str, Any]) -> float | None:
    """The ``SLP better`` of one run's row of a measure."""
    if row["metric"] in WHOLE_SET:
        return whole_set_share(row["diff"], row.get("diff_se", math.nan), row["better"])
    return row.get("slp_better")


def _known(fractions: Sequence[float | None]) -> list[float]:
    return [f for f in fractions if f is not None]


def _win_range(fractions: Sequence[float | None]) -> str:
    """``99%`` for one seed (or equal ones), ``97-100%`` over several, ``n/a`` for none."""
    known = _known(fractions)
    if not known:
        return "n/a"
    low, high = format_fraction(min(known)), format_fraction(max(known))
    return low if low == high else f"{low.rstrip('%')}-{high}"
