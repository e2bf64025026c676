"""``volcano-gif verify ARCHIVE``: an archive against the record it carries, without rendering.

Every frame must be in the archive with the SHA-256 its record gives, and
nothing else but the record; the record must be one this version of the schema
can read (an older one is said, and what it records is checked). When this
folder's ``output/run.json`` is the same run's, the MP4, the GIF and the archive
itself are checked against the checksums it recorded, if they are still there.
One line per problem, naming the frame; exit status 0 only when all match.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from volcano_gif.arguments import EXIT_FAILURE
from volcano_gif.files import sha256_of
from volcano_gif.layout import IMAGES_DIR, RUN_RECORD, frame_name
from volcano_gif.numbering import expected_frames
from volcano_gif.paths import ProjectPaths
from volcano_gif.reproduce.source import read_archive
from volcano_gif.run.lifecycle import read_record
from volcano_gif.run.record import SCHEMA_VERSION, RecordError, RunRecord

#: Characters of a SHA-256 shown in a line: enough to tell two apart.
SHOWN_DIGITS = 12


@dataclass
class Verification:
    """What ``verify`` found: problems (each one line) and notes (what was not checked)."""

    archive: Path
    record: RunRecord
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # the outputs checked beside the frames

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        frames = self.record.parameters.frame_count
        if self.ok:
            also = ""
            if self.checked:
                named = ", ".join(self.checked[:-1])
                named = f"{named} and {self.checked[-1]}" if named else self.checked[-1]
                also = f"; {RUN_RECORD}'s checksums of {named} match"
            verdict = (
                f"verified: run {self.record.run_id}, all {frames} frames as its record says{also}"
            )
        else:
            verdict = (
                f"not verified: {len(self.problems)} "
                f"problem{'s' if len(self.problems) > 1 else ''} in run "
                f"{self.record.run_id}'s archive ({frames} frames)"
            )
        return [f"{self.archive}: {line}" for line in [*self.notes, *self.problems, verdict]]


def short(digest: str | None) -> str:
    return (digest or "none")[:SHOWN_DIGITS]


def frame_problems(record: RunRecord, archived: dict[str, str]) -> list[str]:
    """One line per frame that is not in the archive as the record has it."""
    count = record.parameters.frame_count
    expected = {frame_name(frame): frame for frame in expected_frames(count)}
    recorded = record.frames_sha256
    lines = []
    for name, frame in expected.items():
        found, wanted = archived.get(name), recorded.get(name)
        if found is None:
            lines.append(f"frame {frame}: {IMAGES_DIR}/{name} is missing from the archive")
        elif wanted is None:
            lines.append(f"frame {frame}: the record has no SHA-256 for it")
        elif found != wanted:
            lines.append(
                f"frame {frame}: SHA-256 {short(found)}... in the archive, {short(wanted)}... in "
                "the record: not the frame that was rendered"
            )
    lines += [
        f"{IMAGES_DIR}/{name}: not a frame of this {count}-frame run"
        for name in sorted(set(archived) - set(expected))
    ]
    lines += [
        f"the record has a SHA-256 for {name}, which is not a frame of this {count}-frame run"
        for name in sorted(set(recorded) - set(expected))
    ]
    return lines


def older_schema_note(version: int) -> str | None:
    if version >= SCHEMA_VERSION:
        return None
    return (
        f"its run.json has schema version {version}, older than this volcano-gif's "
        f"{SCHEMA_VERSION}: the frames are checked against its frames_sha256, but it records "
        "neither the data file's SHA-256 nor the command that made the run"
    )


def verify(archive: Path, paths: ProjectPaths) -> Verification:
    """Check ``archive`` against its own record (and ``paths``' record, for the same run)."""
    contents = read_archive(archive)
    found = Verification(archive, contents.record)
    note = older_schema_note(contents.schema_version)
    if note:
        found.notes.append(note)
    found.problems += contents.problems
    found.problems += frame_problems(contents.record, contents.frames)
    _check_outputs(found, paths)
    return found


def _check_outputs(found: Verification, paths: ProjectPaths) -> None:
    """The MP4, the GIF and the archive itself, by the checksums in ``output/run.json``."""
    run_id = found.record.run_id
    try:
        current = read_record(paths)
    except RecordError as error:
        found.notes.append(f"the MP4 and the GIF are not checked: {error}")
        return
    if current is None:
        found.notes.append(f"the MP4 and the GIF are not checked: no {RUN_RECORD} in {paths.root}")
        return
    if current.run_id != run_id:
        found.notes.append(
            f"the MP4 and the GIF are not checked: {paths.run_record} is run {current.run_id}'s, "
            f"not {run_id}'s"
        )
        return
    for name in ("mp4", "gif"):
        output = current.outputs.get(name)
        if output is None:
            found.notes.append(f"{RUN_RECORD} records no {name.upper()}: not checked")
            continue
        path = paths.root / output.path
        if not path.is_file():
            found.notes.append(f"{output.path} is no longer there: not checked")
        elif sha256_of(path) != output.sha256:
            found.problems.append(
                f"{output.path}: its SHA-256 is not the one {RUN_RECORD} "
                f"recorded ({short(output.sha256)}...)"
            )
        else:
            found.checked.append(output.path)
    recorded = current.outputs.get("archive")
    if recorded is not None:
        if sha256_of(found.archive) != recorded.sha256:
            found.problems.append(
                f"the archive's SHA-256 is not the one {RUN_RECORD} recorded "
                f"for {recorded.path} ({short(recorded.sha256)}...)"
            )
        else:
            found.checked.append("the archive")


def verify_command(archive: Path, paths: ProjectPaths, out: TextIO | None = None) -> int:
    """Verify ``archive``, print its lines (to stdout: they are the answer); 0 if it verifies."""
    found = verify(archive, paths)
    for line in found.lines():
        print(line, file=out or sys.stdout)
    return 0 if found.ok else EXIT_FAILURE
