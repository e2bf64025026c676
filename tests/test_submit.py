"""submit-gif-job's argument handling, with a fake sbatch on PATH.

The real proof is tests/test_slurm.py, on a real Slurm cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fakes import install_fake_sbatch, sbatch_calls
from tests.helpers import project_env, run


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "fakebin"
    install_fake_sbatch(bin_dir)
    return project_env({
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SBATCH_LOG": str(tmp_path / "sbatch.log"),
    })  # fmt: skip


def test_submits_array_then_afterany_assembly(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run(["bash", project / "submit-gif-job"], cwd=elsewhere, env=fake_env)
    assert result.returncode == 0, result.stderr
    calls = sbatch_calls(tmp_path / "sbatch.log")
    assert [call["args"] for call in calls] == [
        ["--parsable", "--array=1-360", "generate_frames.slurm",
         "--frame-count", "360", "--frames-per-task", "1"],
        ["--parsable", "--dependency=afterany:1001", "create_gif.slurm", "--frame-count", "360"],
    ]  # fmt: skip
    assert {call["cwd"] for call in calls} == {str(project)}
    assert result.stdout == "frames job: 1001 (array 1-360)\ngif job: 1002 (afterany:1001)\n"
    assert "squeue -j 1001,1002" in result.stderr
    assert (project / "output" / "slurm_files").is_dir()


def test_frames_per_task_throttle_and_extra_options(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    result = run(
        ["bash", "submit-gif-job", "--frames", "100", "--frames-per-task", "30",
         "--max-running", "2", "--", "--qos=debug"],
        cwd=project, env=fake_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [call["args"] for call in sbatch_calls(tmp_path / "sbatch.log")] == [
        ["--parsable", "--array=1-4%2", "--qos=debug", "generate_frames.slurm",
         "--frame-count", "100", "--frames-per-task", "30"],
        ["--parsable", "--dependency=afterany:1001", "--qos=debug", "create_gif.slurm",
         "--frame-count", "100"],
    ]  # fmt: skip


def test_job_id_with_cluster_is_split_on_semicolon(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    fake_env["FAKE_SBATCH_ANSWERS"] = "77;big-cluster,78;big-cluster"
    result = run(["bash", "submit-gif-job"], cwd=project, env=fake_env)
    assert result.returncode == 0, result.stderr
    second = sbatch_calls(tmp_path / "sbatch.log")[1]["args"]
    assert isinstance(second, list)
    assert "--dependency=afterany:77" in second
    assert result.stdout.splitlines()[1] == "gif job: 78 (afterany:77)"


def test_failed_first_submission_submits_nothing_else(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    fake_env["FAKE_SBATCH_FAIL_CALL"] = "1"
    result = run(["bash", "submit-gif-job"], cwd=project, env=fake_env)
    assert result.returncode == 1
    assert "sbatch: error: invalid partition specified: nope" in result.stderr
    assert "nothing was submitted" in result.stderr
    assert len(sbatch_calls(tmp_path / "sbatch.log")) == 1
    assert result.stdout == ""


def test_failed_second_submission_says_how_to_submit_it(
    project: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    fake_env["FAKE_SBATCH_FAIL_CALL"] = "2"
    result = run(["bash", "submit-gif-job"], cwd=project, env=fake_env)
    assert result.returncode == 1
    assert "the frame array 1001 was submitted, the assembly job was not" in result.stderr
    assert "sbatch --dependency=afterany:1001 create_gif.slurm --frame-count 360" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--frames", "0"], "argument --frame-count: 0 is not a positive number"),
        (["--frames", "10000"], "frame count 10000 is out of range: use 1 to 9999"),
        (["--frames", "ten"], "argument --frame-count: 'ten' is not a whole number"),
        (["--frames-per-task", "0"], "argument --frames-per-task: 0 is not a positive number"),
        (["--max-running", "x"], "--max-running must be a positive whole number, not 'x'"),
        (["--bogus"], "unknown option '--bogus'"),
        (["--frames"], "--frames needs a number"),
    ],
)
def test_bad_options_fail_before_any_submission(
    project: Path, tmp_path: Path, fake_env: dict[str, str], arguments: list[str], message: str
) -> None:
    result = run(["bash", "submit-gif-job", *arguments], cwd=project, env=fake_env)
    assert result.returncode == 2
    assert message in result.stderr
    assert sbatch_calls(tmp_path / "sbatch.log") == []


def test_help(project: Path, fake_env: dict[str, str]) -> None:
    result = run(["bash", "submit-gif-job", "--help"], cwd=project, env=fake_env)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: bash submit-gif-job")
    assert "SBATCH_PARTITION" in result.stdout
