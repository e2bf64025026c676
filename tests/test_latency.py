"""The assembly keeps looking for frames that a shared filesystem shows late."""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL_FRAME_COUNT
from tests.helpers import project_env, run
from volcano_gif.assembly import latency
from volcano_gif.assembly.assembler import FramesNotReadyError, assemble
from volcano_gif.layout import frame_name
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import require_record

N = SMALL_FRAME_COUNT


def _hide_last_frame(paths: ProjectPaths) -> Path:
    """Take the last frame away, as a node whose cache does not show it yet."""
    hidden = paths.root / "hidden.png"
    shutil.move(paths.images / frame_name(N), hidden)
    return hidden


def test_a_frame_that_appears_during_the_window_completes_the_run(
    rendered_project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = rendered_project
    hidden = _hide_last_frame(paths)
    missing: list[int] = []  # how many frames each look found missing or broken
    look = latency._look

    def counted_look(*args: Any) -> dict[int, str]:
        problems = look(*args)
        missing.append(len(problems))
        return problems

    monkeypatch.setattr(latency, "_look", counted_look)
    shows_up = threading.Timer(2.5, lambda: hidden.rename(paths.images / frame_name(N)))
    shows_up.start()
    began = time.monotonic()
    try:
        result = assemble(paths, N, latency_wait=60)
    finally:
        shows_up.cancel()
    assert time.monotonic() - began >= 2.5
    # It looked again until the frame came, and stopped at the first look that saw it, not
    # at the window's end: by what it saw, not by a time that a loaded machine stretches.
    assert missing[-1] == 0
    assert missing[:-1] == [1] * (len(missing) - 1)
    assert len(missing) >= 2
    assert result.frames_deleted == N
    assert result.gif.is_file()


def test_a_frame_that_never_comes_still_fails_after_the_window(
    rendered_project: ProjectPaths, caplog: pytest.LogCaptureFixture
) -> None:
    paths = rendered_project
    _hide_last_frame(paths)
    caplog.set_level(logging.INFO)
    began = time.monotonic()
    with pytest.raises(FramesNotReadyError, match=rf"1 of {N} frames are missing or broken"):
        assemble(paths, N, latency_wait=3)
    assert time.monotonic() - began >= 3
    assert "looking again for up to 3 s" in caplog.text
    caplog.clear()
    with pytest.raises(FramesNotReadyError):
        assemble(paths, N)  # the library's default: the first look decides
    assert "looking again" not in caplog.text


@pytest.mark.parametrize(
    ("given", "waits"), [(["--latency-wait", "2"], True), ([], False)], ids=["option", "variable"]
)
def test_the_assembly_command_takes_the_window_from_its_option_or_variable(
    project: Path, given: list[str], waits: bool
) -> None:
    (project / "images").mkdir()
    began = time.monotonic()
    done = run(
        [sys.executable, "-m", "volcano_gif", "assemble", "--frames", "2", *given],
        cwd=project,
        env=project_env({"VOLCANO_LATENCY_WAIT": "0"}),
    )
    took = time.monotonic() - began
    assert done.returncode == 1
    assert "2 of 2 frames are missing or broken" in done.stderr
    # Whether it waited, by what it says (a loaded machine makes any start-up slow);
    # a wait it announces must also last the window.
    assert ("looking again for up to" in done.stderr) is waits
    if waits:
        assert "looking again for up to 2 s, in case a shared filesystem" in done.stderr
        assert took >= 2
    assert require_record(ProjectPaths(project)).missing_frames == [1, 2]
