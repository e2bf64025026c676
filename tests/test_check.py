"""``volcano-gif check``, the learner's check the day before the lesson.

With fake Slurm programs (tests/fakes.py), the exact lines for a site that is
ready and for sites that are not: no sbatch on PATH, sbatch refusing the
partition, no accounting, a job that never starts, a job whose Python lacks the
packages. On the localhost clusters, as the learner: every check passes where
the cluster keeps accounting, and only accounting fails where it does not.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clusters import STRICT_LOGIN
from tests.fakes import sbatch_calls, slurm_calls
from tests.helpers import REPO, run
from tests.slurm_helpers import cluster_env, slurm_output, volcano_gif
from tools.local_slurm import Cluster
from volcano_gif import slurm
from volcano_gif.submit import check
from volcano_gif.submit.check_job import JOB_NAME, JOB_TIME, SCRATCH_PREFIX

PYTHON_LINE = f"ok   python: Python {'.'.join(map(str, sys.version_info[:3]))} ({sys.executable})"
PACKAGES_LINE = (
    "ok   packages: matplotlib, numpy, PIL, imageio, imageio_ffmpeg, pandas, seaborn, tqdm "
    "import; imageio-ffmpeg's ffmpeg runs"
)
SLURM_LINE = "ok   slurm: Slurm 22.05.8: the controller answers ({bin}/sbatch)"
TEST_ONLY = (
    "sbatch --test-only: would start at 2026-11-21T10:00:00 using 1 processors on nodes n1 "
    "in partition debug"
)
SCRIPT_LINES = [f"ok   generate_frames.slurm: {TEST_ONLY}", f"ok   create_gif.slurm: {TEST_ONLY}"]
JOB_LINE = "ok   job: job 1001: its one task COMPLETED, and wrote its frame and its log"
NO_ACCOUNTING_LINE = (
    "FAIL accounting: this cluster keeps no accounting (AccountingStorageType={storage}): sacct "
    "has nothing to show. Only episode 5 needs it, and its run report falls back to the task "
    "timing files (and says so); to follow it with sacct, ask your site for job accounting "
    "(slurmdbd) with your user in it"
)
ONLY_ACCOUNTING_FAILED = (
    "not ready: 7 of 8 checks passed, 1 failed (accounting); accounting is needed for "
    "episode 5 only: the rest of the lesson will work"
)
#: What the fake sacct says of the check's job once it has ended (SACCT_USAGE_FIELDS).
SACCT_ENDED = (
    "1001_1|COMPLETED|0:0|2|00:01.500|1||256M|n1|00:02:00;"
    "1001_1.batch|COMPLETED|0:0|2|00:01.500|1|61440K||n1|"
)


def _jq(bin_dir: Path) -> str:
    """A fake jq in ``bin_dir`` (made if missing); the line the check prints for it."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    jq = bin_dir / "jq"
    jq.write_text("#!/bin/sh\necho jq-1.7.1\n")
    jq.chmod(0o755)
    return f"ok   jq: {jq} (jq-1.7.1)"


def _check(project: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "volcano_gif", "check", *options], cwd=project, env=env)


