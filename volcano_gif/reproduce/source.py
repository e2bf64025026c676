"""What a reproduction starts from: a run's archive, or its run record.

An archive (``output/archives/volcano-images-*.tar.gz``) holds the frames as
``images/imageNNNN.png`` and a copy of the run record as ``run.json``, with the
SHA-256 of every frame. It is read as a stream, member by member, and never
extracted: nothing in it is written anywhere, whatever its members are called.
A file that is not such an archive (not gzip, not tar, cut short, no
``run.json``, a record that does not parse) is refused in one line.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from volcano_gif.errors import UsageError
from volcano_gif.files import sha256_of
from volcano_gif.layout import (
    ARCHIVE_RECORD_NAME,
    IMAGES_DIR,
    MAX_SIDE,
    MIN_SIDE,
    OUTPUT_DIR,
    frame_number,
)
from volcano_gif.numbering import check_frame_count
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.record import SCHEMA_VERSION, RecordError, RunRecord, check_run_id

#: A run record is a few hundred kilobytes at most; anything larger is not one.
MAX_RECORD_BYTES = 16 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_FRAME_PREFIX = f"{IMAGES_DIR.as_posix()}/"


class SourceError(RuntimeError):
    """The archive or record cannot be read as a run's: one line that says why."""


@dataclass(frozen=True)
class ArchiveContents:
    """What an archive holds, as read back member by member."""

    path: Path
    record: RunRecord
    schema_version: int  # of its run.json, as found (a version-1 record is read as 2)
    frames: dict[str, str]  # frame file name (image0001.png) -> SHA-256 of the archived copy
    problems: list[str] = field(default_factory=list)  # about the archive itself


@dataclass(frozen=True)
class Source:
    """A run to reproduce: its record, and the archive of its frames if there is one."""

    path: Path  # what was given
    sha256: str  # of that file
    record: RunRecord
    schema_version: int
    archive: ArchiveContents | None
    notes: list[str] = field(default_factory=list)


