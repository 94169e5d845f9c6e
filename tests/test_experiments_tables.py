"""The report's columns: a quantity read from a run's result file, or the difference of two."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ladder.experiments.tables import TABLES, Column

numbers = st.floats(-1e6, 1e6, allow_nan=False)


@given(numbers, numbers)
def test_a_column_with_minus_reads_the_difference_of_its_two_numbers(first, second):
    result = {"metrics": {"elbo": {"reconstruction": first, "elbo": second}}}
    rate = Column("rate", ("metrics", "elbo", "reconstruction"),
                  minus=("metrics", "elbo", "elbo"))
    assert rate.read(result) == first - second
    assert Column("elbo", ("metrics", "elbo", "elbo")).read(result) == second


def test_a_column_reads_none_where_a_number_is_missing_or_not_a_number():
    rate = Column("rate", ("metrics", "reconstruction"), minus=("metrics", "elbo"))
    assert rate.read({"metrics": {"reconstruction": 5.0}}) is None
    assert rate.read({"metrics": {"elbo": 5.0}}) is None
    assert rate.read({"metrics": {"reconstruction": True, "elbo": 1.0}}) is None
    assert rate.read({"metrics": "skipped"}) is None
    assert Column("n", ("n",)).read({"n": 3}) == 3.0


def test_the_elbo_parts_add_up_to_the_elbo():
    """beyond_elbo_parts: ELBO = reconstruction - rate, in every run that has both."""
    spec = next(t for t in TABLES if t.name == "beyond_elbo_parts")
    columns = {c.header: c for c in spec.columns}
    result = {"metrics": {"elbo": {"elbo": 1575.2, "reconstruction": 1632.9,
                                   "pixel_error_x100": 2.29}}}
    elbo, reconstruction, rate = (columns[h].read(result)
                                  for h in ("ELBO", "reconstruction", "rate"))
    assert abs(reconstruction - rate - elbo) < 1e-9 and abs(rate - 57.7) < 1e-9
