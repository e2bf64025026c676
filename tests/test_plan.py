"""Exact checks of what would be submitted: arrays, MaxArraySize, resume lists, commands."""

from __future__ import annotations

import pytest

from tests.helpers import argv
from volcano_gif.errors import UsageError
from volcano_gif.layout import ARRAY_SCRIPT, ASSEMBLY_SCRIPT
from volcano_gif.run.record import Parameters
from volcano_gif.submit.plan import (
    ARRAY_ID_PLACEHOLDER,
    assembly_options,
    plan_array,
    render_options,
    sbatch_command,
    show,
)


def _parameters(**changes: object) -> Parameters:
    values: dict[str, object] = dict(
        frame_count=360, frames_per_task=1, width=640, height=480, fps=25, gif_width=400
    )
    values.update(changes)
    return Parameters(**values)  # type: ignore[arg-type]


def test_a_full_run_is_one_task_per_block() -> None:
    array = plan_array(360, 1, 1001)
    assert (array.spec, array.frames_per_task, array.note) == ("1-360", 1, None)
    assert array.frames() == list(range(1, 361))
    assert plan_array(360, 20, 1001).spec == "1-18"
    assert plan_array(360, 7, 1001, max_running=10).spec == "1-52%10"


def test_3600_frames_under_max_array_size_101_fit_by_raising_frames_per_task() -> None:
    array = plan_array(3600, 1, 101)
    assert array.frames_per_task == 36
    assert array.tasks == list(range(1, 101))
    assert max(array.tasks) <= 100  # indices run 0..MaxArraySize-1
    assert array.spec == "1-100"
    assert array.frames() == list(range(1, 3601))  # every frame, once
    assert array.note == (
        "3600 frames at 1 per task need array indices up to 3600, but this cluster's "
        "MaxArraySize is 101 (indices up to 100): rendering 36 frames per task instead, "
        "as 100 tasks"
    )


@pytest.mark.parametrize(
    ("frames", "per_task", "limit", "fitted", "tasks"),
    [
        (1000, 1, 1001, 1, 1000),  # index 1000 is allowed
        (1001, 1, 1001, 2, 501),  # index 1001 is not
        (101, 1, 101, 2, 51),
        (100, 3, 101, 3, 34),  # the requested value fits: kept
        (9999, 1, 11, 1000, 10),
    ],
)
def test_fitting_keeps_every_index_below_the_limit(
    frames: int, per_task: int, limit: int, fitted: int, tasks: int
) -> None:
    array = plan_array(frames, per_task, limit)
    assert (array.frames_per_task, len(array.tasks), max(array.tasks)) == (fitted, tasks, tasks)
    assert max(array.tasks) <= limit - 1
    assert array.frames() == list(range(1, frames + 1))


def test_a_cluster_without_arrays_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="MaxArraySize is 1: it allows no array task 1"):
        plan_array(10, 1, 1)


def test_resume_lists_only_the_tasks_that_hold_missing_frames() -> None:
    missing = [3, 17, *range(200, 216)]
    assert plan_array(360, 1, 1001, frames_to_render=missing).spec == "3,17,200-215"
    by_twenty = plan_array(360, 20, 1001, frames_to_render=missing)
    assert by_twenty.tasks == [1, 10, 11]  # frames 1-20, 181-200, 201-220
    assert set(missing) <= set(by_twenty.frames())
    assert plan_array(360, 1, 1001, 4, frames_to_render=[9, 10]).spec == "9-10%4"


def test_a_resume_list_also_stays_under_max_array_size() -> None:
    array = plan_array(3600, 1, 101, frames_to_render=[5, 1800, 3600])
    assert array.frames_per_task == 36
    assert array.tasks == [1, 50, 100]
    assert {5, 1800, 3600} <= set(array.frames())


RUN = "20261202T010000-0042"


def test_render_and_assembly_options() -> None:
    plain = _parameters()
    assert render_options(plain, 1, RUN) == argv(f"--frames 360 --frames-per-task 1 --run-id {RUN}")
    assert assembly_options(plain) == ["--frames", "360"]
    small = _parameters(frame_count=12, width=96, height=72, gif_width=96)
    assert render_options(small, 4, RUN, force=True) == argv(
        f"--frames 12 --frames-per-task 4 --run-id {RUN} --size 96x72 --force"
    )
    assert assembly_options(small) == ["--frames", "12", "--size", "96x72"]
    narrow = _parameters(gif_width=240)
    assert assembly_options(narrow) == ["--frames", "360", "--gif-width", "240"]


def test_the_two_sbatch_commands_are_exact() -> None:
    array = plan_array(360, 1, 1001, max_running=10)
    render = render_options(_parameters(), 1, RUN)
    assert sbatch_command(ARRAY_SCRIPT, render, ["--qos=debug"], array=array) == argv(
        "sbatch --parsable --array=1-360%10 --qos=debug generate_frames.slurm --frames 360 "
        f"--frames-per-task 1 --run-id {RUN}"
    )
    assert sbatch_command(
        ASSEMBLY_SCRIPT, ["--frames", "360"], ["--qos=debug"], after="77"
    ) == argv(
        "sbatch --parsable --dependency=afterany:77 --qos=debug create_gif.slurm --frames 360"
    )
    assert sbatch_command(ASSEMBLY_SCRIPT, ["--frames", "360"]) == argv(
        "sbatch --parsable create_gif.slurm --frames 360"
    )


def test_show_quotes_arguments_but_keeps_the_placeholder_readable() -> None:
    command = sbatch_command(
        ASSEMBLY_SCRIPT, ["--frames", "9"], ["--comment=a b"], after=ARRAY_ID_PLACEHOLDER
    )
    assert show(command) == (
        "sbatch --parsable --dependency=afterany:<array job id> '--comment=a b' "
        "create_gif.slurm --frames 9"
    )
