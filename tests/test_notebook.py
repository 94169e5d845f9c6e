from __future__ import annotations

import inspect
import json
import random
import warnings

import matplotlib
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ladder.notebook
from ladder.notebook import (
    CLAIMS_LOG_ENV,
    FIGURE_STYLE,
    ClaimFailed,
    banner,
    check,
    setup_notebook,
    show_source,
)


@pytest.fixture(autouse=True)
def restore_global_state():
    """setup_notebook changes process-wide state; give the other test files theirs back."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    np_options = np.get_printoptions()
    formatwarning = warnings.formatwarning
    with matplotlib.rc_context():
        yield
    warnings.formatwarning = formatwarning
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    np.set_printoptions(**np_options)
    torch.set_printoptions(profile="default", sci_mode=None)


def draws() -> tuple[float, np.ndarray, torch.Tensor]:
    return random.random(), np.random.rand(3), torch.rand(3)


def test_setup_notebook_returns_what_it_set_in_a_fixed_order():
    settings = setup_notebook(seed=3, threads=1, precision=2)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert settings == {
        "seed": 3, "threads": 1, "deterministic": True, "device": device, "precision": 2,
    }
    assert list(settings) == ["seed", "threads", "deterministic", "device", "precision"]
    assert torch.get_num_threads() == 1
    assert torch.are_deterministic_algorithms_enabled()
    assert banner(settings) == f"seed=3 threads=1 deterministic=True device={device} precision=2"


def test_warnings_in_a_chapter_print_without_this_machines_paths():
    setup_notebook(seed=0, threads=1)
    text = warnings.formatwarning("epoch 1: dead outputs", UserWarning, "/home/me/ladder/train.py",
                                  465, "warnings.warn(...)")
    assert text == "UserWarning: epoch 1: dead outputs\n"


def test_same_seed_gives_same_draws_and_another_seed_does_not():
    setup_notebook(seed=7)
    first = draws()
    setup_notebook(seed=7)
    second = draws()
    setup_notebook(seed=8)
    third = draws()
    assert first[0] == second[0] and first[0] != third[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert torch.equal(first[2], second[2]) and not torch.equal(first[2], third[2])


def test_threads_none_keeps_the_current_thread_count():
    torch.set_num_threads(1)
    assert setup_notebook(threads=None)["threads"] == 1


def test_print_precision_and_figure_style():
    setup_notebook(precision=3)
    assert "0.333" in repr(np.array([1 / 3])) and "0.3333" not in repr(np.array([1 / 3]))
    assert "0.333" in repr(torch.tensor([1 / 3])) and "0.3333" not in repr(torch.tensor([1 / 3]))
    assert matplotlib.rcParams["figure.dpi"] == FIGURE_STYLE["figure.dpi"] == 100
    assert tuple(matplotlib.rcParams["figure.figsize"]) == FIGURE_STYLE["figure.figsize"]


@pytest.mark.parametrize(
    "kwargs",
    [{"seed": -1}, {"seed": 2**32}, {"seed": 1.5}, {"seed": True}, {"threads": 0},
     {"threads": "2"}, {"precision": -1}],
)
def test_setup_notebook_rejects_bad_input(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        setup_notebook(**kwargs)


def test_show_source_of_a_function_names_file_and_qualified_name():
    lines, _ = inspect.getsourcelines(setup_notebook)
    text = show_source(setup_notebook).data
    header, body = text.split("\n\n", 1)
    assert header == "`ladder/notebook.py`: `setup_notebook`"
    assert body.startswith("```python\ndef setup_notebook(")
    assert body.endswith("\n```")
    assert body.count("\n") == len(lines) + 1  # the fences around the function's lines


def test_show_source_of_a_decorated_function_shows_the_function():
    from ladder.plots.grids import samples_and_reconstructions  # wrapped by torch.no_grad

    text = show_source(samples_and_reconstructions).data
    assert text.startswith("`ladder/plots/grids.py`: `samples_and_reconstructions`\n\n")
    assert "@torch.no_grad()\ndef samples_and_reconstructions(" in text


def test_show_source_of_a_module_is_the_whole_file():
    text = show_source(ladder.notebook).data
    assert text.startswith("`ladder/notebook.py`\n\n```python\n")
    assert text.endswith(inspect.getsource(ladder.notebook).rstrip("\n") + "\n```")


def test_show_source_of_a_method_names_its_class():
    from ladder.prior_vae import PriorVAE

    assert show_source(PriorVAE.bound).data.startswith("`ladder/prior_vae.py`: `PriorVAE.bound`")


@pytest.mark.parametrize("obj", [json.dumps, len, 3])
def test_show_source_refuses_code_outside_ladder(obj):
    with pytest.raises(ValueError, match="show_source"):
        show_source(obj)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(value=finite, above=finite, width=st.floats(min_value=0, max_value=1e6))
def test_check_holds_exactly_inside_its_bounds_and_returns_nothing(value, above, width):
    below = above + width
    if above < value < below:
        assert check("claim", value, above=above, below=below) is None  # no output in a cell
    else:
        with pytest.raises(ClaimFailed, match="claim: .* is not above .* and below"):
            check("claim", value, above=above, below=below)


def test_check_refuses_a_claim_without_bound_or_value():
    with pytest.raises(ValueError, match="needs a bound"):
        check("claim", 1.0)
    with pytest.raises(ValueError, match="not a finite number"):
        check("claim", float("nan"), above=0)


def test_check_records_every_claim_instead_of_raising_while_a_survey_logs(tmp_path,
                                                                          monkeypatch):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv(CLAIMS_LOG_ENV, str(log))
    check("holds", 3.0, above=1.0)
    check("fails", 3.0, below=1.0)  # recorded, not raised
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["claim"], r["margin"], r["above"], r["below"]) for r in records] == [
        ("holds", 2.0, 1.0, None), ("fails", -2.0, None, 1.0)]


def test_a_figure_built_without_pyplot_displays_as_an_image_after_setup(tmp_path):
    """In a Jupyter kernel the inline backend registers how a Figure displays when it loads;
    setup_notebook loads it, so ladder.plots' figures show before any pyplot figure."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from ladder.notebook import setup_notebook\n"
                                  "settings = setup_notebook(threads=1)"),
        nbformat.v4.new_code_cell("from matplotlib.figure import Figure\n"
                                  "figure = Figure()\nfigure.subplots().plot([0, 1])\n"
                                  "display(figure)"),
    ])  # fmt: skip
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    (shown,) = notebook.cells[1].outputs
    assert "image/png" in shown["data"]
