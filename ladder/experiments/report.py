"""``ladder report``: the finished runs of a scale aggregated into the tables of
:data:`ladder.experiments.tables.TABLES` (Markdown and CSV, mean ± std over seeds, each row citing
its runs, the paper's value beside ours) under ``results/<scale>/``, with Fig 5's SLP table, the
figures and an index."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladder.experiments.manifest import Manifest, Run, Scale, load_manifest
from ladder.experiments.paper import paper_value
from ladder.experiments.runner import DONE_FILE
from ladder.experiments.tables import FIGURES, TABLES, TableSpec
from ladder.markdown import (
    format_duration,
    format_fraction,
    format_mean_std,
    format_with_error,
    markdown_table,
    mean_std,
)


@dataclass
class Finished:
    """A finished run as the report sees it: its manifest entry, done.json and result file."""

    run: Run
    done: dict[str, Any]
    result: dict[str, Any]


def finished_runs(runs: Sequence[Run], runs_root: str | os.PathLike = "runs") -> list[Finished]:
    """The ``runs`` with a ``done.json``, and the result file (first output) of each."""
    out = []
    for run in runs:
        folder = run.directory(runs_root)
        if not (folder / DONE_FILE).is_file():
            continue
        done = json.loads((folder / DONE_FILE).read_text())
        result_file = folder / run.outputs[0]
        result = json.loads(result_file.read_text()) if result_file.suffix == ".json" else {}
        out.append(Finished(run, done, result))
    return out


def _lookup(data: Mapping[str, Any], path: Sequence[str]) -> float | None:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return float(data) if isinstance(data, (int, float)) and not isinstance(data, bool) else None



@dataclass
class Table:
    """An aggregated table: the Markdown and CSV text and the runs it cites."""

    spec: TableSpec
    markdown: str
    csv: str
    runs: list[str]


def build_table(spec: TableSpec, finished: Sequence[Finished], scale: Scale,
                planned: Sequence[Run]) -> Table | None:
    """Aggregate ``finished`` runs into ``spec``, one row per row the ``planned`` runs (the
    manifest's at this scale) give it; None when none of its runs has finished."""
    groups: dict[tuple, list[tuple[Finished, dict[str, Any]]]] = {}
    for f in finished:
        for exp in spec.experiments:
            if exp in f.run.labels:
                labels = f.run.labels[exp]
                key = tuple(labels.get(r) for r in spec.rows)
                groups.setdefault(key, []).append((f, labels))
    expected = _expected_rows(spec, planned)
    if not groups:
        return None
    header = [*spec.rows]
    for col in spec.columns:
        header.append(col.header)
        if col.paper:
            header.append(f"{col.header} (paper)")
    header += ["seeds", "runs"]
    md_rows, csv_rows, cited = [], [], []
    for key in expected:
        members = sorted(groups.get(key, []), key=lambda m: m[1].get("seed", 0))
        planned = expected[key]
        cells = [str(k) for k in key]
        csv_cells: dict[str, Any] = dict(zip(spec.rows, key, strict=True))
        for col in spec.columns:
            values = [v for f, _ in members if (v := _lookup(f.result, col.path)) is not None]
            cells.append(format_mean_std(values, col.digits))
            mean, std = mean_std(values) if values else (None, None)
            csv_cells[f"{col.header} mean"] = "" if mean is None else round(mean, 6)
            csv_cells[f"{col.header} std"] = "" if std is None else round(std, 6)
            csv_cells[f"{col.header} n"] = len(values)
            if col.paper:
                dataset = dict(zip(spec.rows, key, strict=True)).get("dataset", "")
                value = paper_value(*col.paper, dataset, key[-1]) or paper_value(
                    *col.paper, dataset, "all")
                cells.append("-" if value is None else str(value))
                csv_cells[f"{col.header} (paper)"] = "" if value is None else str(value)
        seeds = [m[1].get("seed") for m in members]
        ids = [f.run.id for f, _ in members]
        cited += ids
        cells.append(f"{len(seeds)}/{planned}")
        cells.append(", ".join(ids) if ids else "not run")
        csv_cells.update(seeds=" ".join(map(str, seeds)), runs=" ".join(ids))
        md_rows.append(cells)
        csv_rows.append(csv_cells)
    used = [f for f in finished if f.run.id in set(cited)]
    md = _markdown(spec, header, md_rows, used, scale)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(csv_rows[0]) + ["scale", "commit", "device"],
                            lineterminator="\n")
    writer.writeheader()
    meta = _meta(used)
    for row in csv_rows:
        writer.writerow({**row, "scale": scale.name, "commit": meta["commits"],
                         "device": meta["devices"]})
    return Table(spec, md, buffer.getvalue(), sorted(set(cited)))


def _expected_rows(spec: TableSpec, planned: Sequence[Run]) -> dict[tuple, int]:
    """Every row the manifest plans for ``spec``, in manifest order, with its seed count."""
    rows: dict[tuple, int] = {}
    for run in planned:
        for exp in spec.experiments:
            if exp in run.labels:
                key = tuple(run.labels[exp].get(r) for r in spec.rows)
                rows[key] = rows.get(key, 0) + 1
    return rows


def _meta(used: Sequence[Finished]) -> dict[str, str]:
    seeds = sorted({f.run.parameters.get("seed") for f in used if "seed" in f.run.parameters})
    return {
        "seeds": ", ".join(map(str, seeds)),
        "devices": "; ".join(sorted({f.done.get("device", "?") for f in used})),
        "commits": ", ".join(sorted({f.done.get("commit", "?") for f in used})),
        "seconds": sum(float(f.done.get("wall_time_s", 0.0)) for f in used),
    }


