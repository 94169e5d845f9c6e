"""Run time per landed run of a scale, from the files the report landed (no run is started).

    .venv/bin/python benchmarks/run_times.py --scale paper

One row per training run under ``results/<scale>/runs/``: its threads and jobs (runs at once),
device, epochs, median seconds per training epoch, hours of training (the sum of each epoch's
training, refit, test evaluation and diagnosis seconds in ``metrics.jsonl``, across every attempt)
and minutes of the final evaluation (the wall time of ``done.json`` less that sum, for runs that
finished in one attempt: ``done.json`` times the last attempt alone, and a run resumed on a new
machine, which lost its attempt log, shows as "-" when the difference is negative).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ladder.markdown import markdown_table

EPOCH_SECONDS = ("seconds_train", "seconds_refit", "seconds_eval", "seconds_diagnose")


def run_time_row(folder: Path) -> tuple[str, ...] | None:
    """The row of one landed run folder, or None when it has no ``metrics.jsonl`` (not a
    training run, e.g. Fig 5's)."""
    metrics_file = folder / "metrics.jsonl"
    if not metrics_file.is_file():
        return None
    done = json.loads((folder / "done.json").read_text())
    epochs = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
    training = sum(e.get(key, 0.0) for e in epochs for key in EPOCH_SECONDS)
    median = statistics.median(e["seconds_train"] for e in epochs)
    left = done["wall_time_s"] - training
    evaluation = f"{left / 60:.0f}" if done.get("attempts") == 1 and left >= 0 else "-"
    return (done["id"], str(done.get("threads", "-")), str(done.get("jobs", "-")),
            done.get("device", "-"), str(len(epochs)), f"{median:.0f}",
            f"{training / 3600:.2f}", evaluation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scale", default="paper", help="results/<scale>/runs/ to read")
    parser.add_argument("--results", default="results", help="the results root")
    args = parser.parse_args()
    root = Path(args.results) / args.scale / "runs"
    rows = [row for folder in sorted(root.iterdir()) if (row := run_time_row(folder))]
    print(markdown_table(("run", "threads", "jobs", "device", "epochs", "s/epoch (median)",
                          "training h", "evaluation min"), rows))


if __name__ == "__main__":
    main()
