"""Read back what the assembler wrote: stream facts from ffmpeg, frames from PIL."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
from PIL import Image


def video_stream(path: Path) -> str:
    """ffmpeg's one-line description of the first video stream of ``path``."""
    probe = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Stream #0:0.*Video: .*", probe.stderr)
    if match is None:
        raise AssertionError(f"no video stream in {path}: {probe.stderr}")
    return match.group(0)


def mp4_frame_count(path: Path) -> int:
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    return int(frames)


def gif_facts(path: Path) -> tuple[int, tuple[int, int], int | None, int]:
    """Frames, size, loop count and first-frame delay (ms) of a GIF."""
    with Image.open(path) as image:
        return (
            getattr(image, "n_frames", 1),
            image.size,
            image.info.get("loop"),
            image.info["duration"],
        )
