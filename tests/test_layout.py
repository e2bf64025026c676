"""Exact checks of the shared facts: names, ranges, task blocks."""

from __future__ import annotations

import pytest

from volcano_gif.errors import UsageError
from volcano_gif.layout import frame_name, frame_number
from volcano_gif.numbering import (
    azimuth,
    check_frame,
    default_gif_width,
    expected_frames,
    frame_label,
    gif_size,
    parse_size,
    split_evenly,
    task_count,
    task_frames,
    task_of_frame,
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
    from volcano_gif.numbering import compress_ranges

    assert compress_ranges([17, 3, 4, 5, 200]) == "3-5,17,200"
    assert compress_ranges([1]) == "1"


def test_sizes_parse_and_reject_bad_ones() -> None:
    assert parse_size("640x480") == (640, 480)
    assert parse_size(" 96X72 ") == (96, 72)
    for bad, message in [
        ("640", "is not of the form WIDTHxHEIGHT"),
        ("axb", "is not of the form WIDTHxHEIGHT"),
        ("8x8", "size 8x8 is out of range"),
        ("99999x480", "size 99999x480 is out of range"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_size(bad)


def test_gif_size_keeps_the_aspect_as_ffmpeg_rounds_it() -> None:
    assert gif_size((640, 480), 400) == (400, 300)
    assert gif_size((96, 72), 96) == (96, 72)
    assert gif_size((101, 77), 50) == (50, 38)  # 38.1 rounds down
    assert default_gif_width((640, 480)) == 400
    assert default_gif_width((96, 72)) == 96


def test_frame_labels_round_trip() -> None:
    label = frame_label(7, 360, (640, 480))
    assert label == "frame 7 of 360, 640x480"


def test_task_of_frame_inverts_task_frames() -> None:
    for per_task in (1, 7, 36):
        for task in range(1, task_count(360, per_task) + 1):
            for frame in task_frames(task, per_task, 360):
                assert task_of_frame(frame, per_task) == task
