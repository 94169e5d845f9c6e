"""Helpers for the book's chapters: one reproducible setup call, and the package's code on the page.

Every chapter starts with ``settings = setup_notebook(seed=seed, threads=threads)`` followed by
``print(banner(settings))``; the banner holds nothing volatile, so nbval compares it exactly.
Chapters show the code they teach with ``show_source(obj)`` instead of pasting a copy of it, and
state each finding about training with ``check(claim, value, above=..., below=...)``: an assertion
whose margin ``scripts/claims_over_seeds.py`` tabulates over seeds and instruction sets.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # IPython comes with the notebook kernel; importing ladder must not need it.
    from IPython.display import Markdown

_PACKAGE_DIR = Path(__file__).resolve().parent

#: The book's figure style (small figures, no top/right spines, a light grid).
FIGURE_STYLE: dict[str, Any] = {
    "figure.figsize": (5.0, 3.0),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.5,
    "image.cmap": "viridis",
}


def setup_notebook(seed: int = 0, threads: int | None = 2, precision: int = 4) -> dict[str, Any]:
    """Make a chapter reproducible: the one setup call at the top of every chapter.

    Seeds ``random``, NumPy and torch (all devices); sets the torch CPU thread count; turns on
    ``torch.use_deterministic_algorithms`` (an op without a deterministic implementation then
    raises instead of silently changing the stored outputs); sets NumPy/torch print options and
    the matplotlib style :data:`FIGURE_STYLE` (rcParams only, so it is safe under Agg); and
    prints warnings as ``Category: message``, without the source file's path on this machine.

    ``PYTHONHASHSEED`` cannot be set from inside a running interpreter; ``make notebooks`` and
    ``make nbval`` set it to 0 for the kernel.

    Args:
        seed: seed for ``random``, NumPy and torch, in ``[0, 2**32)``.
        threads: torch CPU threads; the stored outputs are made with 2 (``make notebooks``).
            ``None`` keeps torch's current setting (then the banner depends on the machine).
        precision: digits after the decimal point when NumPy arrays and torch tensors print.

    Returns:
        What was set, in this order (``seed``, ``threads``, ``deterministic``, ``device``, which
        is ``"cuda"`` if torch sees a GPU, else ``"cpu"``, and ``precision``). Nothing volatile
        (no versions, times or paths), so ``print(banner(settings))`` is an exact nbval check.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    if isinstance(precision, bool) or not isinstance(precision, int) or precision < 0:
        raise ValueError(f"precision must be a non-negative int, got {precision!r}")

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if threads is not None:
        torch.set_num_threads(threads)
    # cuBLAS needs this before its first use to be deterministic (a no-op on the CPU).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False

    np.set_printoptions(precision=precision, suppress=True, linewidth=100)
    torch.set_printoptions(precision=precision, sci_mode=False, linewidth=100)

    import matplotlib
    import matplotlib.pyplot

    # Load the backend now (matplotlib loads it at the first pyplot figure): a Jupyter kernel's
    # inline backend registers, on loading, how a Figure displays, and a chapter may display
    # figures built without pyplot (ladder.plots) before it makes any with pyplot.
    matplotlib.pyplot.switch_backend(matplotlib.get_backend())
    matplotlib.rcParams.update(FIGURE_STYLE)
    warnings.formatwarning = short_warning

    return {
        "seed": seed,
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "precision": precision,
    }


def short_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  line: str | None = None) -> str:
    """``warnings.formatwarning`` for the book: ``Category: message``, no path or source line."""
    return f"{category.__name__}: {message}\n"


def banner(settings: Mapping[str, Any]) -> str:
    """One line ``key=value ...`` from :func:`setup_notebook`'s result, for the chapter's header."""
    return " ".join(f"{key}={value}" for key, value in settings.items())


def show_source(obj: Any) -> Markdown:
    """Display the source of a ``ladder`` function, class, method or module in a chapter.

    The code comes from the installed package via :func:`inspect.getsource`, under a header
    "``ladder/<module>.py``: ``QualifiedName``" (no line numbers, which would change with every
    edit above it), so a chapter never carries a second copy of the code. The stored output
    changes when the code does; ``make notebooks`` refreshes it and nbval fails until then, which
    keeps the book and the package in step.

    Raises:
        ValueError: ``obj`` has no Python source, or its source is not in the ``ladder`` package.
    """
    from IPython.display import Markdown

    target = inspect.unwrap(obj.fget if isinstance(obj, property) else obj)  # decorated too
    try:
        path = Path(inspect.getsourcefile(target) or "").resolve()
        code = inspect.getsource(target).rstrip("\n")
    except (TypeError, OSError) as err:
        raise ValueError(
            f"show_source needs a ladder function, class, method or module, got {obj!r}"
        ) from err
    if _PACKAGE_DIR not in path.parents:
        raise ValueError(
            f"show_source only shows code from the ladder package ({_PACKAGE_DIR}); "
            f"{obj!r} is defined in {path}"
        )
    header = f"`{path.relative_to(_PACKAGE_DIR.parent).as_posix()}`"
    if hasattr(target, "__qualname__"):  # a module is its file
        header += f": `{target.__qualname__}`"
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", code)), default=0))
    return Markdown(f"{header}\n\n{fence}python\n{code}\n{fence}")


#: ``check`` appends one JSON line per claim to the file this variable names (if it is set).
CLAIMS_LOG_ENV = "LADDER_CLAIMS_LOG"


class ClaimFailed(AssertionError):
    """A chapter's finding about training does not hold for this run."""


def check(claim: str, value: float, *, above: float | None = None,
          below: float | None = None) -> None:
    """Assert a chapter's finding about training, ``above < value < below``.

    A finding about a trained model (as opposed to an identity such as a Monte Carlo check of a
    closed form) holds only up to seed-to-seed and platform spread, so its bound is set from the
    margins over seeds 0-4 that ``scripts/claims_over_seeds.py`` measures, never from one run.
    The margin is how far ``value`` lies inside its bound(s), in the value's own units (the
    smaller of the two when both are given); a negative margin is a failed claim. Nothing is
    returned, so a ``check`` that ends a cell leaves no output whose digits depend on the machine.

    With ``$LADDER_CLAIMS_LOG`` naming a file, the claim, value, bounds and margin are appended
    to it as one JSON line instead of being asserted, so that a survey over seeds records every
    claim of a chapter (the survey fails on any negative margin).

    Raises:
        ValueError: neither bound is given, or ``value`` is not a finite number.
        ClaimFailed: the value lies outside its bound(s) (not raised while recording).
    """
    if above is None and below is None:
        raise ValueError(f"check({claim!r}) needs a bound: above=..., below=... or both")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"check({claim!r}): the value is {value}, not a finite number")
    margins = [value - above] if above is not None else []
    margins += [below - value] if below is not None else []
    margin = min(margins)
    log = os.environ.get(CLAIMS_LOG_ENV)
    if log:
        record = {"claim": claim, "value": value, "above": above, "below": below,
                  "margin": margin}
        with open(log, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
        return
    if margin <= 0:
        bounds = " and ".join(f"{word} {bound:g}" for word, bound in (("above", above),
                              ("below", below)) if bound is not None)
        raise ClaimFailed(f"{claim}: {value:g} is not {bounds}")