def _exists(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a file")


def read_archive(path: Path, visit: Callable[[str, bytes], None] | None = None) -> ArchiveContents:
    """Read the archive at ``path``: every member's SHA-256, and its ``run.json``.

    ``visit(frame name, bytes)`` is called for each archived frame as it is read.
    Members that do not belong and a gzip checksum that fails are problems of
    the archive (the frames are still read and named); a file that cannot be
    read to its end, or holds no run record, raises :class:`SourceError`.
    """
    _exists(path)
    frames: dict[str, str] = {}
    counts: Counter[str] = Counter()
    problems: list[str] = []
    record_bytes: bytes | None = None
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                counts[member.name] += 1
                if not member.isfile():
                    problems.append(f"member {member.name!r} is not a file")
                    continue
                handle = archive.extractfile(member)
                if handle is None:  # (isfile() members always have one)
                    continue
                name = member.name.removeprefix(_FRAME_PREFIX)
                if member.name == ARCHIVE_RECORD_NAME:
                    if member.size > MAX_RECORD_BYTES:
                        raise SourceError(
                            f"{path}: its {ARCHIVE_RECORD_NAME} is "
                            f"{member.size} bytes: not a run record"
                        )
                    record_bytes = handle.read()
                elif member.name.startswith(_FRAME_PREFIX) and frame_number(name) is not None:
                    data = handle.read()
                    frames[name] = hashlib.sha256(data).hexdigest()
                    if visit is not None:
                        visit(name, data)
                else:
                    problems.append(f"member {member.name!r} is neither a frame nor the record")
            problems += _gzip_trailer(archive)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
        read = sum(counts.values())
        raise SourceError(
            f"{path}: not a volcano-gif archive that reads back ({_said(error)}"
            f"{f', after {read} members' if read else ''}): it is damaged, cut short, "
            "or not a .tar.gz of frames"
        ) from None
    problems += [
        f"member {name!r} appears {count} times"
        for name, count in sorted(counts.items())
        if count > 1
    ]
    if record_bytes is None:
        raise SourceError(
            f"{path}: not a volcano-gif archive: it holds no {ARCHIVE_RECORD_NAME} "
            f"(an archive of a run holds {_FRAME_PREFIX}imageNNNN.png and {ARCHIVE_RECORD_NAME})"
        )
    record, version = parse_record(record_bytes, f"{path}: {ARCHIVE_RECORD_NAME}")
    return ArchiveContents(path, record, version, frames, problems)


def _gzip_trailer(archive: tarfile.TarFile) -> list[str]:
    """Read the gzip stream to its end, so that its CRC-32 is checked.

    tarfile stops at the tar's end marker and never reaches gzip's checksum: a
    byte changed in a member's data would go unnoticed by it.
    """
    stream = archive.fileobj
    if stream is None:
        return []
    try:
        while stream.read(1 << 20):
            pass
    except (OSError, EOFError, zlib.error) as error:
        return [
            f"its gzip stream does not check out ({_said(error)}): "
            "the file was changed or cut short after it was written"
        ]
    return []


def _said(error: BaseException) -> str:
    return str(error).strip() or type(error).__name__


def parse_record(text: bytes, where: str) -> tuple[RunRecord, int]:
    """A run record from its bytes, and the schema version it was written with."""
    try:
        data: Any = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(f"{where}: not a run record: not JSON ({error})") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    try:
        record = RunRecord.from_json(data)
        _check(record)
    except RecordError as error:
        raise SourceError(
            f"{where}: not a run record of schema version {SCHEMA_VERSION} or older ({error})"
        ) from None
    return record, int(version) if isinstance(version, int) else SCHEMA_VERSION


def _check(record: RunRecord) -> None:
    """What the schema says of the fields a reproduction relies on (they decide paths,
    frame names and sizes)."""
    parameters = record.parameters
    numbers = [parameters.frame_count, parameters.frames_per_task, *parameters.size]
    numbers.append(parameters.gif_width)
    if not all(isinstance(number, int) and not isinstance(number, bool) for number in numbers):
        raise RecordError("its parameters are not whole numbers")
    try:
        check_frame_count(parameters.frame_count)
    except UsageError as error:
        raise RecordError(str(error)) from None
    if not all(MIN_SIDE <= side <= MAX_SIDE for side in parameters.size):
        raise RecordError(f"its frame size {parameters.width}x{parameters.height} is out of range")
    if not isinstance(record.run_id, str):
        raise RecordError("its run_id is not a string")
    check_run_id(record.run_id)
    for name, table in (("frames_sha256", record.frames_sha256), ("versions", record.versions)):
        if not isinstance(table, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in table.items()
        ):
            raise RecordError(f"its {name} is not a table of strings")


def load_source(
    path: Path, paths: ProjectPaths, visit: Callable[[str, bytes], None] | None = None
) -> Source:
    """The run that ``path`` (an archive, or a run record such as output/run.json) describes.

    For a run record, the archive it names is looked for beside it and in
    ``paths``. ``visit`` sees each archived frame (see :func:`read_archive`).
    """
    _exists(path)
    path = path.resolve()
    with path.open("rb") as handle:
        start = handle.read(len(_GZIP_MAGIC))
    if start == _GZIP_MAGIC or path.name.endswith((".tar.gz", ".tgz")):
        contents = read_archive(path, visit)
        return Source(path, sha256_of(path), contents.record, contents.schema_version, contents)
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise SourceError(f"{path}: neither an archive of a run (.tar.gz) nor a run record")
    record, version = parse_record(path.read_bytes(), str(path))
    if not record.frames_sha256:
        raise SourceError(
            f"{path}: run {record.run_id} ({record.state}) has no frame checksums: it was never "
            "assembled, so there is nothing to compare with"
        )
    archive, notes = _archive_named_by(record, path, paths, visit)
    return Source(path, sha256_of(path), record, version, archive, notes)


def _archive_named_by(
    record: RunRecord,
    record_file: Path,
    paths: ProjectPaths,
    visit: Callable[[str, bytes], None] | None,
) -> tuple[ArchiveContents | None, list[str]]:
    named = record.outputs.get("archive")
    if named is None:
        return None, [f"run {record.run_id} names no archive: frames are compared by checksum"]
    project = record_file.parent.parent if record_file.parent.name == OUTPUT_DIR.name else None
    for folder in dict.fromkeys(f for f in (project, paths.root) if f is not None):
        candidate = folder / named.path
        if candidate.is_file():
            archive = read_archive(candidate, visit)
            if archive.record.run_id != record.run_id:
                return None, [
                    f"{candidate} is run {archive.record.run_id}'s archive, not "
                    f"{record.run_id}'s: frames are compared by checksum"
                ]
            return archive, []
    return None, [
        f"{named.path} (run {record.run_id}'s archive) is not here: frames are "
        "compared by checksum only"
    ]
