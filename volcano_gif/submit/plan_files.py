"""The plan handed to ``submit-gif-job``: small files in its plan folder.

:func:`write_plan` writes what ``plan-submission`` decided; the script reads
those files to build its two sbatch commands, and leaves beside them each
command as it ran it and sbatch's messages; :func:`read_plan` reads all of it
back for ``record-submission``. The files:

* ``submit``: the run's id; the script submits only when this file is there;
* ``array``: the ``--array`` index list (absent when every frame is rendered);
* ``render-options``, ``assembly-options``, ``sbatch-options``: one argument
  per line, for ``generate_frames.slurm``, ``create_gif.slurm`` and both
  ``sbatch`` calls;
* ``watch`` when ``--watch`` was given;
* written by the script: ``array-job``, ``gif-job`` (each command's arguments,
  NUL-separated) and ``sbatch-messages``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from volcano_gif.commands import on_one_line, said_lines

#: The commands the script ran, in order, by the file that keeps each.
_JOB_FILES = ("array-job", "gif-job")
#: The plan files that submit-gif-job reads (tests/test_scripts.py holds it to them).
PLAN_FILES = (
    *("submit", "array", "render-options", "assembly-options", "sbatch-options", "watch"),
    *(*_JOB_FILES, "sbatch-messages"),  # written by the script
)
_NOTHING_SAID = "sbatch said nothing"


@dataclass(frozen=True)
class Plan:
    """One submission's plan; what the script did with it once it has run."""

    run_id: str
    array: str | None  # the --array value; None: the assembly only
    render: list[str] = field(default_factory=list)
    assembly: list[str] = field(default_factory=list)
    sbatch_options: list[str] = field(default_factory=list)
    watch: bool = False
    #: Read back after the script: each sbatch command as it ran, by its file's name.
    ran: dict[str, list[str]] = field(default_factory=dict)
    #: sbatch's last message, on one line.
    sbatch_said: str = _NOTHING_SAID

    def commands_run(self, array_submitted: bool) -> list[list[str]]:
        """The commands that submitted a job: the array's only if it was submitted."""
        return [
            self.ran[name]
            for name in _JOB_FILES
            if name in self.ran and (array_submitted or name == "gif-job")
        ]


def write_plan(plan_dir: Path, plan: Plan) -> None:
    """Write ``plan`` for the script; ``submit`` last, as the signal to submit."""
    plan_dir.mkdir(parents=True, exist_ok=True)
    if plan.array is not None:
        (plan_dir / "array").write_text(plan.array + "\n")
    (plan_dir / "render-options").write_text(_lines(plan.render))
    (plan_dir / "sbatch-options").write_text(_lines(plan.sbatch_options))
    (plan_dir / "assembly-options").write_text(_lines(plan.assembly))
    if plan.watch:
        (plan_dir / "watch").write_text("")
    (plan_dir / "submit").write_text(plan.run_id + "\n")


def read_plan(plan_dir: Path) -> Plan:
    """The plan in ``plan_dir``, with the commands the script ran and sbatch's message."""
    array = plan_dir / "array"
    return Plan(
        run_id=(plan_dir / "submit").read_text().strip(),
        array=array.read_text().strip() if array.exists() else None,
        render=_read_lines(plan_dir / "render-options"),
        assembly=_read_lines(plan_dir / "assembly-options"),
        sbatch_options=_read_lines(plan_dir / "sbatch-options"),
        watch=(plan_dir / "watch").exists(),
        ran={name: _argv(plan_dir / name) for name in _JOB_FILES if (plan_dir / name).exists()},
        sbatch_said=_sbatch_said(plan_dir),
    )


def _lines(values: list[str]) -> str:
    return "".join(f"{value}\n" for value in values)


def _read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _argv(path: Path) -> list[str]:
    """A command the script ran, from its NUL-separated arguments."""
    return path.read_bytes().decode(errors="surrogateescape").split("\0")[:-1]


def _sbatch_said(plan_dir: Path) -> str:
    """sbatch's last message of this submission, on one line."""
    try:
        said = said_lines((plan_dir / "sbatch-messages").read_text(errors="replace"))
    except OSError:
        return _NOTHING_SAID
    return on_one_line("\n".join(said[-3:])) or _NOTHING_SAID
