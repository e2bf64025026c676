"""The real scripts on a real Slurm: slurmctld, two slurmd and munged on localhost.

Each test gives the learner a copy of the project, runs ``bash submit-gif-job``
as the learner against the private cluster of the ``slurm`` fixture (a site's
configuration: cgroups enforce ``--mem``), waits for the jobs and reads back
what Slurm and the pipeline left behind.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.helpers import REPO, argv, project_env, run
from tests.media import gif_facts, mp4_frame_count
from tests.slurm_helpers import (
    as_learner,
    cluster_env,
    learner,
    queued_ids,
    slurm_output,
    submit,
    submit_run,
    task_states,
    volcano_gif,
    wait_for_run,
)
from tools.local_slurm import Cluster, job_records, slurm_version, start, status, wait_for_jobs
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import require_record
from volcano_gif.run.timeline import TIMELINE_SIZE


@pytest.fixture
def project(learner_project: Path) -> Path:
    """The learner's own copy of the project: everything here runs as the learner."""
    return learner_project


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_submit_gif_job_end_to_end_from_another_folder(
    slurm: Cluster, project: Path, learner_folder: Path
) -> None:
    elsewhere = learner_folder
    assert not (project / "output").exists()  # the log-folder trap: no folder yet
    array_id, gif_id = submit(slurm, project, "--frames", "8", cwd=elsewhere)
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)

    assert task_states(slurm, array_id) == dict.fromkeys(range(1, 9), "COMPLETED")
    (gif_job,) = job_records(slurm, gif_id)
    assert (gif_job["JobState"], gif_job["ExitCode"]) == ("COMPLETED", "0:0")

    assert mp4_frame_count(project / "output/gifs/volcano.mp4") == 8
    assert gif_facts(project / "output/gifs/volcano.gif")[:3] == (8, (400, 300), 0)
    assert len(list((project / "output/archives").glob("volcano-images-*.tar.gz"))) == 1
    assert list((project / "images").iterdir()) == []

    logs = sorted(p.name for p in (project / "output/slurm_files").iterdir())
    expected = [
        f"generate_frames-{array_id}_{k}.{ext}" for k in range(1, 9) for ext in ("err", "out")
    ]
    assert logs == sorted([*expected, f"create_gif-{gif_id}.err", f"create_gif-{gif_id}.out"])
    task_log = (project / f"output/slurm_files/generate_frames-{array_id}_3.err").read_text()
    assert "rendering frames [3] of 8" in task_log
    assert list(elsewhere.iterdir()) == []

    record = require_record(ProjectPaths(project))
    assert (record.state, record.mode, record.assembly_job_id) == ("assembled", "slurm", gif_id)
    major, minor = slurm_version()
    assert record.versions["slurm"].startswith(f"{major}.{minor:02d}.")
    assert record.submitted is not None
    assert record.started is not None
    assert record.ended is not None
    assert _time(record.submitted) <= _time(record.started) <= _time(record.ended)


def test_the_report_of_a_run_on_two_nodes(slurm: Cluster, project: Path) -> None:
    array_id, gif_id = submit(slurm, project, "--frames", "12", "--frames-per-task", "2")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    table = pd.read_csv(project / "output/report/tasks.csv")
    assert sorted(table["array_task"]) == list(range(1, 7))
    assert set(table["node"]) == set(slurm.node_names)
    assert table["frames"].sum() == 12
    # start-up + rendering fit in each task's wall time; the numbers are the tasks' own
    # (a loaded or a fast machine changes them, not how they add up).
    times = table[["startup_s", "render_s", "wall_s"]]
    assert (times["startup_s"] + times["render_s"] <= times["wall_s"] + 1e-3).all(), times.values
    assert (times > 0).all(axis=None), times.values
    with Image.open(project / "output/report/timeline.png") as picture:
        picture.load()
        assert picture.size == TIMELINE_SIZE
    log = (project / f"output/slurm_files/create_gif-{gif_id}.err").read_text()
    assert "report: tasks: 6 on 2 node(s), 12 frames rendered" in log
    assert "report: median start-up:" in log
    # Each job asked Slurm for the memory of its #SBATCH --mem line, and used less.
    assert {task["MinMemoryNode"] for task in job_records(slurm, array_id)} == {"256M"}
    assert job_records(slurm, gif_id)[0]["MinMemoryNode"] == "1G"
    assert table["mem_requested_mib"].tolist() == [256] * 6
    assert table["peak_rss_mib"].between(30, 256).all(), table["peak_rss_mib"].tolist()
    memory = re.search(r"report: (memory: .*)$", log, flags=re.MULTILINE)
    assert memory, log
    assert re.fullmatch(
        r"memory: render tasks peaked at \d+ MiB \(median \d+\), asked for 256 MiB; "
        r"assembly peaked at \d+ MiB \(\w[\w ]*\), \d+ MiB if all its processes peaked "
        r"at once, asked for 1024 MiB",
        memory.group(1),
    )


