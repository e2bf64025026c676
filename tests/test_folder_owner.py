"""A frame rendered by hand never replaces a run's frames (python volcano.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers import clean_frame_digests, run
from volcano_gif.files import sha256_of
from volcano_gif.layout import frame_name
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import new_record, write_record
from volcano_gif.run.record import Mode, Parameters, RunState


def _volcano(project: Path, *args: str) -> tuple[int, list[str]]:
    done = run([sys.executable, "volcano.py", *args], cwd=project)
    return done.returncode, [line for line in done.stderr.splitlines() if "error" in line]


def _run_of_24_under_way(project: Path, state: RunState = RunState.SUBMITTED) -> str:
    record = new_record(Mode.SLURM, Parameters.of(24))
    record.state = state
    write_record(ProjectPaths(project), record)
    return record.run_id


def test_a_hand_run_is_refused_while_the_folders_run_is_under_way(project: Path) -> None:
    run_id = _run_of_24_under_way(project)
    code, errors = _volcano(project, "--frames", "12", "3")
    assert code == 2
    (line,) = errors
    assert line.startswith(f"volcano.py: error: run {run_id} owns {project} and is under way ")
    assert "bash submit-gif-job --cancel" in line
    assert line.endswith("or give --force")
    assert not (project / "images" / frame_name(3)).exists()
    # --force renders anyway; and the run's own array tasks render as always.
    assert _volcano(project, "--frames", "12", "3", "--force")[0] == 0
    code, errors = _volcano(project, "--frames", "24", "--array-task", "2", "--run-id", run_id)
    assert (code, errors) == (0, [])


def test_a_hand_run_never_replaces_a_complete_frame_of_another_run(project: Path) -> None:
    images = project / "images"
    images.mkdir()
    assert _volcano(project, "--frames", "24", "3", "-q")[0] == 0
    before = sha256_of(images / frame_name(3))
    assert before == clean_frame_digests(24)[frame_name(3)]
    code, errors = _volcano(project, "--frames", "12", "3")  # the lesson's exercise
    assert code == 2
    (line,) = errors
    assert line.startswith("volcano.py: error: images/ holds frames of another run (image0003.png ")
    assert "frame 3 of 24, 640x480" in line
    assert sha256_of(images / frame_name(3)) == before
    # Another frame of a 12-frame run would mix two runs in images/: refused too.
    assert _volcano(project, "--frames", "12", "5")[0] == 2
    assert not (images / frame_name(5)).exists()


def test_a_hand_run_of_the_same_run_after_it_ended_keeps_its_frames(project: Path) -> None:
    _run_of_24_under_way(project, RunState.FAILED)
    images = project / "images"
    images.mkdir()
    assert _volcano(project, "--frames", "24", "3", "-q")[0] == 0
    done = run([sys.executable, "volcano.py", "--frames", "24", "3"], cwd=project)
    assert done.returncode == 0, done.stderr
    assert "kept frame 3, already complete" in done.stderr
