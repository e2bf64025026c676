"""``volcano-gif check``: is this clone ready for the lesson? Run it the day before.

A learner runs it in their clone, with the venv active, on the login node. It prints
one line per check on stdout, in this order, each ``ok``, ``FAIL`` (what is wrong and
what to do) or ``skip`` (a check it needs failed): ``python`` (3.11 or newer),
``packages`` (the run-time dependencies import, imageio-ffmpeg's ffmpeg runs), ``jq``,
``slurm`` (the clients are on PATH, the controller answers ``scontrol show config``),
``generate_frames.slurm`` and ``create_gif.slurm`` (``sbatch --test-only`` accepts each
with the SBATCH_* variables as set; a refusal in sbatch's words, with what to set),
``job`` (one real one-task job renders a frame into a scratch folder: check_job.py) and
``accounting`` (``sacct`` lists it as ended within :data:`ACCOUNTING_WAIT` s). Then a
``note`` for each site setting that changes what the lesson shows (:data:`SITE_NOTES`, a
partition or account jobs must name, a submit limit), and a summary line.

The exit status is 0 only when every check passed, 1 otherwise; a note never fails. A
cluster without accounting fails the last check, and the line and the summary say that
only episode 5 needs it. Light on the scheduler: one ``scontrol show config``, two to
four ``sbatch --test-only``, one job, a few ``squeue``, ``sacct`` and ``sacctmgr``.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from volcano_gif import sacct, slurm
from volcano_gif.arguments import EXIT_FAILURE
from volcano_gif.commands import run
from volcano_gif.errors import UsageError
from volcano_gif.layout import ARRAY_SCRIPT, ASSEMBLY_SCRIPT, RENDER_SCRIPT
from volcano_gif.paths import ProjectPaths
from volcano_gif.submit.check_job import JobOutcome, refusal_hint, run_job, scratch_folder
from volcano_gif.submit.polling import poll_until

logger = logging.getLogger(__name__)

#: The oldest Python the project runs on (pyproject.toml's requires-python).
MIN_PYTHON = (3, 11)
#: The project's run-time dependencies, by the name they are imported with
#: (pyproject.toml's dependencies; tests/test_check.py holds the two together).
RUNTIME_IMPORTS = (
    "matplotlib",
    "numpy",
    "PIL",
    "imageio",
    "imageio_ffmpeg",
    "pandas",
    "seaborn",
    "tqdm",
)
#: How long the accounting check waits for sacct to list the job's end.
ACCOUNTING_WAIT = 30.0
#: The exit status of a check interrupted with Ctrl-C, as a shell reports it.
EXIT_INTERRUPTED = 128 + signal.SIGINT
#: The command a learner runs again once they have fixed something.
CHECK_COMMAND = "volcano-gif check"


class Status(Enum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"
    NOTE = "note"  # a site's setting that changes what the lesson shows; never a failure


@dataclass(frozen=True)
class Result:
    """One check: its name, how it went, and one line of text."""

    name: str
    status: Status
    text: str

    def line(self) -> str:
        return f"{self.status.value:<4} {self.name}: {self.text}"


def _ok(name: str, text: str) -> Result:
    return Result(name, Status.OK, text)


def _fail(name: str, text: str) -> Result:
    return Result(name, Status.FAIL, text)


def _skip(name: str, failed: list[Result]) -> Result:
    names = ", ".join(result.name for result in failed)
    return Result(name, Status.SKIP, f"not run: the {names} check{'s' * (len(failed) > 1)} failed")


# --------------------------------------------------------------------- the checks
def check_python(
    version: tuple[int, ...] = tuple(sys.version_info[:3]), executable: str = sys.executable
) -> Result:
    shown = ".".join(str(part) for part in version)
    if version[:2] >= MIN_PYTHON:
        return _ok("python", f"Python {shown} ({executable})")
    return _fail(
        "python",
        f"Python {shown} ({executable}) is too old: the project needs "
        f"{'.'.join(map(str, MIN_PYTHON))} or newer. Load a newer one (module load "
        "python/3.11; `module avail python` lists them), then make the venv again with it: "
        "rm -rf .venv && python3 -m venv .venv && .venv/bin/pip install -e .",
    )


def check_packages() -> Result:
    broken = []
    for name in RUNTIME_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001  (any failure to import fails the check)
            broken.append(f"{name} ({_first_line(error)})")
    if broken:
        return _fail(
            "packages",
            f"{'; '.join(broken)}: not importable by {sys.executable}. Activate the "
            "project's venv (source .venv/bin/activate) and install the project into it "
            "(pip install -e .)",
        )
    try:
        import imageio_ffmpeg

        run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-version"])
    except (RuntimeError, OSError) as error:
        return _fail(
            "packages",
            f"the ffmpeg of imageio-ffmpeg does not run ({_first_line(error)}): "
            "reinstall it (pip install --force-reinstall imageio-ffmpeg)",
        )
    return _ok("packages", f"{', '.join(RUNTIME_IMPORTS)} import; imageio-ffmpeg's ffmpeg runs")


def check_jq() -> Result:
    path = shutil.which("jq")
    if path is None:
        return _fail(
            "jq",
            "not on PATH: the lesson reads output/run.json with it. Load your site's module "
            "(`module avail jq`), or install it (apt-get install jq)",
        )
    try:
        version = run([path, "--version"]).strip()
    except RuntimeError as error:
        return _fail("jq", f"{path} does not run ({error}): install jq again")
    return _ok("jq", f"{path} ({version})")


def check_slurm() -> tuple[Result, slurm.ClusterConfig | None]:
    missing = slurm.missing_clients()
    if missing:
        configured = slurm.configuration_file()
        where = (
            f"though Slurm is configured here ({configured}): load your site's Slurm module "
            "(`module avail slurm`), or ask your site"
            if configured
            else "and no Slurm is configured here: run the check on your cluster's login node "
            '(no cluster? see "No cluster?" in the lesson)'
        )
        return _fail("slurm", f"{', '.join(missing)} not on PATH, {where}"), None
    try:
        config = slurm.read_config()
    except slurm.SlurmError as error:
        hint = (
            "this machine has Slurm's clients but no cluster configured (no SLURM_CONF, no "
            f"{slurm.DEFAULT_CONFIGURATION}): run the check on your cluster's login node"
            if slurm.configuration_file() is None
            else "try `sinfo`; if it fails too, the cluster is down or cannot be reached from "
            "here: ask your site"
        )
        return _fail("slurm", f"the controller does not answer ({error.said}): {hint}"), None
    version = f"Slurm {config.version}" if config.version else "Slurm"
    return _ok("slurm", f"{version}: the controller answers ({shutil.which('sbatch')})"), config


def check_script(paths: ProjectPaths, script: str) -> Result:
    try:
        answer = slurm.test_only(_test_only(paths, script))
    except slurm.SlurmError as error:
        site = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("SBATCH_"))
        settings = " ".join(site) or "no SBATCH_* variable set"
        return _fail(
            script,
            f"sbatch --test-only refuses it, with {settings}: {error.said}. "
            f"{refusal_hint(error.said)}",
        )
    return _ok(script, f"sbatch --test-only: {answer}")


def _test_only(paths: ProjectPaths, script: str) -> list[str]:
    """The script as the lesson's 24-frame runs submit it (a limit may refuse its 360 tasks)."""
    lesson = ["--array=1-24"] if script == ARRAY_SCRIPT else []
    return ["sbatch", *lesson, str(paths.root / script)]


