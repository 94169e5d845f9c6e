"""The tables' number formats and the Markdown table: what they print parses back to the numbers
and cells they were given."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ladder.markdown import (
    format_duration,
    format_fraction,
    format_mean_std,
    format_pm,
    format_with_error,
    markdown_table,
    mean_std,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
positive = st.floats(min_value=1e-9, max_value=1e6)


@given(finite, st.none() | positive, st.integers(0, 6), st.none() | st.integers(0, 6))
def test_format_pm_parses_back_to_the_rounded_numbers(mean, error, digits, error_digits):
    text = format_pm(mean, error, digits, error_digits)
    parts = text.split(" ± ")
    assert len(parts) == (1 if error is None else 2)
    assert math.isclose(float(parts[0]), mean, abs_tol=0.5 * 10 ** -digits + 1e-9)
    assert len(parts[0].partition(".")[2]) == digits
    if error is not None:
        shown = digits if error_digits is None else error_digits
        assert math.isclose(float(parts[1]), error, abs_tol=0.5 * 10 ** -shown + 1e-9)
        assert len(parts[1].partition(".")[2]) == shown


@given(finite, positive)
def test_format_with_error_keeps_two_significant_digits_of_the_error(value, error):
    mean_text, error_text = format_with_error(value, error).split(" ± ")
    decimals = len(error_text.partition(".")[2])
    assert decimals == len(mean_text.partition(".")[2])  # value and error to the same place
    if error < 95:  # two significant digits (99.5 rounds to 100)
        assert 10 <= float(error_text) * 10 ** decimals <= 100
    else:  # a large error to the unit
        assert decimals == 0 and error_text == f"{error:.0f}"
    assert math.isclose(float(mean_text), value, abs_tol=0.5 * 10 ** -decimals + 1e-9)


def test_format_with_error_without_an_error_or_with_a_tiny_one():
    assert format_with_error(1234.5678, None) == "1235"
    assert format_with_error(0.5, math.nan) == format_with_error(0.5, 0.0) == "0.5"
    assert format_with_error(3.49e-8, 1.7e-9) == "0.0000000349 ± 0.0000000017"
    assert format_with_error(3.49e-8, 1.7e-9, max_digits=6) == "3.49e-08 ± 2e-09"


@given(st.lists(finite, min_size=1, max_size=8))
def test_mean_std_is_the_mean_and_the_sample_std(values):
    mean, std = mean_std(values)
    assert math.isclose(mean, sum(values) / len(values), rel_tol=1e-9, abs_tol=1e-6)
    if len(values) == 1:
        assert std is None and format_mean_std(values, 2) == f"{values[0] + 0.0:.2f}"  # -0.0 sums to 0.0
    else:
        squares = sum((v - mean) ** 2 for v in values)
        assert math.isclose(std**2 * (len(values) - 1), squares, rel_tol=1e-9, abs_tol=1e-6)
        assert format_mean_std(values, 2) == format_pm(mean, std, 2)


def test_mean_std_of_nothing_is_an_error_and_prints_a_dash():
    with pytest.raises(ValueError, match="at least one value"):
        mean_std([])
    assert format_mean_std([], 1) == "-"


def test_fractions_and_durations():
    assert [format_fraction(f) for f in (None, math.nan, 0.0, 0.964, 1)] == [
        "n/a", "n/a", "0%", "96%", "100%"]
    assert [format_duration(s) for s in (42.4, 185, 7620)] == ["42 s", "3 min 05 s",
                                                                "2 h 07 min"]


cell = st.text(st.characters(blacklist_characters="\\\n\r", blacklist_categories=("Cs",)),
               max_size=8).map(str.strip).filter(bool)


@given(st.integers(1, 5).flatmap(lambda n: st.tuples(
    st.lists(cell, min_size=n, max_size=n),
    st.lists(st.lists(cell, min_size=n, max_size=n), max_size=4))))
def test_markdown_table_round_trips_its_cells(table):
    header, rows = table
    lines = markdown_table(header, rows).split("\n")
    assert lines[1] == "|" + "---|" * len(header)
    cells = [re.split(r"(?<!\\)\|", line)[1:-1] for line in lines[:1] + lines[2:]]
    parsed = [[c.strip().replace("\\|", "|") for c in row] for row in cells]
    assert parsed == [header, *rows]  # a | inside a cell is escaped, not a cell boundary
