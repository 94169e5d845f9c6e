"""A matplotlib animation as HTML that plays offline and re-executes byte for byte (chapter 3).

matplotlib's JavaScript player (``Animation.to_jshtml``) loads Font Awesome from a CDN for its
button icons and names its elements with a random id; :func:`offline_html` replaces the icons by
text glyphs and the id by a fixed one, so the page needs no network and a re-executed notebook
stores the same output.
"""

from __future__ import annotations

import re

import matplotlib as mpl
from matplotlib.animation import Animation

__all__ = ["BUTTON_GLYPHS", "animation_html", "offline_html"]

BUTTON_GLYPHS = {"minus": "−", "fast-backward": "|◀", "step-backward": "◁",
                 "play fa-flip-horizontal": "◀", "pause": "❚❚", "play": "▶",
                 "step-forward": "▷", "fast-forward": "▶|", "plus": "+"}
_FONT_AWESOME = re.compile(r'<link rel="stylesheet"\s+href="https://maxcdn[^"]*">')
_ICON = re.compile(r'<i class="fa fa-([^"]+)"></i>')
_RANDOM_ID = re.compile(r'id="_anim_img([0-9a-f]{32})"')


def offline_html(html: str, element_id: str) -> str:
    """matplotlib's player ``html`` without the CDN stylesheet, with text glyphs for its icons and
    ``element_id`` in place of its random id. Raises ValueError if ``html`` is not such a player
    or still links to the web."""
    found = _RANDOM_ID.search(html)
    if found is None:
        raise ValueError("not the HTML of matplotlib's Animation.to_jshtml (no _anim_img id)")
    html = _ICON.sub(lambda icon: BUTTON_GLYPHS[icon.group(1)], _FONT_AWESOME.sub("", html))
    if "https://" in html:
        raise ValueError("the player still loads something from the web; matplotlib's "
                         "to_jshtml changed, update ladder.plots.animation")
    return html.replace(found.group(1), element_id)


def animation_html(movie: Animation, element_id: str, frame_format: str = "jpeg",
                   dpi: int = 64) -> str:
    """``movie`` as an offline player (:func:`offline_html`) that plays once, its frames in
    ``frame_format`` at ``dpi`` (JPEG at 64 dpi keeps a notebook small)."""
    with mpl.rc_context({"animation.frame_format": frame_format, "savefig.dpi": dpi}):
        html = movie.to_jshtml(default_mode="once")
    return offline_html(html, element_id)
