"""The assembly's memory does not grow with the frame count.

A GIF made in one ffmpeg graph that also makes its palette (``split``,
``palettegen``, ``paletteuse``) holds every scaled frame until palettegen has
seen the last one: 0.56 MB a frame at 400 px wide, 2 GB at 3600 frames. These
tests assemble 1200 frames at 320x240 (the one-pass graph would hold 1200 x
0.3 MB) and hold every process of the assembly under a bound that does not
depend on the frame count. Each peak is that process's own, read with
``os.wait4`` when it ends (volcano_gif.commands).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from volcano_gif.assembly.assembler import assemble
from volcano_gif.layout import FRAME_LABEL_KEY, frame_name
from volcano_gif.numbering import frame_label
from volcano_gif.paths import ProjectPaths
from volcano_gif.task.png import encode_rgb

FRAMES = 1200
SIZE = (320, 240)
#: Every ffmpeg of the assembly stays under this, whatever the frame count
#: (about 50 MiB here; the one-pass graph took over 400 MiB for these frames).
FFMPEG_BOUND_MIB = 150


@pytest.fixture(scope="module")
def many_frames(tmp_path_factory: pytest.TempPathFactory) -> ProjectPaths:
    """1200 valid, labelled frames: a colour gradient that moves from frame to frame."""
    paths = ProjectPaths(tmp_path_factory.mktemp("many"))
    paths.images.mkdir(parents=True)
    width, height = SIZE
    ramp = np.add.outer(np.arange(height), np.arange(width)).astype(np.int64)
    for frame in range(1, FRAMES + 1):
        shifted = (ramp + 3 * frame) % 256
        pixels = np.stack([shifted, 255 - shifted, (shifted * 7) % 256], axis=-1).astype(np.uint8)
        label = {FRAME_LABEL_KEY: frame_label(frame, FRAMES, SIZE)}
        (paths.images / frame_name(frame)).write_bytes(encode_rgb(pixels, 1, label))
    return paths


def test_every_ffmpeg_of_a_1200_frame_assembly_stays_under_a_flat_bound(
    many_frames: ProjectPaths,
) -> None:
    result = assemble(
        many_frames, FRAMES, gif_width=SIZE[0], size=SIZE, now=datetime(2026, 11, 29, 12, 0, 0)
    )
    peaks = result.times.peaks_mib
    assert set(peaks) == {"ffmpeg mp4", "ffmpeg palette", "ffmpeg gif", "python"}
    for name in ("ffmpeg mp4", "ffmpeg palette", "ffmpeg gif"):
        assert 0 < peaks[name] < FFMPEG_BOUND_MIB, f"{name} peaked at {peaks[name]:.0f} MiB"
    assert result.frames_deleted == FRAMES
