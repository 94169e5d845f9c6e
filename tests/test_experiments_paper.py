"""The paper's numbers: printed as the paper prints them, looked up by table, quantity, dataset and
prior or d_t, complete for every table the report shows them in."""

from __future__ import annotations

import pytest

from ladder.experiments.paper import PAPER_VALUES, PRIORS, Reported, paper_value
from ladder.experiments.tables import TABLES

ALL = [(table, quantity, dataset, key, value)
       for table, quantities in PAPER_VALUES.items()
       for quantity, datasets in quantities.items()
       for dataset, values in datasets.items()
       for key, value in values.items()]


def test_values_print_as_in_the_paper():
    assert str(paper_value("table3", "elbo", "mnist", "ladder")) == "1562.5 ± 25.1"
    assert str(paper_value("table3", "pixel_error", "fashion", "normal")) == "4.3 ± 0.12"
    assert str(paper_value("sm_table1", "difference", "mnist", "gmm")) == "-0.2 ± 1.3"
    assert paper_value("sm_table2", "generated", "celeba", 32) == Reported(132.7, 0.5)
    assert paper_value("sm_table1", "real", "fashion", "all").mean == 0.4
    assert paper_value("table1", "generated", "mnist", "ladder") is None  # CelebA only
    assert paper_value("table9", "elbo", "mnist", "ladder") is None


@pytest.mark.parametrize("table, quantity, dataset, key, value", ALL)
def test_every_value_prints_its_numbers_exactly(table, quantity, dataset, key, value):
    mean, std = str(value).split(" ± ")
    assert (float(mean), float(std)) == (value.mean, value.std)  # no digit rounded away


def test_every_paper_column_of_the_report_has_its_values():
    for spec in TABLES:
        for column in spec.columns:
            if column.paper is None:
                continue
            table, quantity = column.paper
            assert quantity in PAPER_VALUES[table], (spec.name, column.header)
            for values in PAPER_VALUES[table][quantity].values():
                assert set(values) in ({"all"}, set(PRIORS)) or all(
                    isinstance(k, int) for k in values), (spec.name, column.header)
