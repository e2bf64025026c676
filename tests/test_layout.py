"""Exact checks of the shared facts: names, ranges, task blocks."""

from __future__ import annotations

import pytest

from volcano_gif.layout import (
    UsageError,
    azimuth,
    check_frame,
    compress_ranges,
    expected_frames,
    frame_name,
    frame_number,
    split_evenly,
    task_count,
    task_frames,
)


def test_frame_names_are_zero_padded_and_sort_in_frame_order() -> None:
    names = [frame_name(n) for n in expected_frames(360)]
    assert names[0] == "image0001.png"
    assert names[-1] == "image0360.png"
    assert sorted(names) == names


def test_frame_number_reads_back_only_frame_names() -> None:
    assert frame_number("image0042.png") == 42
    assert frame_number("image42.png") is None
    assert frame_number(".image0042.png.123.tmp") is None


def test_azimuth_is_the_originals_45_plus_n_for_360_frames() -> None:
    assert [azimuth(n, 360) for n in (1, 2, 360)] == [46.0, 47.0, 405.0]
    assert azimuth(12, 12) - azimuth(0, 12) == 360.0


@pytest.mark.parametrize("frame", [0, 361, -1])
def test_check_frame_rejects_out_of_range(frame: int) -> None:
    with pytest.raises(UsageError, match=f"frame {frame} is out of range: use 1 to 360"):
        check_frame(frame, 360)


def test_task_blocks_cover_every_frame_once() -> None:
    assert task_count(360, 1) == 360
    assert task_count(360, 7) == 52
    blocks = [task_frames(k, 7, 360) for k in range(1, 53)]
    assert [frame for block in blocks for frame in block] == list(range(1, 361))
    assert task_frames(52, 7, 360) == range(358, 361)


def test_task_out_of_range_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="array task 53 is out of range"):
        task_frames(53, 7, 360)
    with pytest.raises(UsageError, match="frames per task must be at least 1"):
        task_count(360, 0)


def test_split_evenly_makes_contiguous_near_equal_blocks() -> None:
    assert split_evenly(range(1, 11), 3) == [range(1, 5), range(5, 8), range(8, 11)]
    assert split_evenly(range(1, 3), 8) == [range(1, 2), range(2, 3)]


def test_compress_ranges_is_sbatch_array_syntax() -> None:
    assert compress_ranges([17, 3, 4, 5, 200]) == "3-5,17,200"
    assert compress_ranges([1]) == "1"
