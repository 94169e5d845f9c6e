"""ladder.evaluation_file: the schema of evaluation.json, its check, and the summary table."""

import copy

import pytest

from ladder.evaluation_file import SCHEMA_VERSION, summary_table, validate_evaluation


def _valid():
    sha = "0" * 64
    block = {"skipped": "reason"}
    return {
        "schema_version": SCHEMA_VERSION,
        "provenance": {"run_dir": "r", "config": {}, "checkpoint": {"sha256": sha}, "seed": 0,
                       "ladder_version": "0", "torch_version": "0", "python_version": "3",
                       "device": "cpu", "classifier": None, "laplace_sigma": {},
                       "started": "t", "wall_time_s": 1.0, "stage_seconds": {},
                       "sample_counts": {"n_test": 1, "n_samples": 2, "n_is": 1, "n_nll": 1,
                                         "n_inner": 1}},
        "metrics": {"elbo": {"elbo": 1.0, "elbo_stderr": 0.1, "reconstruction": 1.0,
                             "entropy": 1.0, "cross_entropy": 1.0, "mae": 0.1,
                             "pixel_error_x100": 10.0, "n_images": 1},
                    "cross_entropy": block, "log_likelihood": block, "clusters": block,
                    "generation": block},
        "notes": [],
    }


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d.update(schema_version=0), "schema_version"),
    (lambda d: d["provenance"].pop("seed"), "provenance.seed is missing"),
    (lambda d: d["provenance"]["checkpoint"].update(sha256="abc"), "sha256"),
    (lambda d: d["metrics"]["elbo"].update(elbo=float("nan")), "metrics.elbo.elbo"),
    (lambda d: d["metrics"]["elbo"].pop("mae"), "metrics.elbo.mae is missing"),
    (lambda d: d["metrics"].pop("clusters"), "metrics.clusters is missing"),
    (lambda d: d["metrics"].update(generation={"skipped": ""}), "must give a reason"),
])
def test_validate_evaluation_names_each_problem(corrupt, message):
    validate_evaluation(_valid())
    data = copy.deepcopy(_valid())
    corrupt(data)
    with pytest.raises(ValueError, match=message):
        validate_evaluation(data)


def test_summary_table_puts_runs_side_by_side():
    a, b = _valid(), _valid()
    for data, prior in ((a, "ladder"), (b, "gmm")):
        data["provenance"]["config"] = {"model": {"prior": prior}}
    table = summary_table([a, b])
    assert table.splitlines()[0] == "| metric | ladder | gmm |"
    assert "| ELBO (nats/image, Table 3) | 1.0 ± 0.1 | 1.0 ± 0.1 |" in table
    assert "| NMI components vs classes (Fig 4) | - | - |" in table


def test_summary_table_leaves_keys_an_older_evaluation_lacks_blank():
    new, old = _valid(), _valid()
    ce = {"bound": -20.0, "bound_stderr": 0.5, "importance_sampled": -19.0,
          "importance_sampled_stderr": 0.5}
    new["metrics"]["cross_entropy"] = {**ce, "kl": 3.25, "kl_stderr": 0.25}
    old["metrics"]["cross_entropy"] = ce  # written before KL was reported
    table = summary_table([new, old], ["new", "old"])
    kl_row = next(line for line in table.splitlines() if line.startswith("| KL(q(z) \\|\\| p(z)) ("))
    assert kl_row.endswith("| 3.25 ± 0.25 | - |")
    assert "| E_q(z)[log p(z)], importance sampled | -19.00 ± 0.50 | -19.00 ± 0.50 |" in table
