"""Open the built book in headless Chromium with no network; screenshot it and check what rendered.

    python scripts/browser_check.py [--html _build/html] [--out _build/browser-check]
    python scripts/browser_check.py --static [--html _build/html]   # no browser: the static checks

`make browser-check` builds the book first. The pages are served from 127.0.0.1, and a request
to any other host is aborted and reported, so the check proves the pages work offline. Each page
is opened at 1280 and 1920 px (`--width`). For every page under book/ it fails (exit 1), listing
what is wrong, unless
* the page loads no script, stylesheet or image from another host, and each vendored bundle once;
* the browser logs no error: no console error, uncaught exception or failed request
  (scripts/browser_page.py);
* nothing is wider than the text column or scrolls sideways in it: code, outputs, display
  equations, images, tables, animations, widgets;
* every animation and every widget changes a picture when its slider moves or its play button is
  pressed, unless its cell is tagged `needs-kernel` (a widget that redraws only with a running
  kernel, which the text must say);
* every equation (Sphinx's `math` elements) was typeset by MathJax (an `mjx-container` inside);
* every stored widget view was rendered by the widget manager (a `jupyter-widgets` element);
* every image the page shows exists in the build;
* no Markdown table is left as pipe text (a `|---|` row outside code blocks: a cell's Markdown
  output parsed without MyST's tables);
* every citation links to its entry in the bibliography (sphinxcontrib-bibtex renders a key
  missing from book/references.bib as a `bibtex-citation` span with no link in it, after a warning
  that `jupyter-book build -W` also fails on);
* no display equation is wider than MAX_DISPLAY_EX (an estimate from its TeX source in the HTML,
  :func:`display_width_ex`): a longer one runs past the text column; break it with
  an `aligned` block, as CONTRIBUTING.md says;
* no line of a code cell is longer than MAX_CODE_LINE characters;
* every in-text mention of another chapter ("chapter 3") is a link to it, and every API
  reference of a chapter ({py:obj}`ladder.train.train`) finds its entry;
and unless the book has at least one equation, one widget and one figure (`--require`).
Screenshots: <out>/<page>-<width>.png (each whole page), and <out>/first-<feature>.png of the
book's first display equation, widget or animation, and figure; look at them. Needs Playwright
(`pip install -e '.[browser]'`) and a Chromium (Debian: `apt-get install chromium`), except with
`--static`, which runs only the checks that read the HTML files (external loads, bundles loaded
twice, missing images, pipe tables, unresolved citations, wide equations, long code lines,
unlinked chapter mentions) and takes no screenshots.
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import sys
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
VIEW_TYPE = "application/vnd.jupyter.widget-view+json"
FEATURES = ("equation", "widget", "figure")
RAW_TABLE_RULE = re.compile(r"\|\s*:?(?:-{3,}|[\u2013\u2014][-\u2013\u2014]*):?\s*\|")
#: An in-text mention of another chapter, which should be a link to it (issue 19); headings,
#: links, code and the navigation are left alone.
CHAPTER_MENTION = re.compile(r"\b[Cc]hapter ([1-6])\b")
UNLINKED_OK = ("a", "h1", "h2", "h3", "h4", "h5", "h6", "nav", "title")
"""A Markdown table's |---| separator row, also after smartquotes made its dashes an em dash."""
ONCE = ("widgets/require.js", "widgets/embed-amd.js", "mathjax/tex-mml-chtml.js")
MAX_CODE_LINE = 88
"""The longest line of a code cell: at the book's 12-px code type, 88 characters fit the column of
a 1280-px window (book/_theme/ladder.css, CONTRIBUTING.md)."""
MAX_DISPLAY_EX = 85.0
"""The widest display equation allowed, in ex of MathJax's TeX font (1em = 2.26ex). At 1920 px the
text column is about 90 ex; :func:`display_width_ex` is within about 15% of MathJax's width."""
_TEX_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}_^&]|[^\\{}_^&\s]")
_TEX_SPACE = {r"\,": 0.167, r"\:": 0.222, r"\;": 0.278, r"\ ": 0.25, r"\!": -0.167,
              r"\quad": 1.0, r"\qquad": 2.0}
