"""Read the MP4 and the GIF back, before any frame is deleted.

The MP4 is decoded in full with imageio's ffmpeg plugin (the ffmpeg of the
imageio-ffmpeg wheel), the GIF with its Pillow plugin. Each must have every
frame, at the expected size: a truncated or empty file fails here, with its
name, and the assembler then deletes nothing. imageio is imported only here,
by the assembly, never by a render task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from volcano_gif.numbering import format_size


class OutputError(RuntimeError):
    """An output is not what it must be; nothing was deleted."""


@dataclass(frozen=True)
class MediaFacts:
    frames: int
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def read_mp4(path: Path) -> MediaFacts:
    """Decode every frame of the MP4 at ``path``; return its frame count and size."""
    import imageio.v3 as iio

    frames, shape = 0, (0, 0)
    # extension: the file may still have its temporary name.
    for image in iio.imiter(path, plugin="FFMPEG", extension=".mp4"):
        frames += 1
        shape = image.shape[:2]
    return MediaFacts(frames, shape[1], shape[0])


def read_gif(path: Path) -> MediaFacts:
    """Read the GIF at ``path``; return its frame count and size."""
    import imageio.v3 as iio

    properties = iio.improps(path, plugin="pillow", extension=".gif")
    count, height, width = properties.shape[:3]
    return MediaFacts(int(count), int(width), int(height))


def verify_media(
    path: Path, kind: str, frames: int, size: tuple[int, int], final_name: Path | None = None
) -> MediaFacts:
    """Check that ``path`` (an ``mp4`` or a ``gif``) has ``frames`` frames of ``size``.

    ``final_name`` is the name the file is about to get: errors name it.
    """
    name = final_name or path
    reader = {"mp4": read_mp4, "gif": read_gif}[kind]
    if not path.is_file() or path.stat().st_size == 0:
        raise OutputError(f"{name}: the {kind.upper()} is empty or missing; no frame was deleted")
    try:
        facts = reader(path)
    except Exception as error:  # noqa: BLE001  (any reader failure means a bad file)
        raise OutputError(
            f"{name}: the {kind.upper()} does not read back ({type(error).__name__}: {error}); "
            "no frame was deleted"
        ) from None
    if (facts.frames, facts.size) != (frames, size):
        raise OutputError(
            f"{name}: the {kind.upper()} has {facts.frames} frames of {format_size(facts.size)}, "
            f"not {frames} of {format_size(size)}; no frame was deleted"
        )
    return facts
