"""May ``python volcano.py`` write frames here, or do they belong to a run?

An array task of the run in ``output/run.json`` (it carries that run's
``--run-id``) renders as it always has. Anything else that renders into the
folder (a frame rendered by hand, a job script of one's own) is refused with
one line when it could replace a run's frames:

* the run in ``output/run.json`` is under way (its jobs may be queued or
  running, or it renders or assembles here), or
* ``images/`` holds a complete frame of another run (another frame count or
  size), which this command would overwrite.

``--force`` renders anyway. Only the standard library and the frame check are
used: this runs at the start of every render task.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from volcano_gif.errors import UsageError
from volcano_gif.layout import RESUME_COMMAND, SUBMIT_SCRIPT, UNDER_WAY_STATES
from volcano_gif.numbering import format_size
from volcano_gif.paths import ProjectPaths
from volcano_gif.task.frames import FrameVerdict, frames_on_disk, inspect_frame


def check_folder_is_ours(
    paths: ProjectPaths,
    frame_count: int,
    size: tuple[int, int],
    frames: Iterable[int],
    run_id: str | None,
) -> None:
    """Raise a one-line UsageError if rendering ``frames`` here could replace a run's frames."""
    owner = _run_in_record(paths)
    if owner is not None and run_id is not None and owner[0] == run_id:
        return  # an array task of the run itself
    if owner is not None and owner[1] in UNDER_WAY_STATES:
        raise UsageError(
            f"run {owner[0]} owns {paths.root} and is under way ({owner[1]}: its jobs may be "
            "queued or running): a frame rendered here could replace one of its frames. Wait "
            f"for it (volcano-gif watch), cancel it (bash {SUBMIT_SCRIPT} --cancel), render in "
            "another folder (--root DIR), or give --force"
        )
    looked_at = sorted({*frames, *frames_on_disk(paths.images)[:1]})
    for frame in looked_at:
        problem = inspect_frame(paths.frame(frame), frame, frame_count, size)
        if problem is not None and problem.verdict is FrameVerdict.OTHER_RUN:
            reason = problem.text.rsplit(": ", 1)[0]  # without the path
            name = paths.frame(frame).name
            raise UsageError(
                f"images/ holds frames of another run ({name} {reason}), which this "
                f"render of {frame_count} frames at {format_size(size)} would replace. Finish "
                f"that run ({RESUME_COMMAND}), render in another folder (--root DIR), "
                "or give --force"
            )


def _run_in_record(paths: ProjectPaths) -> tuple[str, str] | None:
    """(run id, state) of the run in ``output/run.json``, or None if there is none."""
    try:
        data = json.loads(paths.run_record.read_text(encoding="utf-8"))
        return str(data["run_id"]), str(data["state"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
