"""Reading what ``ladder report`` wrote: the tables and figures of several scales under
``results/<scale>/``, each table taken from the scale where most of its rows have enough seeds to
read, a dataset's priors side by side, each seed's values, and the agreement of our ordering of
the priors with the paper's (chapter 6)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from ladder.experiments.paper import PRIORS, paper_value
from ladder.experiments.tables import TABLES, Column
from ladder.markdown import format_pm, markdown_table

#: Seeds a row needs before a verdict reads it (issue 18: at least three per row).
VERDICT_SEEDS = 3
#: What :meth:`Results.by_prior` sets side by side by default: label -> (table, column) of the
#: paper's claims (Tables 2-3, SM Table 1) and the KL that the latent's scale does not move.
PRIOR_COMPARISON = {
    "test ELBO (higher is better)": ("table3_elbo", "ELBO"),
    "-log p(x), importance-sampled (lower is better)": ("table3_elbo", "-log p(x) IS"),
    "pixel error x0.01 (lower is better)": ("table3_elbo", "pixel error x0.01"),
    "E[log p(z)], the prior's estimate": ("table2_cross_entropy", "E[log p(z)] prior's estimate"),
    "KL(q(z) ‖ p(z)) (lower is better)": ("table2_cross_entropy", "KL(q(z)||p(z))"),
    "Fréchet distance of samples (lower is better)": ("sm_table1_frechet", "generated"),
}
#: Leads by panel, model and seed: ``{(label, dataset): {model: {seed: lead}}}``, the shape
#: :meth:`Results.slp_leads` gives and :func:`ladder.plots.seed_leads.plot_seed_leads` draws.
Leads = Mapping[tuple[str, str], Mapping[str, Mapping[int, float]]]


class ResultsError(FileNotFoundError):
    """No scale under the results root has the table asked for."""


class Results:
    """The report folders ``root/<scale>/`` of ``scales`` (largest first) that exist."""

    def __init__(self, root: str | os.PathLike, scales: Sequence[str]):
        self.root = Path(root)
        self.scales = [s for s in scales if (self.root / s / "README.md").exists()]
        if not self.scales:
            raise ResultsError(f"no results under {self.root}: run ladder report --scale quick")

    def folder(self, name: str, scale: str | None = None) -> Path:
        """``root/<scale>`` of ``scale``, or else of the scale with the most rows of table
        ``name`` that have :data:`VERDICT_SEEDS` finished runs, then the most rows with any (the
        larger scale, the earlier in ``scales``, on a tie): a larger scale's table takes over
        once its rows have as many readable seeds as a smaller one's."""
        scales = self.scales if scale is None else [s for s in self.scales if s == scale]
        have = [self.root / s for s in scales if (self.root / s / f"{name}.csv").exists()]
        if not have:
            raise ResultsError(f"no scale in {scales} has the table {name}")
        return max(have, key=lambda f: (*finished_rows(f / f"{name}.csv"), -have.index(f)))

    def scale(self, name: str) -> str:
        """The scale table ``name`` is read from."""
        return self.folder(name).name

    def rows(self, name: str, scale: str | None = None) -> list[dict[str, str]]:
        """The rows of table ``name``'s CSV (of ``scale``, or of :meth:`folder`'s choice)."""
        with open(self.folder(name, scale) / f"{name}.csv", newline="") as handle:
            return list(csv.DictReader(handle))

    def finished(self, name: str, scale: str | None = None, **match: str) -> list[dict[str, str]]:
        """The rows of table ``name`` whose cells equal ``match`` and that cite a finished run."""
        return [r for r in self.rows(name, scale) if r["runs"] and _matches(r, match)]

    def mean_std(self, name: str, column: str, scale: str | None = None,
                 **match: str) -> tuple[float, float | None]:
        """Mean and seed std (None for one seed) of ``column`` in the one row of table ``name``
        whose cells equal ``match``, e.g. ``dataset="mnist", prior="ladder"``."""
        return _mean_std(self.rows(name, scale), name, column, match)

    def seeds(self, name: str, scale: str | None = None, **match: str) -> list[int]:
        """The seeds that finished in any row of table ``name`` whose cells equal ``match``."""
        return sorted({int(seed) for row in self.finished(name, scale, **match)
                       for seed in row["seeds"].split()})

    def by_seed(self, name: str, column: str, scale: str | None = None,
                **match: str) -> dict[int, float]:
        """Each finished seed's value of ``column`` in the one row of table ``name`` whose cells
        equal ``match``, ``{seed: value}`` (seeds whose result lacks the column left out): a
        seed's rows compare like for like while other rows still miss that seed."""
        return _by_seed(self.rows(name, scale), name, column, match)

    def by_prior(self, dataset: str, scale: str,
                 quantities: Mapping[str, tuple[str, str]] = PRIOR_COMPARISON,
                 seed: int | None = None) -> str:
        """``dataset``'s priors side by side at ``scale``, as Markdown: one line per label of
        ``quantities`` (label -> (table, column)), one column per prior with a finished run in
        the first table, cells as ``ladder report`` prints them, then each prior's seeds; with
        ``seed``, that seed's values alone, for the priors where it finished."""
        done = self.finished(next(iter(quantities.values()))[0], scale, dataset=dataset)
        if seed is not None:
            done = [row for row in done if str(seed) in row["seeds"].split()]
        lines = []
        for label, (name, column) in quantities.items():
            digits, rows = _column(name, column).digits, self.rows(name, scale)
            cells = []
            for row in done:
                match = {"dataset": dataset, "prior": row["prior"]}
                try:
                    if seed is None:
                        value = _mean_std(rows, name, column, match)
                    else:
                        value = (_by_seed(rows, name, column, match)[seed], None)
                except (ResultsError, KeyError):
                    cells.append("-")
                else:
                    cells.append(format_pm(*value, digits))
            lines.append((label, *cells))
        if seed is None:
            lines.append(("seeds", *(row["seeds"] for row in done)))
        title = f"{dataset}, {scale} scale" + ("" if seed is None else f", seed {seed}")
        return markdown_table((title, *(r["prior"] for r in done)), lines)

    def leads(self, dataset: str, scale: str, quantities: Mapping[str, tuple[str, str]],
              reference: str = "ladder") -> str:
        """How far ``reference`` is ahead of each other prior of ``dataset`` at ``scale``, seed by
        seed, as Markdown: one line per label of ``quantities`` and other prior, the reference's
        value minus the other's in each seed both finished (read its sign by the label's
        "higher" or "lower is better"), "-" where one of them lacks the seed."""
        lines, seeds = [], set()
        for label, (name, column) in quantities.items():
            digits = _column(name, column).digits
            by_prior = _leads_over(self.rows(name, scale), name, column, dataset, reference)
            for prior, lead in by_prior.items():
                seeds.update(lead)
                lines.append((label, prior, lead, digits))
        columns = sorted(seeds)
        body = [(label, prior, *(f"{lead[s]:+.{places}f}" if s in lead else "-" for s in columns))
                for label, prior, lead, places in lines]
        header = (f"{dataset}, {scale} scale: {reference} minus", "prior",
                  *(f"seed {s}" for s in columns))
        return markdown_table(header, body)

    def lead(self, name: str, column: str, scale: str, other: str, reference: str = "ladder",
             **match: str) -> dict[int, float]:
        """``reference``'s value of ``column`` minus ``other``'s in table ``name``, in each seed
        both finished, ``{seed: lead}`` (the numbers of one line of :meth:`leads`)."""
        rows = self.rows(name, scale)
        return _difference(*(_by_seed(rows, name, column, {**match, "prior": prior})
                             for prior in (reference, other)))

    def signed_leads(self, dataset: str, scale: str, label: str, source: tuple[str, str],
                     reference: str = "ladder") -> dict[str, dict[int, float]]:
        """``reference``'s lead over each other finished prior of ``dataset`` on ``source`` =
        (table, column), seed by seed, signed by ``label`` ("higher is better" or "lower is
        better") so that a positive lead favours ``reference``: ``{prior: {seed: lead}}`` for the
        priors that share a seed with it (:meth:`lead`'s numbers, all read one way)."""
        sense, (name, column) = _better(label), source
        by_prior = _leads_over(self.rows(name, scale), name, column, dataset, reference)
        return {prior: {seed: sense * value for seed, value in lead.items()}
                for prior, lead in by_prior.items() if lead}

    def ahead(self, dataset: str, scale: str, label: str, source: tuple[str, str],
              reference: str = "ladder") -> dict[str, tuple[int, int]]:
        """In how many seeds ``reference`` beats each other prior (:meth:`signed_leads`):
        ``{prior: (seeds ahead, shared seeds)}``, a tie not ahead. The cells of
        :meth:`seeds_ahead`."""
        return {prior: (sum(value > 0 for value in lead.values()), len(lead))
                for prior, lead in self.signed_leads(dataset, scale, label, source,
                                                     reference).items()}

    def seeds_ahead(self, datasets: Sequence[str], scale: str,
                    quantities: Mapping[str, tuple[str, str]], reference: str = "ladder") -> str:
        """In how many seeds ``reference`` beats each other prior, as Markdown: one line per
        label of ``quantities`` (label -> (table, column); the label says "higher is better" or
        "lower is better") and dataset, one column per prior of :data:`PRIORS`, cells "ahead/
        shared seeds" (:meth:`ahead`), "-" where the two share no finished seed. A claim that
        holds in every seed reads n/n in its line."""
        others = [p for p in PRIORS if p != reference]
        body = []
        for label, source in quantities.items():
            for dataset in datasets:
                counts = self.ahead(dataset, scale, label, source, reference)
                cells = ("/".join(map(str, counts[o])) if o in counts else "-" for o in others)
                body.append((label, dataset, *cells))
        header = (f"{scale} scale: seeds where {reference} is ahead", "dataset", *others)
        return markdown_table(header, body)

    def markdown(self, name: str, scale: str | None = None) -> str:
        """Table ``name``'s Markdown (of ``scale``, or of :meth:`folder`'s choice), its title as
        bold text (a book page has one title). A table without a CSV (one a script writes, such
        as ``fcd_parts``) is read from the ``scale`` named."""
        named = None if scale is None else self.root / scale
        plain = named is not None and not (named / f"{name}.csv").exists()
        folder = named if plain and named is not None else self.folder(name, scale)
        title, body = (folder / f"{name}.md").read_text().split("\n", 1)
        return f"**{title.lstrip('# ')}**\n{body}"

    def landed(self, scale: str, file: str) -> dict[str, dict]:
        """The JSON ``file`` of each landed run of ``scale`` that has one
        (``root/<scale>/runs/<run>/<file>``, e.g. ``fcd_parts.json`` of
        ``scripts/fcd_parts.py``), by run name."""
        found = sorted((self.root / scale / "runs").glob(f"*/{file}"))
        return {path.parent.name: json.loads(path.read_text()) for path in found}

    def class_mixes(self, scale: str) -> dict[str, dict[str, list[float]]]:
        """The class shares in each landed run's ``fcd_parts.json`` of ``scale``, by run: the
        test images', and a Fig 5 run's frames of each path or a training run's samples
        (:func:`ladder.plots.class_mix.plot_class_mix` draws them)."""
        mixes = {}
        for run, found in self.landed(scale, "fcd_parts.json").items():
            parts = found["parts"]
            if "slp" in parts:
                mixes[run] = {"test images": parts["sp"]["reference_shares"],
                              "straight line": parts["sp"]["class_shares"],
                              "SLP": parts["slp"]["class_shares"]}  # fmt: skip
            else:
                mixes[run] = {"test images": parts["reference_shares"],
                              "samples": parts["class_shares"]}  # fmt: skip
        return mixes

    def slp_leads(self, scale: str, measures: Mapping[str, str],
                  datasets: Sequence[str] = ("mnist", "fashion")) -> Leads:
        """SLP's lead over the straight line (Fig 5) in each landed run of ``scale`` (its
        ``fig5.json``), in standard errors of the paired difference, signed so that a positive
        lead favours SLP: ``{(label, dataset): {model: {seed: lead}}}`` for each label -> metric
        of ``measures`` and each of ``datasets`` that has a run, models in :data:`PRIORS` order,
        the panels of :func:`ladder.plots.seed_leads.plot_seed_leads`."""
        labels = {metric: label for label, metric in measures.items()}
        found: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
        for run, fig5 in self.landed(scale, "fig5.json").items():
            for row in fig5["rows"]:
                if row["metric"] not in labels or fig5["dataset"] not in datasets:
                    continue
                if not row["diff_se"] > 0:
                    raise ValueError(f"{run}: the {row['metric']} difference has no standard "
                                     f"error ({row['diff_se']}); rerun its Fig 5 with more pairs")
                sense = 1 if row["better"] == "higher" else -1
                by_model = found.setdefault((labels[row["metric"]], fig5["dataset"]), {})
                by_model.setdefault(row["model"], {})[fig5["seed"]] = (
                    sense * row["diff"] / row["diff_se"])
        order = {model: i for i, model in enumerate(PRIORS)}
        return {(label, dataset): dict(sorted(found[label, dataset].items(),
                                              key=lambda item: order.get(item[0], len(order))))
                for label in measures for dataset in datasets if (label, dataset) in found}

    def figures(self, pattern: str, scale: str | None = None) -> list[Path]:
        """The figures matching ``pattern`` of ``scale`` (pass :meth:`scale` of the table they
        illustrate, so that a figure and its table come from one scale), or else from the
        largest scale that has any."""
        for where in self.scales if scale is None else [scale]:
            found = sorted((self.root / where / "figures").glob(pattern))
            if found:
                return found
        return []


