"""submit-gif-job's argument handling and failure paths, with fake Slurm programs on PATH.

The real proof is tests/test_slurm.py and tests/test_faults.py, on a real Slurm.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.fakes import queue_lines, sbatch_calls, slurm_calls
from tests.helpers import argv, copy_project, project_env, run
from volcano_gif import slurm
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import require_record


def _log(tmp_path: Path) -> Path:
    return tmp_path / "slurm.log"


def _submitted(project: Path, env: dict[str, str], options: str) -> None:
    """A run submitted to the fake Slurm with ``options``: where a test starts from."""
    assert run(["bash", "submit-gif-job", *argv(options)], cwd=project, env=env).returncode == 0


def _run_id(project: Path) -> str:
    return require_record(ProjectPaths(project)).run_id


def test_submits_array_then_afterany_assembly_and_records_the_exact_commands(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    elsewhere, scratch = tmp_path / "elsewhere", tmp_path / "scratch"
    elsewhere.mkdir()
    scratch.mkdir()  # mktemp's folder ($TMPDIR): the plan must not be left in it
    result = run(
        ["bash", project / "submit-gif-job"],
        cwd=elsewhere,
        env={**fake_env, "TMPDIR": str(scratch)},
    )
    assert result.returncode == 0, result.stderr
    calls = sbatch_calls(_log(tmp_path))
    sent = [call["args"] for call in calls]
    run_id = require_record(ProjectPaths(project)).run_id
    assert sent == [
        argv(
            f"--parsable --array=1-360 --comment=volcano-gif:run:{run_id} generate_frames.slurm "
            f"--frames 360 --frames-per-task 1 --run-id {run_id}"
        ),
        argv(
            f"--parsable --dependency=afterany:1001 --comment=volcano-gif:run:{run_id} "
            "create_gif.slurm --frames 360"
        ),
    ]
    assert {call["cwd"] for call in calls} == {str(project)}
    assert result.stdout == "frames job: 1001 (array 1-360)\ngif job: 1002 (afterany:1001)\n"
    assert "squeue --me -j 1001,1002" in result.stderr
    assert (project / "output" / "slurm_files").is_dir()
    # output/run.json holds exactly the commands that sbatch received, byte for byte:
    # the script hands back the argv it ran; nothing is predicted or patched.
    record = require_record(ProjectPaths(project))
    (submission,) = record.submissions
    assert submission.commands == [["sbatch", *args] for args in sent]
    assert (submission.array_job_id, submission.gif_job_id) == ("1001", "1002")
    assert (record.state, record.mode) == ("submitted", "slurm")
    assert record.versions["slurm"] == "22.05.8"
    assert list(scratch.iterdir()) == []  # the plan folder is gone


def test_frames_per_task_throttle_size_and_extra_options(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    command = argv(
        "bash submit-gif-job --frames 100 --frames-per-task 30 --max-running 2 --size 320x240 "
        "--gif-width 200 -- --qos=debug '--mail-user=two words'"
    )
    result = run(command, cwd=project, env=fake_env)
    assert result.returncode == 0, result.stderr
    comment = f"--comment=volcano-gif:run:{_run_id(project)}"
    assert [call["args"] for call in sbatch_calls(_log(tmp_path))] == [
        argv(
            f"--parsable --array=1-4%2 {comment} --qos=debug '--mail-user=two words' "
            f"generate_frames.slurm --frames 100 --frames-per-task 30 --run-id {_run_id(project)} "
            "--size 320x240"
        ),
        argv(
            f"--parsable --dependency=afterany:1001 {comment} --qos=debug '--mail-user=two words' "
            "create_gif.slurm --frames 100 --size 320x240 --gif-width 200"
        ),
    ]


def test_job_id_with_cluster_is_split_on_semicolon(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    fake_env["FAKE_SBATCH_ANSWERS"] = "77;big-cluster,78;big-cluster"
    result = run(["bash", "submit-gif-job"], cwd=project, env=fake_env)
    assert result.returncode == 0, result.stderr
    second = sbatch_calls(_log(tmp_path))[1]["args"]
    assert isinstance(second, list)
    assert "--dependency=afterany:77" in second
    assert result.stdout.splitlines()[1] == "gif job: 78 (afterany:77)"


def test_max_array_size_raises_frames_per_task_and_says_so(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    fake_env["FAKE_MAX_ARRAY_SIZE"] = "101"
    result = run(["bash", "submit-gif-job", "--frames", "3600"], cwd=project, env=fake_env)
    assert result.returncode == 0, result.stderr
    first = sbatch_calls(_log(tmp_path))[0]["args"]
    assert first == argv(
        f"--parsable --array=1-100 --comment=volcano-gif:run:{_run_id(project)} "
        f"generate_frames.slurm --frames 3600 --frames-per-task 36 --run-id {_run_id(project)}"
    )
    assert (
        "3600 frames at 1 per task need array indices up to 3600, but this cluster's "
        "MaxArraySize is 101 (indices up to 100): rendering 36 frames per task instead, "
        "as 100 tasks"
    ) in result.stderr
    assert require_record(ProjectPaths(project)).parameters.frames_per_task == 36


def test_unreachable_controller_names_the_local_way_out(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    fake_env["FAKE_SLURM_UNREACHABLE"] = "1"
    result = run(["bash", "submit-gif-job", "--frames", "4"], cwd=project, env=fake_env)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("submit-gif-job: error: cannot reach the Slurm controller (scontrol: ")
    assert "Unable to contact slurm controller (connect failure)" in line
    assert "check the cluster with `sinfo`" in line
    assert "bash submit-gif-job --local" in line
    assert sbatch_calls(_log(tmp_path)) == []
    assert not (project / "images").exists()


def test_slurm_client_without_a_cluster_names_the_local_way_out(project: Path) -> None:
    # Debian's slurm-client installed, as the README asks, but no slurm.conf and no
    # controller: the README's first command must say what to do, and submit nothing.
    if shutil.which("scontrol") is None or Path("/etc/slurm/slurm.conf").exists():
        pytest.skip("needs Slurm's clients installed and no /etc/slurm/slurm.conf")
    env = {k: v for k, v in project_env().items() if k != "SLURM_CONF"}
    result = run(["bash", "submit-gif-job", "--frames", "4"], cwd=project, env=env)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("submit-gif-job: error: cannot reach the Slurm controller (scontrol: ")
    assert line.endswith(
        "check the cluster with `sinfo`, or run on this machine with: bash submit-gif-job --local"
    )
    assert not (project / "images").exists()


def test_with_no_configuration_a_silent_controller_is_not_awaited_for_a_minute(
    project: Path, fake_env: dict[str, str]
) -> None:
    # Slurm's clients and no slurm.conf: only a configless controller could answer, found
    # through DNS; where DNS never answers, scontrol would wait about a minute.
    if Path("/etc/slurm/slurm.conf").exists():
        pytest.skip("needs a machine with no /etc/slurm/slurm.conf")
    env = {k: v for k, v in fake_env.items() if k != "SLURM_CONF"}
    began = time.monotonic()
    result = run(
        ["bash", "submit-gif-job", "--frames", "4"],
        cwd=project,
        env=env | {"FAKE_SCONTROL_HANGS": "1"},
    )
    assert time.monotonic() - began < 60
    assert result.returncode == 1
    waiting, error = result.stderr.splitlines()
    assert waiting == "submit-gif-job: waiting for scontrol show config to answer (up to 5 s)"
    assert error == (
        "submit-gif-job: error: cannot reach the Slurm controller (scontrol: no answer in 5 s); "
        "check the cluster with `sinfo`, or run on this machine with: bash submit-gif-job --local"
    )


def test_failed_first_submission_submits_nothing_else(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    fake_env["FAKE_SBATCH_FAIL_CALL"] = "1"
    scratch = tmp_path / "scratch"  # mktemp's folder ($TMPDIR)
    scratch.mkdir()
    result = run(["bash", "submit-gif-job"], cwd=project, env={**fake_env, "TMPDIR": str(scratch)})
    assert result.returncode == 1
    assert list(scratch.iterdir()) == []  # the plan folder is gone after a refusal too
    assert "sbatch: error: invalid partition specified: nope" in result.stderr
    assert "nothing was submitted" in result.stderr
    assert len(sbatch_calls(_log(tmp_path))) == 1
    assert result.stdout == ""
    # A refusal is a state of its own, with sbatch's reason, and no submission left over.
    record = require_record(ProjectPaths(project))
    assert record.state == "refused"
    assert record.error == (
        "sbatch refused the submission: sbatch: error: invalid partition specified: nope"
    )
    assert record.submissions == []
    assert record.submitter is None
    again = run(
        ["bash", "submit-gif-job"],
        cwd=project,
        env={**fake_env, "FAKE_SBATCH_FAIL_CALL": "", "FAKE_SBATCH_ANSWERS": "-,1001,1002"},
    )
    assert again.returncode == 0, again.stderr  # a refused run leaves the folder free


def test_a_refusal_by_a_submit_limit_says_so_in_one_line(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    fake_env["FAKE_SBATCH_FAIL_CALL"] = "1"
    fake_env["FAKE_SBATCH_FAIL_MESSAGE"] = (
        "sbatch: error: QOSMaxSubmitJobPerUserLimit\n"
        "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
        "(job submit limit, user's size and/or time limits)"
    )
    result = run(["bash", "submit-gif-job", "--frames", "4"], cwd=project, env=fake_env)
    assert result.returncode == 1
    ours = [line for line in result.stderr.splitlines() if line.startswith("submit-gif-job:")]
    assert ours == [
        "submit-gif-job: error: sbatch refused the submission (QOSMaxSubmitJobPerUserLimit): "
        "your site counts each array task as a job; nothing was submitted. Wait for your "
        "other jobs (squeue --me), or give fewer tasks with --frames-per-task"
    ]
    assert len(sbatch_calls(_log(tmp_path))) == 1
    record = require_record(ProjectPaths(project))
    assert record.state == "refused"
    assert "QOSMaxSubmitJobPerUserLimit" in (record.error or "")


def test_failed_second_submission_says_how_to_finish(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    fake_env["FAKE_SBATCH_FAIL_CALL"] = "2"
    result = run(["bash", "submit-gif-job"], cwd=project, env=fake_env)
    assert result.returncode == 1
    assert "the frame array 1001 was submitted, its assembly job was not" in result.stderr
    assert "bash submit-gif-job --resume" in result.stderr
    record = require_record(ProjectPaths(project))
    assert record.submissions[0].array_job_id == "1001"
    assert record.state == "failed"


def test_a_second_run_is_refused_while_the_first_ones_jobs_are_queued(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    _submitted(project, fake_env, "--frames 8")
    fake_env["FAKE_SQUEUE_OUTPUT"] = queue_lines(
        project,
        _run_id(project),
        ("1001", "RUNNING", "generate_frames"),
        ("1001", "PENDING", "generate_frames"),
        ("1002", "PENDING", "create_gif"),
    )
    again = run(["bash", "submit-gif-job", "--frames", "8"], cwd=project, env=fake_env)
    assert again.returncode == 1
    (line,) = again.stderr.splitlines()
    assert "still has jobs in the queue: 1001 (RUNNING), 1002 (PENDING)" in line
    assert "squeue --me -j 1001,1002" in line
    assert "bash submit-gif-job --cancel" in line
    assert len(sbatch_calls(_log(tmp_path))) == 2  # only the first run's
    squeues = slurm_calls(_log(tmp_path), "squeue")
    assert len(squeues) == 2  # once by each submission: the user's jobs, in one call
    assert "--me" in squeues[1]["args"]


def test_resume_submits_only_the_missing_tasks_as_one_array(
    project: Path, tmp_path: Path, fake_env: dict[str, str], small_frames: Path
) -> None:
    _submitted(project, fake_env, "--frames 12 --frames-per-task 2")
    images = project / "images"
    images.mkdir()
    for frame in (1, 2, 3, 4, 6, 7, 8, 11, 12):  # 5, 9 and 10 are missing
        name = f"image{frame:04d}.png"
        (images / name).write_bytes((small_frames / name).read_bytes())
    fake_env["FAKE_SBATCH_ANSWERS"] = "1001,1002,2001,2002"
    result = run(["bash", "submit-gif-job", "--resume"], cwd=project, env=fake_env)
    assert result.returncode == 0, result.stderr
    assert [call["args"] for call in sbatch_calls(_log(tmp_path))][2:] == [
        argv(
            f"--parsable --array=3,5 --comment=volcano-gif:run:{_run_id(project)} "
            f"generate_frames.slurm --frames 12 --frames-per-task 2 --run-id {_run_id(project)}"
        ),
        argv(
            f"--parsable --dependency=afterany:2001 --comment=volcano-gif:run:{_run_id(project)} "
            "create_gif.slurm --frames 12"
        ),
    ]
    assert "3 of 12 frames to render again (5,9-10), as array tasks 3,5" in result.stderr
    record = require_record(ProjectPaths(project))
    assert [s.kind for s in record.submissions] == ["start", "resume"]
    assert record.job_ids() == ["1001", "1002", "2001", "2002"]


def test_resume_with_every_frame_there_submits_only_the_assembly(
    project: Path, tmp_path: Path, fake_env: dict[str, str], small_frames: Path
) -> None:
    _submitted(project, fake_env, "--frames 12")
    (project / "images").rmdir() if (project / "images").exists() else None
    (project / "images").symlink_to(small_frames, target_is_directory=True)
    fake_env["FAKE_SBATCH_ANSWERS"] = "1001,1002,2002"
    result = run(["bash", "submit-gif-job", "--resume"], cwd=project, env=fake_env)
    assert result.returncode == 0, result.stderr
    assert sbatch_calls(_log(tmp_path))[2]["args"] == argv(
        f"--parsable --comment=volcano-gif:run:{_run_id(project)} create_gif.slurm --frames 12"
    )
    assert result.stdout == "gif job: 2002 (no dependency: every frame is rendered)\n"


def test_dry_run_prints_the_commands_and_sbatchs_answers_and_submits_nothing(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    result = run(
        ["bash", "submit-gif-job", "--frames", "24", "--dry-run"], cwd=project, env=fake_env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"would submit, from {project}:",
        "  sbatch --parsable --array=1-24 --comment=volcano-gif:run:<run id> generate_frames.slurm "
        "--frames 24 --frames-per-task 1 --run-id <run id>",
        "  sbatch --parsable --dependency=afterany:<array job id> "
        "--comment=volcano-gif:run:<run id> create_gif.slurm --frames 24",
        "sbatch --test-only checks each job without submitting it:",
        "  generate_frames.slurm: would start at 2026-11-21T10:00:00 using 1 processors on "
        "nodes n1 in partition debug",
        "  create_gif.slurm (without its dependency: the array does not exist yet): would start "
        "at 2026-11-21T10:00:00 using 1 processors on nodes n1 in partition debug",
        "nothing was submitted",
    ]
    assert sbatch_calls(_log(tmp_path)) == []
    assert [c["args"][0] for c in slurm_calls(_log(tmp_path), "sbatch")] == ["--test-only"] * 2
    assert not (project / "output" / "run.json").exists()


#: sbatch --test-only's line on each Slurm version: 25.05 added a stray "a" (and the
#: cluster's name, with -M). The dry run and the check show it alike on every version.
WILL_RUN = "{} at 2026-12-06T17:30:36{} using 2 processors on nodes n1 in partition debug"


@pytest.mark.parametrize(
    ("said", "shown"),
    [
        (WILL_RUN.format("sbatch: Job 33 to start", ""), WILL_RUN.format("would start", "")),
        (WILL_RUN.format("sbatch: Job 33 to start", " a"), WILL_RUN.format("would start", "")),
        (
            WILL_RUN.format("sbatch: Job 33 to start", " on cluster c1 a"),
            WILL_RUN.format("would start", " on cluster c1"),
        ),
    ],
    ids=["22.05-24.11", "25.05-26.05", "25.05-26.05 -M c1"],
)
def test_sbatch_test_only_reads_alike_on_every_slurm_version(
    tmp_path: Path,
    fake_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    said: str,
    shown: str,
) -> None:
    for name, value in {**fake_env, "FAKE_SBATCH_TEST_ONLY": said}.items():
        monkeypatch.setenv(name, value)
    assert slurm.test_only(["sbatch", "generate_frames.slurm"]) == shown
    assert [call["args"] for call in slurm_calls(tmp_path / "slurm.log", "sbatch")] == [
        ["--test-only", "generate_frames.slurm"]
    ]


def test_dry_run_without_slurm_prints_the_local_plan(project: Path) -> None:
    result = run(["bash", "submit-gif-job", "--local", "--frames", "24", "--dry-run"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert "render 24 of 24 frames at 640x480 on" in result.stdout
    assert "output/gifs/volcano.gif (400x300)" in result.stdout
    assert result.stdout.rstrip().endswith("nothing was run")
    assert not (project / "images").exists()
    assert not (project / "output").exists()


def test_cancel_cancels_the_runs_queued_jobs_with_one_scancel(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    _submitted(project, fake_env, "--frames 8")
    fake_env["FAKE_SQUEUE_OUTPUT"] = queue_lines(
        project,
        _run_id(project),
        ("1001", "RUNNING", "generate_frames"),
        ("1002", "PENDING", "create_gif"),
    )
    result = run(["bash", "submit-gif-job", "--cancel"], cwd=project, env=fake_env)
    assert result.returncode == 0, result.stderr
    (scancel,) = slurm_calls(_log(tmp_path), "scancel")
    assert scancel["args"] == ["1002", "1001"]  # the assembly first
    assert "cancelled run" in result.stdout
    assert "bash submit-gif-job --resume" in result.stdout
    assert require_record(ProjectPaths(project)).state == "cancelled"


def test_help(project: Path, fake_env: dict[str, str]) -> None:
    result = run(["bash", "submit-gif-job", "--help"], cwd=project, env=fake_env)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: bash submit-gif-job [options]")
    for option in ("--resume", "--dry-run", "--cancel", "--watch", "--size", "SBATCH_PARTITION"):
        assert option in result.stdout


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _bad(name: str, command: str, message: str, breakage: object = None, code: int = 2) -> object:
    """A row of BAD_INPUT: a command line, as typed (``python`` is this Python)."""
    words = argv(command)
    words = [sys.executable, *words[1:]] if words[0] == "python" else words
    return pytest.param(words, breakage, code, message, id=name)


def _broken_csv(name: str, text: str | None, message: str, local: bool = False) -> object:
    """A row of BAD_INPUT: data/volcano.csv holds ``text`` (None: it is missing)."""

    def breakage(project: Path) -> None:
        csv = project / "data/volcano.csv"
        if text is None:
            csv.unlink()
        else:
            csv.write_text(text)

    command = (
        "bash submit-gif-job --local --frames 4" if local else "bash submit-gif-job --frames 4"
    )
    return _bad(name, command, message, breakage=breakage)


def _submit(name: str, options: str, message: str, **row: object) -> object:
    """A row of BAD_INPUT: ``bash submit-gif-job`` with ``options``."""
    return _bad(name, f"bash submit-gif-job {options}", message, **row)  # type: ignore[arg-type]


def _too_wide_gif(where: str, command: str, width: int, more: str = "") -> object:
    """A row of BAD_INPUT: a GIF wider than frames of 64x48."""
    message = f"--gif-width {width} is wider than the frames (64 px){more}"
    return _bad(
        f"gif wider than the frames{where}", f"{command} --size 64x48 --gif-width {width}", message
    )


#: A frame count with more digits than any a run could have.
HUGE = "99999999999999999999"


def _volcano_py(name: str, frames: str, message: str) -> object:
    """A row of BAD_INPUT: ``python volcano.py`` asked for ``frames``."""
    return _bad(name, f"python volcano.py {frames}", message)


def _bad_option(name: str, option: str, problem: str) -> object:
    """A row of BAD_INPUT: submit-gif-job given ``option`` and its value; argparse's line."""
    flag = re.split("[ =]", option)[0]
    return _submit(name, option, f"argument {flag}: {problem}")


