"""Static checks, part of the suite: ruff, ruff format, mypy --strict and import-linter.

They check and never rewrite. Each runs the copy that ``pip install -e '.[test]'``
put beside this interpreter, never one found on PATH (tests/helpers.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO, ProgramNotInstalledError, installed_program


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
        ["lint-imports", "--no-cache"],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "import-linter"],
)
def test_static_check_passes(command: list[str]) -> None:
    program, *arguments = command
    result = subprocess.run(
        [installed_program(program), *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_programs_come_from_the_interpreters_scripts_folder_not_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A decoy shellcheck on PATH must never be the one the tests use.
    decoy = tmp_path / "shellcheck"
    decoy.write_text("#!/bin/sh\nexit 97\n")
    decoy.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    found = installed_program("shellcheck")
    assert found != decoy
    assert subprocess.run([found, "--version"], capture_output=True, check=False).returncode == 0
    with pytest.raises(ProgramNotInstalledError, match=r"no-such-tool is not in .*pip install"):
        installed_program("no-such-tool")