def _start_check(
    project: Path, env: dict[str, str], stderr: int, before: Callable[[], None] | None = None
) -> subprocess.Popen[str]:
    """``volcano-gif check`` started in ``project``, its stdout a pipe; ``before`` runs in it."""
    return subprocess.Popen(
        [sys.executable, "-m", "volcano_gif", "check"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        preexec_fn=before,  # noqa: PLW1509 (the tests start no threads)
    )


@pytest.fixture
def site(tmp_path: Path, fake_env: dict[str, str]) -> dict[str, str]:
    """A site that is ready, in fakes: its jobs run at once, accounting lists them."""
    for name in [key for key in fake_env if key.startswith("SBATCH_")]:
        del fake_env[name]
    fake_env.update(
        FAKE_SBATCH_RUN="1",
        FAKE_SQUEUE_OUTPUT="1001|1|COMPLETED|None|256M|2:00",
        FAKE_ACCOUNTING_STORAGE="accounting_storage/slurmdbd",
        FAKE_SACCT_OUTPUT=SACCT_ENDED,
    )
    _jq(_bin(tmp_path))
    return fake_env


def _bin(tmp_path: Path) -> Path:
    return tmp_path / "fakebin"


def _lines_to_the_job(tmp_path: Path) -> list[str]:
    """What a ready site's check says up to its test job, with the fakes in tmp_path."""
    return [
        PYTHON_LINE,
        PACKAGES_LINE,
        _jq(_bin(tmp_path)),
        SLURM_LINE.format(bin=_bin(tmp_path)),
        *SCRIPT_LINES,
        JOB_LINE,
    ]


def _files(project: Path) -> dict[Path, bytes]:
    """Every file of the project and its bytes, but Python's own byte-code caches."""
    return {
        path: path.read_bytes()
        for path in project.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_a_ready_site_passes_every_check_and_the_project_is_left_as_it_was(
    project: Path, tmp_path: Path, site: dict[str, str]
) -> None:
    (project / "images").mkdir()
    (project / "images/image0001.png").write_bytes(b"a frame of the learner's own run")
    (project / "output").mkdir()
    (project / "output/run.json").write_text('{"run_id": "mine", "state": "submitted"}')
    before = _files(project)

    result = _check(project, site)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        *_lines_to_the_job(tmp_path),
        "ok   accounting: sacct lists job 1001_1 as COMPLETED",
        "ready for the lesson: all 8 checks passed",
    ]
    after = _files(project)
    assert after == before  # nothing written, nothing removed: the scratch folder is gone
    log = tmp_path / "slurm.log"
    assert [call["args"][1:] for call in slurm_calls(log, "sbatch")[:2]] == [
        ["--array=1-24", str(project / "generate_frames.slurm")],
        [str(project / "create_gif.slurm")],
    ]
    (job,) = sbatch_calls(log)
    scratch = Path(job["args"][-1])
    assert scratch.parent == project
    assert scratch.name.startswith(SCRATCH_PREFIX)
    logs = scratch / "output/slurm_files"
    assert job["args"] == [
        "--parsable",
        "--array=1",
        f"--time={JOB_TIME}",
        f"--job-name={JOB_NAME}",
        f"--chdir={project}",
        f"--output={logs}/%x-%A_%a.out",
        f"--error={logs}/%x-%A_%a.err",
        str(project / "generate_frames.slurm"),
        "--frames",
        "1",
        "--root",
        str(scratch),
    ]
    # Light on the scheduler: one scontrol, two test-only, one job, one squeue, one sacct,
    # and sacctmgr for a submit limit (this one keeps none).
    programs = [call["program"] for call in slurm_calls(log)]
    assert programs == ["scontrol", "sbatch", "sbatch", "sbatch", "squeue", "sacct", "sacctmgr"]


def test_a_strict_sites_settings_are_noted_with_what_they_change_and_what_to_do(
    project: Path, tmp_path: Path, site: dict[str, str]
) -> None:
    site.update(
        FAKE_CONFIG="DependencyParameters = kill_invalid_depend;PrivateData = jobs;"
        "MinJobAge = 30 sec",
        FAKE_MAX_ARRAY_SIZE="500",
        FAKE_SBATCH_NEEDS="SBATCH_PARTITION",  # no default partition
        SBATCH_PARTITION="short",
        SBATCH_ACCOUNT="myproject",  # set, but this site does not need it: no note
        FAKE_SACCTMGR_ASSOC="class|50||",
    )

    result = _check(project, site)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        *_lines_to_the_job(tmp_path),
        "ok   accounting: sacct lists job 1001_1 as COMPLETED",
        "note DependencyParameters=kill_invalid_depend: Slurm cancels a job whose dependency "
        "can never be met ('Job has already finished'): learners keep --kill-on-invalid-dep=no "
        "where the lesson gives it (episode 2)",
        "note PrivateData=jobs: each user sees only their own jobs: helpers read a learner's "
        "squeue --me on the learner's screen",
        "note MaxArraySize=500: array indices stop at 499, not 1000: episode 6 shows other "
        "numbers, and exercise 1.1 needs 360",
        "note MinJobAge=30 sec: ended jobs leave squeue after 30 sec, not 300 s: then only sacct",
        "note SBATCH_PARTITION=short: needed: without it, sbatch says: allocation failure: No "
        "partition specified or system default partition; export it in every shell",
        "note account class MaxSubmitJobs=50: 50 jobs queued per learner, each array task one; "
        "the lesson needs 40",
        "ready for the lesson: all 8 checks passed",
    ]
    tries = slurm_calls(tmp_path / "slurm.log", "sbatch")[3:]  # after the scripts' and the job
    assert [call["args"] for call in tries] == [
        ["--test-only", "--array=1-24", str(project / "generate_frames.slurm")]
    ] * 2  # without SBATCH_PARTITION, then without SBATCH_ACCOUNT: read-only
    assert not sbatch_calls(tmp_path / "slurm.log")[1:]  # the check's one job, no other


