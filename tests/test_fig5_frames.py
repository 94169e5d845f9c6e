"""scripts/fig5_frames.py: the parts of landed Fig 5 runs' Fréchet distances, table and refusals."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import fig5_frames  # noqa: E402


def parts(fcd: float) -> dict:
    return {"fcd": fcd, "mean_term": fcd / 2, "covariance_term": fcd / 2, "class_tv": 0.1,
            "unmatched_share": 0.0, "resampled_fcd": fcd + 3, "resampled_fcd_std": 1.0,
            "class_matched_fcd": fcd / 2, "class_matched_fcd_std": 0.5}  # fmt: skip


def land(results: Path, name: str, models: dict, frames: dict | None = None) -> None:
    folder = results / "runs" / name
    folder.mkdir(parents=True)
    rows = [{"metric": "fcd", "slp": 140.0, "sp": 70.0}]
    fig5 = {"dataset": "mnist", "seed": 1, "n_pairs": 300, "iters": 500, "models": models,
            "rows": rows}  # fmt: skip
    (folder / "fig5.json").write_text(json.dumps(fig5))
    if frames is not None:
        (folder / "frames.json").write_text(json.dumps(frames))


def test_runs_without_a_checkpoint_are_left_alone_and_landed_parts_are_tabulated(tmp_path, capsys):
    results, runs = tmp_path / "results", tmp_path / "runs"
    runs.mkdir()
    land(results, "fig5-mnist-gmm-seed1", {"gmm": "/elsewhere/mnist-gmm-seed1"})
    land(
        results,
        "fig5-mnist-normal-seed1",
        {"normal": "/elsewhere/mnist-normal-seed1"},
        frames={"parts": {"slp": parts(140.0), "sp": parts(70.0)}},
    )
    land(results, "fig5-mnist-pair-seed0", {"ladder": "/a/x", "gmm": "/a/y"})
    assert fig5_frames.main([str(results), str(runs)]) == 0
    out = capsys.readouterr().out
    assert "fig5-mnist-gmm-seed1: no checkpoint" in out
    assert "fig5-mnist-pair-seed0: compares 2 models" in out
    assert not (results / "runs" / "fig5-mnist-gmm-seed1" / "frames.json").exists()
    table = (results / "fig5_frames.md").read_text()
    row = (
        "| fig5-mnist-normal-seed1 | SLP | 140.0 | 70.0 | 0.100 | 0.0% | 143.0 ± 1.0 | 70.0 ± 0.5 |"
    )
    assert row in table
    assert "fig5-mnist-gmm-seed1" not in table


def test_a_folder_without_landed_fig5_runs_is_refused_in_one_line(tmp_path, capsys):
    assert fig5_frames.main([str(tmp_path), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results/paper runs/paper" in err