def _markdown(spec: TableSpec, header: list[str], rows: list[list[str]],
              used: Sequence[Finished], scale: Scale) -> str:
    meta = _meta(used)
    counts = ", ".join(f"{k} {v}" for k, v in scale.evaluate.items() if v is not None)
    lines = [
        f"# {spec.title}",
        "",
        f"- Scale: **{scale.name}**: {scale.description}.",
        f"- Evaluation: {counts}.",
        f"- Seeds: {meta['seeds']}; each cell is the mean ± sample std (ddof 1) over the seeds "
        "that finished (the `seeds` column: finished/planned). The paper's ± is the std over its "
        "5 repeats.",
        f"- Device: {meta['devices']}. Commit: {meta['commits']}. Total run time: "
        f"{format_duration(meta['seconds'])} over {len(used)} runs.",
        f"- Runs: folders under `runs/{scale.name}/` (run ids in the last column); regenerate "
        f"with `ladder reproduce --scale {scale.name}` and `ladder report --scale {scale.name}`.",
    ]
    if spec.note:
        lines.append(f"- {spec.note}")
    lines += ["", markdown_table(header, rows)]
    return "\n".join(lines) + "\n"


def _slp_table(finished: Sequence[Finished], scale: Scale) -> tuple[str, str, list[str]] | None:
    """Fig 5's SLP-against-SP table (one model per row and metric) from the fig5 runs."""
    runs = [f for f in finished if "fig5" in f.run.labels]
    if not runs:
        return None
    header = ["run", "model", "space", "metric", "better", "SLP", "SP", "SLP - SP", "SLP better",
              "pairs"]
    md_rows, csv_rows = [], []
    for f in runs:
        for row in f.result.get("rows", []):
            cells = [f.run.id, row["model"], row["space"], row["metric"], row["better"],
                     *(format_with_error(row[k], row.get(f"{k}_se"))
                       for k in ("slp", "sp", "diff")),
                     format_fraction(row.get("slp_better")), str(row.get("n_pairs", ""))]
            md_rows.append(cells)
            csv_rows.append({**dict(zip(header, cells, strict=True)), **{
                k: row.get(k) for k in ("slp", "slp_se", "sp", "sp_se", "diff", "diff_se",
                                        "slp_better")}})
    spec = TableSpec("fig5_slp", "Fig 5: shortest likely path (SLP) against the straight line "
                     "(SP) over random test pairs", ("fig5",), (), (),
                     "Per-pair metrics: mean ± standard error over pairs (SLP - SP paired); "
                     "fcd: distance ± bootstrap error over pairs. Figures: "
                     "figures/fig5_*.png.")
    md = _markdown(spec, header, md_rows, runs, scale)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(csv_rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows)
    return md, buffer.getvalue(), [f.run.id for f in runs]


def report(
    scale: str = "quick",
    runs_root: str | os.PathLike = "runs",
    results_root: str | os.PathLike = "results",
    manifest: Manifest | str | os.PathLike | None = None,
    echo: Callable[[str], None] = print,
) -> list[Path]:
    """Write the tables (:data:`TABLES` and Fig 5's) of the finished runs of ``scale`` to
    ``results/<scale>/<name>.{md,csv}``, copy the figures into ``results/<scale>/figures/`` and
    an index to ``results/<scale>/README.md``; returns the files written."""
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    spec = manifest.scale(scale)
    planned = manifest.runs(scale)
    finished = finished_runs(planned, runs_root)
    out_dir = Path(results_root) / scale
    if not finished:
        raise FileNotFoundError(f"no finished runs under {Path(runs_root) / scale}; run "
                                f"`ladder reproduce --scale {scale}` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index = [f"# Results at scale {scale}", "", f"{spec.description}.", "",
             f"Made by `ladder report --scale {scale}` from {len(finished)} finished runs under "
             f"`runs/{scale}/`; each table names its runs, seeds, device, commit and run time.",
             ""]
    files: list[list[str]] = []
    for table_spec in TABLES:
        table = build_table(table_spec, finished, spec, planned)
        if table is None:
            continue
        written += _write_pair(out_dir, table_spec.name, table.markdown, table.csv)
        files.append([f"[{table_spec.name}.md]({table_spec.name}.md)", table_spec.title,
                      str(len(table.runs))])
    slp = _slp_table(finished, spec)
    if slp is not None:
        written += _write_pair(out_dir, "fig5_slp", slp[0], slp[1])
        files.append(["[fig5_slp.md](fig5_slp.md)", "Fig 5: SLP against SP", str(len(slp[2]))])
    figures = out_dir / "figures"
    for exp, pattern, target in FIGURES:
        for f in finished:
            labels = f.run.labels.get(exp)
            if labels is None or labels.get("seed", 0) != 0:
                continue
            for src in sorted(f.run.directory(runs_root).glob(pattern)):
                figures.mkdir(exist_ok=True)
                dest = figures / target.format(**labels, stem=src.stem)
                shutil.copyfile(src, dest)
                written.append(dest)
                files.append([f"[figures/{dest.name}](figures/{dest.name})",
                              f"{exp}: {src.name} of {f.run.id}", "1"])
    readme = out_dir / "README.md"
    index.append(markdown_table(["file", "what", "runs"], files))
    readme.write_text("\n".join(index) + "\n")
    written.append(readme)
    for path in written:
        echo(f"wrote {path}")
    return written


def _write_pair(out_dir: Path, name: str, markdown: str, csv_text: str) -> list[Path]:
    md, cs = out_dir / f"{name}.md", out_dir / f"{name}.csv"
    md.write_text(markdown)
    cs.write_text(csv_text)
    return [md, cs]
