"""The local runner end to end: the same two stages on this machine's cores.

Also its faults: a worker killed mid-run, a run stopped, a second run in the
same folder; and its progress output on and off a terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import termios
import time
from pathlib import Path

import pytest

from tests.helpers import (
    REPO,
    clean_frame_digests,
    command_line,
    descendants,
    project_env,
    run,
    wait_for,
)
from tests.media import gif_facts, mp4_frame_count
from volcano_gif.assembly.assembler import FramesNotReadyError
from volcano_gif.layout import frame_name
from volcano_gif.local.progress import FrameProgress
from volcano_gif.local.runner import run_local
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import require_record
from volcano_gif.task.data import load_grid
from volcano_gif.task.frames import FrameVerdict, frames_on_disk, inspect_frame
from volcano_gif.task.render import FrameRenderer


def _check_outputs(root: Path, frame_count: int) -> None:
    assert mp4_frame_count(root / "output/gifs/volcano.mp4") == frame_count
    assert gif_facts(root / "output/gifs/volcano.gif")[0] == frame_count
    (archive,) = (root / "output/archives").iterdir()
    with tarfile.open(archive) as opened:
        names = opened.getnames()
    assert sorted(names) == sorted(
        [f"images/{frame_name(n)}" for n in range(1, frame_count + 1)] + ["run.json"]
    )
    assert [p.name for p in (root / "images").iterdir()] == []
    record = require_record(ProjectPaths(root))
    assert (record.state, record.mode) == ("assembled", "local")
    assert len(record.frames_sha256) == frame_count


def test_run_local_from_python(project: Path) -> None:
    result = run_local(ProjectPaths(project), 12, workers=2)
    assert result.frames_deleted == 12
    _check_outputs(project, 12)
    report = project / "output/report"
    assert sorted(p.name for p in report.iterdir()) == ["summary.txt", "tasks.csv", "timeline.png"]


def test_submit_gif_job_local(project: Path) -> None:
    result = run(["bash", "submit-gif-job", "--local", "--frames", "12"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        str(project / "output/gifs/volcano.mp4"),
        str(project / "output/gifs/volcano.gif"),
    ]
    _check_outputs(project, 12)
    steps = [line.removeprefix("submit-gif-job: ") for line in result.stderr.splitlines()]
    assert steps[0].startswith("rendering: 12/12 frames, ")
    assert "checked 12 frames: all there, complete, of this run" in steps
    assert "verified archive (12 frames), MP4 (12 frames), GIF (12 frames, 400x300)" in steps
    assert "report: tasks: 2 on 1 node(s), 12 frames rendered" in steps


def _env_without_sbatch(tmp_path: Path, **extra: str) -> dict[str, str]:
    """PATH with only what submit-gif-job needs besides Slurm; no SLURM_CONF unless given."""
    bin_dir = tmp_path / "bin-without-sbatch"
    bin_dir.mkdir()
    for tool in ("dirname", "mktemp", "rm"):
        found = shutil.which(tool)
        assert found is not None
        os.symlink(found, bin_dir / tool)
    env = project_env({"PATH": str(bin_dir), **extra})
    if "SLURM_CONF" not in extra:
        env.pop("SLURM_CONF", None)
    return env


def test_submit_gif_job_without_sbatch_runs_locally(project: Path, tmp_path: Path) -> None:
    env = _env_without_sbatch(tmp_path)
    result = run(
        [shutil.which("bash") or "bash", "submit-gif-job", "--frames", "8"], cwd=project, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "sbatch not found; running on this machine" in result.stderr
    _check_outputs(project, 8)


def test_slurm_configured_but_no_sbatch_stops_and_names_local(
    project: Path, tmp_path: Path
) -> None:
    # A login node whose Slurm module is not loaded: never start a run with
    # every core of a shared machine by surprise.
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=site\n")
    env = _env_without_sbatch(tmp_path, SLURM_CONF=str(conf))
    result = run(
        [shutil.which("bash") or "bash", "submit-gif-job", "--frames", "8"], cwd=project, env=env
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"submit-gif-job: error: Slurm is configured on this machine ({conf}) but sbatch is "
        "not on PATH (a module to load?); to run on this machine on purpose, with all of its "
        "cores, use: bash submit-gif-job --local"
    ]
    assert not (project / "output/run.json").exists()
    assert not (project / "images").exists() or not any((project / "images").iterdir())
    here = run(
        [shutil.which("bash") or "bash", "submit-gif-job", "--local", "--frames", "4"],
        cwd=project,
        env=env,
    )
    assert here.returncode == 0, here.stderr
    _check_outputs(project, 4)


def test_failed_renders_still_reach_the_assembler(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = FrameRenderer.render

    def fails_on_frame_4(self: FrameRenderer, frame: int, images: Path) -> Path:
        if frame == 4:
            raise RuntimeError("simulated crash")
        return original(self, frame, images)

    monkeypatch.setattr(FrameRenderer, "render", fails_on_frame_4)
    with pytest.raises(FramesNotReadyError, match=r"1 of 8 frames are missing or broken \(4\)"):
        run_local(ProjectPaths(project), 8, workers=2)
    assert len(list((project / "images").iterdir())) == 7
    record = require_record(ProjectPaths(project))
    assert (record.state, record.missing_frames) == ("failed", [4])


def test_volcano_gif_console_script_runs_locally(project: Path) -> None:
    script = Path(sys.executable).parent / "volcano-gif"
    assert script.exists(), "pip install -e . installs the volcano-gif console script"
    result = run([script, "local", "--frames", "4", "-q"], cwd=project)
    assert result.returncode == 0, result.stderr
    _check_outputs(project, 4)


def _render_on_a_pty(project: Path, rows: int, columns: int) -> str:
    """Run a 24-frame local run with stderr on a terminal of this size; what it showed."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "volcano_gif", "local", "--frames", "24"],
        cwd=project,
        env=project_env(),
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 0
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("columns", [100, 0], ids=["sized", "unsized"])
def test_progress_is_a_bar_on_a_terminal(project: Path, columns: int) -> None:
    shown = _render_on_a_pty(project, 24, columns)
    assert "\r" in shown  # redrawn in place
    assert "rendering: 100%" in shown
    assert "24/24" in shown
    assert "frame/s]" in shown
    assert "rendering: 24/24 frames" not in shown  # no plain lines on a terminal


