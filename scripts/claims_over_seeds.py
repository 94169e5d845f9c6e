"""Run chapters under papermill for several seeds and tabulate the margin of every claim.

    scripts/claims_over_seeds.py [--seeds 0 1 2 3 4] [--isa avx2] [--out runs/claims]
                                 [--table results/claims.md] [NOTEBOOK ...]

Every finding about training that a chapter states goes through ``ladder.notebook.check``; with
``$LADDER_CLAIMS_LOG`` set, ``check`` records the claim's margin instead of asserting it. This
script runs each NOTEBOOK (default: the book's chapters) at its default parameters, once per
seed, with the kernels limited to one instruction set (``--isa``), and prints a Markdown table:
one row per claim, its margin per seed (negative: the claim fails), and the wall time per run.
Exit status 1 when any claim fails or any run raises.

Resumable: each finished run leaves ``OUT/<chapter>-seed<k>.jsonl``, and a rerun skips it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import papermill
from notebooks import CANONICAL_ENV, ISA_ENV  # scripts/notebooks.py

from ladder.notebook import CLAIMS_LOG_ENV

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("0[1-5]_*.ipynb"))  # chapter 6 trains nothing


@contextlib.contextmanager
def environment(changes: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``changes`` while the block runs, as it was afterwards."""
    before = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_one(notebook: Path, seed: int, isa: str, out: Path) -> Path:
    """Execute ``notebook`` with ``seed`` unless its claims file exists; return that file."""
    claims = out / f"{notebook.stem}-seed{seed}.jsonl"
    if claims.exists():
        return claims
    partial = claims.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    error = None
    try:
        with environment({**CANONICAL_ENV, **ISA_ENV[isa], CLAIMS_LOG_ENV: str(partial)}):
            papermill.execute_notebook(
                notebook, out / f"{notebook.stem}-seed{seed}.ipynb", parameters={"seed": seed},
                kernel_name="python3", cwd=notebook.parent, progress_bar=False,
            )
    except papermill.PapermillExecutionError as err:
        error = f"{err.ename}: {err.evalue}"
    with open(partial, "a", encoding="utf-8") as stream:
        stream.write(json.dumps({"run": {"seconds": time.perf_counter() - started,
                                         "error": error, "isa": isa}}) + "\n")
    partial.rename(claims)
    return claims


def slowest_cell(executed: Path) -> float:
    """The longest cell of a papermill output notebook, in seconds (0 if it is missing)."""
    if not executed.exists():
        return 0.0
    cells = json.loads(executed.read_text())["cells"]
    return max((c["metadata"].get("papermill", {}).get("duration") or 0.0 for c in cells),
               default=0.0)


def table(results: dict[tuple[str, int], Path], seeds: list[int]) -> tuple[str, bool]:
    """The Markdown table of margins per claim and seed, and whether every claim held."""
    margins: dict[tuple[str, str], dict[int, float]] = {}
    bounds: dict[tuple[str, str], str] = {}
    runs: dict[str, dict[int, dict]] = {}
    for (chapter, seed), path in results.items():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "run" in record:
                runs.setdefault(chapter, {})[seed] = {
                    **record["run"], "slowest_cell": slowest_cell(path.with_suffix(".ipynb"))}
                continue
            key = (chapter, record["claim"])
            margins.setdefault(key, {})[seed] = record["margin"]
            bounds[key] = " and ".join(
                f"{word} {record[word]:g}" for word in ("above", "below")
                if record[word] is not None)
    header = "| chapter | claim | bound | " + " | ".join(f"seed {s}" for s in seeds)
    lines = [header + " | holds |", "|---|---|---|" + "---|" * len(seeds) + "---|"]
    ok = True
    for (chapter, claim), per_seed in margins.items():
        cells = [f"{per_seed[s]:.3g}" if s in per_seed else "not reached" for s in seeds]
        held = sum(per_seed.get(s, -1) > 0 for s in seeds)
        ok &= held == len(seeds)
        lines.append(f"| {chapter} | {claim.replace('|', chr(92) + '|')} | "
                     f"{bounds[(chapter, claim)]} | "
                     + " | ".join(cells) + f" | {held}/{len(seeds)} |")
    lines += ["", "| chapter | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|" + "---|" * len(seeds)]
    for chapter, per_seed in runs.items():
        cells = []
        for s in seeds:
            run = per_seed.get(s, {})
            ok &= run.get("error") is None
            cells.append(f"{run['seconds']:.0f} s, slowest cell {run['slowest_cell']:.0f} s"
                         + (f" ({run['error']})" if run["error"] else "") if run else "not run")
        lines.append(f"| {chapter} (wall time) | " + " | ".join(cells) + " |")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, default=CHAPTERS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--isa", choices=sorted(ISA_ENV), default="avx2")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "claims")
    parser.add_argument("--table", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    # absolute: each chapter's kernel runs in its own folder, and the claims log must not move
    out = args.out.resolve() / args.isa
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for notebook in args.notebooks:
        for seed in args.seeds:
            results[notebook.stem, seed] = run_one(notebook.resolve(), seed, args.isa, out)
            print(f"{notebook.stem} seed {seed}: done", file=sys.stderr, flush=True)
    text, ok = table(results, args.seeds)
    text = (f"Claims over seeds {args.seeds}, kernels limited to {args.isa} "
            f"(`scripts/claims_over_seeds.py --isa {args.isa}`); margin in the value's units, "
            "negative = the claim fails.\n\n" + text + "\n")
    print(text)
    if args.table:
        args.table.write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