def check_accounting(config: slurm.ClusterConfig, job: JobOutcome | None) -> Result:
    if not config.accounting:
        storage = config.settings.get("AccountingStorageType") or "not set"
        return _fail(
            "accounting",
            f"this cluster keeps no accounting (AccountingStorageType={storage}): sacct has "
            "nothing to show. Only episode 5 needs it, and its run report falls back to the "
            "task timing files (and says so); to follow it with sacct, ask your site for job "
            "accounting (slurmdbd) with your user in it",
        )
    if job is None or job.job_id is None or not job.ended:
        why = "did not end" if job and job.job_id else "was not submitted"
        return Result("accounting", Status.SKIP, f"not run: the check's job {why}")
    job_id, since = job.job_id, job.since

    def look() -> str:  # the state of its task, as sacct lists it ("": not yet)
        usages = sacct.sacct_usage([job_id], since=since)
        return next((usage.line.state for usage in usages if usage.line.task == 1), "")

    ended = slurm.ENDED_STATES
    try:
        seen = poll_until(look, lambda s: s in ended, time.sleep, 1, give_up_after=ACCOUNTING_WAIT)
    except slurm.SlurmError as error:
        return _fail(
            "accounting",
            f"sacct does not answer ({error.said}). Only episode 5 needs it: ask your site "
            "whether accounting (slurmdbd) is up and your user is in it",
        )
    if seen in ended:
        return _ok("accounting", f"sacct lists job {job_id}_1 as {seen}")
    listed = f" (it lists it as {seen})" if seen else ""
    return _fail(
        "accounting",
        f"sacct does not list job {job_id} as ended after {ACCOUNTING_WAIT:.0f} s{listed}: "
        "slurmdbd may be slow or down. Only episode 5 needs it: ask your site",
    )


#: The site's settings that change what the lesson shows: a ``note`` where the site's value
#: matches the pattern (differs from the lesson's), with what changes and what to do.
SITE_NOTES = {
    "DependencyParameters": (
        "kill_invalid_depend",
        "Slurm cancels a job whose dependency can never be met ('Job has already finished'): "
        "learners keep --kill-on-invalid-dep=no where the lesson gives it (episode 2)",
    ),
    "PrivateData": (
        "jobs",
        "each user sees only their own jobs: helpers read a learner's squeue --me on the "
        "learner's screen",
    ),
    "MaxArraySize": (
        "^(?!1001$)",
        "array indices stop at {last}, not 1000: episode 6 shows other numbers, and "
        "exercise 1.1 needs 360",
    ),
    "MinJobAge": ("^(?!300 )", "ended jobs leave squeue after {value}, not 300 s: then only sacct"),
}


