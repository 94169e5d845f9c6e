"""ladder.experiments.results: reading report folders across scales, and the agreement of our
ordering of the priors with the paper's."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.experiments.paper import PRIORS, paper_value
from ladder.experiments.results import (
    VERDICT_SEEDS,
    Results,
    ResultsError,
    agreement,
    agreement_table,
)


def _write_table(folder: Path, name: str, rows: list[dict[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("# index\n")
    with open(folder / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (folder / f"{name}.md").write_text(f"# The {name} table\n\n| a |\n|---|\n| 1 |\n")


def _rows(finished: int, total: int = 3, seeds: int = 1) -> list[dict[str, str]]:
    return [{"dataset": "mnist", "prior": p,
             "runs": " ".join(f"{p}-seed{s}" for s in range(seeds)) if i < finished else ""}
            for i, p in enumerate(PRIORS[:total])]


def test_a_table_comes_from_the_scale_with_most_finished_rows(tmp_path):
    _write_table(tmp_path / "medium", "t", _rows(finished=1))
    _write_table(tmp_path / "quick", "t", _rows(finished=3))
    results = Results(tmp_path, ["paper", "medium", "quick"])
    assert results.scales == ["medium", "quick"]
    assert results.scale("t") == "quick"
    assert [r["prior"] for r in results.rows("t")] == list(PRIORS[:3])


def test_a_named_scale_is_read_even_with_fewer_finished_rows(tmp_path):
    _write_table(tmp_path / "paper", "t", _rows(finished=1))
    _write_table(tmp_path / "medium", "t", _rows(finished=3))
    results = Results(tmp_path, ["paper", "medium"])
    assert results.scale("t") == "medium"
    assert [r["runs"] for r in results.rows("t", scale="paper")] == ["normal-seed0", "", ""]
    assert results.markdown("t", scale="paper").startswith("**The t table**")
    with pytest.raises(ResultsError, match="no scale in"):
        results.rows("t", scale="quick")


def test_a_larger_scale_takes_over_once_its_rows_have_the_seeds_of_a_verdict(tmp_path):
    _write_table(tmp_path / "medium", "t", _rows(finished=3, seeds=VERDICT_SEEDS))
    _write_table(tmp_path / "quick", "t", _rows(finished=3, seeds=VERDICT_SEEDS + 2))
    _write_table(tmp_path / "paper", "t", _rows(finished=3, seeds=VERDICT_SEEDS - 1))
    results = Results(tmp_path, ["paper", "medium", "quick"])
    assert results.scale("t") == "medium"  # every paper row finished, none with enough seeds
    _write_table(tmp_path / "paper", "t", _rows(finished=3, seeds=VERDICT_SEEDS))
    assert results.scale("t") == "paper"


def _seed_rows(seeds: list[int]) -> list[dict[str, str]]:
    return [{"dataset": "mnist", "prior": p, "runs": " ".join(f"{p}-seed{s}" for s in range(n))}
            for p, n in zip(PRIORS, seeds, strict=True)]


@settings(max_examples=40, deadline=None)
@given(paper=st.lists(st.integers(0, 5), min_size=5, max_size=5),
       medium=st.lists(st.integers(0, 5), min_size=5, max_size=5), row=st.integers(0, 4))
def test_another_seed_never_makes_a_scale_lose_the_choice(tmp_path_factory, paper, medium, row):
    root = tmp_path_factory.mktemp("results")
    _write_table(root / "medium", "t", _seed_rows(medium))
    _write_table(root / "paper", "t", _seed_rows(paper))
    results = Results(root, ["paper", "medium"])
    before = results.scale("t")
    grown = {"paper": paper, "medium": medium}[before].copy()
    grown[row] += 1
    _write_table(root / before, "t", _seed_rows(grown))
    assert results.scale("t") == before
    if all(n >= VERDICT_SEEDS for n in paper):
        assert before == "paper"  # a full paper table is read, whatever the smaller scale has


def test_a_tie_goes_to_the_larger_scale(tmp_path):
    _write_table(tmp_path / "medium", "t", _rows(finished=2))
    _write_table(tmp_path / "quick", "t", _rows(finished=2))
    assert Results(tmp_path, ["medium", "quick"]).scale("t") == "medium"


def test_markdown_makes_the_title_bold(tmp_path):
    _write_table(tmp_path / "quick", "t", _rows(finished=1))
    text = Results(tmp_path, ["quick"]).markdown("t")
    assert text.startswith("**The t table**\n") and "| 1 |" in text


def test_figures_come_from_the_largest_scale_that_has_any(tmp_path):
    _write_table(tmp_path / "medium", "t", _rows(1))
    _write_table(tmp_path / "quick", "t", _rows(1))
    (tmp_path / "quick" / "figures").mkdir()
    (tmp_path / "quick" / "figures" / "fig4_a.png").write_bytes(b"png")
    results = Results(tmp_path, ["medium", "quick"])
    assert [p.name for p in results.figures("fig4_*.png")] == ["fig4_a.png"]
    (tmp_path / "medium" / "figures").mkdir()
    (tmp_path / "medium" / "figures" / "fig4_b.png").write_bytes(b"png")
    assert [p.parent.parent.name for p in results.figures("fig4_*.png")] == ["medium"]
    assert results.figures("none_*.png") == []


def test_figures_of_a_named_scale_stay_with_their_table(tmp_path):
    _write_table(tmp_path / "medium", "t", _rows(1))
    _write_table(tmp_path / "quick", "t", _rows(1))
    for scale, name in (("medium", "fig5_a.png"), ("quick", "fig5_a.png"), ("quick", "fig5_b.png")):
        (tmp_path / scale / "figures").mkdir(exist_ok=True)
        (tmp_path / scale / "figures" / name).write_bytes(b"png")
    results = Results(tmp_path, ["medium", "quick"])
    assert [p.parent.parent.name for p in results.figures("fig5_*.png")] == ["medium"]
    quick = results.figures("fig5_*.png", scale="quick")
    assert [(p.parent.parent.name, p.name) for p in quick] == [
        ("quick", "fig5_a.png"), ("quick", "fig5_b.png")]
    assert results.figures("fig5_*.png", scale="paper") == []


def test_missing_results_and_tables_say_so(tmp_path):
    with pytest.raises(ResultsError, match="ladder report"):
        Results(tmp_path, ["quick"])
    _write_table(tmp_path / "quick", "t", _rows(1))
    with pytest.raises(ResultsError, match="other"):
        Results(tmp_path, ["quick"]).folder("other")


def _report_row(prior: str, seeds: int, **means: float) -> dict[str, str]:
    """A row of a ladder report CSV: ``means`` by column, the std 0.5 where seeds > 1."""
    row = {"dataset": "mnist", "prior": prior, "seeds": " ".join(map(str, range(seeds))),
           "runs": " ".join(f"mnist-{prior}-seed{s}" for s in range(seeds))}
    for column, mean in means.items():
        row |= {f"{column} mean": str(mean) if seeds else "",
                f"{column} std": "0.5" if seeds > 1 else ""}
    return row


def test_mean_std_reads_one_row_and_says_when_it_cannot(tmp_path):
    _write_table(tmp_path / "paper", "table3_elbo", [
        _report_row("ladder", 3, ELBO=1582.4), _report_row("gmm", 1, ELBO=1575.2),
        _report_row("vamp", 0, ELBO=0.0)])
    results = Results(tmp_path, ["paper"])
    assert results.mean_std("table3_elbo", "ELBO", dataset="mnist", prior="ladder") == (
        1582.4, 0.5)
    assert results.mean_std("table3_elbo", "ELBO", prior="gmm") == (1575.2, None)
    with pytest.raises(ResultsError, match="not run yet"):
        results.mean_std("table3_elbo", "ELBO", prior="vamp")
    with pytest.raises(ResultsError, match="3 rows"):
        results.mean_std("table3_elbo", "ELBO", dataset="mnist")


def test_by_seed_pairs_each_seed_with_its_value_and_says_when_the_table_is_older(tmp_path):
    row = _report_row("ladder", 3, ELBO=1580.0) | {"ELBO by seed": "1582.4 nan 1577.6"}
    _write_table(tmp_path / "paper", "table3_elbo", [row])
    _write_table(tmp_path / "paper", "table2_cross_entropy", [_report_row("gmm", 1, KL=36.4)])
    results = Results(tmp_path, ["paper"])
    assert results.by_seed("table3_elbo", "ELBO", prior="ladder") == {0: 1582.4, 2: 1577.6}
    with pytest.raises(ResultsError, match="no per-seed KL: run ladder report again"):
        results.by_seed("table2_cross_entropy", "KL", prior="gmm")


def _seeded_row(prior: str, values: dict[int, float], column: str = "ELBO") -> dict[str, str]:
    """A report CSV row of ``prior`` with ``values`` by seed (mean and std left blank)."""
    seeds = sorted(values)
    return {"dataset": "mnist", "prior": prior, "seeds": " ".join(map(str, seeds)),
            "runs": " ".join(f"mnist-{prior}-seed{s}" for s in seeds),
            f"{column} mean": "", f"{column} std": "",
            f"{column} by seed": " ".join(str(values[s]) for s in seeds)}


def test_by_prior_of_one_seed_shows_that_seed_alone(tmp_path):
    _write_table(tmp_path / "paper", "table3_elbo", [
        _seeded_row("gmm", {0: 1575.24}), _seeded_row("ladder", {0: 1582.4, 1: 1579.0}),
        _seeded_row("vamp", {1: 1560.0})])
    results = Results(tmp_path, ["paper"])
    quantities = {"ELBO": ("table3_elbo", "ELBO")}
    assert results.by_prior("mnist", "paper", quantities, seed=0).splitlines() == [
        "| mnist, paper scale, seed 0 | gmm | ladder |", "|---|---|---|",
        "| ELBO | 1575.2 | 1582.4 |"]
    assert results.by_prior("mnist", "paper", quantities, seed=1).splitlines()[2] == (
        "| ELBO | 1579.0 | 1560.0 |")
    assert results.seeds("table3_elbo", "paper") == [0, 1]
    assert results.seeds("table3_elbo", "paper", prior="gmm") == [0]


@settings(max_examples=30, deadline=None)
@given(ours=st.dictionaries(st.integers(0, 4), st.floats(-1e4, 1e4), min_size=1),
       theirs=st.dictionaries(st.integers(0, 4), st.floats(-1e4, 1e4), min_size=1))
def test_leads_are_the_reference_minus_the_other_in_each_shared_seed(tmp_path_factory, ours,
                                                                     theirs):
    root = tmp_path_factory.mktemp("leads")
    _write_table(root / "paper", "table3_elbo",
                 [_seeded_row("ladder", ours), _seeded_row("gmm", theirs)])
    results = Results(root, ["paper"])
    lines = results.leads("mnist", "paper", {"ELBO": ("table3_elbo", "ELBO")}).splitlines()
    shared = sorted(ours.keys() & theirs.keys())
    lead = results.lead("table3_elbo", "ELBO", "paper", "gmm", dataset="mnist")
    assert list(lead) == shared
    assert all(lead[s] == pytest.approx(ours[s] - theirs[s], abs=1e-6) for s in shared)
    assert lines[0] == "| " + " | ".join(
        ["mnist, paper scale: ladder minus", "prior", *(f"seed {s}" for s in shared)]) + " |"
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[:2] == ["ELBO", "gmm"] and len(cells) == 2 + len(shared)
    for seed, cell in zip(shared, cells[2:], strict=True):
        assert abs(float(cell) - (ours[seed] - theirs[seed])) <= 0.05 + 1e-9


def test_leads_need_the_reference_to_have_run(tmp_path):
    _write_table(tmp_path / "paper", "table3_elbo", [_seeded_row("gmm", {0: 1.0})])
    with pytest.raises(ResultsError, match="no finished ladder run on mnist"):
        Results(tmp_path, ["paper"]).leads("mnist", "paper", {"ELBO": ("table3_elbo", "ELBO")})


@settings(max_examples=30, deadline=None)
@given(ours=st.dictionaries(st.integers(0, 4), st.integers(-3, 3), min_size=1),
       theirs=st.dictionaries(st.integers(0, 4), st.integers(-3, 3)),
       higher=st.booleans())
def test_seeds_ahead_counts_the_shared_seeds_the_reference_wins(tmp_path_factory, ours, theirs,
                                                                higher):
    root = tmp_path_factory.mktemp("ahead")
    _write_table(root / "paper", "table3_elbo", [
        _seeded_row(p, ours if p == "ladder" else theirs if p == "gmm" else {})
        for p in PRIORS])
    label = f"ELBO ({'higher' if higher else 'lower'} is better)"
    text = Results(root, ["paper"]).seeds_ahead(["mnist"], "paper",
                                                {label: ("table3_elbo", "ELBO")})
    header, _, line = text.splitlines()
    assert header.split(" | ")[2:] == ["normal", "vamp", "gmm", "hierarchical |"]
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    shared = ours.keys() & theirs.keys()
    sense = 1 if higher else -1
    ahead = sum(sense * (ours[s] - theirs[s]) > 0 for s in shared)  # a tie is not ahead
    assert cells == [label, "mnist", "-", "-", f"{ahead}/{len(shared)}" if shared else "-", "-"]
    results = Results(root, ["paper"])
    counts = results.ahead("mnist", "paper", label, ("table3_elbo", "ELBO"))
    assert counts == ({"gmm": (ahead, len(shared))} if shared else {})
    signed = results.signed_leads("mnist", "paper", label, ("table3_elbo", "ELBO"))
    expected = {s: sense * (ours[s] - theirs[s]) for s in sorted(shared)}
    assert signed == ({"gmm": pytest.approx(expected)} if shared else {})


def test_seeds_ahead_needs_the_label_to_say_which_way_is_better(tmp_path):
    _write_table(tmp_path / "paper", "table3_elbo", [_seeded_row(p, {0: 1.0}) for p in PRIORS])
    with pytest.raises(ValueError, match="whether higher or lower is better"):
        Results(tmp_path, ["paper"]).seeds_ahead(["mnist"], "paper",
                                                 {"ELBO": ("table3_elbo", "ELBO")})


def test_by_prior_sets_the_finished_priors_side_by_side(tmp_path):
    _write_table(tmp_path / "paper", "table3_elbo", [
        _report_row("normal", 0, ELBO=0.0), _report_row("gmm", 1, ELBO=1575.24),
        _report_row("ladder", 3, ELBO=1582.4)])
    _write_table(tmp_path / "paper", "table2_cross_entropy", [
        _report_row("ladder", 3, **{"KL(q(z)||p(z))": 41.661})])
    text = Results(tmp_path, ["paper"]).by_prior("mnist", "paper", {
        "ELBO": ("table3_elbo", "ELBO"), "KL": ("table2_cross_entropy", "KL(q(z)||p(z))")})
    assert text.splitlines() == [
        "| mnist, paper scale | gmm | ladder |", "|---|---|---|",
        "| ELBO | 1575.2 | 1582.4 ± 0.5 |",  # digits as the report prints the column
        "| KL | - | 41.66 ± 0.50 |",  # no row for the GMM in the second table
        "| seeds | 0 | 0 1 2 |"]
    with pytest.raises(ResultsError, match="no column 'KL'"):
        Results(tmp_path, ["paper"]).by_prior("mnist", "paper", {"KL": ("table3_elbo", "KL")})


def _elbo_rows(transform) -> list[dict[str, str]]:
    return [{"dataset": "mnist", "prior": p,
             "ELBO mean": str(transform(paper_value("table3", "elbo", "mnist", p).mean))}
            for p in PRIORS]


@settings(max_examples=50, deadline=None)
@given(scale=st.floats(0.01, 100), shift=st.floats(-1e4, 1e4))
def test_agreement_is_one_for_the_paper_order_and_minus_one_for_its_reverse(scale, shift):
    same = agreement(_elbo_rows(lambda v: scale * v + shift), "ELBO mean", ("table3", "elbo"), True)
    reverse = agreement(_elbo_rows(lambda v: -scale * v + shift), "ELBO mean",
                        ("table3", "elbo"), True)
    assert same["mnist"].tau == 1 and reverse["mnist"].tau == -1
    assert same["mnist"].best_ours == same["mnist"].best_paper == "ladder"
    assert reverse["mnist"].best_ours == "vamp" and same["mnist"].priors == len(PRIORS)


def test_agreement_skips_missing_values_and_lower_is_better():
    rows = _elbo_rows(lambda v: v)
    rows[0]["ELBO mean"] = "nan"
    result = agreement(rows, "ELBO mean", ("table3", "elbo"), higher_better=False)
    assert result["mnist"].priors == len(PRIORS) - 1 and result["mnist"].best_ours == "vamp"
    assert "| mnist | +1.00 | 4 | vamp | vamp |" in agreement_table("ELBO", result)


def test_landed_reads_one_json_file_of_each_landed_run_that_has_it(tmp_path):
    _write_table(tmp_path / "paper", "table3_elbo", _rows(1))
    for run, content in (("mnist-normal-seed1", {"draws": [1.0]}), ("fig5-mnist-gmm-seed1", None)):
        folder = tmp_path / "paper" / "runs" / run
        folder.mkdir(parents=True)
        if content is not None:
            (folder / "fcd_parts.json").write_text(json.dumps(content))
    results = Results(tmp_path, ["paper"])
    assert results.landed("paper", "fcd_parts.json") == {"mnist-normal-seed1": {"draws": [1.0]}}
    assert results.landed("paper", "fig5.json") == {}


def test_a_table_without_a_csv_is_read_from_the_scale_named(tmp_path):
    _write_table(tmp_path / "paper", "table3_elbo", _rows(1))
    (tmp_path / "paper" / "fcd_parts.md").write_text("# The parts\n\n| a |\n")
    results = Results(tmp_path, ["paper"])
    assert results.markdown("fcd_parts", "paper") == "**The parts**\n\n| a |\n"
    with pytest.raises(ResultsError):
        results.markdown("fcd_parts")  # no scale to choose it from


def test_class_mixes_set_each_run_beside_the_test_images(tmp_path):
    _write_table(tmp_path / "paper", "table3_elbo", _rows(1))
    mix = {"class_shares": [0.6, 0.4], "reference_shares": [0.5, 0.5]}
    landed = {"fig5-mnist-normal-seed1": {"parts": {"slp": mix, "sp": {**mix, "class_shares":
                                                                      [0.5, 0.5]}}},
              "mnist-normal-seed1": {"parts": mix}}  # fmt: skip
    for run, content in landed.items():
        folder = tmp_path / "paper" / "runs" / run
        folder.mkdir(parents=True)
        (folder / "fcd_parts.json").write_text(json.dumps(content))
    assert Results(tmp_path, ["paper"]).class_mixes("paper") == {
        "fig5-mnist-normal-seed1": {"test images": [0.5, 0.5], "straight line": [0.5, 0.5],
                                    "SLP": [0.6, 0.4]},
        "mnist-normal-seed1": {"test images": [0.5, 0.5], "samples": [0.6, 0.4]},
    }  # fmt: skip


def _land_fig5(root: Path, run: str, dataset: str, seed: int, rows: list[dict]) -> None:
    folder = root / "paper" / "runs" / run
    folder.mkdir(parents=True)
    (folder / "fig5.json").write_text(json.dumps({"dataset": dataset, "seed": seed,
                                                  "rows": rows}))


def _fig5_row(model: str, metric: str, better: str, diff: float, diff_se: float) -> dict:
    return {"model": model, "metric": metric, "better": better, "diff": diff, "diff_se": diff_se}


_differences = st.floats(-50, 50, allow_nan=False).filter(lambda d: d != 0)


@settings(max_examples=25, deadline=None)
@given(runs=st.dictionaries(st.tuples(st.sampled_from(["mnist", "fashion"]),
                                      st.sampled_from(["normal", "gmm", "ladder"]),
                                      st.integers(0, 3)),
                            st.tuples(_differences, st.floats(0.01, 5), _differences,
                                      st.floats(0.01, 5)),
                            min_size=1, max_size=8))
def test_slp_leads_are_differences_in_standard_errors_signed_for_slp(tmp_path_factory, runs):
    root = tmp_path_factory.mktemp("results")
    _write_table(root / "paper", "table3_elbo", _rows(1))
    for (dataset, model, seed), (fcd, fcd_se, precision, precision_se) in runs.items():
        _land_fig5(root, f"fig5-{dataset}-{model}-seed{seed}", dataset, seed,
                   [_fig5_row(model, "fcd", "lower", fcd, fcd_se),
                    _fig5_row(model, "precision", "higher", precision, precision_se),
                    _fig5_row(model, "length", "lower", 1.0, 0.1)])
    measures = {"Fréchet distance": "fcd", "precision": "precision"}
    leads = Results(root, ["paper"]).slp_leads("paper", measures)
    for (dataset, model, seed), (fcd, fcd_se, precision, precision_se) in runs.items():
        assert leads["Fréchet distance", dataset][model][seed] == pytest.approx(-fcd / fcd_se)
        assert leads["precision", dataset][model][seed] == pytest.approx(precision / precision_se)
    assert {label for label, _ in leads} == set(measures)  # length is not asked for
    for by_model in leads.values():  # the columns in PRIORS order
        assert list(by_model) == [p for p in PRIORS if p in by_model]
    assert sum(len(seeds) for by_model in leads.values() for seeds in by_model.values()) == (
        2 * len(runs))


def test_slp_leads_refuse_a_difference_without_a_standard_error(tmp_path):
    _write_table(tmp_path / "paper", "table3_elbo", _rows(1))
    _land_fig5(tmp_path, "fig5-mnist-gmm-seed1", "mnist", 1,
               [_fig5_row("gmm", "fcd", "lower", 3.0, 0.0)])
    with pytest.raises(ValueError, match="fig5-mnist-gmm-seed1: the fcd difference has no"):
        Results(tmp_path, ["paper"]).slp_leads("paper", {"FCD": "fcd"})
