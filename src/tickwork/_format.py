"""Plain-text tables of task statistics, for the commands and the logs."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["seconds", "table"]


def seconds(value: float | None, digits: int = 1) -> str:
    """``value`` in seconds with ``digits`` decimals, or ``-`` when unknown."""
    return "-" if value is None else f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "",
          rule: bool = False) -> str:
    """Columns aligned to their widest cell: the first to the left, numbers to the right.

    ``rule`` puts a line of dashes under the header.
    """
    all_rows = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return indent + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                  for i, (cell, w) in enumerate(zip(cells, widths, strict=True)))

    lines = [line(row) for row in all_rows]
    if rule:
        lines.insert(1, line(["-" * w for w in widths]))
    return "\n".join(lines)
