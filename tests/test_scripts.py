"""The shell scripts agree with the Python constants, and pass shellcheck."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers import REPO, installed_program
from tools.workspace import PROJECT_FILES
from volcano_gif.layout import (
    ARRAY_SCRIPT,
    ASSEMBLY_MEMORY,
    ASSEMBLY_SCRIPT,
    ASSEMBLY_TIME,
    COMPARE_MEMORY,
    COMPARE_SCRIPT,
    COMPARE_TIME,
    DEFAULT_FRAME_COUNT,
    FRAME_PREFIX,
    RENDER_TASK_MEMORY,
    RENDER_TASK_TIME,
    SLURM_ARRAY_LOG_ERR,
    SLURM_ARRAY_LOG_OUT,
    SLURM_JOB_LOG_ERR,
    SLURM_JOB_LOG_OUT,
    frame_name,
)
from volcano_gif.submit.plan_files import PLAN_FILES

SCRIPTS = [
    "generate_frames.slurm",
    "create_gif.slurm",
    "compare_frames.slurm",
    "submit-gif-job",
    ".ci/run",
    "tools/debian_root.sh",
]


def sbatch_options(script: str) -> dict[str, str]:
    text = (REPO / script).read_text()
    return dict(re.findall(r"^#SBATCH --([a-z-]+)=(\S+)$", text, flags=re.MULTILINE))


def test_array_script_header_matches_the_constants() -> None:
    options = sbatch_options("generate_frames.slurm")
    assert options["array"] == f"1-{DEFAULT_FRAME_COUNT}"
    assert options["output"] == SLURM_ARRAY_LOG_OUT
    assert options["error"] == SLURM_ARRAY_LOG_ERR
    assert SLURM_ARRAY_LOG_OUT == "output/slurm_files/%x-%A_%a.out"
    assert options["job-name"] == "generate_frames"
    assert options["mem"] == RENDER_TASK_MEMORY
    assert options["time"] == RENDER_TASK_TIME


@pytest.mark.parametrize(
    ("script", "job_name", "memory", "time"),
    [
        ("create_gif.slurm", "create_gif", ASSEMBLY_MEMORY, ASSEMBLY_TIME),
        (COMPARE_SCRIPT, "compare_frames", COMPARE_MEMORY, COMPARE_TIME),
    ],
    ids=["assembly", "compare"],
)
def test_single_job_script_header_matches_the_constants(
    script: str, job_name: str, memory: str, time: str
) -> None:
    options = sbatch_options(script)
    assert options["output"] == SLURM_JOB_LOG_OUT
    assert options["error"] == SLURM_JOB_LOG_ERR
    assert options["job-name"] == job_name
    assert options["mem"] == memory
    assert options["time"] == time


def test_every_job_script_reaches_a_copy_of_the_project() -> None:
    scripts = {path.name for path in REPO.glob("*.slurm")}
    assert scripts == {ARRAY_SCRIPT, ASSEMBLY_SCRIPT, COMPARE_SCRIPT}
    assert scripts <= set(PROJECT_FILES)


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_site_settings_and_strict_mode(script: str) -> None:
    text = (REPO / script).read_text()
    assert not re.search(r"^#SBATCH --(account|partition|qos)", text, flags=re.MULTILINE)
    assert "module load" not in text
    assert "set -euo pipefail" in text


def test_submit_script_reads_the_plan_files_and_runs_the_two_scripts() -> None:
    text = (REPO / "submit-gif-job").read_text()
    assert set(re.findall(r"\$plan/([a-z-]+)", text)) <= set(PLAN_FILES)
    sbatch_lines = re.findall(r"sbatch --parsable [^\n]*\n[^\n]*", text)
    assert len(sbatch_lines) == 2
    assert ARRAY_SCRIPT in sbatch_lines[0]
    assert '--array="$(<"$plan/array")"' in sbatch_lines[0]
    assert ASSEMBLY_SCRIPT in sbatch_lines[1]
    assert 'dependency=(--dependency="afterany:$array_id")' in text
    assert "${array_out%%;*}" in text  # --parsable's "jobid;cluster"
    assert "${gif_out%%;*}" in text


def test_job_scripts_pass_their_arguments_to_python() -> None:
    assert 'volcano.py --array-task "${SLURM_ARRAY_TASK_ID' in (REPO / ARRAY_SCRIPT).read_text()
    assert '-m volcano_gif assemble "$@"' in (REPO / ASSEMBLY_SCRIPT).read_text()
    assert '-m volcano_gif compare "$@"' in (REPO / COMPARE_SCRIPT).read_text()


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_leave_frame_naming_to_python(script: str) -> None:
    # Frame names are made in one place (volcano_gif.layout); no script spells them.
    spelled = re.findall(rf"{FRAME_PREFIX}[%$<{{\d]", (REPO / script).read_text())
    assert spelled == []


def test_the_guide_shows_the_real_frame_names() -> None:
    guide = (REPO / "docs/guide/index.md").read_text()
    assert frame_name(1) in guide
    assert frame_name(DEFAULT_FRAME_COUNT) in guide


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck(script: str) -> None:
    result = subprocess.run(
        [installed_program("shellcheck"), "-x", str(REPO / script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def _readme_block(after: str) -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index(after)
    block = readme[start:].split("```", 1)[0]
    return block.strip().splitlines()[-1]


def test_ci_runs_the_readme_test_command_with_decoys_first_on_path() -> None:
    command = _readme_block("# 2. Install the test extras")
    assert command.endswith(".venv/bin/python -m pytest")
    ci = (REPO / ".ci" / "run").read_text()
    assert f"\n{command}\n" in ci
    assert "for tool in shellcheck ruff mypy lint-imports; do" in ci
    assert ci.index('export PATH="$decoys:$PATH"') < ci.index(f"\n{command}\n")
    # ... and the same command on Slurm 24.11 and 26.05, in Debian roots, beside it.
    assert 'bash tools/debian_root.sh "$release" test -- ${roots[$release]} >' in ci
    assert "for release in testing trixie; do" in ci
    assert "export VOLCANO_REQUIRE_SLURM=1" in ci
    inside = (REPO / "tools" / "debian_root.sh").read_text()
    for step in (
        "python3 -m venv .venv",
        'pip install -q -e ".[test]"',
        ".venv/bin/python -m pytest",
    ):
        assert step in inside, step


def test_readme_gif_command_uses_the_real_scripts() -> None:
    command = _readme_block("# 1. Install and make output/gifs/volcano.gif")
    assert command == "python3 -m venv .venv && .venv/bin/pip install -e . && bash submit-gif-job"