def finished_rows(path: str | os.PathLike) -> tuple[int, int]:
    """Rows of a ``ladder report`` CSV that cite at least :data:`VERDICT_SEEDS` finished runs,
    and rows that cite at least one."""
    with open(path, newline="") as handle:
        runs = [len(row.get("runs", "").split()) for row in csv.DictReader(handle)]
    return sum(n >= VERDICT_SEEDS for n in runs), sum(n > 0 for n in runs)


@dataclass(frozen=True)
class Agreement:
    """How one dataset's ordering of the priors compares with the paper's."""

    tau: float  # Kendall's tau over pairs of priors: 1 the same order, -1 the reverse
    priors: int
    best_ours: str
    best_paper: str


def agreement(rows: Sequence[Mapping[str, str]], ours: str, paper: tuple[str, str],
              higher_better: bool) -> dict[str, Agreement]:
    """Per dataset, Kendall's tau between our per-prior means (CSV column ``ours``) and the
    paper's values of ``paper`` = (table, quantity) in :mod:`ladder.experiments.paper`, over
    the priors that have both (datasets with fewer than two are left out)."""
    out = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        pairs = {}
        for r in rows:
            reported = paper_value(*paper, dataset, r["prior"])
            if r["dataset"] == dataset and r[ours] not in ("", "nan") and reported is not None:
                pairs[r["prior"]] = (float(r[ours]), reported.mean)
        if len(pairs) < 2:
            continue
        signs = [_sign((a[0] - b[0]) * (a[1] - b[1])) for a, b in combinations(pairs.values(), 2)]
        sense = 1 if higher_better else -1
        out[dataset] = Agreement(
            tau=sum(signs) / len(signs), priors=len(pairs),
            best_ours=max(pairs, key=lambda p: sense * pairs[p][0]),
            best_paper=max(pairs, key=lambda p: sense * pairs[p][1]),
        )  # fmt: skip
    return out