def _bad_numbers(flag: str, negative: str, huge: str) -> list[object]:
    """Rows of BAD_INPUT: the four ways to give ``flag`` a bad number (1 to 9999)."""
    name = flag[2:].replace("-", " ")
    return [
        _bad_option(f"{name} 0", f"{flag} 0", "0 is not a positive number"),
        _bad_option(
            f"{name} negative", f"{flag}={negative}", f"{negative} is not a positive number"
        ),
        _bad_option(f"{name} huge", f"{flag} {huge}", f"{huge} is out of range: use 1 to 9999"),
        _bad_option(f"{name} not a number", f"{flag} x", "'x' is not a whole number"),
    ]


# Each row: a command (run in a fresh project copy), the one line of error it must
# print, what to break first and the exit code. Never a traceback.
BAD_INPUT = [
    _broken_csv(
        "csv missing",
        None,
        "data/volcano.csv: no such file; the height grid ships as data/volcano.csv",
    ),
    _broken_csv("csv empty", "", "data/volcano.csv: the file is empty"),
    _broken_csv("csv ragged", "V1,V2\n1,2\n3\n", "line 3 has 1 values, the header has 2"),
    _broken_csv("csv not numbers", "V1,V2\n1,x\n", "line 2, column V2: 'x' is not a height"),
    _broken_csv(
        "csv broken, local", "V1,V2\n1,x\n", "line 2, column V2: 'x' is not a height", local=True
    ),
    _volcano_py("frame 0", "0", "volcano.py: error: frame 0 is out of range: use 1 to 360"),
    _volcano_py("frame too large", "361", "frame 361 is out of range: use 1 to 360"),
    _volcano_py("frame negative", "-- -3", "frame -3 is out of range: use 1 to 360"),
    _volcano_py("frame not a number", "seven", "argument FRAME: 'seven' is not a frame number"),
    _bad_option("frames 0", "--frames 0", "0 is not a positive number"),
    _bad_option("frames negative", "--frames=-5", "-5 is not a positive number"),
    _submit(
        "frames huge", f"--frames {HUGE}", f"frame count {HUGE} is out of range: use 1 to 9999"
    ),
    _bad_option("frames not a number", "--frames ten", "'ten' is not a whole number"),
    *_bad_numbers("--frames-per-task", "-1", "10000"),
    *_bad_numbers("--max-running", "-2", "123456"),
    _submit("size malformed", "--size big", "size 'big' is not of the form WIDTHxHEIGHT"),
    _too_wide_gif(
        "",
        "bash submit-gif-job",
        10000,
        ": a GIF is never scaled up; use --gif-width 64 or less, or a larger --size",
    ),
    _too_wide_gif(", local", "bash submit-gif-job --local", 65),
    _too_wide_gif(", assemble", "python -m volcano_gif assemble", 100),
    _submit("unknown option", "--bogus", "unrecognized arguments: --bogus"),
    _submit("option without value", "--frames", "argument --frames: expected one argument"),
    *(
        _submit(
            f"output not writable{where}",
            options,
            "cannot write in",
            breakage=lambda p: _write(p / "output", "a file where the folder should be"),
        )
        for where, options in (("", "--frames 4"), (", local", "--local --frames 4"))
    ),
    _submit("resume without a record", "--resume", "there is no run record (output/run.json)"),
    _submit(
        "resume with a new shape",
        "--resume --frames 5",
        "--resume takes the run's --frames from output/run.json",
    ),
    _submit(
        "sbatch refuses",
        "--frames 4",
        "submit-gif-job: error: sbatch refused the submission (see its message above); "
        "nothing was submitted",
        breakage="refuse",
        code=1,
    ),
]


