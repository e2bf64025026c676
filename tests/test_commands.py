"""The one helper that runs external commands."""

from __future__ import annotations

import pytest

from volcano_gif.commands import CommandError
from volcano_gif.commands import run
from volcano_gif.commands import run_concurrently


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


def test_concurrent_commands_all_finish_even_when_one_fails(tmp_path: object) -> None:
    with pytest.raises(CommandError, match="exit code 2"):
        run_concurrently([["sh", "-c", "exit 2"], ["sh", "-c", "sleep 0.2; echo done"]])


def test_large_output_does_not_stall() -> None:
    outputs = run_concurrently(
        [["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a >&2"], ["echo", "second"]]
    )
    assert outputs == ["", "second\n"]
