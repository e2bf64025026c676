"""The height grid: shape, values, true column order, and every bad-file error."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.helpers import REPO
from volcano_gif.task.data import DataError, load_grid


def test_grid_shape_and_range(grid: npt.NDArray[np.float64]) -> None:
    assert grid.shape == (87, 61)
    assert (float(np.min(grid)), float(np.max(grid))) == (94.0, 195.0)


def test_columns_are_in_numeric_not_text_order(grid: npt.NDArray[np.float64]) -> None:
    with (REPO / "data" / "volcano.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # V10 is grid column 9; sorted as text it would land at column 1.
    assert [row["V10"] for row in rows] == [f"{value:g}" for value in grid[:, 9]]
    assert [row["V2"] for row in rows] == [f"{value:g}" for value in grid[:, 1]]


def test_header_order_does_not_matter(tmp_path: Path, grid: npt.NDArray[np.float64]) -> None:
    with (REPO / "data" / "volcano.csv").open() as handle:
        rows = list(csv.reader(handle))
    order = list(reversed(range(len(rows[0]))))
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join(",".join(row[i] for i in order) for row in rows) + "\n")
    np.testing.assert_array_equal(load_grid(shuffled), grid)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "the file is empty"),
        ("V1,V2\n", "has a header but no rows"),
        ("V1,V2\n1,2\n3\n", "line 3 has 1 values, the header has 2"),
        ("V1,V2\n1,two\n", "line 2, column V2: 'two' is not a height (a finite number"),
        ("V1,V2\n1,nan\n", "line 2, column V2: 'nan' is not a height (a finite number"),
        ("V1,V2\n1,2\n1,1e308\n", "line 3, column V2: '1e308' is not a height"),
        ("V1,V2\n1,-inf\n1,2\n", "line 2, column V2: '-inf' is not a height"),
        ("V1\n1\n2\n3\n", "the grid has 3 rows of 1 heights: a surface needs at least 2"),
        ("V1,V2,V3\n1,2,3\n", "the grid has 1 rows of 3 heights: a surface needs at least 2"),
        ("V1,V2\n" + "1,2\n" * 300_000, "1.1 MiB is too large a grid: at most 1 MiB"),
        ("a,b\n1,2\n", "header 'a' is not of the form V1, V2"),
        ("V1,V3\n1,2\n", "the header must name V1 to V2 once each"),
    ],
)
def test_bad_files_raise_one_line_errors_naming_the_file(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError) as raised:
        load_grid(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_missing_file_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no such file; the height grid ships as data/volcano.csv"):
        load_grid(tmp_path / "nope.csv")


def test_what_is_no_readable_file_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("V1,V2\n1,2\n3,4\n")
    (tmp_path / "folder.csv").mkdir()
    for path, problem in (
        (tmp_path / "folder.csv", "not a regular file; the height grid is a CSV file"),
        (tmp_path / "a-file" / "volcano.csv", "cannot read the file: Not a directory"),
    ):
        with pytest.raises(DataError) as raised:
            load_grid(path)
        assert str(raised.value) == f"{path}: {problem}"
