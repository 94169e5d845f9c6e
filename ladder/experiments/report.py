"""``ladder report``: finished runs aggregated into tables (Markdown and CSV, mean ± std over
seeds, each row citing its runs; the CSV also holds each seed's value, in the order of its
``seeds`` column).

* ``ladder report --scale S`` (:func:`report`): the manifest's runs of one scale, into the tables
  of :data:`ladder.experiments.tables.TABLES` with the paper's value beside ours, Fig 5's SLP
  table, the figures and an index under ``results/<scale>/``. It also *lands* each finished
  run: copies its small text files (config, metrics, evaluation, ``done.json``) to
  ``results/<scale>/runs/<id>/``, to be committed, so that a fresh clone tabulates it and never
  runs it again (:func:`ladder.experiments.runner.run_status`).
* ``ladder report --runs DIR`` (:func:`report_folders`): any evaluated run folders, e.g. of
  ``ladder train`` and ``ladder evaluate``, one row per config with its seeds pooled.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladder.config_yaml import flat_settings
from ladder.experiments.classifiers import classifier_note
from ladder.experiments.manifest import Manifest, Run, Scale, load_manifest
from ladder.experiments.paper import paper_value
from ladder.experiments.slp_table import EXPERIMENT as SLP_EXPERIMENT
from ladder.experiments.slp_table import HEADER as SLP_HEADER
from ladder.experiments.slp_table import slp_rows
from ladder.experiments.tables import FIGURES, FOLDER_COLUMNS, TABLES, TableSpec
from ladder.markdown import (
    format_duration,
    format_mean_std,
    markdown_table,
    mean_std,
)
from ladder.runs import RunDir, find_runs


@dataclass
class Finished:
    """A finished run as the report sees it: its manifest entry, the folder its files are in
    (the run folder, or its landed copy), its done.json and result file."""

    run: Run
    folder: Path
    done: dict[str, Any]
    result: dict[str, Any]


@dataclass
class Source:
    """Where a table's runs come from: the CSV's ``scale`` column, the Markdown's bullets (the
    last one after the seeds and device), and what the ``seeds`` column counts."""

    name: str
    lines: list[str]
    seeds: str = ("the `seeds` column: finished/planned). The paper's ± is the std over its 5 "
                  "repeats.")


def finished_runs(runs: Sequence[Run], runs_root: str | os.PathLike = "runs",
                  results_root: str | os.PathLike = "results") -> list[Finished]:
    """The ``runs`` with a ``done.json`` in their run folder or, failing that, in their landed
    copy under ``results_root``, with the result file (first output) of each."""
    out = []
    for run in runs:
        for folder in (run.directory(runs_root), run.landed(results_root)):
            if RunDir(folder).done.is_file():
                done = json.loads(RunDir(folder).done.read_text())
                result_file = folder / run.outputs[0]
                result = (json.loads(result_file.read_text())
                          if result_file.suffix == ".json" else {})
                out.append(Finished(run, folder, done, result))
                break
    return out


def first_seeds(finished: Sequence[Finished], experiment: str) -> list[Finished]:
    """The runs of ``experiment`` with the lowest seed that finished among those that share
    their other grid labels: the runs whose figures the report shows."""
    first: dict[str, Finished] = {}
    runs = [f for f in finished if experiment in f.run.labels]
    for f in sorted(runs, key=lambda f: f.run.labels[experiment].get("seed", 0)):
        labels = f.run.labels[experiment]
        first.setdefault(json.dumps({k: v for k, v in labels.items() if k != "seed"},
                                    sort_keys=True), f)
    return list(first.values())


def land(finished: Sequence[Finished], results_root: str | os.PathLike) -> list[Path]:
    """Copy the small text files of each run finished in its run folder (:attr:`RunDir.SMALL_TEXT`
    and its JSON outputs; no checkpoint, notebook or image) to ``results/<scale>/runs/<id>/``."""
    written = []
    for f in finished:
        target = f.run.landed(results_root)
        if f.folder == target:
            continue
        names = [*RunDir.SMALL_TEXT, *(o for o in f.run.outputs if o.endswith(".json"))]
        for name in dict.fromkeys(names):
            if (f.folder / name).is_file():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f.folder / name, target / name)
                written.append(target / name)
    return written


@dataclass
class Table:
    """An aggregated table: the Markdown and CSV text and the runs it cites."""

    spec: TableSpec
    markdown: str
    csv: str
    runs: list[str]


def build_table(spec: TableSpec, finished: Sequence[Finished], source: Source,
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
            by_seed = [col.read(f.result) for f, _ in members]
            values = [v for v in by_seed if v is not None]
            cells.append(format_mean_std(values, col.digits))
            mean, std = mean_std(values) if values else (None, None)
            csv_cells[f"{col.header} mean"] = "" if mean is None else round(mean, 6)
            csv_cells[f"{col.header} std"] = "" if std is None else round(std, 6)
            csv_cells[f"{col.header} n"] = len(values)
            csv_cells[f"{col.header} by seed"] = " ".join(
                "nan" if v is None else str(round(v, 6)) for v in by_seed)
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
    md = _markdown(spec, header, md_rows, used, source)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(csv_rows[0]) + ["scale", "commit", "device"],
                            lineterminator="\n")
    writer.writeheader()
    meta = _meta(used)
    for row in csv_rows:
        writer.writerow({**row, "scale": source.name, "commit": meta["commits"],
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


def _scale_source(scale: Scale) -> Source:
    counts = ", ".join(f"{k} {v}" for k, v in scale.evaluate.items() if v is not None)
    return Source(scale.name, [
        f"- Scale: **{scale.name}**: {scale.description}.",
        f"- Evaluation: {counts}.",
        f"- Runs: folders under `runs/{scale.name}/`, or their landed copies under "
        f"`results/{scale.name}/runs/` (run ids in the last column); regenerate with `ladder "
        f"reproduce --scale {scale.name}` and `ladder report --scale {scale.name}`.",
    ])


def _markdown(spec: TableSpec, header: list[str], rows: list[list[str]],
              used: Sequence[Finished], source: Source) -> str:
    meta = _meta(used)
    lines = [
        f"# {spec.title}",
        "",
        *source.lines[:-1],
        f"- Seeds: {meta['seeds']}; each cell is the mean ± sample std (ddof 1) over the seeds "
        f"that finished ({source.seeds}",
        f"- Device: {meta['devices']}. Commit: {meta['commits']}. Total run time: "
        f"{format_duration(meta['seconds'])} over {len(used)} runs.",
        source.lines[-1],
    ]
    if spec.note:
        lines.append(f"- {spec.note}")
    if spec.scores_images and (
            note := classifier_note((str(f.run.parameters.get("dataset")), f.result) for f in used)):
        lines.append(f"- {note}")
    lines += ["", markdown_table(header, rows)]
    return "\n".join(lines) + "\n"


def _slp_table(finished: Sequence[Finished], planned: Sequence[Run], scale: Scale
               ) -> tuple[str, str, list[str]] | None:
    """Fig 5's SLP-against-SP table (:mod:`ladder.experiments.slp_table`) from the fig5 runs."""
    runs = [f for f in finished if SLP_EXPERIMENT in f.run.labels]
    if not runs:
        return None
    md_rows, csv_rows, cited = slp_rows([(f.run, f.result) for f in runs], planned)
    spec = TableSpec("fig5_slp", "Fig 5: shortest likely path (SLP) against the straight line "
                     "(SP) over random test pairs", (SLP_EXPERIMENT,), (), (),
                     "Each run scores its model on the same random test pairs (the seed picks "
                     "them); `SLP better`: the share of pairs where SLP wins, its range over "
                     "seeds; of `fcd` and `coverage`, measures of the whole set of frames, the "
                     "normal probability that SLP wins given the difference's bootstrap error "
                     "over the pairs. Figures: figures/fig5_*.png (the lowest seed that "
                     "finished).")
    md = _markdown(spec, SLP_HEADER, md_rows, runs, _scale_source(scale))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(csv_rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows)
    return md, buffer.getvalue(), cited


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
    finished = finished_runs(planned, runs_root, results_root)
    out_dir = Path(results_root) / scale
    if not finished:
        raise FileNotFoundError(f"no finished runs under {Path(runs_root) / scale} or "
                                f"{out_dir / 'runs'}; run `ladder reproduce --scale {scale}` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index = [f"# Results at scale {scale}", "", f"{spec.description}.", "",
             f"Made by `ladder report --scale {scale}` from {len(finished)} finished runs under "
             f"`runs/{scale}/` and `runs/` here (their landed copies: config, metrics, "
             "evaluation, done.json); each table names its runs, seeds, device, commit and run "
             "time.", ""]
    files: list[list[str]] = []
    for table_spec in TABLES:
        table = build_table(table_spec, finished, _scale_source(spec), planned)
        if table is None:
            continue
        written += _write_pair(out_dir, table_spec.name, table.markdown, table.csv)
        files.append([f"[{table_spec.name}.md]({table_spec.name}.md)", table_spec.title,
                      str(len(table.runs))])
    slp = _slp_table(finished, planned, spec)
    if slp is not None:
        written += _write_pair(out_dir, "fig5_slp", slp[0], slp[1])
        files.append(["[fig5_slp.md](fig5_slp.md)", "Fig 5: SLP against SP", str(len(slp[2]))])
    figures = out_dir / "figures"
    for exp, pattern, target in FIGURES:
        for f in first_seeds(finished, exp):
            labels = f.run.labels[exp]
            copied = []
            for src in sorted(f.folder.glob(pattern)):
                figures.mkdir(exist_ok=True)
                copied.append(figures / target.format(**labels, stem=src.stem))
                shutil.copyfile(src, copied[-1])
            written += copied
            # a landed run has no images: its figures are the ones copied when it finished
            shown = copied or sorted(figures.glob(target.format(**labels,
                                                                stem=Path(pattern).stem)))
            files += [[f"[figures/{dest.name}](figures/{dest.name})", f"{exp} of {f.run.id}",
                       "1"] for dest in shown]
    written += land(finished, results_root)
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