def test_assembly_waits_pending_on_dependency_until_the_last_task_ends(
    slurm: Cluster, project: Path
) -> None:
    array_id, gif_id = submit(slurm, project, "--frames", "3", "--max-running", "1")
    (waiting,) = job_records(slurm, gif_id)
    assert (waiting["JobState"], waiting["Reason"]) == ("PENDING", "Dependency")
    assert waiting["Dependency"].startswith(f"afterany:{array_id}")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    tasks = job_records(slurm, array_id)
    (assembly,) = job_records(slurm, gif_id)
    last_task_end = max(_time(t["EndTime"]) for t in tasks)
    assert _time(assembly["StartTime"]) >= last_task_end
    # %1: the tasks ran one after another.
    ordered = sorted(tasks, key=lambda t: int(t["ArrayTaskId"]))
    for before, after in itertools.pairwise(ordered):
        assert _time(after["StartTime"]) >= _time(before["EndTime"])
    assert assembly["ExitCode"] == "0:0"


def _block_frame(project: Path, frame: int) -> None:
    """A folder of the learner's where a frame should go: its task fails to rename into it."""
    (project / "images" / f"image{frame:04d}.png").mkdir(parents=True)
    learner().own(project / "images")


def _resume_renders_frame_2_and_assembles(slurm: Cluster, project: Path) -> None:
    """Unblock frame 2 (a folder stood where it goes); --resume must finish the 4-frame run."""
    (project / "images" / "image0002.png").rmdir()
    resumed = submit_run(slurm, project, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "(array 2)" in resumed.stdout
    wait_for_run(slurm, project)
    assert require_record(ProjectPaths(project)).state == "assembled"
    assert gif_facts(project / "output/gifs/volcano.gif")[0] == 4


def test_a_failed_task_is_reported_nothing_is_deleted_and_resume_finishes(
    slurm: Cluster, project: Path
) -> None:
    # A folder where frame 2 should go makes task 2 fail when it renames its frame.
    _block_frame(project, 2)
    array_id, gif_id = submit(slurm, project, "--frames", "4")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)

    states = task_states(slurm, array_id)
    assert states == {1: "COMPLETED", 2: "FAILED", 3: "COMPLETED", 4: "COMPLETED"}
    (assembly,) = job_records(slurm, gif_id)
    assert assembly["JobState"] == "FAILED"
    assert assembly["ExitCode"] == "1:0"
    log = (project / f"output/slurm_files/create_gif-{gif_id}.err").read_text()
    assert "1 of 4 frames are missing or broken (2)" in log
    assert f"cd {project} && bash submit-gif-job --resume" in log
    left = sorted(p.name for p in (project / "images").iterdir())
    assert left == ["image0001.png", "image0002.png", "image0003.png", "image0004.png"]
    assert not (project / "output/gifs").exists()
    assert require_record(ProjectPaths(project)).missing_frames == [2]

    _resume_renders_frame_2_and_assembles(slurm, project)


def test_a_run_started_with_plain_sbatch_is_finished_by_the_printed_resume_command(
    slurm: Cluster, project: Path
) -> None:
    # The lesson's way: the two sbatch commands typed by hand, no submit-gif-job,
    # so no run record. Task 2 fails; the assembler's one command must finish it.
    _block_frame(project, 2)
    (project / "output" / "slurm_files").mkdir(parents=True)
    learner().own(project / "output")
    env = cluster_env(slurm)
    array = as_learner(
        ["sbatch", "--parsable", "--array=1-4", "generate_frames.slurm", "--frames", "4"],
        cwd=project,
        env=env,
    )
    assert array.returncode == 0, array.stderr
    array_id = array.stdout.strip().split(";")[0]
    gif = as_learner(
        argv(f"sbatch --parsable --dependency=afterany:{array_id} create_gif.slurm --frames 4"),
        cwd=project,
        env=env,
    )
    assert gif.returncode == 0, gif.stderr
    gif_id = gif.stdout.strip().split(";")[0]
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    log = (project / f"output/slurm_files/create_gif-{gif_id}.err").read_text()
    printed = [line.strip() for line in log.splitlines() if "submit-gif-job --resume" in line]
    assert printed == [f"cd {project} && bash submit-gif-job --resume"], log
    record = require_record(ProjectPaths(project))
    assert (record.mode, record.state, record.missing_frames) == ("slurm", "failed", [2])

    _resume_renders_frame_2_and_assembles(slurm, project)


