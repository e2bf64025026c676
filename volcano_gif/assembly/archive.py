"""The frame archive: a dated ``.tar.gz`` of the frames and the run record, read back.

``write_archive`` packs the frames (and a copy of ``run.json``) and returns the
SHA-256 of every member as it was read; ``verify_archive`` reads the archive
back from disk and compares every member with those digests. Only a verified
archive lets the assembler delete a frame.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from volcano_gif.layout import ARCHIVE_PREFIX, ARCHIVE_RECORD_NAME, ARCHIVE_STAMP_FORMAT, IMAGES_DIR

#: gzip level of the frame archive. The PNGs are deflated already: level 1
#: took 0.9 CPU-s for 360 frames to save 5% (29.6 MB against 31.1 MB), so
#: the archive only stores them; gzip still adds its CRC-32 check.
ARCHIVE_GZIP_LEVEL = 0


class ArchiveError(RuntimeError):
    """The archive could not be written or verified."""


def archive_path(archives_dir: Path, now: datetime) -> Path:
    """``volcano-images-YYYYmmddTHHMMSS.tar.gz``, with a suffix if that is taken."""
    stem = ARCHIVE_PREFIX + now.strftime(ARCHIVE_STAMP_FORMAT)
    candidate = archives_dir / f"{stem}.tar.gz"
    serial = 2
    while candidate.exists():
        candidate = archives_dir / f"{stem}-{serial}.tar.gz"
        serial += 1
    return candidate


def member_name(frame_path: Path) -> str:
    """A frame's name inside the archive: ``images/image0001.png``."""
    return f"{IMAGES_DIR.as_posix()}/{frame_path.name}"


def write_archive(
    frames: Sequence[Path],
    target: Path,
    record_copy: Callable[[dict[str, str]], bytes] | None = None,
) -> dict[str, str]:
    """Pack ``frames`` into a gzipped tar at ``target`` as ``images/<name>``.

    ``record_copy``, given the frames' digests by member name, returns the bytes
    of the run record to store beside them as ``run.json``. Returns the SHA-256
    of each member as it was read, for :func:`verify_archive`.
    """
    digests: dict[str, str] = {}
    with tarfile.open(target, "w:gz", compresslevel=ARCHIVE_GZIP_LEVEL) as archive:
        for path in frames:
            data = path.read_bytes()
            member = archive.gettarinfo(path, arcname=member_name(path))
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
            digests[member.name] = hashlib.sha256(data).hexdigest()
        if record_copy is not None:
            data = record_copy(dict(digests))
            member = tarfile.TarInfo(ARCHIVE_RECORD_NAME)
            member.size, member.mtime, member.mode = len(data), int(time.time()), 0o644
            archive.addfile(member, io.BytesIO(data))
            digests[member.name] = hashlib.sha256(data).hexdigest()
    return digests


def verify_archive(archive_file: Path, wanted: dict[str, str]) -> None:
    """Read ``archive_file`` back; raise unless its members are exactly ``wanted``.

    ``wanted`` maps member names to the SHA-256 digests of what was packed.
    """
    found: dict[str, str] = {}
    try:
        with tarfile.open(archive_file, "r:gz") as archive:
            for member in archive:
                handle = archive.extractfile(member)
                if handle is None:
                    raise ArchiveError(f"{archive_file}: member {member.name} is not a file")
                found[member.name] = hashlib.sha256(handle.read()).hexdigest()
    except (OSError, EOFError, tarfile.TarError) as error:
        raise ArchiveError(
            f"{archive_file}: the archive does not read back ({error}); no frame was deleted"
        ) from None
    if found != wanted:
        missing = sorted(set(wanted) - set(found))
        extra = sorted(set(found) - set(wanted))
        changed = sorted(name for name in set(wanted) & set(found) if wanted[name] != found[name])
        raise ArchiveError(
            f"{archive_file}: archive does not match the frames "
            f"(missing {missing[:5]}, extra {extra[:5]}, different {changed[:5]}); "
            "no frame was deleted"
        )
