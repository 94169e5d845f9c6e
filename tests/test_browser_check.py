"""scripts/browser_check.py --static: each check fails on the HTML it exists to catch (issue 19)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import browser_check  # noqa: E402


def problems(body: str, tmp_path: Path, name: str = "03_dpgmm.html") -> list[str]:
    page = tmp_path / "book" / name
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"<html><body><article>{body}</article></body></html>")
    return browser_check.static_problems(browser_check.scan(page.read_text()), tmp_path, page)


def test_a_clean_page_has_no_problems(tmp_path):
    body = ('<div class="cell"><div class="cell_input"><pre>x = 1\ny = 2</pre></div></div>'
            '<p>See <a href="01_elbo.html">chapter 1</a>.</p><table><tr><td>1</td></tr></table>')
    assert problems(body, tmp_path) == []


@pytest.mark.parametrize("body, expected", [
    ("<p>| prior | ELBO |\n|---|---|\n| normal | 1 |</p>", "pipe text"),
    ('<div class="cell"><div class="cell_input"><pre><span>x = "' + "a" * 90
     + '"</span></pre></div></div>', "code line of 96 characters"),
    ('<span class="bibtex-citation">[?]</span>', "link to no bibliography entry"),
    ("<p>as chapter 2 shows</p>", "without a link"),
    ('<script src="https://cdn.example.org/x.js"></script>', "from another host"),
    ('<img src="missing.png">', "missing from the build"),
])
def test_each_static_check_catches_its_problem(tmp_path, body, expected):
    found = problems(body, tmp_path)
    assert len(found) == 1 and expected in found[0], found


def test_long_lines_count_only_in_code_cells(tmp_path):
    long_line = "word " * 25
    assert problems(f"<p>{long_line}</p>", tmp_path) == []
    body = f'<div class="cell_output"><pre>{long_line}</pre></div>'
    assert problems(body, tmp_path) == []  # outputs wrap (book/_theme/ladder.css)
    body = f'<div class="cell_input"><div class="highlight"><pre>{long_line}</pre></div></div>'
    assert "code line of 125 characters" in problems(body, tmp_path)[0]