def test_array_tasks_run_on_both_emulated_nodes(slurm: Cluster, project: Path) -> None:
    array_id, gif_id = submit(slurm, project, "--frames", "6")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    hosts = {t["BatchHost"] for t in job_records(slurm, array_id)}
    assert hosts == set(slurm.node_names)
    logs = [p.read_text() for p in (project / "output/slurm_files").glob("generate_frames-*.err")]
    for node in slurm.node_names:
        assert any(f" on {node}" in text for text in logs)


def test_frames_per_task_shrinks_the_array(slurm: Cluster, project: Path) -> None:
    array_id, gif_id = submit(slurm, project, "--frames", "10", "--frames-per-task", "4")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    assert sorted(task_states(slurm, array_id)) == [1, 2, 3]
    log = (project / f"output/slurm_files/generate_frames-{array_id}_3.err").read_text()
    assert "rendering frames [9, 10] of 10" in log
    assert mp4_frame_count(project / "output/gifs/volcano.mp4") == 10


def test_bad_partition_fails_with_sbatchs_message_and_queues_nothing(
    slurm: Cluster, project: Path
) -> None:
    before = queued_ids(slurm)
    result = submit_run(
        slurm, project, "--frames", "2", env=cluster_env(slurm, SBATCH_PARTITION="nope")
    )
    assert result.returncode == 1
    assert "invalid partition" in result.stderr.lower()
    assert "nothing was submitted" in result.stderr
    assert result.stdout == ""
    assert queued_ids(slurm) == before


