"""ladder.plots.animation: matplotlib's player as offline, reproducible HTML."""

import pytest
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure

from ladder.plots.animation import BUTTON_GLYPHS, animation_html, offline_html


def _movie() -> FuncAnimation:
    fig = Figure(figsize=(1, 1))
    ax = fig.subplots()

    def frame(i: int) -> None:
        ax.clear()
        ax.plot([0, i], [0, 1])

    return FuncAnimation(fig, frame, frames=3, interval=100)


def test_animation_html_plays_offline_and_is_the_same_every_time():
    first, second = animation_html(_movie(), "my_anim"), animation_html(_movie(), "my_anim")
    assert first == second  # no random id, so a re-executed notebook stores the same output
    assert "https://" not in first and "maxcdn" not in first and 'class="fa ' not in first
    assert 'id="_anim_imgmy_anim"' in first
    assert all(glyph in first for glyph in ("❚❚", "▶", "|◀"))
    assert first.count("data:image/jpeg;base64") == 3


def test_offline_html_rewrites_the_player_markup():
    uid = "0123456789abcdef0123456789abcdef"
    html = ('<link rel="stylesheet"\n href="https://maxcdn.example/font-awesome.css">'
            f'<img id="_anim_img{uid}"><button><i class="fa fa-pause"></i></button>'
            f'<script>anim{uid} = 1;</script>')
    out = offline_html(html, "fixed")
    assert out == ('<img id="_anim_imgfixed"><button>' + BUTTON_GLYPHS["pause"]
                   + '</button><script>animfixed = 1;</script>')


def test_offline_html_refuses_other_html():
    with pytest.raises(ValueError, match="to_jshtml"):
        offline_html("<p>not a player</p>", "x")
    with pytest.raises(ValueError, match="web"):
        offline_html('<img id="_anim_img' + "0" * 32 + '"><script src="https://x.js">', "x")
