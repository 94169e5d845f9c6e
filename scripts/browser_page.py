"""The live checks of scripts/browser_check.py: one page in headless Chromium, through Playwright.

For each page, :func:`check_page` records
* errors: console errors, uncaught exceptions, responses >= 400, requests that failed, and any
  request to another host (aborted: the book must work offline);
* overflow: every code block, cell output, display equation, image, table, animation or widget
  that is wider than the text column or scrolls sideways inside it;
* dead controls: every animation (matplotlib's player, ``ladder.plots.animation``) and every
  widget view outside a cell tagged ``needs-kernel`` is worked (its slider moved, its play button
  pressed); a control that changes none of the pictures in its view is reported. A cell tagged
  ``needs-kernel`` holds a widget that redraws only with a running kernel, which the text says;
* the DOM after MathJax and the widget manager ran, for the static scan of what rendered;
* a screenshot of the whole page, and of its first display equation, widget and figure.

Needs ``pip install playwright`` (the ``browser`` extra) and a Chromium (Debian: ``apt-get install
chromium``); Playwright drives that binary, so ``playwright install`` and its download are not
needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

#: The pictures an interaction may change, and where to find the controls (outside needs-kernel).
PICTURES = "img, canvas, svg.main-svg"
ANIMATIONS = "div.animation"
WIDGETS = "div.cell:not(.tag_needs-kernel) .widget-subarea"
FIRST = {"equation": "div.math", "widget": f".widget-subarea, {ANIMATIONS}",
         "figure": "article img"}

# Block elements a reader would have to scroll sideways: measured in the browser.
_OVERFLOW = """() => {
  const article = document.querySelector("article.bd-article") || document.querySelector("main");
  const column = article.getBoundingClientRect();
  const blocks = article.querySelectorAll(
    "pre, div.cell_output > div, mjx-container[display='true'], img, table, div.animation, "
    + ".widget-subarea");
  const found = [];
  for (const el of blocks) {
    const box = el.getBoundingClientRect();
    if (box.width === 0) continue;
    const sideways = el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== "visible";
    const spills = box.right > column.right + 1;
    if (sideways || spills) {
      const text = (el.textContent || el.getAttribute("alt") || el.tagName).trim();
      const longest = text.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), "");
      found.push(`${el.tagName.toLowerCase()} ${Math.round(Math.max(el.scrollWidth, box.width))}px`
                 + ` in a ${Math.round(column.width)}px column: ${longest.slice(0, 70)}`);
    }
  }
  return found;
}"""
_READY = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
}"""
_SET_RANGE = """(el, to) => {
  el.value = to === "max" ? el.max : el.min;
  el.dispatchEvent(new Event("input", {bubbles: true}));
  el.dispatchEvent(new Event("change", {bubbles: true}));
}"""


@dataclass
class LivePage:
    """What a page did in the browser."""

    dom: str = ""
    errors: list[str] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)
    dead_controls: list[str] = field(default_factory=list)
    controls: int = 0  # controls worked
    first: dict[str, bytes] = field(default_factory=dict)  # feature -> PNG of its first element

    def problems(self) -> list[str]:
        found = [f"browser error: {e}" for e in self.errors]
        found += [f"wider than the column: {o}" for o in self.overflow]
        return found + [f"changes nothing on input: {c}" for c in self.dead_controls]


@contextmanager
def browser(chromium: str) -> Iterator[object]:
    """A headless Chromium (the given binary) driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("browser-check: Playwright is missing; pip install -e '.[browser]'") from None
    with sync_playwright() as playwright:
        chrome = playwright.chromium.launch(executable_path=chromium,
                                            args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chrome
        finally:
            chrome.close()


def _pictures(view) -> list[bytes]:
    return [p.screenshot() for p in view.locator(PICTURES).all() if p.is_visible()]


def _work_animation(page, player) -> list[str]:
    """Move the player's slider to its end, then press play from the start."""
    dead = []
    slider = player.locator("input[type=range]").first
    before = _pictures(player)
    slider.evaluate(_SET_RANGE, "max")
    page.wait_for_timeout(300)
    if _pictures(player) == before:
        dead.append("an animation's slider")
    slider.evaluate(_SET_RANGE, "min")
    page.wait_for_timeout(300)
    before = _pictures(player)
    player.locator("button[title='Play']").first.click()
    page.wait_for_timeout(1500)
    if _pictures(player) == before:
        dead.append("an animation's play button")
    player.locator("button[title='Pause']").first.click()
    return dead


def _work_widget(page, view) -> list[str]:
    """Press a widget's play button, or move its slider one step with the keyboard."""
    before = _pictures(view)
    play = view.locator(".widget-play button").first
    handle = view.locator(".noUi-handle, input[type=range]").first
    if play.count():
        play.click()
        page.wait_for_timeout(1500)
        what = "a widget's play button"
    elif handle.count():
        handle.focus()
        page.keyboard.press("End")
        page.wait_for_timeout(500)
        what = "a widget's slider"
    else:
        return []
    return [what] if _pictures(view) == before else []


def check_page(chrome, url: str, width: int, shot: Path, max_height: int,
               wanted: set[str]) -> LivePage:
    """Load ``url`` at ``width`` px, run the checks, save a screenshot of the page to ``shot``,
    and shoot the first element of each feature in ``wanted`` (keys of :data:`FIRST`)."""
    live = LivePage()
    page = chrome.new_page(viewport={"width": width, "height": 900})
    host = urlsplit(url).netloc
    failed: set[str] = set()  # URLs reported: a missing file is one error, not three

    def fail(request_url: str, message: str) -> None:
        if request_url not in failed:
            failed.add(request_url)
            live.errors.append(message)

    def route(request_route) -> None:
        request_url = request_route.request.url
        if urlsplit(request_url).netloc not in (host, ""):
            fail(request_url, f"loads {request_url} from another host")
            request_route.abort()
        else:
            request_route.continue_()

    page.route("**/*", route)
    # Chromium's console line for a failed load names no URL; the handlers below do
    page.on("console", lambda m: live.errors.append(f"console: {m.text[:160]}")
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: live.errors.append(f"exception: {str(e)[:160]}"))
    page.on("response", lambda r: fail(r.url, f"HTTP {r.status}: {r.url}")
            if r.status >= 400 else None)
    page.on("requestfailed", lambda r: fail(r.url, f"request failed: {r.url}"))
    try:
        page.goto(url, wait_until="networkidle")
        page.evaluate(_READY)
        page.wait_for_timeout(1500)  # the widget manager renders after load
        live.dom = page.content()
        live.overflow = page.evaluate(_OVERFLOW)
        for name in sorted(wanted):
            first = page.locator(FIRST[name]).first
            if first.count() and first.is_visible():
                first.scroll_into_view_if_needed()
                live.first[name] = first.screenshot()
        page.screenshot(path=str(shot), full_page=True,
                        clip=None if page.evaluate("document.body.scrollHeight") <= max_height
                        else {"x": 0, "y": 0, "width": width, "height": max_height})
        for player in page.locator(ANIMATIONS).all():
            player.scroll_into_view_if_needed()
            live.controls += 1
            live.dead_controls += _work_animation(page, player)
        for view in page.locator(WIDGETS).all():
            view.scroll_into_view_if_needed()
            live.controls += 1
            live.dead_controls += _work_widget(page, view)
    finally:
        page.close()
    return live
