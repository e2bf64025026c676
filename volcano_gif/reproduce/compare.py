"""Compare a reproduction's frames with the original run's: ``volcano-gif compare``.

What a reproduction's dependent job runs (``compare_frames.slurm``), and what a
reproduction on this machine runs once its frames are rendered. Each new
frame's SHA-256 is compared with the one in the original run's record and with
its archived copy's; for a frame that is not identical, the PSNR between the
new and the archived frame (numpy, on frames decoded by Pillow) says by how
much. The versions in the record and here are compared beside it, matplotlib's
first: its renderer decides the pixels. The outcome goes into the
reproduction's own record (``reproduces``), from which it is printed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import math
import shlex
from pathlib import Path

import numpy as np
import numpy.typing as npt

from volcano_gif.arguments import EXIT_FAILURE
from volcano_gif.errors import UsageError
from volcano_gif.files import sha256_of
from volcano_gif.layout import DATA_FILE, REPRODUCE_DIR, frame_name
from volcano_gif.numbering import expected_frames, format_size
from volcano_gif.paths import ProjectPaths
from volcano_gif.reproduce.source import Source, load_source
from volcano_gif.run import lifecycle
from volcano_gif.run.lifecycle import require_record
from volcano_gif.run.record import FrameDifference, Kind, Reproduction, RunRecord, now
from volcano_gif.task.frames import check_frames

logger = logging.getLogger(__name__)

#: The versions that decide a frame's bytes, in the order they are reported, and why.
FRAME_DECIDING = {
    "matplotlib": "its Agg renderer draws the pixels",
    "numpy": "it projects and orders the triangles",
    "zlib": "it compresses the PNG data: the bytes, not the pixels",
}
#: Frames listed one per line when frames are missing; the rest are counted.
LISTED_PROBLEMS = 20


class ReproductionIncompleteError(RuntimeError):
    """Some frames of the reproduction are missing or broken: nothing was compared."""

    def __init__(self, problems: dict[int, str], frame_count: int, hint: str) -> None:
        self.problems = problems
        frames = sorted(problems)
        listed = "\n".join(f"  frame {k}: {problems[k]}" for k in frames[:LISTED_PROBLEMS])
        more = len(frames) - LISTED_PROBLEMS
        super().__init__(
            f"{len(problems)} of {frame_count} frames of the reproduction are missing or broken; "
            f"nothing was compared\n{listed}"
            + (f"\n  ... and {more} more" if more > 0 else "")
            + f"\n{hint}"
        )


def project_of(scratch: ProjectPaths) -> ProjectPaths:
    """The project whose ``output/reproduce/<run id>/`` is ``scratch``."""
    return ProjectPaths(scratch.root.parents[len(REPRODUCE_DIR.parts)])


def origin_of(record: RunRecord) -> Reproduction:
    """What the reproduction ``record`` reproduces; raise UsageError if it is not one."""
    if record.reproduces is None:
        raise UsageError(f"run {record.run_id} is not a reproduction")
    return record.reproduces


def finish_hint(scratch: ProjectPaths, record: RunRecord) -> str:
    """The one command that finishes (or shows again) the reproduction ``record``."""
    root = project_of(scratch).root
    return (
        "finish the reproduction with one command, from the project folder (it renders only "
        f"what is missing, then compares):\n  cd {shlex.quote(str(root))} && "
        f"volcano-gif reproduce {shlex.quote(origin_of(record).source)}"
    )


def require_reproduction(scratch: ProjectPaths) -> tuple[RunRecord, Reproduction]:
    """The reproduction's record in ``scratch``; raise UsageError if it is not one."""
    record = require_record(scratch)
    if record.kind is not Kind.REPRODUCE or record.reproduces is None:
        raise UsageError(
            f"{scratch.run_record} is run {record.run_id}'s record, not a reproduction's "
            "(volcano-gif reproduce makes those, under output/reproduce/)"
        )
    return record, record.reproduces


