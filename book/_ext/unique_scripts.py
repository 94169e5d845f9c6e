"""A Sphinx extension that drops a page's repeated scripts (loaded by ``_config.yml``).

Jupyter Book loads sphinx-thebe even with thebe off, and sphinx-thebe adds its inline
``const THEBE_JS_URL = ...`` script twice, which is a SyntaxError in every page's console
(``Identifier 'THEBE_JS_URL' has already been declared``; issue 19). The book uses no thebe, so a
repeated script is always a mistake: keep the first of each.
"""

from __future__ import annotations

from typing import Any


def drop_repeated_scripts(app: Any, pagename: str, templatename: str, context: dict,
                          doctree: Any) -> None:
    """Keep the first of the page's scripts with the same file and inline body."""
    seen, kept = set(), []
    for script in context["script_files"]:
        attributes = getattr(script, "attributes", {}) or {}
        key = (getattr(script, "filename", None) or "", attributes.get("body"))  # None or ""
        if key not in seen:
            seen.add(key)
            kept.append(script)
    # in place: the list is the builder's own, to which later handlers (MathJax, the widgets) add
    context["script_files"][:] = kept


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", drop_repeated_scripts, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