def test_an_unreachable_controller_names_the_local_way_out(
    slurm: Cluster, project: Path, learner_folder: Path
) -> None:
    # The same cluster's configuration, pointing at a port where no controller listens.
    conf = learner_folder / "slurm.conf"
    conf.write_text(re.sub(r"SlurmctldPort=\d+", "SlurmctldPort=1", slurm.conf.read_text()))
    conf.chmod(0o644)
    result = submit_run(
        slurm, project, "--frames", "2", env=cluster_env(slurm, SLURM_CONF=str(conf))
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "cannot reach the Slurm controller" in line
    assert "Unable to contact slurm controller (connect failure)" in line
    assert "check the cluster with `sinfo`, or run on this machine with: " in line
    assert line.endswith("bash submit-gif-job --local")


def test_dry_run_submits_nothing_and_shows_sbatchs_answers(slurm: Cluster, project: Path) -> None:
    before = queued_ids(slurm)
    result = submit_run(slurm, project, "--frames", "6", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"would submit, from {project}:",
        "  sbatch --parsable --array=1-6 --comment=volcano-gif:run:<run id> generate_frames.slurm "
        "--frames 6 --frames-per-task 1 --run-id <run id>",
        "  sbatch --parsable --dependency=afterany:<array job id> "
        "--comment=volcano-gif:run:<run id> create_gif.slurm --frames 6",
    ]
    # sbatch's own answer differs between versions (25.05 added "a" before "using"):
    # the dry run shows it alike on every version.
    nodes = "|".join(slurm.node_names)
    will_run = r"would start at [\d-]+T[\d:]+ using {} processors on nodes ({}) in partition debug"
    assert re.fullmatch(f"  generate_frames.slurm: {will_run.format(1, nodes)}", lines[4])
    without = r"\(without its dependency: the array does not exist yet\)"
    assert re.fullmatch(f"  create_gif.slurm {without}: {will_run.format(2, nodes)}", lines[5])
    assert lines[-1] == "nothing was submitted"
    assert queued_ids(slurm) == before
    assert not (project / "output/run.json").exists()

    refused = submit_run(
        slurm,
        project,
        "--frames",
        "6",
        "--dry-run",
        env=cluster_env(slurm, SBATCH_PARTITION="nope"),
    )
    assert refused.returncode == 1
    assert "invalid partition" in refused.stderr.lower()
    assert queued_ids(slurm) == before


def test_a_second_submission_is_refused_while_the_first_runs(slurm: Cluster, project: Path) -> None:
    array_id, gif_id = submit(slurm, project, "--frames", "4", "--max-running", "1")
    refused = submit_run(slurm, project, "--frames", "4")
    assert refused.returncode == 1
    (line,) = refused.stderr.splitlines()
    assert f"still has jobs in the queue: {array_id} (" in line
    assert f"{gif_id} (PENDING)" in line
    assert f"squeue --me -j {array_id},{gif_id}" in line
    assert "bash submit-gif-job --cancel" in line
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    again = submit_run(slurm, project, "--frames", "2")  # the folder is free again
    assert again.returncode == 0, again.stderr
    wait_for_run(slurm, project)


def test_cancel_removes_exactly_the_runs_jobs_and_resume_finishes(
    slurm: Cluster, project: Path
) -> None:
    unrelated = slurm_output(
        slurm, ["sbatch", "--parsable", "--output=/dev/null", "--wrap", "sleep 120"], project
    ).strip()
    try:
        array_id, gif_id = submit(slurm, project, "--frames", "12", "--max-running", "1")
        deadline = time.monotonic() + 60
        while not list((project / "images").glob("image*.png")):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        cancelled = submit_run(slurm, project, "--cancel")
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.startswith("cancelled run ")
        assert f"{gif_id} (gif, was PENDING), {array_id} (frames, was " in cancelled.stdout
        wait_for_jobs(slurm, [array_id, gif_id], timeout=60)
        remaining = queued_ids(slurm)
        assert unrelated in remaining  # an unrelated job survives
        assert not [job for job in remaining if job.split("_")[0] in {array_id, gif_id}]
        (gif_job,) = job_records(slurm, gif_id)
        assert gif_job["JobState"] == "CANCELLED"
        record = require_record(ProjectPaths(project))
        assert record.state == "cancelled"
        kept = list((project / "images").glob("image*.png"))
        assert 0 < len(kept) < 12

        resumed = submit_run(slurm, project, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        wait_for_run(slurm, project)
        assert require_record(ProjectPaths(project)).state == "assembled"
        assert gif_facts(project / "output/gifs/volcano.gif")[0] == 12
    finally:
        subprocess.run(["scancel", unrelated], env=slurm.env(), check=False)


def _watch_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("frames ")]


def test_watch_follows_a_clean_run_to_its_gif(slurm: Cluster, project: Path) -> None:
    result = submit_run(slurm, project, "--frames", "6", "--max-running", "2", "--watch")
    assert result.returncode == 0, result.stderr
    lines = _watch_lines(result.stderr)
    counts = [int(re.match(r"frames (\d+)/6", line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert counts == sorted(counts)  # frames on disk only rise
    assert counts[-1] == 6
    assert "PENDING (Dependency)" in lines[0]
    assert re.search(r"array \d+: 0 pending, 0 running, 6 completed, 0 failed", lines[-1])
    assert lines[-1].endswith(": COMPLETED")
    assert "assembled: output/gifs/volcano.gif and output/gifs/volcano.mp4" in result.stderr
    assert re.search(
        r"^  tasks: 6 on [12] node\(s\), 6 frames rendered$", result.stderr, flags=re.MULTILINE
    )
    assert result.stdout.splitlines()[-1] == str(project / "output/gifs/volcano.gif")


def test_watch_reports_a_failed_task_with_the_resume_command(slurm: Cluster, project: Path) -> None:
    _block_frame(project, 3)
    result = submit_run(slurm, project, "--frames", "4", "--watch")
    assert result.returncode == 1
    lines = _watch_lines(result.stderr)
    assert re.search(r"array \d+: 0 pending, 0 running, 3 completed, 1 failed", lines[-1])
    assert lines[-1].endswith(": FAILED (NonZeroExitCode)")
    assert "did not make its GIF: 1 of 4 frames are missing or broken (3)" in result.stderr
    assert "  missing frames: 3" in result.stderr
    assert result.stderr.rstrip().endswith("finish it with: bash submit-gif-job --resume")


def test_watch_judges_jobs_slurm_has_forgotten_from_the_files(
    slurm: Cluster, project: Path
) -> None:
    array_id, gif_id = submit(slurm, project, "--frames", "2")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    # As if MinJobAge had passed: ids that Slurm does not know (any more).
    result = volcano_gif(slurm, project, "watch", "--jobs", "999998,999999")
    assert result.returncode == 0, result.stderr
    (line,) = _watch_lines(result.stderr)
    assert line.startswith("frames 2/2 | array 999998: ")
    assert "gif job 999999: gone, run assembled" in line
    assert "[judged from output/run.json and the files on disk" in line
    assert result.stdout == f"{project / 'output/gifs/volcano.gif'}\n"


def test_start_again_after_kill_9_brings_the_cluster_back(slurm: Cluster, project: Path) -> None:
    killed = {name: pid for name, pid in status(slurm).items() if name != "munged.pid"}
    assert all(killed.values()), killed
    for pid in killed.values():
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    for pid in killed.values():
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
    assert all(pid is None for name, pid in status(slurm).items() if name != "munged.pid")
    start(slurm)
    assert all(status(slurm).values())
    array_id, gif_id = submit(slurm, project, "--frames", "2")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    (assembly,) = job_records(slurm, gif_id)
    assert assembly["ExitCode"] == "0:0"


def test_local_slurm_status_command_lists_every_daemon(slurm: Cluster) -> None:
    result = run(
        [sys.executable, "tools/local_slurm.py", "status", "--dir", slurm.folder],
        cwd=REPO,
        env=project_env(),
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ") for line in result.stdout.splitlines())
    slurmds = {f"slurmd-{node}.pid" for node in slurm.node_names}
    assert set(lines) == {*slurmds, "slurmctld.pid", "munged.pid"}
    assert all(value.isdigit() for value in lines.values())


def test_run_json_of_a_real_run_validates_against_the_schema(slurm: Cluster, project: Path) -> None:
    import jsonschema

    from volcano_gif.run.record import SCHEMA_FILE

    array_id, gif_id = submit(slurm, project, "--frames", "2")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    data = json.loads((project / "output/run.json").read_text())
    jsonschema.validate(
        data, json.loads(SCHEMA_FILE.read_text()), format_checker=jsonschema.FormatChecker()
    )
    assert data["submissions"][0]["commands"][1][2] == f"--dependency=afterany:{array_id}"


def test_the_site_cluster_enforces_memory_as_a_site_does(
    slurm: Cluster, learner_folder: Path
) -> None:
    if not slurm.enforces_memory:
        pytest.skip("this machine has no cgroup memory controller: --mem is not enforced")
    grab = "import time; block = bytearray(200 * 2**20); time.sleep(2)"
    env = cluster_env(slurm)
    over, under = (
        as_learner(
            [
                "sbatch",
                "--parsable",
                f"--mem={mem}",
                f"--output=job-{mem}.out",
                "--wrap",
                f"/usr/bin/python3 -c '{grab}'",
            ],
            cwd=learner_folder,
            env=env,
        )
        for mem in ("50M", "400M")
    )
    assert over.returncode == 0, over.stderr
    assert under.returncode == 0, under.stderr
    jobs = [over.stdout.strip(), under.stdout.strip()]
    wait_for_jobs(slurm, jobs, timeout=120)
    (killed,), (completed,) = (job_records(slurm, job) for job in jobs)
    assert (killed["JobState"], killed["ExitCode"]) == ("OUT_OF_MEMORY", "0:125")
    assert (completed["JobState"], completed["ExitCode"]) == ("COMPLETED", "0:0")
    assert killed["UserId"].startswith(f"{learner().name}(")


def test_a_run_killed_for_memory_is_named_and_its_printed_command_finishes_it(
    slurm: Cluster, project: Path
) -> None:
    if not slurm.enforces_memory:
        pytest.skip("this machine has no cgroup memory controller: --mem is not enforced")
    # 60M: enough for a render task, not for the assembly's ffmpeg (as a learner found).
    killed = submit_run(slurm, project, "--frames", "12", "--watch", "--", "--mem=60M")
    assert killed.returncode == 1, killed.stderr
    said = killed.stderr.splitlines()
    assert any(" ran out of memory (OUT_OF_MEMORY): " in line for line in said), said
    finish = said[-1]
    assert re.fullmatch(r"finish it with: bash submit-gif-job --resume -- --mem=\d+M", finish)
    record = require_record(ProjectPaths(project))
    assert record.state in {"failed", "assembling"}  # the assembly, or only its ffmpeg, killed
    # The printed command, as printed (and --watch): the run's --mem=60M, then the fix, wins.
    command = finish.removeprefix("finish it with: bash submit-gif-job ").split()
    resumed = submit_run(slurm, project, "--watch", *command)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[-1] == str(project / "output/gifs/volcano.gif")
    record = require_record(ProjectPaths(project))
    assert (record.state, record.resume_options) == ("assembled", [])
    assert record.submissions[-1].sbatch_options == command[command.index("--") + 1 :]
