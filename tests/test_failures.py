"""A job killed for memory or time is named, with the sbatch option that gives it enough."""

from __future__ import annotations

import pytest

from volcano_gif.run.failures import Kill, fix_options, kills, over_asked_line
from volcano_gif.slurm import JobLine


def _line(
    job: str, task: int | None, state: str, memory: str = "60M", limit: str = "5:00"
) -> JobLine:
    return JobLine(job, task, state, "None", memory, limit)


def test_tasks_killed_for_memory_are_named_once_with_the_option_that_fixes_them() -> None:
    lines = [_line("12", 1, "COMPLETED"), *(_line("12", k, "OUT_OF_MEMORY") for k in (3, 4, 5, 9))]
    (kill,) = kills(lines)
    assert kill == Kill("12", (3, 4, 5, 9), "memory", "60M", "--mem=256M")
    assert kill.line() == (
        "array tasks 3-5,9 of job 12 ran out of memory (OUT_OF_MEMORY): each asked for 60 MiB "
        "(--mem); ask for more with --mem=256M"
    )


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        # At least the script's own measured default (1G), and at least twice what was asked.
        (_line("13", None, "OUT_OF_MEMORY", "60M"), "--mem=1024M"),
        (_line("13", None, "OUT_OF_MEMORY", "2G"), "--mem=4096M"),
        (_line("13", None, "TIMEOUT", limit="15:00"), "--time=00:30:00"),
        (_line("13", None, "TIMEOUT", limit="1-00:00:00"), "--time=2-00:00:00"),
        (_line("12", 4, "TIMEOUT", limit="1:00"), "--time=00:05:00"),
    ],
)
def test_the_fix_is_more_of_what_ran_out(line: JobLine, fix: str) -> None:
    (kill,) = kills([line])
    assert kill.fix == fix


def test_the_assembly_killed_for_time_says_what_it_asked_for() -> None:
    (kill,) = kills([_line("13", None, "TIMEOUT", limit="15:00")])
    assert kill.line() == (
        "the assembly job 13 ran out of time (TIMEOUT): it asked for 15:00 (--time); ask for "
        "more with --time=00:30:00"
    )


def test_one_option_of_each_kind_the_largest() -> None:
    found = kills(
        [
            _line("12", 3, "OUT_OF_MEMORY"),
            _line("13", None, "OUT_OF_MEMORY"),
            _line("12", 4, "TIMEOUT"),
        ]
    )
    assert fix_options(found) == ["--mem=1024M", "--time=00:10:00"]
    assert fix_options(found, ["--mem=2048M"]) == ["--mem=2048M", "--time=00:10:00"]
    assert fix_options([]) == []


def test_tasks_that_peaked_above_what_they_asked_for_are_a_warning() -> None:
    assert over_asked_line([55.0, 67.2, 61.0], 60.0) == (
        "warning: 2 render tasks peaked above the 60 MiB asked for (at most 67 MiB): where "
        "cgroups enforce --mem such a task is killed; ask for more with --mem=256M"
    )
    assert over_asked_line([55.0], 60.0) is None
    assert over_asked_line([55.0], None) is None
