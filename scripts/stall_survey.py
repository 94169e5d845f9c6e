"""Train every prior on every seed at one scale and tabulate which runs stall (issue 15).

    scripts/stall_survey.py --tag NAME [--set KEY=VALUE ...] [--datasets mnist fashion]
                            [--priors normal vamp gmm hierarchical ladder] [--seeds 0 1 2 3 4]
                            [--scale quick] [--jobs 2] [--out runs/stall] [--table FILE]
                            [--no-train]

Each run is ``ladder train`` with the manifest's settings for ``--scale`` (experiments/
manifest.yaml: its preset and per-dataset overrides), ``train.seed`` and the ``--set`` overrides,
in ``OUT/NAME/<dataset>-<prior>-seed<k>``. Resumable: a finished run is read, an interrupted one
resumed from its checkpoint. The table gives each run's final test per-pixel error and test ELBO
and flags a stall, the criteria of issue 15: a pixel error above 1.5x the median of its prior's
seeds, or a prior's median above 1.5x the Normal prior's (the VampPrior's collapse). Where the
trainer logged diagnostics (``diag_*`` keys of metrics.jsonl) their last values are shown.
Exit status 1 when any run stalls or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PRIORS = ("normal", "vamp", "gmm", "hierarchical", "ladder")
STALL_RATIO = 1.5
DIAGNOSTICS = ("diag_active_z", "diag_floor_share", "diag_dead_ink_share",
               "diag_prior_active_t", "diag_prior_hyper_active_components")
"""The trainer's diagnostics (metrics.jsonl) shown for the last seed (``ladder.diagnose``)."""


def scale_settings(scale: str, dataset: str) -> tuple[str, list[str]]:
    """The preset and the ``--set`` overrides of ``scale`` for ``dataset`` (the manifest's)."""
    manifest = yaml.safe_load((ROOT / "experiments" / "manifest.yaml").read_text())
    entry = manifest["scales"][scale]
    overrides = entry.get("overrides") or {}
    return entry["preset"], list(overrides.get(dataset, []))


