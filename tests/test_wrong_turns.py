"""Wrong turns a user takes, each with what it gives now: end to end, locally, on the fake
cluster of tests/fake_cluster.py and on the real localhost Slurm, as the learner.

The model in tests/test_wrong_turns_model.py drives these in random orders; the cases
it (and people) found are kept here as ordinary tests.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_cluster import install, live_runs, run_next
from tests.helpers import command_line, descendants, project_env, run, wait_for
from tests.slurm_helpers import (
    as_learner,
    cluster_env,
    learner,
    learner_python,
    slurm_output,
    submit,
    submit_run,
    volcano_gif,
    wait_for_run,
)
from tools.local_slurm import Cluster, restart_controller, stop_controller
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import read_record, require_record, run_is_complete
from volcano_gif.run.record import AssemblyMemory
from volcano_gif.stage_times import StageTimes
from volcano_gif.submit.options import check_sbatch_extra

SMALL = ["--frames", "4", "--size", "64x48"]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def folder_state(project: Path) -> tuple[bytes | None, list[str]]:
    record = project / "output" / "run.json"
    frames = sorted(path.name for path in (project / "images").glob("image*.png"))
    return (record.read_bytes() if record.exists() else None, frames)


# ------------------------------------------------------------- the fake cluster
@pytest.fixture
def cluster(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    queue = tmp_path / "queue.json"
    return queue, project_env(install(tmp_path / "bin", queue))


def test_options_that_break_the_runs_shape_are_refused_in_one_line(
    project: Path, cluster: tuple[Path, dict[str, str]]
) -> None:
    queue, env = cluster
    for option in (
        "--array=1-3",
        "--arr=1-3",
        "-a",
        "-Ha",  # a cluster of short flags: --hold, then --array
        "-HW",
        "-Hd",
        "--dependency=afterok:9",
        "-d",
        "--parsable",
        "--wrap=hostname",
        "--test-only",
        "--wait",
        "-W",
        "--chdir=/tmp",
        "--comment=mine",
        "--clusters=other",
        "-M",
    ):
        result = run(["bash", "submit-gif-job", *SMALL, "--", option, "1-3"], project, env)
        assert result.returncode == 2, option
        assert "would break the run's shape" in one_line(result), option
        resumed = run(["bash", "submit-gif-job", "--resume", "--", option], project, env)
        assert resumed.returncode == 2, option
    assert json.loads(queue.read_text())["jobs"] == []
    passed = run(
        ["bash", "submit-gif-job", *SMALL, "--", "--qos=debug", "--account=x", "--hold"],
        project,
        env,
    )
    assert passed.returncode == 0, passed.stderr
    assert [job["held"] for job in json.loads(queue.read_text())["jobs"]] == [True, True]


def test_a_second_double_dash_is_not_taken_for_a_shape_option() -> None:
    # sbatch ends its options there; no name of a shape option starts with "".
    check_sbatch_extra(["--", "--mem=1G"])


def test_cancel_during_a_submission_waits_for_it_then_cancels_what_it_queued(
    project: Path, cluster: tuple[Path, dict[str, str]]
) -> None:
    queue, env = cluster
    slow = {**env, "FAKE_SBATCH_SLEEP": "1.5"}
    submission = subprocess.Popen(
        ["bash", "submit-gif-job", *SMALL], cwd=project, env=slow, stdout=subprocess.PIPE
    )
    wait_for((project / "output" / "run.json").exists, "the submission's record")
    cancel = run(["bash", "submit-gif-job", "--cancel"], project, env)
    assert submission.wait(timeout=60) == 0
    assert cancel.returncode == 0, cancel.stderr
    assert cancel.stdout.startswith("cancelled run "), cancel.stdout
    assert live_runs(queue) == {}
    states = [job["state"] for job in json.loads(queue.read_text())["jobs"]]
    assert states == ["CANCELLED", "CANCELLED"]
    assert require_record(ProjectPaths(project)).state == "cancelled"


def test_a_deleted_record_keeps_the_folder_its_runs_and_cancel_finds_its_jobs(
    project: Path, cluster: tuple[Path, dict[str, str]]
) -> None:
    queue, env = cluster
    assert run(["bash", "submit-gif-job", *SMALL], project, env).returncode == 0
    (project / "output" / "run.json").unlink()
    second = run(["bash", "submit-gif-job", "--frames", "6", "--size", "64x48"], project, env)
    assert second.returncode == 1
    assert "still has jobs in the queue: 1001 (PENDING), 1002 (PENDING)" in one_line(second)
    assert len(json.loads(queue.read_text())["jobs"]) == 2  # nothing more was queued
    cancel = run(["bash", "submit-gif-job", "--cancel"], project, env)
    assert cancel.returncode == 0, cancel.stderr
    assert "there is no output/run.json" in cancel.stdout
    assert live_runs(queue) == {}


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_record_names_the_jobs_cancel_reaches_them_and_the_way_out_works(
    project: Path, cluster: tuple[Path, dict[str, str]], damage: str
) -> None:
    queue, env = cluster
    assert run(["bash", "submit-gif-job", *SMALL], project, env).returncode == 0
    record = project / "output" / "run.json"
    record.write_text(record.read_text()[:300] if damage == "truncated" else "{}")
    again = run(["bash", "submit-gif-job", *SMALL], project, env)
    assert again.returncode == 1
    assert "still has jobs in the queue" in one_line(again)
    watch = run([sys.executable, "-m", "volcano_gif", "watch"], project, env)
    assert "is damaged" in one_line(watch)
    assert "cancel them first: bash submit-gif-job --cancel" in watch.stderr
    assert run(["bash", "submit-gif-job", "--cancel"], project, env).returncode == 0
    told = run(["bash", "submit-gif-job", *SMALL], project, env)
    way = re.search(r"\(mv (\S+) (\S+)\) and start the run again", one_line(told))
    assert told.returncode == 1
    assert way, told.stderr
    record.rename(project / way.group(2))
    assert run(["bash", "submit-gif-job", *SMALL], project, env).returncode == 0
    while run_next(queue, env):
        pass
    assert run_is_complete(ProjectPaths(project), require_record(ProjectPaths(project)))


def test_the_assembly_stopped_by_sigterm_records_why_leaves_no_temporary_and_resume_finishes(
    project: Path, cluster: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    queue, env = cluster
    slow_ffmpeg = tmp_path / "ffmpeg"  # the real one, a second late: the job is mid-encode
    from volcano_gif.assembly.outputs import ffmpeg_executable

    slow_ffmpeg.write_text(f'#!/bin/sh\nsleep 1\nexec {ffmpeg_executable()} "$@"\n')
    slow_ffmpeg.chmod(0o755)
    slow = {**env, "IMAGEIO_FFMPEG_EXE": str(slow_ffmpeg)}
    assert run(["bash", "submit-gif-job", *SMALL], project, slow).returncode == 0
    assert run_next(queue, slow)  # the array
    assert run_next(queue, slow, sigterm_after=0.6)  # the assembly, stopped
    record = require_record(ProjectPaths(project))
    assert record.state == "failed"
    assert record.error is not None
    assert record.error.startswith("stopped by SIGTERM (on a cluster: the job's time limit")
    leftovers = [path.name for path in (project / "output").rglob("*.tmp")]
    assert leftovers == []
    assert len(list((project / "images").glob("image*.png"))) == 4  # no frame was deleted
    log = next((project / "output" / "slurm_files").glob("create_gif-*.err")).read_text()
    assert "stopped by SIGTERM" in log.strip().splitlines()[-1]
    assert run(["bash", "submit-gif-job", "--resume"], project, env).returncode == 0
    while run_next(queue, env):
        pass
    assert run_is_complete(ProjectPaths(project), require_record(ProjectPaths(project)))


def test_a_watch_rides_out_a_controller_that_does_not_answer(
    project: Path, cluster: tuple[Path, dict[str, str]]
) -> None:
    from tests.fake_cluster import set_down

    queue, env = cluster
    assert run(["bash", "submit-gif-job", *SMALL], project, env).returncode == 0
    set_down(queue, True)
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "volcano_gif",
            "watch",
            "--interval",
            "0.2",
            "--max-interval",
            "0.2",
        ],
        cwd=project,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    assert watch.poll() is None  # still watching
    set_down(queue, False)
    while run_next(queue, env):
        pass
    _, said = watch.communicate(timeout=120)
    assert watch.returncode == 0, said
    assert said.count("Slurm does not answer") == 1
    assert "--local" not in said
    assert "Slurm answers again" in said


# ------------------------------------------------------------ here, no Slurm
def test_a_refused_input_leaves_the_folder_as_it_was(project: Path) -> None:
    env = project_env()
    assert run(["bash", "submit-gif-job", "--local", *SMALL], project, env).returncode == 0
    before = folder_state(project)
    data = project / "data" / "volcano.csv"
    data.rename(data.with_suffix(".away"))
    for command in (
        ["bash", "submit-gif-job", "--local", "--frames", "12"],
        [sys.executable, "-m", "volcano_gif", "local", "--frames", "12"],
    ):
        refused = run(command, project, env)
        assert refused.returncode == 2
        assert "volcano.csv: no such file" in one_line(refused)
        assert folder_state(project) == before
    data.with_suffix(".away").rename(data)
    assert run([sys.executable, "volcano.py", "3", "--frames", "12"], project, env).returncode == 0


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("V1\n1\n2\n", "a surface needs at least 2 of each"),
        ("V1,V2\n1,2\n3,1e308\n", "'1e308' is not a height"),
    ],
)
def test_bad_data_is_one_line_and_starts_nothing(project: Path, content: str, says: str) -> None:
    (project / "data" / "volcano.csv").write_text(content)
    for command in (
        ["bash", "submit-gif-job", "--local", *SMALL],
        [sys.executable, "volcano.py", "-q", "1"],
    ):
        refused = run(command, project)
        assert refused.returncode == 2
        assert says in one_line(refused)
    assert not (project / "output" / "run.json").exists()


def test_data_that_is_no_file_is_refused_at_once_even_with_its_scene_cached(
    project: Path,
) -> None:
    # The scene of a finished run is cached: the task reads the data only for its key.
    assert run(["bash", "submit-gif-job", "--local", *SMALL], project).returncode == 0
    data = project / "data" / "volcano.csv"
    data.unlink()
    os.mkfifo(data)  # no writer: reading it would wait for ever
    before = folder_state(project)
    for command in (
        ["bash", "submit-gif-job", "--local", "--force", *SMALL],
        [sys.executable, "volcano.py", "-q", "2", *SMALL],
    ):
        refused = run(command, project, timeout=60)
        assert refused.returncode == 2
        assert "volcano.csv: not a regular file" in one_line(refused)
        assert folder_state(project) == before


def test_assembling_or_resuming_a_complete_run_says_so_and_changes_nothing(project: Path) -> None:
    assert run(["bash", "submit-gif-job", "--local", *SMALL], project).returncode == 0
    before = folder_state(project)
    again = run([sys.executable, "-m", "volcano_gif", "assemble", *SMALL], project)
    assert again.returncode == 0, again.stderr
    assert "is complete: output/gifs/volcano.mp4" in again.stderr
    resumed = run(["bash", "submit-gif-job", "--local", "--resume"], project)
    assert resumed.returncode == 0, resumed.stderr
    assert "nothing to render" in resumed.stderr
    assert folder_state(project) == before


def test_leftover_frames_of_a_complete_run_are_named_as_such(project: Path) -> None:
    assert run(["bash", "submit-gif-job", "--local", *SMALL], project).returncode == 0
    assert run([sys.executable, "volcano.py", "2", *SMALL], project).returncode == 0
    refused = run(
        ["bash", "submit-gif-job", "--local", "--frames", "6", "--size", "64x48"], project
    )
    line = one_line(refused)
    assert "image0002.png is frame 2 of 4, 64x48, not a frame of 6 at 64x48" in line
    assert "is complete, so they are left over: delete them (rm images/image*.png)" in line
    assert "--resume" not in line


def test_a_local_run_says_it_renders_on_every_core_not_in_slurm_tasks(project: Path) -> None:
    done = run(
        [
            "bash",
            "submit-gif-job",
            "--local",
            *SMALL,
            "--frames-per-task",
            "2",
            "--max-running",
            "1",
        ],
        project,
    )
    assert done.returncode == 0, done.stderr
    assert "--frames-per-task is for Slurm arrays" in done.stderr
    assert "--max-running is for Slurm arrays" in done.stderr


def test_a_local_run_stopped_by_sigterm_in_its_assembly_records_it_and_leaves_no_temporary(
    project: Path, tmp_path: Path
) -> None:
    from volcano_gif.assembly.outputs import ffmpeg_executable

    slow_ffmpeg = tmp_path / "ffmpeg"
    slow_ffmpeg.write_text(f'#!/bin/sh\nsleep 3\nexec {ffmpeg_executable()} "$@"\n')
    slow_ffmpeg.chmod(0o755)
    env = project_env({"IMAGEIO_FFMPEG_EXE": str(slow_ffmpeg)})
    local = subprocess.Popen(
        ["bash", "submit-gif-job", "--local", *SMALL],
        cwd=project,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The assembly's ffmpeg (not the one that tells its version), started from a thread of
    # the runner: /proc lists it as a child of that thread, so look at every process.
    encoding = str(slow_ffmpeg).encode()

    def encoding_started() -> bool:
        cmdlines = (
            command_line(path.name) for path in Path("/proc").iterdir() if path.name.isdigit()
        )
        return any(encoding in line and b"palettegen" in line for line in cmdlines)

    wait_for(encoding_started, "the assembly's ffmpeg")
    runner = next(pid for pid in descendants(local.pid) if b"plan-submission" in command_line(pid))
    os.kill(runner, signal.SIGTERM)
    _, said = local.communicate(timeout=60)
    assert local.returncode == 143
    assert (
        said.strip()
        .splitlines()[-1]
        .endswith(
            "stopped by SIGTERM (on a cluster: the job's time limit, preemption, or scancel); "
            "finish the run with: bash submit-gif-job --resume"
        )
    )
    record = require_record(ProjectPaths(project))
    assert record.state == "failed"
    assert record.error is not None
    assert record.error.startswith("stopped by SIGTERM")
    assert [path.name for path in (project / "output").rglob("*.tmp")] == []
    assert len(list((project / "images").glob("image*.png"))) == 4


def test_the_assembly_deletes_only_frames_that_are_still_what_it_archived(
    rendered_project: ProjectPaths,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from volcano_gif.assembly import assembler

    measure = assembler._memory_used  # between the archive's check and the deletion

    def a_task_writes_frame_5_meanwhile(times: StageTimes) -> AssemblyMemory:
        rendered_project.frame(5).write_bytes(rendered_project.frame(6).read_bytes())
        return measure(times)

    monkeypatch.setattr(assembler, "_memory_used", a_task_writes_frame_5_meanwhile)
    with caplog.at_level(logging.WARNING):
        result = assembler.assemble(rendered_project, 12)
    left = sorted(path.name for path in rendered_project.images.glob("image*.png"))
    assert left == ["image0005.png"]
    assert result.frames_deleted == 11
    assert "left " in caplog.text
    assert "image0005.png: it changed since it was archived" in caplog.text


def test_the_watch_shows_held_requeued_and_ending_tasks_with_slurms_reason() -> None:
    from volcano_gif.submit.watch import Snapshot

    snapshot = Snapshot(
        3,
        6,
        (("pending", 1), ("running", 1), ("held", 2), ("ending", 1)),
        (("held", "launch failed requeued held"),),
        "13",
        "PENDING",
        "Dependency",
        "squeue",
        ended=False,
    )
    assert snapshot.line("12") == (
        "frames 3/6 | array 12: 1 pending, 1 running, 0 completed, 0 failed, 2 held (launch "
        "failed requeued held), 1 ending | gif job 13: PENDING (Dependency)"
    )


# ------------------------------------------------------------ the real Slurm
def test_on_slurm_a_deleted_or_damaged_record_keeps_a_second_run_out_and_cancel_finds_the_jobs(
    slurm: Cluster, learner_project: Path
) -> None:
    array_id, gif_id = submit(slurm, learner_project, *SMALL, "--", "--hold")
    record = learner_project / "output" / "run.json"
    record.unlink()
    second = submit_run(slurm, learner_project, "--frames", "6", "--size", "64x48")
    assert second.returncode == 1
    assert f"still has jobs in the queue: {array_id} (PENDING), {gif_id} (PENDING)" in one_line(
        second
    )
    (learner_project / "output" / "run.json").write_text("{")
    watch = volcano_gif(slurm, learner_project, "watch")
    assert "is damaged" in one_line(watch)
    cancel = submit_run(slurm, learner_project, "--cancel")
    assert cancel.returncode == 0, cancel.stderr
    assert f"{gif_id} (gif, was PENDING), {array_id} (frames, was PENDING)" in cancel.stdout
    mine = slurm_output(slurm, ["squeue", "-h", "-o", "%i", "-j", f"{array_id},{gif_id}"])
    assert mine.strip() == ""


def test_on_slurm_a_controller_down_mid_run_is_ridden_out_by_the_watch(
    fault_slurm: Cluster, learner_project: Path
) -> None:
    """slurmctld gone while the array runs, then started again as a site does (its saved
    state kept, no -c): the watch says once that Slurm does not answer, never suggests
    --local, and ends with the GIF."""
    env = cluster_env(fault_slurm)
    submit(fault_slurm, learner_project, "--frames", "12", "--size", "160x120", "--", "--time=2")
    watch = subprocess.Popen(
        learner().command(
            [
                learner_python(),
                "-m",
                "volcano_gif",
                "watch",
                "--interval",
                "1",
                "--max-interval",
                "1",
            ]
        ),
        cwd=learner_project,
        env=learner().env(env),
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(
        lambda: len(list((learner_project / "images").glob("image*.png"))) >= 2,
        "two frames",
        timeout=120,
    )
    # Down, its state saved (SIGTERM), as a controller that fails over or is restarted by
    # its admins is. (A SIGKILL a moment after a submission can lose the newest job and
    # drain the nodes, "Duplicate jobid": then the watch shows the tasks held, with
    # Slurm's reason, until an admin resumes the nodes.)
    stop_controller(fault_slurm, signal.SIGTERM)
    time.sleep(30)  # longer than a client keeps trying (MessageTimeout): the watch sees it
    restart_controller(fault_slurm)
    _, said = watch.communicate(timeout=400)
    assert said.count("Slurm does not answer") == 1, said
    assert "--local" not in said
    paths = ProjectPaths(learner_project)
    if watch.returncode != 0:  # the controller had not saved the jobs: they are gone
        way = said.strip().splitlines()[-1]
        assert way == "finish it with: bash submit-gif-job --resume", said
        assert require_record(paths).state == "failed"  # the record agrees with the queue
        resumed = submit_run(fault_slurm, learner_project, "--resume", "--watch")
        if resumed.returncode != 0:  # Slurm requeued the array a moment after it answered:
            assert "still has jobs in the queue" in one_line(resumed)  # wait for it, as said
            assert volcano_gif(fault_slurm, learner_project, "watch").returncode == 1
            resumed = submit_run(fault_slurm, learner_project, "--resume", "--watch")
        assert resumed.returncode == 0, resumed.stderr
    assert run_is_complete(paths, require_record(paths))


def test_on_slurm_the_assembly_cancelled_mid_encode_records_it_and_resume_finishes(
    slurm: Cluster, learner_project: Path, learner_folder: Path
) -> None:
    from volcano_gif.assembly.outputs import ffmpeg_executable

    slow_ffmpeg = learner_folder / "ffmpeg"
    slow_ffmpeg.write_text(f'#!/bin/sh\nsleep 4\nexec {ffmpeg_executable()} "$@"\n')
    slow_ffmpeg.chmod(0o755)
    env = cluster_env(slurm, IMAGEIO_FFMPEG_EXE=str(slow_ffmpeg))
    _, gif_id = submit(slurm, learner_project, *SMALL, env=env)
    paths = ProjectPaths(learner_project)

    def assembling() -> bool:
        record = read_record(paths)
        return record is not None and record.state == "assembling"

    wait_for(assembling, "the assembly to start", timeout=180)
    time.sleep(1)
    as_learner(["scancel", gif_id], learner_project, env)
    wait_for_run(slurm, learner_project)
    record = require_record(paths)
    assert record.state == "failed", record.events
    assert record.error is not None
    assert "stopped by SIGTERM" in record.error
    assert [path.name for path in (learner_project / "output").rglob("*.tmp")] == []
    resumed = submit_run(slurm, learner_project, "--resume", "--watch")
    assert resumed.returncode == 0, resumed.stderr
    assert run_is_complete(paths, require_record(paths))


def test_a_dev_shm_users_cannot_write_is_named_and_starts_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    from volcano_gif.errors import UsageError
    from volcano_gif.local import runner

    class NoSemaphores:
        def SimpleQueue(self) -> None:  # noqa: N802  (multiprocessing's name)
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(multiprocessing, "get_context", lambda method: NoSemaphores())
    with pytest.raises(UsageError, match=r"\(Permission denied\): /dev/shm must be writable"):
        runner.run_local(ProjectPaths(project), 4, size=(64, 48))
    assert not (project / "output" / "run.json").exists()


def test_an_export_without_all_is_refused_as_the_jobs_would_not_find_the_python(
    project: Path, cluster: tuple[Path, dict[str, str]]
) -> None:
    queue, env = cluster
    for options, extra in (
        (["--", "--export=NONE"], {}),
        (["--", "--export=HOME,PATH"], {}),
        ([], {"SBATCH_EXPORT": "NONE"}),
    ):
        refused = run(["bash", "submit-gif-job", *SMALL, *options], project, {**env, **extra})
        assert refused.returncode == 2
        assert "without ALL: the jobs would not see VOLCANO_PYTHON" in one_line(refused)
    assert json.loads(queue.read_text())["jobs"] == []
    passed = run(["bash", "submit-gif-job", *SMALL, "--", "--export=ALL,FOO=1"], project, env)
    assert passed.returncode == 0, passed.stderr


def test_a_path_with_a_bar_keeps_one_run_per_folder(
    tmp_path: Path, cluster: tuple[Path, dict[str, str]]
) -> None:
    from tests.helpers import copy_project

    queue, env = cluster
    project = copy_project(tmp_path / "a|b")
    assert run(["bash", "submit-gif-job", *SMALL, "--", "--hold"], project, env).returncode == 0
    (project / "output" / "run.json").unlink()
    second = run(["bash", "submit-gif-job", "--frames", "6", "--size", "64x48"], project, env)
    assert "still has jobs in the queue: 1001 (PENDING), 1002 (PENDING)" in one_line(second)
    assert "volcano-gif watch" not in second.stderr  # it needs the record
    assert run(["bash", "submit-gif-job", "--cancel"], project, env).returncode == 0
    assert live_runs(queue) == {}


def test_with_the_controller_down_cancel_says_so_and_a_hand_assembly_waits_for_the_jobs(
    project: Path, cluster: tuple[Path, dict[str, str]]
) -> None:
    from tests.fake_cluster import set_down

    queue, env = cluster
    assert run(["bash", "submit-gif-job", *SMALL], project, env).returncode == 0
    before = folder_state(project)
    by_hand = run([sys.executable, "-m", "volcano_gif", "assemble", *SMALL], project, env)
    assert by_hand.returncode == 1
    assert "has jobs in the queue (1001, 1002): its own assembly job" in one_line(by_hand)
    assert folder_state(project) == before
    set_down(queue, True)
    cancel = run(["bash", "submit-gif-job", "--cancel"], project, env)
    assert cancel.returncode == 1
    assert "may still be in the queue, and Slurm does not answer" in one_line(cancel)
    set_down(queue, False)
    assert live_runs(queue) == {str(project): {f"volcano-gif:run:{_record_id(project)}"}}


def _record_id(project: Path) -> str:
    return require_record(ProjectPaths(project)).run_id


@pytest.mark.parametrize("folder", ["back\\slash", "two\nlines"])
def test_a_path_ffmpeg_or_sbatch_cannot_take_is_refused(tmp_path: Path, folder: str) -> None:
    from tests.helpers import copy_project

    project = copy_project(tmp_path / folder)
    refused = run(["bash", "submit-gif-job", "--local", *SMALL], project)
    assert refused.returncode == 2
    assert "holds a control character or backslash" in one_line(refused)


def test_unwritable_logs_are_refused_before_anything_is_queued(
    project: Path, cluster: tuple[Path, dict[str, str]]
) -> None:
    queue, env = cluster
    (project / "output").mkdir()
    (project / "output" / "slurm_files").write_text("a file where the folder should be")
    refused = run(["bash", "submit-gif-job", *SMALL], project, env)
    assert refused.returncode == 2
    assert "cannot write in" in one_line(refused)
    assert json.loads(queue.read_text())["jobs"] == []
    assert not (project / "output" / "run.json").exists()


def test_a_resume_keeps_no_hold_however_it_was_spelled() -> None:
    from volcano_gif.run.lifecycle import new_record
    from volcano_gif.run.record import Mode, Parameters, Submission

    record = new_record(Mode.SLURM, Parameters.of(4))
    options = ["--hold", "--hol", "-H", "--qos=debug", "--hint=nomultithread"]
    record.submissions.append(Submission("start", "t", "1-4", 1, [], sbatch_options=options))
    assert record.sbatch_options() == ["--qos=debug", "--hint=nomultithread"]