def test_without_sbatch_on_path_slurm_fails_and_what_needs_it_is_skipped(
    project: Path, tmp_path: Path, site: dict[str, str]
) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=site\n")
    bin_dir = tmp_path / "bin"  # jq and nothing else: no Slurm client at all
    jq_line = _jq(bin_dir)
    env = {**site, "PATH": str(bin_dir), "SLURM_CONF": str(conf)}

    result = _check(project, env)

    assert result.returncode == 1
    skipped = "not run: the slurm check failed"
    assert result.stdout.splitlines() == [
        PYTHON_LINE,
        PACKAGES_LINE,
        jq_line,
        f"FAIL slurm: sbatch, squeue, scontrol, scancel not on PATH, though Slurm is configured "
        f"here ({conf}): load your site's Slurm module (`module avail slurm`), or ask your site",
        f"skip generate_frames.slurm: {skipped}",
        f"skip create_gif.slurm: {skipped}",
        f"skip job: {skipped}",
        f"skip accounting: {skipped}",
        "not ready: 3 of 8 checks passed, 1 failed (slurm), 4 skipped (generate_frames.slurm, "
        "create_gif.slurm, job, accounting); fix what the FAIL lines say, then run volcano-gif "
        "check again",
    ]
    assert result.stderr == ""
    assert not slurm_calls(tmp_path / "slurm.log")


def test_without_slurm_configured_it_says_where_to_run_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SLURM_CONF", raising=False)
    monkeypatch.setattr(slurm, "DEFAULT_CONFIGURATION", tmp_path / "no-slurm.conf")
    result, config = check.check_slurm()
    assert config is None
    assert result.line() == (
        "FAIL slurm: sbatch, squeue, scontrol, scancel not on PATH, and no Slurm is configured "
        'here: run the check on your cluster\'s login node (no cluster? see "No cluster?" in '
        "the lesson)"
    )


def test_a_refused_partition_fails_both_scripts_in_sbatchs_words_and_no_job_is_submitted(
    project: Path, tmp_path: Path, site: dict[str, str]
) -> None:
    result = _check(project, {**site, "SBATCH_PARTITION": "nope"})

    assert result.returncode == 1
    refused = (
        "sbatch --test-only refuses it, with SBATCH_PARTITION=nope: sbatch: error: invalid "
        "partition specified: nope / allocation failure: Invalid partition name specified. Set "
        "SBATCH_PARTITION to a partition that `sinfo` lists (export SBATCH_PARTITION=<name>)"
    )
    assert result.stdout.splitlines() == [
        PYTHON_LINE,
        PACKAGES_LINE,
        _jq(_bin(tmp_path)),
        SLURM_LINE.format(bin=_bin(tmp_path)),
        f"FAIL generate_frames.slurm: {refused}",
        f"FAIL create_gif.slurm: {refused}",
        "skip job: not run: the generate_frames.slurm check failed",
        "skip accounting: not run: the check's job was not submitted",
        "not ready: 4 of 8 checks passed, 2 failed (generate_frames.slurm, create_gif.slurm), "
        "2 skipped (job, accounting); fix what the FAIL lines say, then run volcano-gif check "
        "again",
    ]
    assert not sbatch_calls(tmp_path / "slurm.log")