@pytest.mark.parametrize("columns", [100, 0], ids=["wide", "no-size"])
def test_a_terminal_with_no_rows_gets_plain_lines(project: Path, columns: int) -> None:
    # script -qec without a controlling tty, some CI and container shells: tqdm
    # draws nothing on a terminal of 0 rows, so plain lines must take over.
    shown = _render_on_a_pty(project, 0, columns)
    assert "rendering: 24/24 frames" in shown
    assert "frame/s]" not in shown


def test_progress_off_a_terminal_is_plain_lines_at_most_every_few_seconds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    caplog.set_level("INFO", logger="volcano_gif.local.progress")
    progress = FrameProgress(40, plain_interval=5.0)
    for _ in range(40):
        clock[0] += 0.5  # a frame every half second: 20 s in all
        progress.update()
    progress.close()
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "rendering: 10/40 frames, 2.0 frames/s, about 15 s left",
        "rendering: 20/40 frames, 2.0 frames/s, about 10 s left",
        "rendering: 30/40 frames, 2.0 frames/s, about 5 s left",
        "rendering: 40/40 frames, 2.0 frames/s, done in 20.0 s",
    ]


def _start_local_run(project: Path, frames: int, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "submit-gif-job", "--local", "--frames", str(frames), *options],
        cwd=project,
        env=project_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_a_local_run_holds_its_folder_and_a_crash_leaves_no_stale_lock(project: Path) -> None:
    first = _start_local_run(project, 96)
    wait_for(lambda: len(frames_on_disk(project / "images")) >= 2, "the first frames")
    second = run(["bash", "submit-gif-job", "--local", "--frames", "4"], cwd=project)
    assert second.returncode == 1
    (line,) = second.stderr.splitlines()
    assert f"a local run (pid {_runner_pid(first)}) is under way in {project}" in line
    assert "bash submit-gif-job --resume" in line
    # A crash of the whole run (SIGKILL, no clean-up at all) leaves no lock behind.
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    resumed = run(["bash", "submit-gif-job", "--resume"], cwd=project)
    assert resumed.returncode == 0, resumed.stderr
    _check_outputs(project, 96)


def _workers(runner: int) -> list[int]:
    """The render worker processes of a local run: forks of the runner itself."""
    command = command_line(runner)
    return [pid for pid in descendants(runner) if command_line(pid) == command]


def _runner_pid(process: subprocess.Popen[str]) -> int:
    """The Python process of ``bash submit-gif-job`` (the one that holds the lock).

    Found by its command line: the script's first children are the short-lived
    ``$(...)`` subshells and ``mktemp``, and the runner's workers come after it.
    """

    def runners() -> list[int]:
        return [pid for pid in descendants(process.pid) if _is_runner(pid)]

    wait_for(lambda: bool(runners()), "the runner")
    return runners()[0]


def _is_runner(pid: int) -> bool:
    command = command_line(pid).split(b"\0")
    return b"volcano_gif" in command and b"plan-submission" in command


