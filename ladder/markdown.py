"""Numbers as the project's Markdown tables print them: mean ± error cells, fractions, durations,
and the table itself (the report of ``ladder report``, ``ladder evaluate``'s summary, the SLP
comparison, the diagnostics)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof 1; None for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_std needs at least one value")
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def format_pm(mean: float, error: float | None, digits: int,
              error_digits: int | None = None) -> str:
    """``mean ± error`` with ``digits`` decimals (``error_digits`` for the error where the paper
    prints it with more); just the mean where ``error`` is None."""
    text = f"{mean:.{digits}f}"
    if error is None:
        return text
    return f"{text} ± {error:.{digits if error_digits is None else error_digits}f}"


def format_mean_std(values: Sequence[float], digits: int) -> str:
    """The mean ± sample std of ``values`` (:func:`mean_std`), ``"-"`` for none."""
    if not values:
        return "-"
    return format_pm(*mean_std(values), digits)


def format_with_error(value: float, error: float | None, max_digits: int | None = None) -> str:
    """``value ± error`` rounded to the error's second significant digit (at most to the unit);
    just the value (4 significant digits) without a positive finite error. Where that takes more
    than ``max_digits`` decimals, both in 4 and 1 significant digits instead."""
    if error is None or not math.isfinite(error) or error <= 0:
        return f"{value:.4g}"
    digits = max(0, 1 - math.floor(math.log10(error)))
    if max_digits is not None and digits > max_digits:
        return f"{value:.4g} ± {error:.1g}"
    return format_pm(value, error, digits)


def format_fraction(fraction: float | None) -> str:
    """A fraction as a whole percentage, ``"n/a"`` for None or NaN."""
    if fraction is None or math.isnan(fraction):
        return "n/a"
    return f"{fraction:.0%}"


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``2 h 07 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: the header, the separator and one line per row (no final newline). A
    ``|`` inside a cell, as in ``KL(q||p)``, is escaped so that it does not split the cell."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])