def agreement_table(title: str, result: Mapping[str, Agreement]) -> str:
    """:func:`agreement`'s result as a Markdown table, one row per dataset."""
    rows = [(d, f"{a.tau:+.2f}", str(a.priors), a.best_ours, a.best_paper)
            for d, a in result.items()]
    return markdown_table((title, "Kendall's tau", "priors", "best (ours)", "best (paper)"), rows)


def _matches(row: Mapping[str, str], match: Mapping[str, str]) -> bool:
    return all(row[k] == v for k, v in match.items())


def _difference(ours: Mapping[int, float], theirs: Mapping[int, float]) -> dict[int, float]:
    """``ours`` minus ``theirs`` in each seed both have, in seed order."""
    return {seed: ours[seed] - theirs[seed] for seed in sorted(ours.keys() & theirs.keys())}


def _leads_over(rows: Sequence[Mapping[str, str]], name: str, column: str, dataset: str,
                reference: str) -> dict[str, dict[int, float]]:
    """``reference``'s value of ``column`` minus each other finished prior's of ``dataset``, seed
    by seed, in the rows of table ``name`` already read."""
    values = {r["prior"]: _by_seed(rows, name, column, {"dataset": dataset, "prior": r["prior"]})
              for r in rows if r["dataset"] == dataset and r["runs"]}
    if reference not in values:
        raise ResultsError(f"table {name} has no finished {reference} run on {dataset}")
    ours = values.pop(reference)
    return {prior: _difference(ours, theirs) for prior, theirs in values.items()}