#: Settings that do not change a run's numbers, left out of ``report_folders``' ``settings``.
_NOT_SETTINGS = ("data.root", "train.device", "train.progress", "train.eval_batch_size")


def report_folders(root: str | os.PathLike) -> str:
    """``ladder report --runs DIR``: the Markdown table of every evaluated run folder under
    ``root`` (:func:`ladder.runs.find_runs`), one row per config with its seeds pooled; the
    ``settings`` column names the config keys that tell rows of one dataset and prior apart."""
    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"no evaluated run folders under {root}; train with `ladder "
                                "train` and evaluate with `ladder evaluate` first")
    flat = [flat_settings(run.read_config().to_dict()) for run in runs]
    keys = sorted({k for f in flat for k in f} - {"data.dataset", "model.prior", "train.seed",
                                                  *_NOT_SETTINGS})
    varying = [k for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1]
    finished = []
    for run, settings in zip(runs, flat, strict=True):
        evaluation = run.read_evaluation() or {}
        provenance = evaluation.get("provenance", {})
        labels = {"dataset": settings["data.dataset"], "prior": settings["model.prior"],
                  "settings": " ".join(f"{k}={settings.get(k)}" for k in varying) or "-",
                  "seed": settings["train.seed"]}
        entry = Run(id=run.path.relative_to(root).as_posix() if run.path != Path(root) else ".",
                    scale="runs", notebook="", parameters={"seed": labels["seed"]},
                    outputs=(RunDir.EVALUATION,), labels={"runs": labels})
        done = {"device": provenance.get("device", "?"),
                "commit": f"ladder {provenance.get('ladder_version', '?')}",
                "wall_time_s": provenance.get("wall_time_s", 0.0)}
        finished.append(Finished(entry, run.path, done, evaluation))
    counts = sorted({json.dumps(f.result.get("provenance", {}).get("sample_counts", {}),
                                sort_keys=True) for f in finished})
    source = Source("runs", seeds="the `seeds` column: the run folders of the row).", lines=[
        f"- Evaluation sample counts: {'; '.join(counts)}.",
        f"- Runs: the {len(runs)} evaluated run folders under `{root}` (`ladder report --runs "
        f"{root}`); `settings`: the config keys that differ between rows. Run times are the "
        "evaluations'.",
    ])
    spec = TableSpec("runs", f"Run folders under {root}", ("runs",),
                     ("dataset", "prior", "settings"), FOLDER_COLUMNS)
    table = build_table(spec, finished, source, [f.run for f in finished])
    assert table is not None  # every run has its row
    return table.markdown