_TEX_REL = {"=", "<", ">", r"\ge", r"\le", r"\geq", r"\leq", r"\approx", r"\sim", r"\propto",
            r"\mid", r"\Longrightarrow", r"\Rightarrow", r"\to", r"\equiv", r"\ne", r"\neq"}
_TEX_BIN = {"+", "-", r"\pm", r"\cdot", r"\times"}
_TEX_NONE = {r"\left", r"\right", r"\big", r"\Big", r"\bigg", r"\Bigg", r"\textstyle",
             r"\displaystyle", r"\limits", r"\nolimits", r"\nonumber", r"\notag", "&", "\\\\"}
_TEX_TEXT = {r"\text", r"\textrm", r"\mbox", r"\mathrm", r"\operatorname"}


def _tex_groups(tokens: list[str]) -> list:
    """Tokens nested by {...} groups."""
    stack: list[list] = [[]]
    for t in tokens:
        if t == "{":
            stack.append([])
        elif t == "}" and len(stack) > 1:
            group = stack.pop()
            stack[-1].append(group)
        else:
            stack[-1].append(t)
    while len(stack) > 1:  # unbalanced: close what is open
        group = stack.pop()
        stack[-1].append(group)
    return stack[0]


def _tex_width(items: list, size: float = 1.0) -> float:
    """Width in em of a token list at `size` (1: display, 0.71: a script)."""
    width, i = 0.0, 0

    def arg() -> list:
        nonlocal i
        i += 1
        item = items[i - 1] if i - 1 < len(items) else []
        return item if isinstance(item, list) else [item]

    def script_follows() -> bool:
        return i < len(items) and items[i] in ("_", "^")

    while i < len(items):
        t = items[i]
        i += 1
        if isinstance(t, list):
            width += _tex_width(t, size)
        elif t in ("_", "^"):
            width += _tex_width(arg(), size * 0.71)
        elif t in (r"\begin", r"\end"):
            arg()
        elif t in _TEX_NONE:
            pass
        elif t in _TEX_SPACE:
            width += _TEX_SPACE[t] * size
        elif t in (r"\frac", r"\tfrac", r"\dfrac", r"\binom"):  # the wider of the two
            s = size * (0.71 if t == r"\tfrac" else 1.0)
            width += max(_tex_width(arg(), s), _tex_width(arg(), s)) + 0.24 * size
        elif t in (r"\underbrace", r"\overbrace"):  # the body or its label, the wider
            body = _tex_width(arg(), size)
            label = 0.0
            if script_follows():
                i += 1
                label = _tex_width(arg(), size * 0.71)
            width += max(body, label)
        elif t == r"\xrightarrow":
            width += (max(1.0, _tex_width(arg(), size * 0.71) + 0.6) + 0.56) * size
        elif t in _TEX_TEXT:
            chars = [c for c in _flatten(arg()) if not c.startswith("\\")]
            width += 0.5 * len(chars) * size
        elif t in (r"\sum", r"\prod"):  # display limits sit under and over the operator
            op = 1.44 * size
            while script_follows():
                i += 1
                op = max(op, _tex_width(arg(), size * 0.71))
            width += op + 0.17 * size
        elif t in (r"\log", r"\exp"):
            width += 1.57 * size
        elif t in _TEX_REL:
            width += (0.78 + (0.56 if size == 1.0 else 0.0)) * size
        elif t in _TEX_BIN:
            width += (0.78 + (0.44 if size == 1.0 else 0.0)) * size
        elif t in (",", ";"):
            width += 0.45 * size
        elif t in (".", "'", "!", "|"):
            width += 0.28 * size
        elif t in ("(", ")", "[", "]", r"\|", r"\{", r"\}", r"\lVert", r"\rVert"):
            width += 0.39 * size
        else:  # a letter, digit or symbol
            width += 0.55 * size
    return width


def _flatten(items: list) -> list[str]:
    return [x for item in items for x in (_flatten(item) if isinstance(item, list) else [item])]


