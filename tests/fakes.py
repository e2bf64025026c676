"""Fake Slurm programs on PATH, for argument handling and failure paths only.

The real proof is tests/test_slurm.py and tests/test_faults.py, on a real
Slurm cluster. Each fake appends one JSON line per call to $FAKE_SLURM_LOG.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import TypedDict

_PREAMBLE = """#!{python}
import json, os, sys
log = os.environ["FAKE_SLURM_LOG"]
with open(log, "a") as handle:
    handle.write(json.dumps({{"program": "{name}", "args": sys.argv[1:], "cwd": os.getcwd()}})
                 + "\\n")
unreachable = os.environ.get("FAKE_SLURM_UNREACHABLE") == "1"
"""

FAKES = {
    # Answers like --parsable: ids from $FAKE_SBATCH_ANSWERS, one per real submission; with
    # FAKE_SBATCH_RUN=1 it runs the job first (one task), as the check's job needs.
    "sbatch": """
if unreachable:
    print("sbatch: error: Batch job submission failed: Unable to contact slurm controller "
          "(connect failure)", file=sys.stderr)
    sys.exit(1)
if "--test-only" in sys.argv and os.environ.get("SBATCH_PARTITION") == "nope":
    # Word for word what Slurm 22.05's sbatch --test-only says.
    print("sbatch: error: invalid partition specified: nope", file=sys.stderr)
    print("allocation failure: Invalid partition name specified", file=sys.stderr)
    sys.exit(1)
needs = os.environ.get("FAKE_SBATCH_NEEDS", "")  # a site with no default partition
if needs and not os.environ.get(needs):
    print("allocation failure: No partition specified or system default partition",
          file=sys.stderr)
    sys.exit(1)
if "--test-only" in sys.argv:  # Slurm 22.05's answer, or $FAKE_SBATCH_TEST_ONLY
    print(os.environ.get("FAKE_SBATCH_TEST_ONLY", "sbatch: Job 999 to start at "
          "2026-11-21T10:00:00 using 1 processors on nodes n1 in partition debug"),
          file=sys.stderr)
    sys.exit(0)
calls = [json.loads(line) for line in open(log)]
submissions = [c for c in calls if c["program"] == "sbatch" and "--test-only" not in c["args"]]
if os.environ.get("FAKE_SBATCH_FAIL_CALL") == str(len(submissions)):
    print(os.environ.get("FAKE_SBATCH_FAIL_MESSAGE",
                         "sbatch: error: invalid partition specified: nope"), file=sys.stderr)
    sys.exit(1)
answers = os.environ.get("FAKE_SBATCH_ANSWERS", "1001;cluster1,1002").split(",")
if os.environ.get("FAKE_SBATCH_RUN") == "1":
    # Run the job here and now, as its one array task (--array=K) would run, with its
    # --chdir and its --output and --error logs: for the check's own job.
    import subprocess
    args = sys.argv[1:]
    script = next(i for i, arg in enumerate(args) if not arg.startswith("-"))
    options = dict(arg.partition("=")[::2] for arg in args[:script])
    job, task = answers[len(submissions) - 1].split(";")[0], options.get("--array", "1")
    def log(pattern):
        return (pattern.replace("%x", options.get("--job-name", "job")).replace("%A", job)
                .replace("%a", task))
    env = {**os.environ, "SLURM_JOB_ID": job, "SLURM_ARRAY_JOB_ID": job,
           "SLURM_ARRAY_TASK_ID": task}
    with open(log(options["--output"]), "w") as out, open(log(options["--error"]), "w") as err:
        subprocess.run(["/bin/bash", *args[script:]], cwd=options.get("--chdir"), env=env,
                       stdout=out, stderr=err, check=False)
print(answers[len(submissions) - 1])
""",
    # A cluster without accounting, as the fake scontrol's configuration says.
    # With $FAKE_SACCTMGR_ASSOC, the user's associations (account|maxsubmit|qos|defaultqos).
    "sacctmgr": """
if "FAKE_SACCTMGR_ASSOC" in os.environ:
    print(os.environ["FAKE_SACCTMGR_ASSOC"] if "assoc" in sys.argv else "")
    sys.exit(0)