def test_without_accounting_only_accounting_fails_and_says_only_episode_5_needs_it(
    project: Path, tmp_path: Path, site: dict[str, str]
) -> None:
    del site["FAKE_ACCOUNTING_STORAGE"]  # scontrol says nothing of accounting: there is none

    result = _check(project, site)

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        *_lines_to_the_job(tmp_path),
        NO_ACCOUNTING_LINE.format(storage="not set"),
        ONLY_ACCOUNTING_FAILED,
    ]
    assert not slurm_calls(tmp_path / "slurm.log", "sacct")


def test_an_accounting_that_does_not_answer_fails_in_saccts_words(
    project: Path, site: dict[str, str]
) -> None:
    del site["FAKE_SACCT_OUTPUT"]  # the fake sacct then says what sacct says with no database
    result = _check(project, site)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-2:] == [
        "FAIL accounting: sacct does not answer (sacct: Slurm accounting storage is disabled). "
        "Only episode 5 needs it: ask your site whether accounting (slurmdbd) is up and your "
        "user is in it",
        ONLY_ACCOUNTING_FAILED,
    ]


def test_a_job_that_never_starts_is_cancelled_at_the_timeout(
    project: Path, tmp_path: Path, site: dict[str, str]
) -> None:
    site.update(FAKE_SBATCH_RUN="", FAKE_SQUEUE_OUTPUT="1001|N/A|PENDING|Priority|256M|2:00")
    result = _check(project, site, "--timeout", "1")
    assert result.returncode == 1
    assert result.stdout.splitlines()[6] == (
        "FAIL job: job 1001 was still PENDING (Priority) after 1 s, and is cancelled: the queue "
        "may be busy (run the check again later, or with a longer --timeout), or the job cannot "
        "start here: ask your site"
    )
    assert result.stdout.splitlines()[7] == "skip accounting: not run: the check's job did not end"
    assert [call["args"] for call in slurm_calls(tmp_path / "slurm.log", "scancel")] == [["1001"]]
    assert not list(project.glob(f"{SCRATCH_PREFIX}*"))


def test_a_job_whose_python_lacks_the_packages_fails_with_its_logs_last_line(
    project: Path, tmp_path: Path, site: dict[str, str]
) -> None:
    python = tmp_path / "bare-python"  # what a node runs when the venv does not reach the job
    python.write_text(
        "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'numpy'\" >&2\nexit 1\n"
    )
    python.chmod(0o755)
    site.update(VOLCANO_PYTHON=str(python), FAKE_SQUEUE_OUTPUT="1001|1|FAILED|None|256M|2:00")
    result = _check(project, site)
    assert result.returncode == 1
    assert result.stdout.splitlines()[6] == (
        "FAIL job: job 1001 ended FAILED; its log's last line: ModuleNotFoundError: No module "
        f"named 'numpy'; the job runs {python} on a compute node, from this folder: if a "
        "package is missing there, activate the venv (source .venv/bin/activate) before you run "
        "the check and sbatch"
    )


