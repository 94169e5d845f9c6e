"""scripts/fcd_parts.py: the parts of landed runs' Fréchet distances, its tables and refusals."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import fcd_parts  # noqa: E402


def parts(fcd: float) -> dict:
    return {"fcd": fcd, "mean_term": fcd / 2, "covariance_term": fcd / 2, "class_tv": 0.1,
            "unmatched_share": 0.0, "resampled_fcd": fcd + 3, "resampled_fcd_std": 1.0,
            "class_matched_fcd": fcd / 2, "class_matched_fcd_std": 0.5,
            "class_shares": [0.6, 0.4], "reference_shares": [0.5, 0.5]}  # fmt: skip


def land(folder: Path, files: dict) -> None:
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content))


def fig5(models: dict) -> dict:
    return {"dataset": "mnist", "seed": 1, "n_pairs": 300, "iters": 500, "models": models,
            "rows": [{"metric": "fcd", "slp": 140.0, "sp": 70.0}]}  # fmt: skip


def evaluation(fcd: float) -> dict:
    return {"provenance": {"config": {"data": {"dataset": "mnist"}}},
            "metrics": {"generation": {"fcd_generated": fcd}}}  # fmt: skip


def test_runs_without_a_checkpoint_are_left_alone_and_landed_parts_are_tabulated(tmp_path, capsys):
    results, runs = tmp_path / "results", tmp_path / "runs"
    runs.mkdir()
    results.mkdir()
    (results / "README.md").write_text("# index\n")  # a report folder
    land(results / "runs" / "fig5-mnist-gmm-seed1", {"fig5.json": fig5({"gmm": "/x/gmm"})})
    land(results / "runs" / "mnist-gmm-seed1", {"evaluation.json": evaluation(6.0)})
    land(results / "runs" / "fig5-mnist-pair-seed0", {"fig5.json": fig5({"a": "/x", "b": "/y"})})
    land(results / "runs" / "fig5-mnist-normal-seed1", {
        "fig5.json": fig5({"normal": "/x/mnist-normal-seed1"}),
        "fcd_parts.json": {"parts": {"slp": parts(140.0), "sp": parts(70.0)}}})  # fmt: skip
    land(results / "runs" / "mnist-normal-seed1", {
        "evaluation.json": evaluation(514.0),
        "fcd_parts.json": {"draws": [520.0, 524.0], "parts": parts(520.0)}})  # fmt: skip
    assert fcd_parts.main([str(results), str(runs)]) == 0
    out = capsys.readouterr().out
    assert "fig5-mnist-gmm-seed1: no checkpoint" in out and "mnist-gmm-seed1: no checkpoint" in out
    assert "fig5-mnist-pair-seed0: compares 2 models" in out
    assert not (results / "runs" / "mnist-gmm-seed1" / "fcd_parts.json").exists()
    table = (results / "fcd_parts.md").read_text()
    frame = (
        "| fig5-mnist-normal-seed1 | SLP | 140.0 | 70.0 | 0.100 | 0.0% | 143.0 ± 1.0 | 70.0 ± 0.5 |"
    )
    sample = "| mnist-normal-seed1 | 514.0 | 522.0 ± 2.8 (2) | 520.0 | 260.0 | 0.100 |"
    assert frame in table and sample in table
    assert "gmm" not in table
    assert (results / "figures" / "fcd_parts_class_mix.png").stat().st_size > 0


def test_a_folder_without_landed_runs_is_refused_in_one_line(tmp_path, capsys):
    assert fcd_parts.main([str(tmp_path), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results/paper runs/paper" in err


def test_a_results_folder_without_a_report_keeps_the_table_and_refuses_the_figure(
    tmp_path, capsys
):
    results, runs = tmp_path / "results", tmp_path / "runs"
    runs.mkdir()
    land(results / "runs" / "mnist-normal-seed1", {
        "evaluation.json": evaluation(514.0),
        "fcd_parts.json": {"draws": [520.0], "parts": parts(520.0)}})  # fmt: skip
    assert fcd_parts.main([str(results), str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no class-mix figure" in err and "ladder report" in err
    assert "| mnist-normal-seed1 | 514.0 |" in (results / "fcd_parts.md").read_text()