def test_sigkill_of_a_render_worker_loses_nothing_and_resume_completes(project: Path) -> None:
    frames = 96
    runner = _start_local_run(project, frames)
    runner_pid = _runner_pid(runner)
    # Kill as soon as the workers render: 96 frames take them only about a second.
    wait_for(lambda: len(frames_on_disk(project / "images")) >= 2, "the first frames")
    workers = _workers(runner_pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = runner.communicate(timeout=120)
    assert runner.returncode == 1, stderr
    assert "frames are missing or broken" in stderr
    assert "bash submit-gif-job --resume" in stderr
    # No broken frame was accepted: every file under a frame's name is complete.
    paths = ProjectPaths(project)
    on_disk = frames_on_disk(paths.images)
    assert 0 < len(on_disk) < frames
    for frame in on_disk:
        assert inspect_frame(paths.frame(frame), frame, frames, (640, 480)) is None
    assert not (project / "output/gifs/volcano.gif").exists()
    resumed = run(["bash", "submit-gif-job", "--resume"], cwd=project)
    assert resumed.returncode == 0, resumed.stderr
    assert f"rendering: {frames - len(on_disk)}/{frames - len(on_disk)} frames" in resumed.stderr
    _check_outputs(project, frames)
    assert not [p for p in paths.images.iterdir() if p.name.endswith(".tmp")]
    record = require_record(paths)
    assert record.frames_sha256 == clean_frame_digests(frames)


def test_cancel_stops_a_local_run_keeps_its_frames_and_resume_finishes_it(project: Path) -> None:
    runner = _start_local_run(project, 96)
    wait_for(lambda: len(frames_on_disk(project / "images")) >= 4, "some frames")
    cancel = run(["bash", "submit-gif-job", "--cancel"], cwd=project)
    assert cancel.returncode == 0, cancel.stderr
    assert cancel.stdout.startswith("stopping the local run (pid ")
    _, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped: every rendered frame is kept in images/" in stderr
    kept = frames_on_disk(project / "images")
    assert kept
    assert require_record(ProjectPaths(project)).state == "cancelled"
    for frame in kept:
        problem = inspect_frame(project / "images" / frame_name(frame), frame, 96, (640, 480))
        assert problem is None or problem.verdict is not FrameVerdict.BROKEN
    resumed = run(["bash", "submit-gif-job", "--resume"], cwd=project)
    assert resumed.returncode == 0, resumed.stderr
    _check_outputs(project, 96)


def _render_frames_1_to_3_of_a_12_frame_run(project: Path) -> None:
    renderer = FrameRenderer(load_grid(project / "data/volcano.csv"), 12)
    renderer.render_many([1, 2, 3], project / "images")


def test_a_new_run_refuses_to_overwrite_another_runs_frames(project: Path) -> None:
    _render_frames_1_to_3_of_a_12_frame_run(project)
    refused = run(["bash", "submit-gif-job", "--local", "--frames", "24"], cwd=project)
    assert refused.returncode == 2
    (line,) = refused.stderr.splitlines()
    assert "images/ holds 3 complete frames of another run" in line
    assert "no run recorded here made them: delete them (rm images/image*.png)" in line
    assert line.endswith(", or start over with --force")
    forced = run(["bash", "submit-gif-job", "--local", "--frames", "24", "--force"], cwd=project)
    assert forced.returncode == 0, forced.stderr
    _check_outputs(project, 24)


def test_a_new_run_keeps_frames_it_would_render_the_same(project: Path) -> None:
    _render_frames_1_to_3_of_a_12_frame_run(project)
    result = run(["bash", "submit-gif-job", "--local", "--frames", "12"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert "rendering: 12/12 frames" in result.stderr
    assert require_record(ProjectPaths(project)).state == "assembled"
    # The workers kept the three frames (their timing files say so), rendered the rest.
    timings = [json.loads(t.read_text()) for t in (project / "output/timing").glob("local-*")]
    assert sorted(n for timing in timings for n in timing["skipped"]) == [1, 2, 3]
    assert sorted(f[0] for timing in timings for f in timing["frames"]) == list(range(4, 13))


def test_git_status_is_clean_after_a_run(project: Path) -> None:
    # Everything a run writes (record, report, timing files, locks, caches,
    # outputs) is ignored: a checkout stays clean however often it is run.
    shutil.copy2(REPO / ".gitignore", project / ".gitignore")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "project"]):
        assert run([*git, *command], cwd=project).returncode == 0
    result = run([sys.executable, "-m", "volcano_gif", "local", "--frames", "4", "-q"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert (project / "output/run.json").is_file()
    status = run([*git, "status", "--porcelain", "--untracked-files=all"], cwd=project)
    assert status.stdout == ""