def site_notes(paths: ProjectPaths, config: slurm.ClusterConfig) -> list[Result]:
    """This site's settings that change what the lesson shows. Read-only: its configuration,
    sbatch --test-only without each SBATCH_PARTITION or SBATCH_ACCOUNT set, sacctmgr."""
    last = config.max_array_size - 1
    notes = [
        Result(f"{key}={value}", Status.NOTE, text.format(value=value, last=last))
        for key, (pattern, text) in SITE_NOTES.items()
        if re.search(pattern, value := config.settings.get(key, "")) and value
    ]
    for name in [name for name in ("SBATCH_PARTITION", "SBATCH_ACCOUNT") if os.environ.get(name)]:
        value = os.environ.pop(name)  # is it needed? sbatch --test-only without it
        try:
            slurm.test_only(_test_only(paths, ARRAY_SCRIPT))
        except slurm.SlurmError as error:
            text = f"needed: without it, sbatch says: {error.said}; export it in every shell"
            notes.append(Result(f"{name}={value}", Status.NOTE, text))
        os.environ[name] = value
    limit = slurm.submit_limit() if config.accounting else None
    if limit is not None:
        text = f"{limit.limit} jobs queued per learner, each array task one; the lesson needs 40"
        notes.append(Result(limit.source, Status.NOTE, text))
    return notes


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# --------------------------------------------------------------------- the run
def require_project(paths: ProjectPaths) -> None:
    """Raise a one-line UsageError unless ``paths.root`` is a clone of the project."""
    wanted = [ARRAY_SCRIPT, ASSEMBLY_SCRIPT, RENDER_SCRIPT, str(paths.relative(paths.data_file))]
    missing = [name for name in wanted if not (paths.root / name).is_file()]
    if missing:
        raise UsageError(
            f"{paths.root} is not the project folder (no {missing[0]}): run the check in your "
            "clone (cd ~/volcano), or give --root DIR"
        )


def run_checks(paths: ProjectPaths, timeout: float) -> int:
    """Run every check in order, printing each line as it is known; the exit status."""
    require_project(paths)
    results: list[Result] = []

    def report(result: Result) -> Result:
        results.append(result)
        print(result.line(), flush=True)
        return result

    try:
        _run_checks(paths, timeout, report)
    except KeyboardInterrupt:  # Ctrl-C: the job is cancelled, the scratch folder removed
        print(
            f"{CHECK_COMMAND}: interrupted; its job, if any, is cancelled and its scratch "
            "folder removed",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    results = [result for result in results if result.status is not Status.NOTE]
    print(summary(results), flush=True)
    return 0 if all(result.status is Status.OK for result in results) else EXIT_FAILURE


def _run_checks(paths: ProjectPaths, timeout: float, report: Callable[[Result], Result]) -> None:
    with scratch_folder(paths) as scratch:
        python = report(check_python())
        packages = report(check_packages())
        report(check_jq())
        slurm_result, config = check_slurm()
        report(slurm_result)
        names = (ARRAY_SCRIPT, ASSEMBLY_SCRIPT, "job", "accounting")
        if config is None:
            for name in names:
                report(_skip(name, [slurm_result]))
        else:
            scripts = [report(check_script(paths, script)) for script in names[:2]]
            needed = [python, packages, scripts[0]]
            failed = [result for result in needed if result.status is not Status.OK]
            job = None if failed else run_job(paths, scratch, timeout)
            status = Status.OK if job and job.passed else Status.FAIL
            report(_skip("job", failed) if job is None else Result("job", status, job.text))
            report(check_accounting(config, job))
            for note in site_notes(paths, config):
                report(note)


def summary(results: list[Result]) -> str:
    """The last line: ready, or what failed and was skipped, and what to do."""
    failed = [result.name for result in results if result.status is Status.FAIL]
    skipped = [result.name for result in results if result.status is Status.SKIP]
    if not failed and not skipped:
        return f"ready for the lesson: all {len(results)} checks passed"
    passed = len(results) - len(failed) - len(skipped)
    parts = [f"not ready: {passed} of {len(results)} checks passed"]
    parts += [
        f"{len(names)} {what} ({', '.join(names)})"
        for names, what in ((failed, "failed"), (skipped, "skipped"))
        if names
    ]
    if failed == ["accounting"] and not skipped:
        advice = "accounting is needed for episode 5 only: the rest of the lesson will work"
    else:
        advice = f"fix what the FAIL lines say, then run {CHECK_COMMAND} again"
    return ", ".join(parts) + "; " + advice
