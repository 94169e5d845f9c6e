from __future__ import annotations

import datetime as _dt
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.experiments.attempts import (
    begin_attempt,
    end_attempt,
    read_attempts,
    total_wall_time,
)

T0 = _dt.datetime(2026, 12, 1, 12, 0, tzinfo=_dt.timezone.utc)


def _at(seconds: float) -> _dt.datetime:
    return T0 + _dt.timedelta(seconds=seconds)


def _write_at(path, seconds: float) -> None:
    """A run-folder file last written ``seconds`` after T0."""
    path.write_text("an epoch\n")
    stamp = _at(seconds).timestamp()
    os.utime(path, (stamp, stamp))


def test_a_finished_attempt_is_one_closed_line(tmp_path):
    begin_attempt(tmp_path, T0)
    assert read_attempts(tmp_path) == [{"started": T0.isoformat(timespec="seconds"),
                                        "wall_time_s": None}]
    end_attempt(tmp_path, 12.34)
    assert read_attempts(tmp_path)[0]["wall_time_s"] == 12.3


def test_a_killed_attempt_counts_up_to_its_last_write(tmp_path):
    begin_attempt(tmp_path, T0)  # then killed: no end_attempt
    _write_at(tmp_path / "metrics.jsonl", 3600)
    _write_at(tmp_path / "log.txt", 3700)
    begin_attempt(tmp_path, _at(10_000))
    end_attempt(tmp_path, 50.0)
    killed, resumed = read_attempts(tmp_path)
    assert killed == {"started": T0.isoformat(timespec="seconds"), "wall_time_s": 3700.0,
                      "interrupted": True}
    assert resumed["wall_time_s"] == 50.0 and "interrupted" not in resumed
    assert total_wall_time(read_attempts(tmp_path)) == 3750.0


def test_a_killed_attempt_that_wrote_nothing_counts_zero(tmp_path):
    begin_attempt(tmp_path, T0)
    begin_attempt(tmp_path, _at(60))
    assert read_attempts(tmp_path)[0]["wall_time_s"] == 0.0
    assert total_wall_time(read_attempts(tmp_path)) == 0.0  # the open one counts nothing yet


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10_000)), min_size=1, max_size=6))
def test_every_attempt_killed_or_not_is_counted_once(tmp_path_factory, attempts):
    folder = tmp_path_factory.mktemp("run")
    clock, expected = 0, 0
    for killed, seconds in attempts:
        begin_attempt(folder, _at(clock))
        if killed:
            _write_at(folder / "checkpoint.pt", clock + seconds)
        else:
            end_attempt(folder, seconds)
        clock += seconds + 1_000  # a gap between sessions is not run time
        expected += seconds
    begin_attempt(folder, _at(clock))  # the next start closes a killed last attempt
    recorded = read_attempts(folder)
    assert len(recorded) == len(attempts) + 1
    assert [a.get("interrupted", False) for a in recorded[:-1]] == [k for k, _ in attempts]
    assert total_wall_time(recorded) == expected
