"""The one helper that runs external commands."""

from __future__ import annotations

import logging
import time

import pytest

from volcano_gif.commands import CommandError, last_line, on_one_line, run, run_capturing


def test_run_returns_stdout() -> None:
    assert run(["printf", "hello"]) == "hello"


def test_failure_names_command_exit_code_and_stderr() -> None:
    with pytest.raises(CommandError) as raised:
        run(["sh", "-c", "echo bad thing >&2; exit 4", "x y"])
    assert raised.value.returncode == 4
    assert str(raised.value) == (
        "command failed with exit code 4: sh -c 'echo bad thing >&2; exit 4' 'x y'\nbad thing"
    )


def test_missing_program_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="exit code 127: no-such-program-here"):
        run(["no-such-program-here"])


def test_large_output_does_not_stall() -> None:
    out, err = run_capturing(["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a >&2; echo done"])
    assert (out, len(err)) == ("done\n", 300000)


def test_what_a_command_said_on_one_line() -> None:
    said = "\n  sbatch: error: first\n\nsbatch: error: last  \n"
    assert on_one_line(said) == "sbatch: error: first / sbatch: error: last"
    assert last_line(said) == "sbatch: error: last"
    assert (on_one_line(" \n"), last_line("")) == ("", "")


def test_a_command_with_a_time_limit_is_said_to_be_awaited_then_killed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert run_capturing(["sh", "-c", "echo quick"], timeout=60) == ("quick\n", "")
    assert caplog.records == []
    began = time.monotonic()
    with caplog.at_level(logging.INFO), pytest.raises(CommandError) as raised:
        run_capturing(["sleep", "300"], timeout=4)
    assert time.monotonic() - began < 60  # not the 300 s it asked for
    assert raised.value.returncode == 124
    assert raised.value.stderr == "sleep: no answer in 4 s"
    assert [record.getMessage() for record in caplog.records] == [
        "waiting for sleep 300 to answer (up to 4 s)"
    ]
