"""Load the Maunga Whau height grid from its CSV file.

The file has a header row ``V1..V61`` and one row per grid row. Column ``Vk`` is
grid column ``k - 1``: the original recipe turned the names into categorical
codes, which sort as text (V1, V10, V11, ...) and garble the surface.
"""

from __future__ import annotations

import csv
import math
import re
import stat
from pathlib import Path

import numpy as np
import numpy.typing as npt

from volcano_gif.errors import UsageError

_COLUMN_RE = re.compile(r"^V([1-9]\d*)$")
#: The largest grid file read (the volcano's is 16 KB): a larger one is refused before
#: it is parsed, as frames of it would take minutes and gigabytes each.
MAX_DATA_BYTES = 1 << 20
#: Heights are metres: more than this is no landscape (and overflows the 3D projection).
MAX_HEIGHT = 1e6


class DataError(UsageError):
    """The height grid file is missing or malformed."""


def read_data(path: Path) -> str:
    """The grid file's text, refused in one line if it is missing, unreadable or too large."""
    try:
        if not stat.S_ISREG((info := path.stat()).st_mode):  # a FIFO would wait for a writer
            raise DataError(f"{path}: not a regular file; the height grid is a CSV file")
        if info.st_size > MAX_DATA_BYTES:
            raise DataError(
                f"{path}: {info.st_size / 2**20:.1f} MiB is too large a grid: "
                f"at most {MAX_DATA_BYTES // 2**20} MiB (the volcano's is 16 KB)"
            )
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataError(
            f"{path}: no such file; the height grid ships as data/volcano.csv "
            "in the project folder (choose the folder with --root)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", error)  # an OSError's without the path again
        raise DataError(f"{path}: cannot read the file: {reason}") from None


def load_grid(path: Path) -> npt.NDArray[np.float64]:
    """Return the height grid as a (rows, columns) array, columns in true order."""
    rows = [row for row in csv.reader(read_data(path).splitlines()) if row]
    if not rows:
        raise DataError(f"{path}: the file is empty; expected a header V1..Vn and rows of heights")
    header, body = rows[0], rows[1:]
    positions = _column_positions(path, header)
    if not body:
        raise DataError(f"{path}: the file has a header but no rows of heights")
    grid = np.empty((len(body), len(header)), dtype=np.float64)
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(
                f"{path}: line {line} has {len(row)} values, the header has {len(header)}"
            )
        for column, cell in enumerate(row):
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not abs(value) <= MAX_HEIGHT:  # also NaN and infinity
                raise DataError(
                    f"{path}: line {line}, column {header[column]}: {cell!r} is not a height "
                    f"(a finite number of metres, at most {MAX_HEIGHT:.0e} either way)"
                )
            grid[line - 2, positions[column]] = value
    if min(grid.shape) < 2:
        raise DataError(
            f"{path}: the grid has {grid.shape[0]} rows of {grid.shape[1]} heights: a surface "
            "needs at least 2 of each"
        )
    return grid


def _column_positions(path: Path, header: list[str]) -> list[int]:
    """Map each header name ``Vk`` to its grid column ``k - 1``."""
    positions: list[int] = []
    for name in header:
        match = _COLUMN_RE.match(name.strip())
        if not match:
            raise DataError(f"{path}: header {name!r} is not of the form V1, V2, ...")
        positions.append(int(match.group(1)) - 1)
    if sorted(positions) != list(range(len(header))):
        raise DataError(f"{path}: the header must name V1 to V{len(header)} once each")
    return positions
