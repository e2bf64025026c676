"""A markdown table of numbers, as the benchmarks print them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def number_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """``header`` and ``rows`` (cells already formatted) as a markdown table, right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)