def _as_at_a_terminal() -> None:
    """Ctrl-C reaches the check as at a terminal: a suite started in the background
    (``pytest &`` in a script, as CI does) has SIGINT ignored, and its children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_while_it_waits_cancels_the_job_and_removes_the_scratch_folder(
    project: Path, tmp_path: Path, site: dict[str, str]
) -> None:
    site.update(FAKE_SBATCH_RUN="", FAKE_SQUEUE_OUTPUT="1001|N/A|PENDING|Priority|256M|2:00")
    check_run = _start_check(project, site, subprocess.PIPE, _as_at_a_terminal)
    assert check_run.stderr is not None
    for line in check_run.stderr:  # the job is submitted: the check now waits for it
        if "submitted job 1001" in line:
            break
    check_run.send_signal(signal.SIGINT)
    stdout, stderr = check_run.communicate(timeout=180)  # a loaded CI machine is slow
    assert check_run.returncode == 130
    assert stderr == (
        "volcano-gif check: interrupted; its job, if any, is cancelled and its scratch folder "
        "removed\n"
    )
    assert len(stdout.splitlines()) == 6  # the lines before the job's
    assert [call["args"] for call in slurm_calls(tmp_path / "slurm.log", "scancel")] == [["1001"]]
    assert not list(project.glob(f"{SCRATCH_PREFIX}*"))


def test_a_package_that_does_not_import_is_named_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check, "RUNTIME_IMPORTS", ("numpy", "no_such_package"))
    assert check.check_packages().line() == (
        "FAIL packages: no_such_package (No module named 'no_such_package'): not importable by "
        f"{sys.executable}. Activate the project's venv (source .venv/bin/activate) and install "
        "the project into it (pip install -e .)"
    )


def test_outside_the_project_it_says_so_in_one_line(tmp_path: Path, site: dict[str, str]) -> None:
    result = _check(tmp_path, site)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"volcano-gif: error: {tmp_path} is not the project folder (no generate_frames.slurm): "
        "run the check in your clone (cd ~/volcano), or give --root DIR\n"
    )


def test_help_lists_what_it_checks(project: Path, site: dict[str, str]) -> None:
    result = _check(project, site, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for words in (
        "Python 3.11",
        "jq",
        "sbatch --test-only",
        "SBATCH_*",
        "sacct",
        "--timeout",
        "Exit status 0 when every check passed",
    ):
        assert words in text


def test_the_packages_checked_are_the_projects_run_time_dependencies() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = [
        re.split(r"[<>=!~ ;\[]", dependency)[0]
        for dependency in pyproject["project"]["dependencies"]
    ]
    imported_as = {"pillow": "PIL", "imageio-ffmpeg": "imageio_ffmpeg"}
    assert [imported_as.get(name, name) for name in names] == list(check.RUNTIME_IMPORTS)


def test_an_old_python_is_named_with_the_way_to_a_new_one() -> None:
    result = check.check_python((3, 9, 18), "/usr/bin/python3")
    assert result.line() == (
        "FAIL python: Python 3.9.18 (/usr/bin/python3) is too old: the project needs 3.11 or "
        "newer. Load a newer one (module load python/3.11; `module avail python` lists them), "
        "then make the venv again with it: rm -rf .venv && python3 -m venv .venv && "
        ".venv/bin/pip install -e ."
    )


# ------------------------------------------------------------ on the localhost clusters
def _lines_of_a_real_check(cluster: Cluster, project: Path, code: int, **login: str) -> list[str]:
    """The lines of a check on ``cluster``, with the settings of a ``login`` shell, which
    exits with ``code`` and leaves no trace."""
    result = volcano_gif(cluster, project, "check", env=cluster_env(cluster, **login))
    assert not list(project.glob(f"{SCRATCH_PREFIX}*")), "the scratch folder was left behind"
    assert not (project / "output/run.json").exists()
    assert not list(project.glob("images/*"))
    print(result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert result.returncode == code, lines
    return lines


def _storage_type(cluster: Cluster) -> str:
    output = slurm_output(cluster, ["scontrol", "show", "config"])
    match = re.search(r"^AccountingStorageType\s+=\s+(\S+)", output, flags=re.MULTILINE)
    assert match, output
    return match.group(1)


def test_on_a_cluster_with_accounting_every_check_passes(
    accounting_slurm: Cluster, learner_project: Path
) -> None:
    lines = _lines_of_a_real_check(accounting_slurm, learner_project, code=0)
    names = [
        "python",
        "packages",
        "jq",
        "slurm",
        "generate_frames.slurm",
        "create_gif.slurm",
        "job",
        "accounting",
    ]
    assert [line.split(":")[0] for line in lines[:-1]] == [f"ok   {name}" for name in names]
    job = re.fullmatch(
        r"ok   job: job (\d+): its one task COMPLETED, and wrote its frame and its log", lines[6]
    )
    assert job, lines[6]
    assert lines[7] == f"ok   accounting: sacct lists job {job.group(1)}_1 as COMPLETED"
    assert lines[-1] == "ready for the lesson: all 8 checks passed"
    # The job really ran on the cluster, as the learner, under the check's name.
    sacct = ["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", job.group(1)]
    rows = slurm_output(accounting_slurm, [*sacct, "--format", "JobID,JobName,User,State"]).split()
    assert rows == [f"{job.group(1)}_1|{JOB_NAME}|volcano-learner|COMPLETED"]


def test_on_a_strict_site_the_check_passes_and_names_its_settings(
    strict_slurm: Cluster, learner_project: Path
) -> None:
    lines = _lines_of_a_real_check(strict_slurm, learner_project, 0, **STRICT_LOGIN)
    assert all(line.startswith("ok   ") for line in lines[:8]), lines
    assert [line.split(": ")[0] for line in lines[8:-1]] == [
        "note DependencyParameters=kill_invalid_depend",
        "note PrivateData=jobs",
        "note MaxArraySize=500",
        "note SBATCH_PARTITION=debug",
        "note SBATCH_ACCOUNT=class",
        "note account class MaxSubmitJobs=50",
    ]
    assert "No partition specified or system default partition" in lines[11]
    assert "Invalid account or account/partition combination specified" in lines[12]
    assert lines[-1] == "ready for the lesson: all 8 checks passed"
    # Without the partition, the check names what sbatch says, and what to set.
    refused = _lines_of_a_real_check(
        strict_slurm, learner_project, 1, SBATCH_ACCOUNT=STRICT_LOGIN["SBATCH_ACCOUNT"]
    )
    assert refused[4].startswith("FAIL generate_frames.slurm: sbatch --test-only refuses it, ")
    assert refused[4].endswith(
        "No partition specified or system default partition. Set SBATCH_PARTITION to a "
        "partition that `sinfo` lists (export SBATCH_PARTITION=<name>)"
    )


def test_on_a_cluster_without_accounting_only_accounting_fails(
    slurm: Cluster, learner_project: Path
) -> None:
    lines = _lines_of_a_real_check(slurm, learner_project, code=1)
    assert all(line.startswith("ok   ") for line in lines[:7]), lines
    assert lines[7:] == [
        NO_ACCOUNTING_LINE.format(storage=_storage_type(slurm)),
        ONLY_ACCOUNTING_FAILED,
    ]


def test_the_lines_keep_their_order_through_a_pipe(project: Path, site: dict[str, str]) -> None:
    # stdout and stderr into one pipe, as `volcano-gif check 2>&1 | tee check.txt` makes it:
    # the message about the job (stderr) comes between the lines before and after it.
    env = {name: value for name, value in site.items() if name != "PYTHONUNBUFFERED"}
    with _start_check(project, env, subprocess.STDOUT) as check_run:
        stdout, _ = check_run.communicate(timeout=300)
    lines = stdout.splitlines()
    scripts = lines.index(f"ok   create_gif.slurm: {TEST_ONLY}")
    assert "submitted job 1001 (one frame); waiting up to 300 s for it to end" in lines[scripts + 1]
    assert lines[scripts + 2] == JOB_LINE