print("sacctmgr: error: Problem talking to the database: Connection refused", file=sys.stderr)
sys.exit(1)
""",
    # Prints $FAKE_SACCT_OUTPUT (lines separated by ";"); without it, what sacct says on
    # a cluster that keeps no accounting.
    "sacct": """
if "FAKE_SACCT_OUTPUT" not in os.environ:
    print("Slurm accounting storage is disabled", file=sys.stderr)
    sys.exit(1)
print(os.environ["FAKE_SACCT_OUTPUT"].replace(";", "\\n"))
""",
    "scontrol": """
if os.environ.get("FAKE_SCONTROL_HANGS") == "1":  # as when DNS never answers its SRV query
    import time
    time.sleep(300)
if unreachable:
    print("slurm_load_ctl_conf error: Unable to contact slurm controller (connect failure)",
          file=sys.stderr)
    sys.exit(1)
if sys.argv[1:3] == ["show", "config"]:
    print("Configuration data as of 2026-11-21T10:00:00")
    print("MaxArraySize            = " + os.environ.get("FAKE_MAX_ARRAY_SIZE", "1001"))
    print("MinJobAge               = 300 sec")
    print("SLURM_VERSION           = 22.05.8")
    if os.environ.get("FAKE_ACCOUNTING_STORAGE"):
        print("AccountingStorageType   = " + os.environ["FAKE_ACCOUNTING_STORAGE"])
    for line in filter(None, os.environ.get("FAKE_CONFIG", "").split(";")):
        print(line)  # more settings, "Key = value": a later line wins
    sys.exit(0)
print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
sys.exit(1)
""",
    # Prints $FAKE_SQUEUE_OUTPUT, or the file $FAKE_SQUEUE_FILE (lines separated by ";").
    "squeue": """
if unreachable:
    print("slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
          file=sys.stderr)
    sys.exit(1)
output = os.environ.get("FAKE_SQUEUE_OUTPUT", "")
if os.environ.get("FAKE_SQUEUE_FILE"):
    output = open(os.environ["FAKE_SQUEUE_FILE"]).read().strip()
if output:
    print(output.replace(";", "\\n"))
""",
    "scancel": "",
}


class Call(TypedDict):
    """One call of a fake program."""

    program: str
    args: list[str]
    cwd: str


def install_fake_slurm(bin_dir: Path) -> Path:
    """Write fake sbatch, sacct, sacctmgr, scontrol, squeue and scancel into ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in FAKES.items():
        fake = bin_dir / name
        fake.write_text(_PREAMBLE.format(python=sys.executable, name=name) + body)
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def fake_slurm_env(folder: Path, **extra: str) -> dict[str, str]:
    """The project's environment with the fakes first on PATH, logging to folder/slurm.log.

    The one way tests set up fake Slurm programs (fixture ``fake_env`` in conftest.py).
    """
    from tests.helpers import project_env

    bin_dir = install_fake_slurm(folder / "fakebin")
    return project_env(
        {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_SLURM_LOG": str(folder / "slurm.log"),
            **extra,
        }
    )


def slurm_calls(log: Path, program: str | None = None) -> list[Call]:
    """The calls logged by the fakes, optionally of one program only."""
    if not log.exists():
        return []
    calls: list[Call] = [json.loads(line) for line in log.read_text().splitlines()]
    return [call for call in calls if program is None or call["program"] == program]


def sbatch_calls(log: Path) -> list[Call]:
    """The real submissions (not --test-only) that the fake sbatch received."""
    return [call for call in slurm_calls(log, "sbatch") if "--test-only" not in call["args"]]


def queue_lines(project: Path, run_id: str, *jobs: tuple[str, str, str]) -> str:
    """$FAKE_SQUEUE_OUTPUT for ``squeue --me``: (job id, state, name) of a run's live jobs,
    submitted from ``project`` with the run's comment."""
    return ";".join(
        f"{job}|{state}|{name}|volcano-gif:run:{run_id}|{project}" for job, state, name in jobs
    )
