"""Reading what ``ladder report`` wrote: the tables and figures of several scales under
``results/<scale>/``, each table taken from the scale with the most finished rows of it, and the
agreement of our ordering of the priors with the paper's (chapter 6)."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from ladder.experiments.paper import paper_value
from ladder.markdown import markdown_table


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
        """``root/<scale>`` of ``scale``, or else of the scale with the most finished rows of
        table ``name`` (the larger scale, the earlier in ``scales``, on a tie)."""
        scales = self.scales if scale is None else [s for s in self.scales if s == scale]
        have = [self.root / s for s in scales if (self.root / s / f"{name}.csv").exists()]
        if not have:
            raise ResultsError(f"no scale in {scales} has the table {name}")
        return max(have, key=lambda f: (finished_rows(f / f"{name}.csv"), -have.index(f)))

    def scale(self, name: str) -> str:
        """The scale table ``name`` is read from."""
        return self.folder(name).name

    def rows(self, name: str, scale: str | None = None) -> list[dict[str, str]]:
        """The rows of table ``name``'s CSV (of ``scale``, or of :meth:`folder`'s choice)."""
        with open(self.folder(name, scale) / f"{name}.csv", newline="") as handle:
            return list(csv.DictReader(handle))

    def markdown(self, name: str, scale: str | None = None) -> str:
        """Table ``name``'s Markdown (of ``scale``, or of :meth:`folder`'s choice), its title as
        bold text (a book page has one title)."""
        title, body = (self.folder(name, scale) / f"{name}.md").read_text().split("\n", 1)
        return f"**{title.lstrip('# ')}**\n{body}"

    def figures(self, pattern: str) -> list[Path]:
        """The figures matching ``pattern`` from the largest scale that has any."""
        for scale in self.scales:
            found = sorted((self.root / scale / "figures").glob(pattern))
            if found:
                return found
        return []


def finished_rows(path: str | os.PathLike) -> int:
    """Rows of a ``ladder report`` CSV that cite at least one finished run."""
    with open(path, newline="") as handle:
        return sum(1 for row in csv.DictReader(handle) if row.get("runs", "").strip())


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


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)