def epochs_done(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def finished(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint and all of its configured epochs."""
    if not (run_dir / "checkpoint.pt").exists():
        return False
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    return epochs_done(run_dir) >= config["train"]["epochs"]


def train_one(run_dir: Path, dataset: str, prior: str, seed: int, scale: str,
              overrides: list[str], threads: int, train: bool = True) -> dict:
    """Train (or resume, or read) one run; returns its last metrics record plus its wall time.
    With ``train=False`` a run that has not finished is not trained: ``{"missing": True}``."""
    done = finished(run_dir)
    if not train and not done:
        return {"missing": True, "seconds": 0.0}
    preset, scale_overrides = scale_settings(scale, dataset)
    sets = [*scale_overrides, f"train.seed={seed}", "train.progress=false", *overrides]
    if (run_dir / "checkpoint.pt").exists():
        command = [] if done else ["--resume", str(run_dir)]
    else:
        if run_dir.exists():  # started but no epoch finished: start again
            shutil.rmtree(run_dir)
        command = ["--preset", preset, "--dataset", dataset, "--prior", prior,
                   "--run-dir", str(run_dir), *[arg for s in sets for arg in ("--set", s)]]
    started = time.perf_counter()
    error = None
    if command:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONHASHSEED": "0"}
        done = subprocess.run([sys.executable, "-m", "ladder", "train", *command], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            error = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines() if error is None else []
    records = [json.loads(line) for line in lines]
    record = records[-1] if records else {}  # the last epoch, a prior fine-tuning one if any
    trained = [r for r in records if "diag_active_z" in r]  # fine-tuning epochs log no diag_*
    record.update({k: v for k, v in (trained[-1] if trained else {}).items()
                   if k.startswith("diag_")})
    record["seconds"] = time.perf_counter() - started
    record["error"] = error
    print(f"{run_dir.name}: {'failed: ' + error if error else 'done'}", flush=True)
    return record


def table(records: dict[tuple[str, str, int], dict], seeds: list[int], tag: str,
          overrides: list[str], scale: str) -> tuple[str, bool]:
    """The Markdown stall table and whether any run stalled or failed."""
    lines = [f"Stall survey `{tag}` at scale {scale}, overrides {overrides or 'none'} "
             f"(`scripts/stall_survey.py`). Per seed: final test per-pixel error x0.01 / test "
             f"ELBO; **bold** = stalled (error above {STALL_RATIO}x its prior's median).", "",
             "| dataset | prior | " + " | ".join(f"seed {s}" for s in seeds)
             + " | median error | vs Normal | diagnostics, last seed |",
             "|---|---|" + "---|" * len(seeds) + "---|---|---|"]
    bad = False
    for dataset in sorted({k[0] for k in records}):
        normal = [r.get("test_mae") for (d, p, _), r in records.items()
                  if d == dataset and p == "normal" and r.get("test_mae") is not None]
        normal_median = statistics.median(normal) if normal else None
        for prior in [p for p in PRIORS if (dataset, p, seeds[0]) in records]:
            rows = [records[dataset, prior, s] for s in seeds]
            errors = [r.get("test_mae") for r in rows]
            known = [e for e in errors if e is not None]
            median = statistics.median(known) if known else float("nan")
            cells = []
            for r, e in zip(rows, errors, strict=True):
                if r.get("missing"):
                    cells.append("not run")
                    continue
                if e is None:
                    cells.append(f"failed: {r.get('error')}")
                    bad = True
                    continue
                cell = f"{100 * e:.2f} / {r['test_elbo']:.0f}"
                if e > STALL_RATIO * median:
                    cell, bad = f"**{cell}**", True
                cells.append(cell)
            ratio = median / normal_median if normal_median and known else None
            bad |= ratio is not None and ratio > STALL_RATIO
            last = next((r for r in reversed(rows) if not r.get("missing")), {})
            diag = ", ".join(f"{k[5:]} {last[k]:.3g}" for k in DIAGNOSTICS if k in last)
            median_cell = f"{100 * median:.2f}" if known else "-"
            ratio_cell = "-" if ratio is None else f"{ratio:.2f}x"
            lines.append(f"| {dataset} | {prior} | " + " | ".join(cells)
                         + f" | {median_cell} | {ratio_cell} | {diag} |")
    seconds = sum(r["seconds"] for r in records.values())
    trained = f", {seconds / 60:.1f} min of wall time training them" if seconds > 60 else ""
    missing = sum(bool(r.get("missing")) for r in records.values())
    lines += ["", f"{len(records) - missing} runs{trained}"
              + (f"; {missing} not run yet." if missing else ".")]
    return "\n".join(lines) + "\n", bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", required=True, help="names the survey's folder and table")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override for every run (repeatable)")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion"])
    parser.add_argument("--priors", nargs="+", default=list(PRIORS), choices=PRIORS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--scale", default="quick", choices=["quick", "medium"])
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, 2 // jobs threads each")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "stall")
    parser.add_argument("--table", type=Path, help="also write the table to this file")
    parser.add_argument("--no-train", action="store_true",
                        help="tabulate the finished runs only; the others show as 'not run' "
                             "(the diagnostics column: the last seed that finished)")
    args = parser.parse_args()
    threads = max(1, (os.cpu_count() or 2) // args.jobs)
    keys = [(d, p, s) for d in args.datasets for p in args.priors for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {k: pool.submit(train_one, args.out / args.tag / f"{k[0]}-{k[1]}-seed{k[2]}",
                                  *k, args.scale, args.overrides, threads, not args.no_train)
                   for k in keys}
        records = {k: f.result() for k, f in futures.items()}
    text, bad = table(records, args.seeds, args.tag, args.overrides, args.scale)
    print(text)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