def _mean_std(rows: Sequence[Mapping[str, str]], name: str, column: str,
              match: Mapping[str, str]) -> tuple[float, float | None]:
    """:meth:`Results.mean_std` on the rows of table ``name`` already read."""
    row = _one_row(rows, name, match)
    mean, std = row[f"{column} mean"], row[f"{column} std"]
    if mean in ("", "nan"):
        raise ResultsError(f"table {name} has no {column} where {dict(match)}: not run yet")
    return float(mean), float(std) if std not in ("", "nan") else None


def _by_seed(rows: Sequence[Mapping[str, str]], name: str, column: str,
             match: Mapping[str, str]) -> dict[int, float]:
    """:meth:`Results.by_seed` on the rows of table ``name`` already read."""
    row = _one_row(rows, name, match)
    values = row.get(f"{column} by seed")
    if values is None:
        raise ResultsError(f"table {name} has no per-seed {column}: run ladder report again")
    pairs = zip(row["seeds"].split(), values.split(), strict=True)
    return {int(seed): float(value) for seed, value in pairs if value != "nan"}


def _one_row(rows: Sequence[Mapping[str, str]], name: str,
             match: Mapping[str, str]) -> Mapping[str, str]:
    """The one row of table ``name`` whose cells equal ``match``."""
    found = [r for r in rows if _matches(r, match)]
    if len(found) != 1:
        raise ResultsError(f"table {name} has {len(found)} rows where {dict(match)}, not one")
    return found[0]


def _column(name: str, header: str) -> Column:
    """The :class:`~ladder.experiments.tables.Column` ``header`` of report table ``name``."""
    for table in TABLES:
        for column in table.columns:
            if (table.name, column.header) == (name, header):
                return column
    raise ResultsError(f"ladder report writes no column {header!r} in a table {name!r}")


def _better(label: str) -> int:
    """+1 where ``label`` says "higher is better", -1 where it says "lower is better"."""
    senses = [sense for words, sense in (("higher is better", 1), ("lower is better", -1))
              if words in label]
    if len(senses) != 1:
        raise ValueError(f"say in the label {label!r} whether higher or lower is better")
    return senses[0]


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)
