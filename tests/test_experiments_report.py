"""The report, on synthetic finished runs: mean ± std over seeds, the paper's values beside
ours, the runs cited, the planned rows that did not run."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ladder.config import preset_config
from ladder.experiments.manifest import Run
from ladder.experiments.report import Finished, first_seeds, report, report_folders
from ladder.experiments.results import Results
from ladder.experiments.runner import run_status
from ladder.runs import RunDir


def _finish(runs_root: Path, run: Run, result: dict, wall: float = 60.0) -> None:
    folder = run.directory(runs_root)
    folder.mkdir(parents=True)
    (folder / run.outputs[0]).write_text(json.dumps(result))
    (folder / RunDir.DONE).write_text(json.dumps({
        "id": run.id, "wall_time_s": wall, "device": "cpu (test, 2 cores)",
        "commit": "abc1234"}))


def test_report_aggregates_seeds_and_cites_runs(manifest, tmp_path):
    runs = {r.id: r for r in manifest.runs("quick")}
    elbos = [-100.0, -102.0, -104.0]
    for seed, elbo in enumerate(elbos):
        metrics = {"elbo": {"elbo": elbo, "pixel_error_x100": 5.0 + seed},
                   "cross_entropy": {"skipped": "test"}, "generation": {"fcd_generated": 10.0}}
        if seed < 2:  # seed 2's evaluation predates -log p(x) in the tables: it is left out
            metrics["log_likelihood"] = {"nll": 110.0 + 4 * seed}
        _finish(tmp_path / "runs", runs[f"mnist-ladder-seed{seed}"], {"metrics": metrics})
    _finish(tmp_path / "runs", runs["mnist-ladder-dt2-seed0"], {"metrics": {
        "elbo": {"elbo": -99.0}, "generation": {"fcd_generated": 7.5}}})
    _finish(tmp_path / "runs", runs["fig4-mnist-vamp-seed0"], {"clusters": {
        "nmi": 0.5, "ari": 0.25, "n_components_used": 12}})
    (runs["fig4-mnist-vamp-seed0"].directory(tmp_path / "runs") / "fig4.png").write_bytes(b"png")
    lines: list[str] = []
    written = report("quick", tmp_path / "runs", tmp_path / "results", manifest,
                     echo=lines.append)
    out = tmp_path / "results" / "quick"
    assert out / "table3_elbo.md" in written and out / "figures" / \
        "fig4_clusters_mnist_vamp.png" in written
    md = (out / "table3_elbo.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| mnist | ladder |"))
    # mean -102, sample std 2 (ddof 1); the paper's value beside it; the three runs cited
    assert "| -102.0 ± 2.0 | 1562.5 ± 25.1 | 6.00 ± 1.00 | 2.2 ± 0.06 | 112.0 ± 2.8 | 3/5 |" \
        in row
    assert row.endswith("| mnist-ladder-seed0, mnist-ladder-seed1, mnist-ladder-seed2 |")
    assert "| mnist | normal | - | 1528.6 ± 21.3 | - | 2.3 ± 0.06 | - | 0/5 | not run |" in md
    assert "Scale: **quick**" in md and "Seeds: 0, 1, 2" in md
    assert "Device: cpu (test, 2 cores). Commit: abc1234. Total run time: 3 min 00 s over 3 " \
           "runs" in md
    assert "| fashion | ladder |" in md  # planned rows are listed even when not run
    rows = list(csv.DictReader(open(out / "table3_elbo.csv")))
    ladder = next(r for r in rows if r["dataset"] == "mnist" and r["prior"] == "ladder")
    assert math.isclose(float(ladder["ELBO mean"]), -102.0)
    assert math.isclose(float(ladder["ELBO std"]), 2.0)
    assert ladder["runs"] == "mnist-ladder-seed0 mnist-ladder-seed1 mnist-ladder-seed2"
    assert ladder["ELBO (paper)"] == "1562.5 ± 25.1" and ladder["scale"] == "quick"
    assert ladder["-log p(x) IS n"] == "2" and math.isclose(float(ladder["-log p(x) IS mean"]),
                                                             112.0)
    # each seed's value, in the order of the seeds column; seed 2 lacks -log p(x)
    assert ladder["seeds"] == "0 1 2" and ladder["ELBO by seed"] == "-100.0 -102.0 -104.0"
    assert Results(tmp_path / "results", ["quick"]).by_seed(
        "table3_elbo", "-log p(x) IS", dataset="mnist", prior="ladder") == {0: 110.0, 1: 114.0}
    ablation = (out / "sm_table2_dt_ablation.md").read_text()
    assert "| mnist | 8 | 10.00 ± 0.00 | 6.4 ± 1.3 |" in ablation  # d_t = 8: Table 3's runs
    assert "| mnist | 2 | 7.50 | 58.7 ± 1.8 |" in ablation  # one seed: no ±
    assert "E[log p(z)] prior's estimate" in (out / "table2_cross_entropy.md").read_text()
    assert "| mnist | vamp | 0.500 | 0.250 | 12.0 | 1/5 | fig4-mnist-vamp-seed0 |" in (
        out / "fig4_clusters.md").read_text()
    assert not (out / "table1_celeba_fid.md").exists()  # no CelebA run finished
    assert "table3_elbo.md" in (out / "README.md").read_text()


def test_report_shows_kl_beside_the_cross_entropy_and_blanks_older_evaluations(manifest,
                                                                               tmp_path):
    runs = {r.id: r for r in manifest.runs("quick")}
    ce = {"bound": -30.0, "importance_sampled": -29.0}
    for seed, kl in ((0, 4.0), (1, 6.0)):
        _finish(tmp_path / "runs", runs[f"mnist-gmm-seed{seed}"], {"metrics": {
            "elbo": {"elbo": -100.0}, "cross_entropy": {**ce, "kl": kl, "kl_loo": kl - 3}}})
    _finish(tmp_path / "runs", runs["mnist-normal-seed0"], {"metrics": {  # an older evaluation
        "elbo": {"elbo": -100.0}, "cross_entropy": ce}})
    report("quick", tmp_path / "runs", tmp_path / "results", manifest, echo=lambda _: None)
    md = (tmp_path / "results" / "quick" / "table2_cross_entropy.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| dataset |"))
    assert header.endswith("| E[log p(z)] importance sampled | KL(q(z)\\|\\|p(z)) | seeds | runs |")
    # bound, the paper's value, importance sampled, KL (mean ± std over seeds)
    assert "| mnist | gmm | -30.00 ± 0.00 | -8.4 ± 0.9 | -29.00 ± 0.00 | 5.00 ± 1.41 | 2/5 |" in md
    assert "| mnist | normal | -30.00 | -19.0 ± 0.1 | -29.00 | - | 1/5 |" in md


def test_report_splits_the_elbo_into_reconstruction_and_rate(manifest, tmp_path):
    runs = {r.id: r for r in manifest.runs("quick")}
    for seed, (elbo, reconstruction) in enumerate(((1575.0, 1633.0), (1610.0, 1666.0))):
        _finish(tmp_path / "runs", runs[f"mnist-ladder-seed{seed}"], {"metrics": {
            "elbo": {"elbo": elbo, "reconstruction": reconstruction, "pixel_error_x100": 2.3}}})
    report("quick", tmp_path / "runs", tmp_path / "results", manifest, echo=lambda _: None)
    out = tmp_path / "results" / "quick"
    # rate = reconstruction - ELBO: 58 and 56 nats
    assert "| mnist | ladder | 1592.5 ± 24.7 | 1649.5 ± 23.3 | 57.0 ± 1.4 | 2.30 ± 0.00 | 2/5 |" \
        in (out / "beyond_elbo_parts.md").read_text()
    rows = list(csv.DictReader((out / "beyond_elbo_parts.csv").open()))
    ladder = next(r for r in rows if r["prior"] == "ladder" and r["dataset"] == "mnist")
    assert ladder["rate by seed"] == "58.0 56.0"


def test_report_lands_finished_runs_and_regenerates_from_them_alone(manifest, tmp_path):
    """A fresh clone has results/ but no runs/: the landed copies make the same tables, and
    the batch counts them as done."""
    runs = {r.id: r for r in manifest.runs("quick")}
    for seed in range(2):
        run = runs[f"fashion-gmm-seed{seed}"]
        _finish(tmp_path / "runs", run, {"metrics": {"elbo": {"elbo": 700.0 + seed}}})
        (run.directory(tmp_path / "runs") / RunDir.CHECKPOINT).write_bytes(b"weights")
    report("quick", tmp_path / "runs", tmp_path / "results", manifest, echo=lambda _: None)
    landed = runs["fashion-gmm-seed1"].landed(tmp_path / "results")
    assert sorted(p.name for p in landed.iterdir()) == [RunDir.DONE, RunDir.EVALUATION]
    tables = {p.name: p.read_text() for p in (tmp_path / "results" / "quick").glob("*.md")}
    shutil.rmtree(tmp_path / "runs")
    assert run_status(runs["fashion-gmm-seed1"], tmp_path / "runs", tmp_path / "results") == \
        "landed"
    report("quick", tmp_path / "runs", tmp_path / "results", manifest, echo=lambda _: None)
    again = {p.name: p.read_text() for p in (tmp_path / "results" / "quick").glob("*.md")}
    assert again == tables and "| fashion | gmm | 700.5 ± 0.7 |" in again["table3_elbo.md"]


def _folder(root: Path, prior: str, seed: int, elbo: float, d_t: int = 8) -> None:
    cfg = preset_config("quick", "mnist", prior)
    cfg.train.seed, cfg.model.prior_vae.d_t = seed, d_t
    folder = root / f"{prior}-dt{d_t}-seed{seed}"
    folder.mkdir(parents=True)
    (folder / RunDir.CONFIG).write_text(yaml.safe_dump(cfg.to_dict()))
    (folder / RunDir.EVALUATION).write_text(json.dumps({
        "metrics": {"elbo": {"elbo": elbo}, "cross_entropy": {"kl": 2.0}},
        "provenance": {"device": "cpu", "ladder_version": "0.1", "wall_time_s": 30.0,
                       "sample_counts": {"n_is": 4}}}))


def test_report_folders_pools_seeds_of_one_config_and_names_what_differs(tmp_path):
    for seed, elbo in enumerate((-100.0, -104.0)):
        _folder(tmp_path, "ladder", seed, elbo)
    _folder(tmp_path, "ladder", 0, -90.0, d_t=2)
    _folder(tmp_path, "normal", 0, -120.0)
    md = report_folders(tmp_path)
    assert "| mnist | ladder | model.prior_vae.d_t=8 | -102.0 ± 2.8 |" in md
    assert "ladder-dt8-seed0, ladder-dt8-seed1 |" in md
    assert "| mnist | ladder | model.prior_vae.d_t=2 | -90.0 |" in md
    assert "| mnist | normal | model.prior_vae.d_t=8 | -120.0 |" in md
    assert "4 evaluated run folders" in md and '{"n_is": 4}' in md
    assert "paper" not in md  # no paper column, so no word about the paper's repeats



@pytest.mark.parametrize("scale", ["quick", "medium"])
def test_the_committed_tables_regenerate_unchanged_from_the_landed_runs(scale, tmp_path):
    """What a fresh clone has (results/, no runs/) makes the committed tables byte for byte."""
    committed = Path(__file__).resolve().parent.parent / "results" / scale
    shutil.copytree(committed, tmp_path / scale)
    report(scale, tmp_path / "no-runs", tmp_path, echo=lambda _: None)
    for path in sorted(committed.glob("*.*")):
        assert (tmp_path / scale / path.name).read_bytes() == path.read_bytes(), path.name


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ladder", "gmm", "normal"]), st.integers(0, 4)),
                unique=True))
def test_the_figures_come_from_the_lowest_seed_that_finished(finished_runs):
    finished = [Finished(Run(id=f"fig5-mnist-{prior}-seed{seed}", scale="quick",
                             notebook="fig5_slp.ipynb", parameters={}, outputs=("fig5.json",),
                             labels={"fig5": {"dataset": "mnist", "prior": prior, "seed": seed}}),
                         Path("."), {}, {})
                for prior, seed in finished_runs]
    chosen = {f.run.labels["fig5"]["prior"]: f.run.labels["fig5"]["seed"]
              for f in first_seeds(finished, "fig5")}
    lowest: dict[str, int] = {}
    for prior, seed in finished_runs:
        lowest[prior] = min(seed, lowest.get(prior, seed))
    assert chosen == lowest
    assert first_seeds(finished, "tables") == []
