"""A batch run's attempts (``attempts.jsonl``): one line per execution of its notebook, so that the
run time in ``done.json`` and the tables counts every attempt, an interrupted one too.

An attempt's line is written when it starts, with ``wall_time_s`` null, and completed when it ends,
failed or not. An attempt killed outright (its session ended: SIGKILL, no ``finally``) never
completes its line; the next attempt closes it with the time from its start to the run folder's
last write (the log, the notebook or the last saved epoch), marked ``"interrupted": true``."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from ladder.checkpoint import atomic_write

ATTEMPTS_FILE = "attempts.jsonl"


def read_attempts(folder: Path) -> list[dict[str, Any]]:
    """The attempts recorded in ``folder``, oldest first (none before the first)."""
    path = folder / ATTEMPTS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def begin_attempt(folder: Path, started: _dt.datetime) -> None:
    """Record an attempt starting at ``started``, first closing one that was killed. Call it
    before the attempt writes anything into ``folder``."""
    attempts = read_attempts(folder)
    if attempts and attempts[-1]["wall_time_s"] is None:
        killed = attempts[-1]
        began = _dt.datetime.fromisoformat(killed["started"]).timestamp()
        writes = [p.stat().st_mtime for p in folder.iterdir()
                  if p.is_file() and p.name != ATTEMPTS_FILE]
        killed.update(wall_time_s=round(max([0.0, *(w - began for w in writes)]), 1),
                      interrupted=True)
    attempts.append({"started": started.isoformat(timespec="seconds"), "wall_time_s": None})
    _write(folder, attempts)


def end_attempt(folder: Path, wall_time_s: float) -> list[dict[str, Any]]:
    """Complete the attempt :func:`begin_attempt` recorded last with its wall time; returns every
    attempt."""
    attempts = read_attempts(folder)
    attempts[-1]["wall_time_s"] = round(wall_time_s, 1)
    _write(folder, attempts)
    return attempts


def total_wall_time(attempts: list[dict[str, Any]]) -> float:
    """Seconds over every closed attempt."""
    return round(sum(a["wall_time_s"] or 0.0 for a in attempts), 1)


def _write(folder: Path, attempts: list[dict[str, Any]]) -> None:
    atomic_write(folder / ATTEMPTS_FILE, "".join(json.dumps(a) + "\n" for a in attempts))