def display_width_ex(tex: str) -> float:
    """Estimated width in ex of a display equation's widest row: rows split at \\\\ and their
    &-columns as wide as the widest in that column (an aligned block), scripts at 71%, a fraction
    as wide as its wider part, an underbrace as its body or label."""
    items = _tex_groups(_TEX_TOKEN.findall(re.sub(r"(?<!\\)%.*", "", tex)))
    rows: list[list[list]] = [[[]]]
    for t in items:  # only the top level and aligned blocks' own group level split rows
        if t == "\\\\":
            rows.append([[]])
        elif t == "&":
            rows[-1].append([])
        else:
            rows[-1][-1].append(t)
    ncol = max(len(row) for row in rows)
    cols = [max((_tex_width(row[c]) for row in rows if c < len(row)), default=0.0)
            for c in range(ncol)]
    return 2.26 * max(sum(cols[:len(row) - 1]) + _tex_width(row[-1]) for row in rows)


@dataclass
class Page:
    """What one HTML document holds: math elements, widget views, images, external loads."""

    math: int = 0
    typeset: int = 0  # math elements with an mjx-container inside
    views: int = 0  # <script type=widget-view+json>
    rendered: int = 0  # widget-subarea divs holding a rendered jupyter-widgets element
    images: list[str] = field(default_factory=list)
    loads: list[str] = field(default_factory=list)  # script src, stylesheet href
    raw_tables: int = 0  # text runs outside <pre>/<code> holding a Markdown table's |---| row
    citations: int = 0  # sphinxcontrib-bibtex citations (<span class="bibtex-citation">)
    unresolved: int = 0  # citations with no link inside: a key missing from the .bib file
    wide_math: list[tuple[float, str]] = field(default_factory=list)  # (width ex, TeX) too wide
    unlinked_chapters: list[str] = field(default_factory=list)  # "chapter N" in text, no link
    unlinked_api: list[str] = field(default_factory=list)  # {py:obj} roles that found no target
    long_code: list[str] = field(default_factory=list)  # code-cell lines over MAX_CODE_LINE


class Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[tuple[str, set[str]]] = []  # open elements: (tag, marks)
        self.display_tex: list[str] = []  # the text of the open display equation (div.math)
        self.code_text: list[str] = []  # the text of the open code cell's <pre>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = set(a.get("class", "").split())
        marks = set()
        if "math" in classes and tag in ("div", "span"):
            self.page.math += 1
            marks.add("math")
            if tag == "div":
                marks.add("display")
                self.display_tex = []
        if "cell_input" in classes:
            marks.add("input")
        if tag == "pre" and any("input" in m for _, m in self.stack):
            marks.add("code")
            self.code_text = []
        if "widget-subarea" in classes:
            marks.add("subarea")
        if tag == "span" and "bibtex-citation" in classes:
            self.page.citations += 1
            marks.add("citation")
        if tag == "a" and a.get("href"):
            for _, open_marks in reversed(self.stack):
                if "citation" in open_marks:
                    open_marks.add("linked")
                    break
        if tag == "code" and "xref" in classes and "py" in classes and not any(
                t in UNLINKED_OK for t, _ in self.stack):
            marks.add("xref")
        if tag == "mjx-container":
            self._mark_enclosing("math", "typeset")
        if "jupyter-widgets" in classes:
            self._mark_enclosing("subarea", "rendered")
        if tag == "script":
            if a.get("type") == VIEW_TYPE:
                self.page.views += 1
            if a.get("src"):
                self.page.loads.append(a["src"])
        if tag == "link" and "stylesheet" in a.get("rel", "").split() and a.get("href"):
            self.page.loads.append(a["href"])
        if tag == "img" and a.get("src"):
            self.page.images.append(a["src"])
        if tag not in ("img", "link", "meta", "br", "hr", "input", "source", "col", "area"):
            self.stack.append((tag, marks))

    def _mark_enclosing(self, mark: str, done: str) -> None:
        for _, marks in reversed(self.stack):
            if mark in marks:
                if done not in marks:
                    marks.add(done)
                    if done == "typeset":
                        self.page.typeset += 1
                    else:
                        self.page.rendered += 1
                return

    def handle_data(self, data: str) -> None:
        if any("code" in marks for _, marks in self.stack):
            self.code_text.append(data)
        if any("display" in marks for _, marks in self.stack):
            self.display_tex.append(data)
        in_code = any(tag in ("pre", "code", "script", "style") for tag, _ in self.stack)
        if not in_code and RAW_TABLE_RULE.search(data):
            self.page.raw_tables += 1
        if not in_code and not any(tag in UNLINKED_OK for tag, _ in self.stack):
            self.page.unlinked_chapters += CHAPTER_MENTION.findall(data)
        if any("xref" in marks for _, marks in self.stack) and data.strip():
            self.page.unlinked_api.append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                self.page.unresolved += sum("citation" in marks and "linked" not in marks
                                            for _, marks in self.stack[i:])
                if any("display" in marks for _, marks in self.stack[i:]):
                    self._measure_display()
                if any("code" in marks for _, marks in self.stack[i:]):
                    self.page.long_code += [line for line in "".join(self.code_text).split("\n")
                                            if len(line) > MAX_CODE_LINE]
                    self.code_text = []
                del self.stack[i:]
                return

    def _measure_display(self) -> None:
        # Sphinx writes a display equation as \[...\] (after the number's span, if numbered)
        for tex in re.findall(r"\\\[(.*?)\\\]", "".join(self.display_tex), re.S):
            width = display_width_ex(tex)
            if width > MAX_DISPLAY_EX:
                self.page.wide_math.append((width, " ".join(tex.split())))
        self.display_tex = []