@pytest.mark.parametrize(("command", "breakage", "code", "message"), BAD_INPUT)
def test_bad_input_gets_one_line_and_a_non_zero_exit(
    tmp_path: Path,
    fake_env: dict[str, str],
    command: list[str],
    breakage: object,
    code: int,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = copy_project(tmp_path / "project")
    if breakage == "refuse":
        fake_env["FAKE_SBATCH_FAIL_CALL"] = "1"
    elif callable(breakage):
        breakage(project)
    if breakage is None:  # nothing but options: the parsing runs in this process
        returncode, stderr = _run_in_process(command, project, fake_env, monkeypatch, capsys)
    else:
        result = run(command, cwd=project, env=fake_env)
        returncode, stderr = result.returncode, result.stderr
    assert returncode == code, stderr
    assert "Traceback" not in stderr
    ours = [line for line in stderr.splitlines() if ": error: " in line]
    ours = [line for line in ours if not line.startswith("sbatch:")]  # sbatch's own, if any
    assert len(ours) == 1, stderr
    assert message in ours[0]
    assert ours[0].split(": error: ")[0] in {"submit-gif-job", "volcano.py", "volcano-gif"}
    assert len(stderr.splitlines()) <= 2, stderr  # at most sbatch's line too
    assert sbatch_calls(_log(tmp_path)) == [] or breakage == "refuse"


def _run_in_process(
    command: list[str],
    project: Path,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str]:
    """What ``command`` (submit-gif-job, volcano.py or volcano-gif) exits with and says on
    stderr, run in this process: the same Python entry points the scripts call."""
    from volcano_gif.cli import main
    from volcano_gif.task.main import volcano_main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # The commands set MPLCONFIGDIR for themselves: undone after the test, as the rest.
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.chdir(project)

    def entry() -> int:
        if command[:2] == ["bash", "submit-gif-job"]:
            return main(["plan-submission", str(project / "plan"), *command[2:]])
        if command[1:2] == ["volcano.py"]:
            return volcano_main(project, command[2:])
        return main(command[3:])  # python -m volcano_gif ...

    capsys.readouterr()
    try:
        code = entry()
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


def test_a_project_path_with_spaces_and_quotes_just_works(
    tmp_path: Path, fake_env: dict[str, str]
) -> None:
    project = copy_project(tmp_path / 'my "volcano" project\'s copy')
    result = run(["bash", project / "submit-gif-job", "--frames", "4"], cwd=tmp_path, env=fake_env)
    assert result.returncode == 0, result.stderr
    assert {call["cwd"] for call in sbatch_calls(_log(tmp_path))} == {str(project)}
    record = json.loads((project / "output/run.json").read_text())
    assert record["state"] == "submitted"
    local = run(
        ["bash", project / "submit-gif-job", "--local", "--frames", "4"], cwd=tmp_path, env=fake_env
    )
    assert local.returncode == 0, local.stderr
    assert (project / "output/gifs/volcano.gif").is_file()


def _merged(command: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
    """What ``command 2>&1 | cat`` shows: stdout and stderr through one pipe.

    Without PYTHONUNBUFFERED, which would hide Python's buffering of a pipe.
    """
    env = {name: value for name, value in env.items() if name != "PYTHONUNBUFFERED"}
    return run(["bash", "-c", '"$@" 2>&1', "merged", *command], cwd, env).stdout.splitlines()


def test_output_keeps_its_order_through_a_pipe_and_an_error_comes_last(
    project: Path, fake_env: dict[str, str]
) -> None:
    refused = _merged(
        ["bash", "submit-gif-job", "--frames", "24", "--dry-run"],
        project,
        {**fake_env, "SBATCH_PARTITION": "nope"},
    )
    assert refused[0] == f"would submit, from {project}:"
    assert refused[-1].startswith("submit-gif-job: error: sbatch --test-only --parsable ")
    assert refused[-1].endswith("Invalid partition name specified")
    # The job ids come as the jobs are submitted, before the watch that follows them.
    watched = _merged(["bash", "submit-gif-job", "--frames", "4", "--watch"], project, fake_env)
    first_watch = next(k for k, line in enumerate(watched) if line.startswith("frames 0/4 | "))
    assert watched.index("frames job: 1001 (array 1-4)") < first_watch
    assert watched.index("gif job: 1002 (afterany:1001)") < first_watch
    assert watched[-1] == "finish it with: bash submit-gif-job --resume"


def test_resume_keeps_the_runs_sbatch_options_and_adds_its_own(
    project: Path, tmp_path: Path, fake_env: dict[str, str], small_frames: Path
) -> None:
    started = run(
        ["bash", "submit-gif-job", "--frames", "12", "--", "--mem=60M", "--account=proj", "--hold"],
        cwd=project,
        env=fake_env,
    )
    assert started.returncode == 0, started.stderr
    images = project / "images"
    images.mkdir()
    for frame in (*range(1, 5), *range(6, 13)):  # frame 5 is missing
        name = f"image{frame:04d}.png"
        (images / name).write_bytes((small_frames / name).read_bytes())
    # The dry run shows what the resume would submit: the run's options, then its own.
    shown = run(
        ["bash", "submit-gif-job", "--resume", "--dry-run", "--", "--mem=1G"],
        cwd=project,
        env=fake_env,
    )
    assert shown.returncode == 0, shown.stderr
    comment = f"--comment=volcano-gif:run:{_run_id(project)}"
    assert shown.stdout.splitlines()[1:3] == [
        f"  sbatch --parsable --array=5 {comment} --mem=60M --account=proj --mem=1G "
        f"generate_frames.slurm --frames 12 --frames-per-task 1 --run-id {_run_id(project)}",
        f"  sbatch --parsable --dependency=afterany:<array job id> {comment} --mem=60M "
        "--account=proj --mem=1G create_gif.slurm --frames 12",
    ]
    fake_env["FAKE_SBATCH_ANSWERS"] = "1001,1002,2001,2002"
    resumed = run(
        ["bash", "submit-gif-job", "--resume", "--", "--mem=1G"], cwd=project, env=fake_env
    )
    assert resumed.returncode == 0, resumed.stderr
    # sbatch takes the last of an option given twice: --mem=1G wins, --account stays.
    assert [call["args"] for call in sbatch_calls(_log(tmp_path))][2:] == [
        argv(
            f"--parsable --array=5 {comment} --mem=60M --account=proj --mem=1G "
            f"generate_frames.slurm --frames 12 --frames-per-task 1 --run-id {_run_id(project)}"
        ),
        argv(
            f"--parsable --dependency=afterany:2001 {comment} --mem=60M --account=proj "
            "--mem=1G create_gif.slurm --frames 12"
        ),
    ]
    record = require_record(ProjectPaths(project))
    assert [s.sbatch_options for s in record.submissions] == [
        ["--mem=60M", "--account=proj", "--hold"],
        ["--mem=1G"],
    ]
    # All but --hold: a run held at first was released by hand; its resume is not held.
    assert record.sbatch_options() == ["--mem=60M", "--account=proj", "--mem=1G"]


def test_a_new_run_starts_with_no_timing_file_of_an_earlier_one(
    project: Path, fake_env: dict[str, str]
) -> None:
    timing = project / "output" / "timing"
    timing.mkdir(parents=True)
    (timing / "slurm-1001_7.json").write_text('{"run_id": "20261101T090000-0001"}')
    (timing / "notes.txt").write_text("not ours")
    result = run(["bash", "submit-gif-job", "--frames", "4"], cwd=project, env=fake_env)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in timing.iterdir()) == ["notes.txt"]