# ------------------------------------------------------------------- frames
def decode_rgb(data: bytes) -> npt.NDArray[np.uint8]:
    """A PNG's pixels as a (height, width, 3) array."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def psnr_db(first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8]) -> float:
    """Peak signal-to-noise ratio of two 8-bit images of one shape, in dB; inf if equal."""
    if first.shape != second.shape:
        raise ValueError(f"shapes differ: {first.shape} and {second.shape}")
    difference = first.astype(np.float64) - second.astype(np.float64)
    mse = float(np.mean(difference * difference))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def measure(archived: bytes, rendered: Path) -> tuple[float | None, str]:
    """How far the archived frame is from the one rendered again: PSNR and a few words."""
    try:
        old = decode_rgb(archived)
    except (OSError, SyntaxError, ValueError) as error:
        return None, f"the archived copy does not decode ({error})"
    new = decode_rgb(rendered.read_bytes())
    if old.shape != new.shape:
        sizes = [format_size((image.shape[1], image.shape[0])) for image in (old, new)]
        return None, f"the archived copy is {sizes[0]}, the new frame {sizes[1]}"
    value = psnr_db(old, new)
    if math.isinf(value):
        return None, "the same pixels: only the PNG bytes differ"
    changed = int(np.count_nonzero(np.any(old != new, axis=2)))
    return value, (
        f"PSNR {value:.1f} dB against the archived frame, "
        f"{changed} of {old.shape[0] * old.shape[1]} pixels differ"
    )


def _what(recorded: str | None, archived: str | None, rendered: str, archive: bool) -> str:
    """What differs about one frame, in words (the cases of :func:`differences`)."""
    if recorded is None:
        return "the original record has no SHA-256 for it"
    matches = "matches" if rendered == recorded else "does not match"
    if archive and archived is None:
        return f"missing from the archive; this render {matches} the record"
    if rendered == recorded:
        return (
            "the archive's copy is not the frame its record names (changed after the "
            "run?); this render matches the record"
        )
    if not archive or archived == recorded:
        return "differs from the record"
    if archived == rendered:
        return (
            "differs from the record, as does the archive's copy, which is this render: "
            "the record's checksum is not the archive's"
        )
    return "differs from the record, and the archive's copy differs from both"


def differences(
    source: Source, rendered: dict[str, str], measured: dict[str, tuple[float | None, str]]
) -> list[FrameDifference]:
    """Every frame whose new SHA-256 is not the recorded one (nor the archived copy's)."""
    archive = source.archive
    found = []
    for frame in expected_frames(source.record.parameters.frame_count):
        name = frame_name(frame)
        recorded, new = source.record.frames_sha256.get(name), rendered[name]
        archived = archive.frames.get(name) if archive else None
        if recorded == new and (archive is None or archived == new):
            continue
        psnr, how = measured.get(name, (None, ""))
        if archive is None:
            how = "no archive to measure it against"
        what = _what(recorded, archived, new, archive is not None)
        found.append(
            FrameDifference(frame, recorded, archived, new, psnr, f"{what}: {how}" if how else what)
        )
    return found


def version_differences(
    recorded: dict[str, str], here: dict[str, str]
) -> dict[str, list[str | None]]:
    """``{name: [recorded, here]}``: those that decide the frames first, then the others
    that both name."""
    found: dict[str, list[str | None]] = {}
    for name in FRAME_DECIDING:
        if recorded.get(name) != here.get(name):
            found[name] = [recorded.get(name), here.get(name)]
    for name in sorted((set(recorded) & set(here)) - set(FRAME_DECIDING)):
        if recorded[name] != here[name]:
            found[name] = [recorded[name], here[name]]
    return found


# --------------------------------------------------------------------- the step
def _compare(
    scratch: ProjectPaths, record: RunRecord, origin: Reproduction
) -> tuple[dict[str, str], Reproduction]:
    """The frames' SHA-256 by name, and ``origin`` with the outcome of comparing them."""
    parameters = record.parameters
    problems = check_frames(scratch.images, parameters.frame_count, parameters.size)
    if problems:
        hint = finish_hint(scratch, record)
        raise ReproductionIncompleteError(problems, parameters.frame_count, hint)
    rendered = {
        frame_name(frame): sha256_of(scratch.frame(frame))
        for frame in expected_frames(parameters.frame_count)
    }
    measured: dict[str, tuple[float | None, str]] = {}

    def visit(name: str, data: bytes) -> None:  # each archived frame, as it is read
        if name in rendered and hashlib.sha256(data).hexdigest() != rendered[name]:
            measured[name] = measure(data, scratch.images / name)

    source = load_source(Path(origin.source), project_of(scratch), visit)
    if source.record.run_id != origin.run_id:
        raise UsageError(
            f"{origin.source} is now run {source.record.run_id}'s, not "
            f"{origin.run_id}'s: nothing was compared"
        )
    notes = list(source.notes)
    if source.sha256 != origin.source_sha256:
        notes.append(f"{origin.source} changed since the reproduction started")
    if source.record.data_sha256 is None:
        notes.append(
            f"the original record has no SHA-256 of {DATA_FILE} (schema version "
            f"{source.schema_version}): the data cannot be checked"
        )
    elif source.record.data_sha256 != record.data_sha256:
        notes.append(
            f"{DATA_FILE} is not the original run's: SHA-256 {(record.data_sha256 or '')[:12]}... "
            f"here, {source.record.data_sha256[:12]}... in the record: other heights"
        )
    found = differences(source, rendered, measured)
    return rendered, dataclasses.replace(
        origin,
        archive=str(source.archive.path) if source.archive else None,
        identical=not found,
        differences=found,
        version_differences=version_differences(source.record.versions, record.versions),
        notes=notes,
    )


def compare_reproduction(scratch: ProjectPaths) -> int:
    """Compare the frames in ``scratch`` with the original's; record and print the outcome.

    Exit status 0 only when every frame is identical.
    """
    record, origin = require_reproduction(scratch)
    lifecycle.started(scratch, record.run_id)
    with lifecycle.recording_failures(scratch, record.run_id, way=""):
        rendered, outcome = _compare(scratch, record, origin)

    def compared(current: RunRecord) -> str:
        if current.reproduces is None:
            raise UsageError(f"run {current.run_id} is no longer a reproduction's record")
        current.frames_sha256 = rendered
        current.reproduces = dataclasses.replace(outcome, compared=now())
        return "identical" if outcome.identical else f"{len(outcome.differences)} frames differ"

    written = lifecycle.succeeded(scratch, record.run_id, compared)
    return print_outcome(scratch, written or require_reproduction(scratch)[0])


def print_outcome(scratch: ProjectPaths, record: RunRecord) -> int:
    """Print a compared reproduction's outcome (stdout: it is the answer); 0 if identical."""
    for line in outcome_lines(scratch, record):
        print(line, flush=True)
    identical = record.reproduces is not None and record.reproduces.identical
    return 0 if identical else EXIT_FAILURE


def outcome_lines(scratch: ProjectPaths, record: RunRecord) -> list[str]:
    """The outcome of a compared reproduction, from its record: one line per difference."""
    origin = origin_of(record)
    parameters = record.parameters
    count = parameters.frame_count
    where = project_of(scratch).relative(scratch.root)
    lines = [
        f"run {origin.run_id} rendered again as run {record.run_id}: {count} frames of "
        f"{format_size(parameters.size)} in {where}"
    ]
    lines += [f"note: {note}" for note in origin.notes]
    lines += version_lines(origin.version_differences, record.versions)
    lines += [f"frame {difference.frame}: {difference.detail}" for difference in origin.differences]
    if origin.identical:
        kept = " and its archive" if origin.archive else ""
        lines.append(
            f"identical: all {count} frames have the SHA-256 in run {origin.run_id}'s record{kept}"
        )
    else:
        frames = [difference.frame for difference in origin.differences]
        shown = ", ".join(map(str, frames[:12])) + (", ..." if len(frames) > 12 else "")
        lines.append(f"not identical: {len(frames)} of {count} frames differ ({shown})")
    return lines


def version_lines(found: dict[str, list[str | None]], here: dict[str, str]) -> list[str]:
    """One line per version that differs (matplotlib first), or one saying none does."""
    if not found:
        same = ", ".join(
            f"{name} {here[name]}" for name in ("matplotlib", "numpy", "python") if name in here
        )
        return [f"versions: as in the record ({same})"]
    lines = []
    for name, (recorded, current) in found.items():
        why = FRAME_DECIDING.get(name, "it does not draw or encode the frames")
        if recorded is None:
            lines.append(f"versions: {name} is not in the record ({current} here): {why}")
        elif current is None:
            lines.append(f"versions: {name} {recorded} in the record, none here: {why}")
        else:
            lines.append(f"versions: {name} {recorded} in the record, {current} here: {why}")
    return lines