def scan(html: str) -> Page:
    parser = Scan()
    parser.feed(html)
    return parser.page


def serve(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=directory))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def static_problems(page: Page, html_dir: Path, page_path: Path) -> list[str]:
    found = []
    for src in page.loads + page.images:
        if urlsplit(src).scheme in ("http", "https") or src.startswith("//"):
            found.append(f"loads {src} from another host")
    for bundle in ONCE:
        n = sum(bundle in urlsplit(src).path for src in page.loads)
        if n > 1:
            found.append(f"loads {bundle} {n} times (is there a top-level _static/ folder?)")
    if page.raw_tables:
        found.append(f"{page.raw_tables} Markdown table(s) shown as pipe text, not rendered")
    if page.unresolved:
        found.append(f"{page.unresolved} of {page.citations} citations link to no bibliography "
                     "entry (a key missing from book/references.bib?)")
    own = page_path.name[:2].lstrip("0")  # 04_block_coordinate_ascent.html: chapter 4
    unlinked = [n for n in page.unlinked_chapters if n != own]
    if unlinked:
        found.append(f"{len(unlinked)} mention(s) of chapter(s) {', '.join(sorted(set(unlinked)))} "
                     "in the text without a link; write [chapter N](0N_name.ipynb)")
    if page_path.name[:1].isdigit() and page.unlinked_api:  # the chapters' {py:obj} roles
        found.append(f"{len(page.unlinked_api)} API reference(s) link nowhere (no such documented "
                     f"name?): {', '.join(sorted(set(page.unlinked_api)))}")
    for line in page.long_code:
        found.append(f"a code line of {len(line)} characters (over {MAX_CODE_LINE}, past the "
                     f"column; ruff format --line-length {MAX_CODE_LINE}): {line.strip()[:60]}")
    for width, tex in page.wide_math:
        found.append(f"a display equation about {width:.0f}ex wide (over {MAX_DISPLAY_EX:.0f}ex, "
                     f"past the text column; break it with aligned): {tex[:70]}...")
    for src in page.images:
        if not urlsplit(src).scheme and not src.startswith("data:"):
            target = (page_path.parent / unquote(urlsplit(src).path)).resolve()
            if html_dir.resolve() not in target.parents or not target.is_file():
                found.append(f"image {src} is missing from the build")
    return found


