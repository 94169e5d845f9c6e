"""scripts/claims_over_seeds.py: a survey records every claim of a notebook, seed by seed."""

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import claims_over_seeds  # noqa: E402

from ladder.notebook import CLAIMS_LOG_ENV  # noqa: E402


def test_a_relative_out_folder_records_the_claims_of_a_notebook_run_elsewhere(
    tmp_path, monkeypatch
):
    chapter = tmp_path / "book" / "07_tiny.ipynb"
    chapter.parent.mkdir()
    parameters = nbformat.v4.new_code_cell("seed = 0")
    parameters.metadata["tags"] = ["parameters"]
    claim = nbformat.v4.new_code_cell(
        "from ladder.notebook import check\ncheck('the seed is small', seed, below=1.5)"
    )
    notebook = nbformat.v4.new_notebook(cells=[parameters, claim])
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                       "display_name": "Python 3"}
    nbformat.write(notebook, chapter)
    monkeypatch.chdir(tmp_path)  # the kernel runs in book/, the out folder is relative to here
    status = claims_over_seeds.main(
        [str(chapter), "--seeds", "0", "2", "--isa", "default", "--out", "survey"]
    )
    records = {
        seed: [json.loads(line) for line in
               (tmp_path / "survey" / "default" / f"07_tiny-seed{seed}.jsonl").open()]
        for seed in (0, 2)
    }
    assert [r["margin"] for r in records[0] if "claim" in r] == [1.5]
    assert [r["margin"] for r in records[2] if "claim" in r] == [-0.5]
    assert all(r["run"]["error"] is None for rs in records.values() for r in rs if "run" in r)
    assert status == 1  # seed 2 breaks the claim
    assert CLAIMS_LOG_ENV not in os.environ  # later checks in this process assert again


def test_the_environment_is_restored_after_a_run(monkeypatch):
    monkeypatch.setenv("LADDER_TEST_KEPT", "before")
    monkeypatch.delenv("LADDER_TEST_ADDED", raising=False)
    with pytest.raises(RuntimeError):
        with claims_over_seeds.environment({"LADDER_TEST_KEPT": "x", "LADDER_TEST_ADDED": "y"}):
            assert os.environ["LADDER_TEST_KEPT"] == "x" and os.environ["LADDER_TEST_ADDED"] == "y"
            raise RuntimeError("a run that raises")
    assert os.environ["LADDER_TEST_KEPT"] == "before" and "LADDER_TEST_ADDED" not in os.environ
