"""Fig 5's table over seeds, on synthetic fig5.json rows."""

from __future__ import annotations

import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.experiments.manifest import Run
from ladder.experiments.slp_table import HEADER, slp_rows
from ladder.slp_eval import whole_set_share


def _run(prior: str, seed: int, dataset: str = "mnist") -> Run:
    return Run(id=f"fig5-{dataset}-{prior}-seed{seed}", scale="quick", notebook="fig5_slp.ipynb",
               parameters={"seed": seed}, outputs=("fig5.json",),
               labels={"fig5": {"dataset": dataset, "prior": prior, "seed": seed}})


def _result(prior: str, diff: float, wins: float) -> dict:
    return {"rows": [{"model": prior, "space": "z", "metric": "log_p_min", "better": "higher",
                      "slp": diff - 5.0, "sp": -5.0, "diff": diff, "slp_better": wins,
                      "n_pairs": 100}]}


PLANNED = [_run(p, s) for p in ("ladder", "gmm", "normal") for s in (0, 1, 2)]


def test_rows_pool_seeds_and_count_them_against_the_plan():
    finished = [(_run("gmm", 1), _result("gmm", 3.0, 0.97)),
                (_run("gmm", 0), _result("gmm", 1.0, 1.0)),
                (_run("ladder", 2), _result("ladder", 0.5, 0.4))]
    md, csv_rows, cited = slp_rows(finished, PLANNED)
    table = [dict(zip(HEADER, cells, strict=True)) for cells in md]
    assert [r["model"] for r in table] == ["ladder", "gmm"]  # the manifest's order
    gmm = table[1]
    assert gmm["SLP - SP"] == "2.0 ± 1.4" and gmm["SLP better"] == "97-100%"
    assert gmm["seeds"] == "2/3" and gmm["runs"] == "fig5-mnist-gmm-seed0, fig5-mnist-gmm-seed1"
    assert table[0]["SLP better"] == "40%" and table[0]["seeds"] == "1/3"
    assert csv_rows[1]["diff mean"] == 2.0 and csv_rows[0]["diff std"] == ""
    assert cited == ["fig5-mnist-ladder-seed2", "fig5-mnist-gmm-seed0", "fig5-mnist-gmm-seed1"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(0, 1)), min_size=1, max_size=3))
def test_the_pooled_difference_is_the_mean_over_seeds_and_the_wins_span_them(per_seed):
    finished = [(_run("normal", seed), _result("normal", diff, wins))
                for seed, (diff, wins) in enumerate(per_seed)]
    _, (row,), _ = slp_rows(finished, PLANNED)
    diffs = [d for d, _ in per_seed]
    assert abs(row["diff mean"] - statistics.fmean(diffs)) < 1e-9
    assert (row["diff std"] == "") == (len(diffs) == 1)
    assert row["slp_better min"] == min(w for _, w in per_seed)
    assert row["slp_better max"] == max(w for _, w in per_seed)
    assert row["seeds"] == f"{len(per_seed)}/3"


def test_a_whole_set_measure_reads_its_difference_and_error_not_the_stored_share():
    # a fig5.json written before whole_set_share held the share of bootstrap replicates
    row = {"model": "normal", "space": "z", "metric": "coverage", "better": "higher",
           "slp": 0.39, "sp": 0.40, "diff": -0.0081, "diff_se": 0.0035, "slp_better": 0.755,
           "n_pairs": 300}
    md, (csv_row,), _ = slp_rows([(_run("normal", 1), {"rows": [row]})], PLANNED)
    share = whole_set_share(-0.0081, 0.0035, "higher")
    assert csv_row["slp_better min"] == csv_row["slp_better max"] == share
    assert dict(zip(HEADER, md[0], strict=True))["SLP better"] == "1%"