def static_check(html_dir: Path, pages: list[str] | None) -> int:
    """``--static``: :func:`static_problems` of every page, with no browser."""
    pages = pages or sorted(p.relative_to(html_dir).as_posix()
                            for p in (html_dir / "book").glob("*.html"))
    if not pages:
        print(f"browser-check: no pages under {html_dir}/book; run `make book`", file=sys.stderr)
        return 2
    failures = {}
    for name in pages:
        page = scan((html_dir / name).read_text(encoding="utf-8"))
        found = static_problems(page, html_dir, html_dir / name)
        print(f"browser-check --static: {name}: {page.math} equations, {page.views} widget views, "
              f"{len(page.images)} images, {page.citations} citations"
              + ("  FAILED" if found else ""))
        if found:
            failures[name] = found
    return verdict("browser-check --static", failures, len(pages))


def verdict(prefix: str, failures: dict[str, list[str]], n_pages: int) -> int:
    """Print each page's problems to stderr; 1 if there were any, else 0 after the OK line."""
    for name, found in failures.items():
        print(f"{name}:", *(f"  - {item}" for item in found), sep="\n", file=sys.stderr)
    if failures:
        return 1
    print(f"{prefix}: {n_pages} pages OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "browser-check")
    parser.add_argument("--pages", nargs="*", help="paths under --html (default: book/*.html)")
    parser.add_argument("--require", nargs="*", default=list(FEATURES), choices=FEATURES,
                        help="features the book must contain at least once (default: all)")
    parser.add_argument("--chromium", default=next(filter(None, map(
        shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None))
    parser.add_argument("--width", type=int, nargs="+", default=[1280, 1920],
                        help="window widths to check each page at (px)")
    parser.add_argument("--max-height", type=int, default=12000, help="cut longer pages' shots")
    parser.add_argument("--static", action="store_true",
                        help="only the checks that read the HTML files; no Chromium, no shots")
    args = parser.parse_args(argv)

    if args.static:
        return static_check(args.html, args.pages)
    if not args.chromium:
        print("browser-check: no Chromium found; `apt-get install -y chromium` (Debian)",
              file=sys.stderr)
        return 2
    pages = args.pages or sorted(p.relative_to(args.html).as_posix()
                                 for p in (args.html / "book").glob("*.html"))
    if not pages:
        print(f"browser-check: no pages under {args.html}/book; run `make book`", file=sys.stderr)
        return 2
    import browser_page  # beside this script; needs Playwright, which --static does not

    args.out.mkdir(parents=True, exist_ok=True)
    server, base = serve(args.html)
    failures: dict[str, list[str]] = {}
    first: dict[str, Path] = {}  # feature -> the first-<feature>.png written
    try:
        with browser_page.browser(args.chromium) as chrome:
            for name in pages:
                path = args.html / name
                static = scan(path.read_text(encoding="utf-8"))
                found = static_problems(static, args.html, path)
                for width in args.width:
                    shot = args.out / f"{Path(name).stem}-{width}.png"
                    live = browser_page.check_page(chrome, f"{base}/{name}", width, shot,
                                                   args.max_height, set(FEATURES) - set(first))
                    dom = scan(live.dom)
                    if dom.typeset < static.math:
                        found.append(f"at {width}px: {static.math - dom.typeset} of "
                                     f"{static.math} equations not typeset by MathJax")
                    if dom.rendered < static.views:
                        found.append(f"at {width}px: {static.views - dom.rendered} of "
                                     f"{static.views} widget views not rendered by the widget "
                                     "manager")
                    found += [f"at {width}px: {p}" for p in live.problems()]
                    for feature, png in live.first.items():
                        first[feature] = args.out / f"first-{feature}.png"
                        first[feature].write_bytes(png)
                    print(f"browser-check: {name} at {width}px: {dom.typeset}/{static.math} "
                          f"equations typeset, {dom.rendered}/{static.views} widget views "
                          f"rendered, {live.controls} controls worked, {len(static.images)} "
                          f"images -> {shot}" + ("  FAILED" if found else ""))
                if found:
                    failures[name] = found
    finally:
        server.shutdown()
    for feature, shot in first.items():
        print(f"browser-check: first {feature} -> {shot}")
    missing = [feature for feature in args.require if feature not in first]
    if missing:
        failures["the book"] = [f"has no {feature}" for feature in missing]
    return verdict("browser-check", failures, len(pages))


if __name__ == "__main__":
    sys.exit(main())
